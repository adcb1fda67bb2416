"""The demo Space Cove writes for a model: a Gradio app that loads it with a `transformers.pipeline`.

One template serves `cove demo` (the seeded sentiment demo) and `cove train --space` (a demo next to the model it
just pushed). The app reads the model from this hub (the runtime sets ``HF_ENDPOINT``); where its environment has
no torch/transformers, or the model can't load, it still starts and shows the model card and why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from huggingface_hub import HfApi

#: The Space's dependencies. `torch` resolves through the hub's package index settings (`COVE_SPACES_INDEX_URL`,
#: `_EXTRA_INDEX_URLS`, `_FIND_LINKS`, else pip's config): point them at a CPU wheel (e.g.
#: https://download.pytorch.org/whl/cpu) so a build doesn't pull CUDA. A requirements.txt can't name an index.
REQUIREMENTS = "transformers\ntorch\n"

APP = '''"""Demo of {model} on this hub: a transformers pipeline behind a Gradio interface (written by Cove)."""

import json

import gradio as gr

MODEL = {model!r}
TASK = {task!r}
#: Feature-extraction models classify by similarity to these descriptions (zero-shot); other tasks ignore them.
LABELS = {labels!r}
EXAMPLES = {examples!r}


def _card() -> str:
    try:
        from huggingface_hub import ModelCard

        return ModelCard.load(MODEL).text
    except Exception as exc:  # noqa: BLE001
        return "(the model card could not be read: %s)" % exc


try:
    from transformers import pipeline

    pipe = pipeline(TASK, model=MODEL)
    PROBLEM = None
except Exception as exc:  # noqa: BLE001 - no torch/transformers here, or the model can't load
    pipe, PROBLEM = None, "%s: %s" % (type(exc).__name__, exc)


def _mean(vectors):
    return [sum(col) / len(vectors) for col in zip(*vectors)]


def _cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / ((sum(x * x for x in a) ** 0.5) * (sum(y * y for y in b) ** 0.5) or 1.0)


PROTOTYPES = {{}}
if pipe is not None and TASK == "feature-extraction":
    PROTOTYPES = {{label: _mean(pipe(text)[0]) for label, text in LABELS.items()}}


def predict(text: str):
    if pipe is None:
        return {{"error": "the model could not be loaded in this Space: " + PROBLEM}}
    if TASK == "feature-extraction":
        vec = _mean(pipe(text)[0])
        scores = {{label: _cosine(vec, proto) for label, proto in PROTOTYPES.items()}}
        return dict(sorted(scores.items(), key=lambda kv: -kv[1]))
    if TASK == "text-classification":
        return {{r["label"]: float(r["score"]) for r in pipe(text, top_k=None)}}
    if TASK == "text-generation":
        return {{"generated_text": pipe(text, max_new_tokens=40)[0]["generated_text"]}}
    return json.loads(json.dumps(pipe(text), default=float))


if PROBLEM:
    description = "**The model could not be loaded here** (%s). Its card is below." % PROBLEM
else:
    description = "`%s` (%s), loaded from this hub with `transformers.pipeline`." % (MODEL, TASK)
gr.Interface(predict, gr.Textbox(label="Text"), gr.JSON(label="Prediction"), title=MODEL, description=description,
             article=_card(), examples=EXAMPLES or None, cache_examples=False, api_name="predict").launch()
'''


def app_py(model: str, task: str, *, labels: dict[str, str] | None = None, examples: list[str] | None = None) -> str:
    """The Space's `app.py` for ``model`` and its pipeline ``task``."""
    return APP.format(model=model, task=task, labels=labels or {}, examples=examples or [])


def readme(space_id: str, model: str) -> str:
    """The Space card: `sdk: gradio` and the model in `models` (shown on the Space page)."""
    title = space_id.split("/")[-1]
    return (f"---\ntitle: {title}\nsdk: gradio\napp_file: app.py\nmodels:\n- {model}\n---\n\n"
            f"# {title}\n\nA demo of [{model}](/{model}), served by this hub. Type a text and get the model's "
            "prediction; call it from Python with `gradio_client.Client(...).predict(text, api_name=\"/predict\")`.\n")


def push_demo_space(api: HfApi, space_id: str, model: str, task: str, *, private: bool = False,
                    labels: dict[str, str] | None = None, examples: list[str] | None = None,
                    message: str = "Demo app") -> str:
    """Create (or update) the Gradio Space ``space_id`` demoing ``model``; returns its URL.

    One commit with app.py, requirements.txt and README.md; the hub builds and starts it in the background."""
    from huggingface_hub import CommitOperationAdd

    api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    files = {"app.py": app_py(model, task, labels=labels, examples=examples), "requirements.txt": REQUIREMENTS,
             "README.md": readme(space_id, model)}
    ops = [CommitOperationAdd(path, content.encode()) for path, content in files.items()]
    api.create_commit(space_id, ops, commit_message=message, repo_type="space")
    return f"{api.endpoint.rstrip('/')}/spaces/{space_id}"
