"""Inference on the hub: models run in worker processes, batched, within a memory budget.

`engine` (in the API server, no torch) keeps one worker per loaded model and forms the batches; `worker` (its own
process, `python -m cove.inference.worker`) loads the model with torch and transformers and runs them (`tasks`).
"""

from __future__ import annotations

#: Route task -> how the worker loads the model; tasks of one kind share a loaded model.
LOAD_KIND = {
    "text-classification": "sequence-classification",
    "zero-shot-classification": "sequence-classification",
    "token-classification": "token-classification",
    "fill-mask": "masked-lm",
    "feature-extraction": "embedding",
    "sentence-similarity": "embedding",
    "question-answering": "question-answering",
    "text-generation": "causal-lm",
    "conversational": "causal-lm",
    "summarization": "seq2seq",
    "translation": "seq2seq",
    "text2text-generation": "seq2seq",
}
#: Tasks answered token by token (one request at a time per model; `stream` may be asked).
GENERATIVE = frozenset({"text-generation", "conversational"})
