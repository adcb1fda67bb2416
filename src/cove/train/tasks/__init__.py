"""Fine-tuning tasks; :func:`get_task` picks the one a recipe names."""

from __future__ import annotations

import importlib

from ..recipe import Recipe
from .base import Features, Task

_TASKS = {
    "sequence-classification": ("classification", "SequenceClassification"),
    "token-classification": ("token", "TokenClassification"),
    "question-answering": ("qa", "QuestionAnswering"),
    "causal-lm": ("lm", "CausalLM"),
    "seq2seq": ("lm", "Seq2Seq"),
}


def get_task(recipe: Recipe) -> Task:
    """The task object for ``recipe.task``."""
    module, cls = _TASKS[recipe.task]
    return getattr(importlib.import_module(f".{module}", __name__), cls)(recipe)


__all__ = ["Features", "Task", "get_task"]
