"""evaluate-compatible metric modules that Cove seeds into ``evaluate-metric/<name>`` Spaces.

``evaluate.load("accuracy")`` downloads
``{HF_ENDPOINT}/spaces/evaluate-metric/accuracy/resolve/<rev>/accuracy.py``
(it tries the tag ``v<evaluate version>`` first and falls back to ``main`` on a 404) and imports it. The
modules in this package are those scripts, built on scikit-learn, seqeval and rouge-score, so the standard
metrics work against an offline Cove. This package only reads their source: importing it never imports
evaluate, datasets or torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # huggingface_hub only where the client writes (`cove serve` reads the sources at start-up)
    from huggingface_hub import HfApi

METRICS: dict[str, str] = {
    "accuracy": "scikit-learn",
    "f1": "scikit-learn",
    "precision": "scikit-learn",
    "recall": "scikit-learn",
    "seqeval": "seqeval",
    "squad": "",
    "rouge": "rouge-score",
    "perplexity": "torch transformers",
}
NAMESPACE = "evaluate-metric"
_HERE = Path(__file__).parent


def module_path(name: str) -> Path:
    """The local path of a bundled metric module (``evaluate.load`` accepts it directly)."""
    if name not in METRICS:
        raise KeyError(f"Cove bundles no metric {name!r}; it has {sorted(METRICS)}")
    return _HERE / f"{name}.py"


def _readme(name: str) -> str:
    title = name.capitalize()
    return (
        "---\n"
        f"title: {title}\n"
        "sdk: gradio\n"
        "app_file: app.py\n"
        "pinned: false\n"
        "tags:\n- evaluate\n- metric\n"
        "---\n\n"
        f"# {title}\n\n"
        f'The `{name}` metric for `evaluate.load("{name}")`, seeded by Cove. Source: `{name}.py` '
        f"(built on {METRICS[name] or 'the standard library'}).\n"
    )


def _app(name: str) -> str:
    return (
        "import evaluate\nfrom evaluate.utils import launch_gradio_widget\n\n"
        f'launch_gradio_widget(evaluate.load("{name}"))\n'
    )


def space_files(name: str) -> dict[str, bytes]:
    """The files of the ``evaluate-metric/<name>`` Space: the module ``evaluate.load`` imports, a card, an app."""
    return {
        f"{name}.py": module_path(name).read_bytes(),
        "README.md": _readme(name).encode(),
        "app.py": _app(name).encode(),
        "requirements.txt": "\n".join(["evaluate", *METRICS[name].split()]).encode() + b"\n",
    }


@dataclass
class SeededSpace:
    """One Space written by :func:`seed_metric_spaces`."""

    repo_id: str
    commit: str | None


def seed_metric_spaces(
    api: HfApi, *, names: list[str] | None = None, namespace: str = NAMESPACE, exist_ok: bool = True
) -> list[SeededSpace]:
    """Create ``{namespace}/<name>`` Spaces on the hub ``api`` talks to and upload the metric modules.

    Args:
        api: A client for the target hub, with a token that may write to ``namespace``.
        names: Which metrics (default: all of :data:`METRICS`).
        namespace: The owner of the Spaces; ``evaluate.load`` looks in ``evaluate-metric``.
        exist_ok: Update Spaces that exist already (a no-op commit is skipped by the hub client).

    Returns:
        One :class:`SeededSpace` per metric, with the commit it made (None if nothing changed).
    """
    from huggingface_hub import CommitOperationAdd

    seeded = []
    for name in names or list(METRICS):
        repo_id = f"{namespace}/{name}"
        api.create_repo(repo_id, repo_type="space", space_sdk="gradio", exist_ok=exist_ok)
        files = space_files(name)
        info = api.create_commit(
            repo_id,
            repo_type="space",
            operations=[CommitOperationAdd(path, data) for path, data in files.items()],
            commit_message=f"Seed the {name} metric (Cove)",
        )
        seeded.append(SeededSpace(repo_id, getattr(info, "oid", None)))
    return seeded
