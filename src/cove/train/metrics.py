"""Metrics through ``evaluate.load`` on the hub at ``HF_ENDPOINT``, as the seed's code calls them.

``evaluate.load("accuracy")`` fetches the module from the hub's ``evaluate-metric/accuracy`` Space (Cove seeds
those with :func:`cove.metrics.seed_metric_spaces`). When the hub has no such Space (a plain
local run, or a hub
that was never seeded) the module bundled with Cove is loaded from disk instead, and the run records which.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from cove.metrics import METRICS, module_path

from .hub import endpoint, sync_evaluate_endpoint
from .recipe import RecipeError

log = logging.getLogger(__name__)

_CACHE: dict[str, Any] = {}
SOURCES: dict[str, str] = {}


def load_metric(name: str) -> Any:
    """``evaluate.load(name)`` through the hub; falls back to Cove's bundled module (recorded in SOURCES)."""
    if name in _CACHE:
        return _CACHE[name]
    sync_evaluate_endpoint()
    import evaluate

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    module = None
    if not offline:
        try:
            module = evaluate.load(name)
            SOURCES[name] = f"{endpoint()}/spaces/evaluate-metric/{name}"
        except (FileNotFoundError, ConnectionError, OSError) as err:
            if name not in METRICS:
                raise RecipeError(f"metric {name!r} is not on the hub ({err}); Cove bundles {sorted(METRICS)}") from err
            log.warning(
                "metric %s: no evaluate-metric/%s Space on %s; using Cove's bundled module",
                name,
                name,
                endpoint(),
            )
    if module is None:
        if name not in METRICS:
            raise RecipeError(f"metric {name!r}: offline, and Cove bundles only {sorted(METRICS)}")
        module = evaluate.load(str(module_path(name)))
        SOURCES[name] = "cove-bundled"
    _CACHE[name] = module
    return module


def classification_scores(
    predictions: Sequence[int], references: Sequence[int], names: Sequence[str], num_labels: int
) -> dict[str, float]:
    """accuracy, and f1/precision/recall (weighted and macro) for the metric names asked for."""
    preds = [int(p) for p in predictions]
    refs = [int(r) for r in references]
    labels = list(range(num_labels))
    scores: dict[str, float] = {}
    for name in names:
        metric = load_metric(name)
        if name == "accuracy":
            scores["accuracy"] = float(metric.compute(predictions=preds, references=refs)["accuracy"])
        else:  # f1, precision, recall (the recipe allows nothing else here)
            for average in ("weighted", "macro"):
                kwargs: dict[str, Any] = {"average": average, "labels": labels}
                if name != "f1":
                    kwargs["zero_division"] = 0
                value = metric.compute(predictions=preds, references=refs, **kwargs)[name]
                scores[f"{name}_{average}"] = float(value)
    return scores
