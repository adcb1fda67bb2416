"""``cove train``: fine-tune, evaluate, document and push a model from one recipe.

Importing this package is cheap: torch and transformers are imported only when a run starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .recipe import Recipe, RecipeError, load_recipe

if TYPE_CHECKING:
    from .runner import RunResult


def run(
    recipe: Recipe | str | Path | dict[str, Any], *, overrides: list[str] | None = None, push: bool = True
) -> RunResult:
    """Run a recipe end to end; see :func:`cove.train.runner.run`."""
    from .runner import run as _run

    return _run(recipe, overrides=overrides, push=push)


__all__ = ["Recipe", "RecipeError", "load_recipe", "run"]
