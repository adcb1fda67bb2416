"""The model card (via ``huggingface_hub.ModelCard``) and the training-curve PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .hub import endpoint, is_huggingface_co

if TYPE_CHECKING:
    from .push import Staged
    from .runner import Context

CURVES = "training_curves.png"
NON_COMMERCIAL = ("-nc", "noncommercial", "non-commercial")


def plot_curves(log_history: list[dict[str, Any]], metric: str, path: Path) -> bool:
    """Loss (train, validation) and the chosen metric against steps; False when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    val = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h]
    key = metric if metric.startswith("eval_") else f"eval_{metric}"
    chosen = [(h["step"], h[key]) for h in log_history if key in h]
    if not (train or val):
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for points, label, style in ((train, "train loss", "-"), (val, "validation loss", "o-")):
        if points:
            ax1.plot(*zip(*points, strict=True), style, label=label)
    ax1.set_xlabel("step")
    ax1.set_ylabel("loss")
    ax1.legend()
    if chosen:
        ax2.plot(*zip(*chosen, strict=True), "o-", color="tab:green")
    ax2.set_xlabel("step")
    ax2.set_ylabel(f"validation {metric}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _link(repo_id: str, kind: str = "model") -> str:
    """A link to a repo on the endpoint in use (never huggingface.co unless that is the endpoint)."""
    if "/" not in repo_id and not repo_id.startswith("."):
        return f"`{repo_id}`"
    if repo_id.startswith((".", "/", "~")):
        return f"`{repo_id}` (a local path)"
    prefix = "datasets/" if kind == "dataset" else ""
    return f"[{repo_id}]({endpoint()}/{prefix}{repo_id})"


def _license(ctx: Context) -> tuple[str | None, str]:
    data_license, model_license = ctx.data_ref.license, ctx.model_ref.license
    if data_license:
        why = f"propagated from the training data ({data_license})"
        if model_license and model_license != data_license:
            why += f"; the base model is {model_license}"
        return data_license, why
    if model_license:
        return model_license, f"the base model's license ({model_license}); the dataset card states none"
    return None, "neither the dataset card nor the base model card states a license"


def _split_text(split: dict[str, Any]) -> str:
    """How the train/validation/test splits came to be, in one sentence."""
    if not split.get("created"):
        return "The dataset's own train, validation and test splits were used."
    carved = [n for n in ("validation", "test") if split["source"].get(n) is None]
    how = "stratified on the label, " if split.get("stratified") else ""
    shares = ", ".join(f"{n} {split['fractions'][n]:.0%}" for n in carved)
    return (
        f"The dataset has no {' or '.join(carved)} split, so Cove carved {'them' if len(carved) > 1 else 'it'} "
        f"out of train deterministically ({how}seed {split.get('seed')}: {shares})."
    )


def _table(test: dict[str, Any], baseline: dict[str, Any] | None, validation: dict[str, Any], name: str) -> str:
    keys = [k for k, v in test.items() if isinstance(v, float)]
    head = "| metric | test | validation (best checkpoint) |" + (f" {name} (test) |" if baseline else "")
    sep = "|---|---|---|" + ("---|" if baseline else "")
    rows = [head, sep]
    for k in keys:
        row = (
            f"| {k} | {test[k]:.4f} | {validation[k]:.4f} |"
            if isinstance(validation.get(k), float)
            else f"| {k} | {test[k]:.4f} | – |"
        )
        if baseline:
            row += f" {baseline[k]:.4f} |" if isinstance(baseline.get(k), float) else " – |"
        rows.append(row)
    return "\n".join(rows)


def _usage(ctx: Context, repo_id: str, forms: dict[str, str], example: Any) -> str:
    env = "" if is_huggingface_co() else f'import os\nos.environ["HF_ENDPOINT"] = "{endpoint()}"  # this hub\n\n'
    task = ctx.task
    full = "model" in forms or "merged" in forms
    if full and task.has_pipeline:
        return (
            f"```python\n{env}from transformers import pipeline\n\n"
            f'pipe = pipeline("{task.pipeline_tag}", model="{repo_id}")\n'
            f"print(pipe({json.dumps(example)}))\n```"
        )
    if full:
        load = f'model = {task.auto_class}.from_pretrained("{repo_id}")\n'
        imports = f"from transformers import {task.auto_class}, AutoTokenizer"
    else:
        kwargs = task.model_kwargs()
        labels = f", num_labels={kwargs['num_labels']}, id2label={kwargs['id2label']}" if "num_labels" in kwargs else ""
        rev = "" if ctx.model_ref.local else f', revision="{ctx.model_ref.sha}"'
        sub = f', subfolder="{forms["adapter"]}"' if forms.get("adapter") else ""
        merge = ".merge_and_unload()" if ctx.recipe.method.name in ("lora", "qlora") else ""
        load = (
            f'base = {task.auto_class}.from_pretrained("{ctx.model_ref.id}"{rev}{labels})\n'
            f'model = PeftModel.from_pretrained(base, "{repo_id}"{sub}){merge}\n'
        )
        imports = f"from peft import PeftModel\nfrom transformers import {task.auto_class}, AutoTokenizer"
    if task.has_pipeline:
        imports += ", pipeline"
    return (
        f"```python\n{env}{imports}\n\n{load}"
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")\n'
        f"{task.usage_code(example)}\n```"
    )


def build(ctx: Context, results: dict[str, Any], forms: dict[str, str], has_curves: bool) -> Any:
    """The ModelCard for a finished run."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    recipe, task = ctx.recipe, ctx.task
    repo_id = recipe.push.repo_id if recipe.push else Path(ctx.out).name
    license_id, license_why = _license(ctx)
    root_is_adapter = forms.get("adapter") == ""
    data_name = ctx.data_ref.id if not ctx.data_ref.local else Path(ctx.data_ref.id).name
    eval_results = [
        EvalResult(
            task_type=task.pipeline_tag,
            dataset_type=data_name,
            dataset_name=data_name,
            dataset_config=recipe.dataset.config,
            dataset_split="test",
            dataset_revision=None if ctx.data_ref.local else ctx.data_ref.sha,
            metric_type=k,
            metric_name=k,
            metric_value=round(v, 4),
        )
        for k, v in results["test"].items()
        if isinstance(v, float) and k != "loss"
    ]
    tags = ["cove", "cove-train", recipe.task, recipe.method.name] + (
        ["peft", "lora"] if "lora" in recipe.method.name else []
    )
    data = ModelCardData(
        base_model=None if ctx.model_ref.local else ctx.model_ref.id,
        datasets=None if ctx.data_ref.local else [ctx.data_ref.id],
        license=license_id,
        pipeline_tag=task.pipeline_tag,
        library_name="peft" if root_is_adapter else "transformers",
        tags=tags,
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results or None,
        metrics=[k for k in results["test"] if k != "loss"],
        base_model_revision=None if ctx.model_ref.local else ctx.model_ref.sha,
        dataset_revision=None if ctx.data_ref.local else ctx.data_ref.sha,
    )
    split = results["split"]
    split_text = _split_text(split)
    hp = dict(recipe.to_dict()["training"])
    m = recipe.method
    hyper = "\n".join(
        f"- {k}: `{v}`"
        for k, v in {
            "method": recipe.method.name,
            **(
                {"lora r / alpha / dropout": f"{m.r} / {m.alpha} / {m.dropout}"}
                if recipe.method.name in ("lora", "qlora")
                else {}
            ),
            "max_length": recipe.preprocessing.max_length,
            "long texts": recipe.preprocessing.long_texts,
            "class_weights": split.get("class_weights", recipe.class_weights),
            "best model selected on": f"validation {recipe.best_metric}",
            "early stopping": recipe.early_stopping.model_dump() if recipe.early_stopping else None,
            "seed": recipe.seed,
            "deterministic": recipe.deterministic,
            **hp,
        }.items()
    )
    layout = ", ".join(f"{form} in {'the repo root' if not sub else '`' + sub + '/`'}" for form, sub in forms.items())
    limitations = [
        f"Trained on {split['sizes']['train']:,} examples of {_link(ctx.data_ref.id, 'dataset')}; "
        "expect lower "
        "accuracy on text unlike it (other domains, registers or time periods).",
        f"Numbers come from a single test split evaluated once; the {task.baseline_name} shows how much is learned.",
        f"License: {license_id or 'unknown'} — {license_why}."
        + (" Non-commercial use only." if license_id and any(m in license_id.lower() for m in NON_COMMERCIAL) else ""),
    ]
    labels = task.card_extra().get("labels")
    predicts = (results.get("baseline") or {}).get("predicts")
    baseline_line = f"\nThe {task.baseline_name} predicts {predicts} for every test example." if predicts else ""
    body = f"""
# {repo_id.split("/")[-1]}

A {recipe.task} model fine-tuned with `cove train` ({recipe.method.name}) from {_link(ctx.model_ref.id)}
(revision `{ctx.model_ref.sha}`) on {_link(ctx.data_ref.id, "dataset")} (revision `{ctx.data_ref.sha}`).
This repo holds {layout}.

## How to use

{_usage(ctx, repo_id, forms, task.pipeline_example(ctx.splits))}

## Training data

{split_text} Sizes: {split["sizes"]}. Split hash (sha256 of the rows used): `{split["hash"]["all"]}`.
{f"Labels: {labels}. Label counts: {split.get('label_counts')}." if labels else ""}

## Training hyperparameters

{hyper}

## Results

{_table(results["test"], results.get("baseline"), results["validation"], task.baseline_name)}
{baseline_line}

{f"![Training curves]({CURVES})" if has_curves else ""}

## Limitations

{chr(10).join("- " + item for item in limitations)}

## Reproduce

`cove_recipe.yaml` is the fully resolved recipe (model and dataset pinned to commits); `results.json` has the
metrics, package versions and split hash. Run `cove reproduce {repo_id}` to train it again and compare.
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def write(ctx: Context, results: dict[str, Any], staged: Staged) -> Path:
    """Write README.md and the training-curve PNG into the staged repo folder."""
    metric = ctx.recipe.best_metric or "loss"
    has_curves = plot_curves(results["log_history"], metric, staged.dir / CURVES)
    card = build(ctx, results, staged.forms, has_curves)
    path = staged.dir / "README.md"
    card.save(path)
    return path
