"""`cove train`, `cove reproduce` and `cove import model|dataset|cache`; mounted by :func:`register`.

Everything here talks to the hub at ``HF_ENDPOINT`` with the stock clients. torch is imported only when a
command runs, never at import.
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

import_app = typer.Typer(help="Put local models, data files or cached repos onto the hub.", no_args_is_help=True)


def _fail(err: Exception) -> typer.Exit:
    from huggingface_hub.errors import HfHubHTTPError

    from cove.train import RecipeError
    from cove.train.hub import endpoint

    if not isinstance(err, RecipeError | HfHubHTTPError):
        err = ConnectionError(f"cannot reach the hub at {endpoint()} (HF_ENDPOINT): {err}")
    typer.echo(f"error: {err}", err=True)
    return typer.Exit(2)


TRAIN_EXTRA = frozenset({"torch", "transformers", "datasets", "peft", "accelerate", "evaluate", "sklearn", "seqeval",
                         "rouge_score", "matplotlib", "tensorboard"})
INSTALL_TRAIN = "pip install torch==2.13.0 && pip install -e '.[train]'"


def _missing_extra(err: ImportError) -> typer.Exit:
    """A package of the train extra is not installed: say which and the one command that installs them."""
    name = (err.name or "").split(".")[0]
    if name not in TRAIN_EXTRA:
        raise err
    typer.echo(f"error: `{name}` is not installed; training needs the train extra (CPU torch first):\n"
               f"  {INSTALL_TRAIN}\n"
               "(where pip finds only PyPI's CUDA build of torch, add --extra-index-url "
               "https://download.pytorch.org/whl/cpu to the first command)", err=True)
    return typer.Exit(2)


def _errors() -> tuple[type[Exception], ...]:
    """What a command reports as one line: recipe problems, hub HTTP errors, an unreachable hub."""
    import importlib

    from huggingface_hub.errors import HfHubHTTPError

    from cove.train import RecipeError

    found: list[type[Exception]] = [RecipeError, HfHubHTTPError, ConnectionError]
    for name in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(name).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def train(
    recipe: Annotated[Path, typer.Argument(help="The recipe YAML.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a key: training.learning_rate=3e-4")] = None,
    output_dir: Annotated[str | None, typer.Option(help="Where the run writes (default: runs/<name>).")] = None,
    push: Annotated[bool, typer.Option("--push/--no-push", help="Push when the recipe has a push section.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    space: Annotated[bool, typer.Option("--space", help="Also create/update a Gradio Space {repo_id}-demo "
                                        "that serves the pushed model.")] = False,
) -> None:
    """Fine-tune, evaluate, document and push a model from a recipe."""
    from cove.train import load_recipe, run

    if space and not push:
        raise typer.BadParameter("--space serves the pushed model: drop --no-push")
    try:
        overrides = list(set_ or []) + ([f"output_dir={output_dir}"] if output_dir else [])
        with contextlib.redirect_stdout(sys.stderr):  # progress and Trainer logs; stdout is for the result
            result = run(load_recipe(recipe, overrides), push=push)
        space_url = None
        if space:
            if not result.repo_id:
                raise typer.BadParameter("--space needs a pushed model: a recipe with a push section, and --push")
            from cove.train.push import push_space

            space_url = push_space(result.repo_id)
    except ImportError as err:
        raise _missing_extra(err) from None
    except _errors() as err:
        raise _fail(err) from None
    if as_json:
        typer.echo(json.dumps({**asdict(result), **({"space_url": space_url} if space else {})}, indent=2,
                              default=str))
    else:
        typer.echo(result.url or result.output_dir)
        if space_url:
            typer.echo(space_url)


def reproduce(
    repo_id: Annotated[str, typer.Argument(help="A model pushed by cove train.")],
    revision: Annotated[str | None, typer.Option(help="Commit, branch or tag of that model.")] = None,
    output_dir: Annotated[str | None, typer.Option(help="Where the new run writes (default: a temp folder).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a key of the pushed recipe.")] = None,
    tolerance: Annotated[
        float | None, typer.Option(help="Exit 1 when a metric moves by more than this (absolute).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON on stdout.")] = False,
) -> None:
    """Train a pushed model again from its recipe and report each metric's difference."""
    from cove.train.reproduce import reproduce as _reproduce

    try:
        with contextlib.redirect_stdout(sys.stderr):
            rep = _reproduce(repo_id, revision=revision, output_dir=output_dir, overrides=list(set_ or []))
    except ImportError as err:
        raise _missing_extra(err) from None
    except _errors() as err:
        raise _fail(err) from None
    typer.echo(json.dumps(asdict(rep), indent=2, default=str) if as_json else rep.report())
    if tolerance is not None and rep.max_abs_delta() > tolerance:
        typer.echo(f"a metric moved by {rep.max_abs_delta():.4f} > tolerance {tolerance}", err=True)
        raise typer.Exit(1)


def _echo_url(fn, *args, **kwargs) -> None:  # noqa: ANN001
    """Run an import and print where it landed, turning known errors into one clear message."""
    try:
        typer.echo(fn(*args, **kwargs).url)
    except _errors() as err:
        raise _fail(err) from None


@import_app.command("model")
def import_model(
    path: Annotated[Path, typer.Argument(help="A saved model folder.")],
    repo_id: Annotated[str, typer.Argument(help="Target repo, namespace/name.")],
    private: Annotated[bool, typer.Option(help="Create the repo private.")] = False,
) -> None:
    """Upload a local model folder as a model repo."""
    from cove.train.importer import import_model

    _echo_url(import_model, path, repo_id, private=private)


@import_app.command("dataset")
def import_dataset(
    path: Annotated[Path, typer.Argument(help="A data file (csv, json, parquet...) or a dataset folder.")],
    repo_id: Annotated[str, typer.Argument(help="Target repo, namespace/name.")],
    private: Annotated[bool, typer.Option(help="Create the repo private.")] = False,
) -> None:
    """Upload a data file or folder as a dataset repo."""
    from cove.train.importer import import_dataset

    _echo_url(import_dataset, path, repo_id, private=private)


@import_app.command("cache")
def import_cache(
    source_id: Annotated[str, typer.Argument(help="A repo id present in the local HF cache.")],
    repo_id: Annotated[str | None, typer.Argument(help="Target repo (default: the same id).")] = None,
    repo_type: Annotated[str, typer.Option(help="model or dataset.")] = "model",
    private: Annotated[bool, typer.Option(help="Create the repo private.")] = False,
    cache_dir: Annotated[Path | None, typer.Option(help="The HF hub cache (default: HF_HUB_CACHE).")] = None,
) -> None:
    """Upload the newest cached snapshot of a repo from ~/.cache/huggingface/hub."""
    from cove.train.importer import import_cached

    _echo_url(import_cached, source_id, repo_id, repo_type=repo_type, private=private, cache_dir=cache_dir)


def register(app: typer.Typer) -> None:
    """Add ``train``, ``reproduce`` and the ``import`` group to the main ``cove`` app."""
    app.command("train")(train)
    app.command("reproduce")(reproduce)
    app.add_typer(import_app, name="import")
