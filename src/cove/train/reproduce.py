"""``cove reproduce``: re-run a pushed model's ``cove_recipe.yaml`` and compare with its ``results.json``."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .recipe import RecipeError, load_recipe


@dataclass
class Reproduction:
    """Metric deltas (new − recorded) and every recorded fact that differs this time."""

    repo_id: str
    recorded: dict[str, float]
    reproduced: dict[str, float]
    deltas: dict[str, float]
    differences: dict[str, Any] = field(default_factory=dict)
    output_dir: str = ""

    def max_abs_delta(self) -> float:
        """The largest absolute metric difference."""
        return max((abs(v) for v in self.deltas.values()), default=0.0)

    def report(self) -> str:
        """A table of metrics: recorded, reproduced, delta; then any environment differences."""
        lines = [f"{'metric':<22}{'recorded':>12}{'reproduced':>12}{'delta':>12}"]
        for key, delta in self.deltas.items():
            lines.append(f"{key:<22}{self.recorded[key]:>12.4f}{self.reproduced[key]:>12.4f}{delta:>+12.4f}")
        for key, (was, now) in self.differences.items():
            lines.append(f"differs: {key}: recorded {was!r}, now {now!r}")
        if not self.differences:
            lines.append("same revisions, split hash and package versions as recorded")
        return "\n".join(lines)


def _download(repo_id: str, revision: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    import yaml
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    try:
        recipe_path = hf_hub_download(repo_id, "cove_recipe.yaml", revision=revision)
        results_path = hf_hub_download(repo_id, "results.json", revision=revision)
    except RepositoryNotFoundError as err:
        raise RecipeError(f"model {repo_id!r} not found (or not visible with this token)") from err
    except EntryNotFoundError as err:
        raise RecipeError(f"{repo_id!r} has no cove_recipe.yaml/results.json; was it pushed by cove train?") from err
    return yaml.safe_load(Path(recipe_path).read_text(encoding="utf-8")), json.loads(Path(results_path).read_text())


def compare(recorded: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """Test-metric deltas, and the recorded facts (revisions, split hash, packages) that changed."""
    deltas = {
        k: float(new["test"][k]) - float(v)
        for k, v in recorded.get("test", {}).items()
        if isinstance(v, int | float) and isinstance(new.get("test", {}).get(k), int | float)
    }
    differences: dict[str, Any] = {}
    for key in ("model", "dataset"):
        was, now = recorded.get("revisions", {}).get(key), new.get("revisions", {}).get(key)
        if was != now:
            differences[f"revision.{key}"] = (was, now)
    was_hash = recorded.get("split", {}).get("hash", {}).get("all")
    now_hash = new.get("split", {}).get("hash", {}).get("all")
    if was_hash != now_hash:
        differences["split hash"] = (was_hash, now_hash)
    for name, version in recorded.get("packages", {}).items():
        now = new.get("packages", {}).get(name)
        if name != "platform" and now != version:
            differences[f"package {name}"] = (version, now)
    return deltas, differences


def reproduce(
    repo_id: str,
    *,
    revision: str | None = None,
    output_dir: str | Path | None = None,
    overrides: list[str] | None = None,
) -> Reproduction:
    """Download the recipe and results of ``repo_id``, train again (without pushing) and compare.

    Args:
        repo_id: A model pushed by ``cove train``.
        revision: Which commit of it (default: main).
        output_dir: Where the new run goes (default: a temporary folder).
        overrides: ``--set`` overrides applied to the downloaded recipe (e.g. a smaller batch).

    Returns:
        A :class:`Reproduction` with per-metric deltas.
    """
    from .runner import run

    data, recorded = _download(repo_id, revision)
    data["output_dir"] = str(output_dir or tempfile.mkdtemp(prefix="cove-reproduce-"))
    data["push"] = None
    recipe = load_recipe(data, overrides)
    result = run(recipe, push=False)
    new = json.loads((Path(result.output_dir) / "results.json").read_text())
    deltas, differences = compare(recorded, new)
    return Reproduction(
        repo_id,
        {k: float(recorded["test"][k]) for k in deltas},
        {k: float(new["test"][k]) for k in deltas},
        deltas,
        differences,
        result.output_dir,
    )
