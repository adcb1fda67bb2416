"""Save the model as adapter / merged / both, push it, and check that each form reloads from the hub."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .hub import endpoint
from .recipe import RecipeError

if TYPE_CHECKING:
    from .runner import Context, RunResult

ATOL = 1e-4
RTOL = 1e-4


@dataclass
class Staged:
    """The folder that becomes the repo, which forms it holds, and reference predictions for the checks."""

    dir: Path
    forms: dict[str, str]  # form -> subfolder ("" = repo root)
    inputs: list[Any]
    reference: Any
    local_checks: dict[str, Any] = field(default_factory=dict)


def _compare(reference: Any, got: Any) -> dict[str, Any]:
    import torch

    if reference.shape != got.shape:
        return {"match": False, "reason": f"shape {tuple(got.shape)} != {tuple(reference.shape)}"}
    diff = float((reference - got).abs().max()) if reference.numel() else 0.0
    same_argmax = bool((reference.argmax(-1) == got.argmax(-1)).all())
    match = bool(torch.allclose(reference, got, atol=ATOL, rtol=RTOL)) and same_argmax
    return {"match": match, "max_abs_diff": diff, "same_predictions": same_argmax}


def stage(ctx: Context, save: str) -> Staged:
    """Write the model in the forms asked for into ``<output_dir>/repo`` (the folder that gets pushed)."""
    recipe, task = ctx.recipe, ctx.task
    model = ctx.trainer.model
    repo_dir = ctx.out / "repo"
    if repo_dir.exists():
        shutil.rmtree(repo_dir)
    repo_dir.mkdir(parents=True)
    inputs = task.sample_inputs(ctx.splits)
    reference = task.predict(model, ctx.tokenizer, inputs)
    staged = Staged(repo_dir, {}, inputs, reference)
    if recipe.method.name == "full":
        model.save_pretrained(repo_dir)
        staged.forms["model"] = ""
    else:
        adapter_dir = repo_dir if save == "adapter" else repo_dir / "adapter"
        model.save_pretrained(adapter_dir)
        (adapter_dir / "README.md").unlink(missing_ok=True)  # peft's placeholder card; ours is written later
        staged.forms["adapter"] = "" if save == "adapter" else "adapter"
        if save in ("merged", "both"):
            merged = model.merge_and_unload()
            staged.local_checks["merged"] = _compare(reference, task.predict(merged, ctx.tokenizer, inputs))
            merged.save_pretrained(repo_dir)
            staged.forms["merged"] = ""
    ctx.tokenizer.save_pretrained(repo_dir)
    runs = ctx.out / "runs"
    if runs.is_dir() and any(runs.rglob("events.out.tfevents*")):
        shutil.copytree(runs, repo_dir / "runs")
    shutil.copy(ctx.out / "cove_recipe.yaml", repo_dir / "cove_recipe.yaml")
    shutil.rmtree(ctx.out / "checkpoints", ignore_errors=True)  # the best model is in repo/ now
    return staged


def load_form(ctx: Context, form: str, repo_id: str, revision: str | None, subfolder: str) -> tuple[Any, Any]:
    """Load one pushed form back from the hub with the stock clients; returns (model, tokenizer)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(repo_id, revision=revision)
    if ctx.tokenizer.pad_token is not None and tokenizer.pad_token is None:
        tokenizer.pad_token = ctx.tokenizer.pad_token
    if form in ("model", "merged"):
        return ctx.model_cls.from_pretrained(repo_id, revision=revision), tokenizer
    from peft import PeftModel

    base = ctx.model_cls.from_pretrained(
        ctx.model_ref.id,
        revision=None if ctx.model_ref.local else ctx.model_ref.sha,
        **ctx.task.model_kwargs(),
    )
    if tokenizer.pad_token_id is not None and getattr(base.config, "pad_token_id", None) is None:
        base.config.pad_token_id = tokenizer.pad_token_id
    kwargs = {"subfolder": subfolder} if subfolder else {}
    return PeftModel.from_pretrained(base, repo_id, revision=revision, **kwargs), tokenizer


def push_and_verify(ctx: Context, results: dict[str, Any], staged: Staged, outcome: RunResult) -> None:
    """Upload the staged folder in one commit, reload every form from the hub, record the checks."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    assert ctx.recipe.push is not None
    spec = ctx.recipe.push
    api = HfApi()
    from .runner import say

    say(f"pushing {'+'.join(staged.forms)} to {endpoint()}/{spec.repo_id}")
    try:
        api.create_repo(spec.repo_id, private=spec.private, exist_ok=True)
        info = api.upload_folder(repo_id=spec.repo_id, folder_path=staged.dir, commit_message=spec.commit_message)
    except HfHubHTTPError as err:
        raise RecipeError(f"push to {spec.repo_id!r} failed: {err}") from err
    outcome.repo_id, outcome.commit = spec.repo_id, info.oid
    outcome.url = f"{endpoint()}/{spec.repo_id}"
    outcome.pushed = list(staged.forms)
    if spec.verify:
        for form, subfolder in staged.forms.items():
            model, tokenizer = load_form(ctx, form, spec.repo_id, info.oid, subfolder)
            check = _compare(staged.reference, ctx.task.predict(model, tokenizer, staged.inputs))
            check["subfolder"] = subfolder
            outcome.verification[form] = check
            say(f"reloaded {form} from the hub: {'same predictions' if check['match'] else 'MISMATCH'}")
        results["verification"] = {"revision": info.oid, "inputs": len(staged.inputs), **outcome.verification}
        text = json.dumps(results, indent=2, default=str)
        (ctx.out / "results.json").write_text(text, encoding="utf-8")
        info2 = api.upload_file(
            path_or_fileobj=text.encode(),
            path_in_repo="results.json",
            repo_id=spec.repo_id,
            commit_message="cove train: record reload checks",
        )
        outcome.commit = info2.oid
        bad = [f for f, c in outcome.verification.items() if not c["match"]]
        if bad:
            raise RecipeError(
                f"pushed {bad} but reloading from the hub gave different predictions: "
                f"{ {f: outcome.verification[f] for f in bad} }"
            )


def push_space(repo_id: str) -> str:
    """Create or update the Gradio Space ``{repo_id}-demo`` that loads the pushed model with its pipeline.

    The task is the model's `pipeline_tag` on the hub and the privacy is the model's; returns the Space's URL."""
    from huggingface_hub import HfApi

    from cove.spaces.templates import push_demo_space

    api = HfApi(endpoint=endpoint())
    info = api.model_info(repo_id)
    return push_demo_space(api, f"{repo_id}-demo", repo_id, info.pipeline_tag or "text-classification",
                           private=bool(info.private), message=f"Demo app for {repo_id}")
