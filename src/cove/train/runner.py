"""One ``cove train`` run: check → pin revisions → load → train → evaluate → card → push → verify."""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .hub import Resolved, endpoint, resolve_dataset, resolve_model
from .methods import apply_method, check_method, quantization_config, resolved_save
from .recipe import Recipe, RecipeError, load_recipe
from .tasks import Features, Task, get_task

log = logging.getLogger(__name__)

PACKAGES = (
    "cove",
    "torch",
    "transformers",
    "datasets",
    "peft",
    "evaluate",
    "accelerate",
    "huggingface_hub",
    "scikit-learn",
    "seqeval",
    "rouge-score",
    "numpy",
    "tokenizers",
    "safetensors",
)


def say(message: str) -> None:
    """Progress for humans, on stderr (stdout stays for data)."""
    print(f"[cove train] {message}", file=sys.stderr, flush=True)


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages that decide a run's numbers."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@dataclass
class RunResult:
    """What a run produced: metrics, where it is, how long it took."""

    output_dir: str
    test: dict[str, float]
    validation: dict[str, float]
    baseline: dict[str, Any] | None
    revisions: dict[str, str]
    split: dict[str, Any]
    seconds: float
    train_seconds: float
    repo_id: str | None = None
    url: str | None = None
    commit: str | None = None
    pushed: list[str] = field(default_factory=list)
    verification: dict[str, Any] = field(default_factory=dict)
    metric_sources: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """A short human summary of the run."""
        lines = [f"done in {self.seconds:.1f}s (training {self.train_seconds:.1f}s); output in {self.output_dir}"]
        lines.append("test: " + ", ".join(f"{k}={_fmt(v)}" for k, v in self.test.items()))
        if self.baseline:
            lines.append("baseline: " + ", ".join(f"{k}={_fmt(v)}" for k, v in self.baseline.items()))
        if self.url:
            lines.append(f"pushed {'+'.join(self.pushed)} to {self.url} (commit {str(self.commit)[:12]})")
        for form, check in self.verification.items():
            lines.append(
                f"reload check {form}: {'OK' if check.get('match') else 'MISMATCH'} "
                f"(max |Δ| {check.get('max_abs_diff', float('nan')):.2e})"
            )
        return "\n".join(lines)


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _precision(recipe: Recipe) -> dict[str, bool]:
    """fp16/bf16 flags for TrainingArguments: what the recipe asks, refused where the hardware lacks it.

    bf16 without a GPU runs under CPU autocast, which Trainer only allows with ``use_cpu``.
    """
    import torch

    cuda = torch.cuda.is_available()
    want = recipe.precision
    if "fp16" in recipe.training or "bf16" in recipe.training:
        want = "fp16" if recipe.training.get("fp16") else "bf16" if recipe.training.get("bf16") else "fp32"
    if want == "auto":
        want = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
    if want == "fp16" and not cuda:
        raise RecipeError("fp16 mixed precision needs a CUDA GPU; this machine has none — use precision: auto")
    flags = {"fp16": want == "fp16", "bf16": want == "bf16"}
    if want == "bf16" and not cuda and not torch.backends.mps.is_available():
        flags["use_cpu"] = True
    return flags


def _training_args(recipe: Recipe, out: Path, features: Features, task: Task) -> Any:
    args_cls = task.trainer_classes()[1]
    peft = recipe.method.name != "full"
    given = dict(recipe.training)
    batch = int(given.get("per_device_train_batch_size", 16))
    accum = int(given.get("gradient_accumulation_steps", 1))
    steps_per_epoch = max(1, math.ceil(len(features.train) / (batch * accum)))
    defaults: dict[str, Any] = {
        "num_train_epochs": 3,
        "learning_rate": 5e-4 if peft else 5e-5,
        "per_device_train_batch_size": batch,
        "per_device_eval_batch_size": 64,
        "eval_strategy": "epoch",
        "save_strategy": "epoch",
        "logging_strategy": "steps",
        "logging_steps": max(1, steps_per_epoch // 4),
        "load_best_model_at_end": True,
        "save_total_limit": 2,
        "save_only_model": True,
        "report_to": "none",
        "seed": recipe.seed,
        "data_seed": recipe.seed,
        "full_determinism": recipe.deterministic,
        **task.extra_args(),
    }
    given.update(_precision(recipe))  # honours training.fp16/bf16, refuses what the hardware lacks
    kwargs = {**defaults, **given}
    reporters = kwargs.get("report_to")
    if reporters == "tensorboard" or (isinstance(reporters, list) and "tensorboard" in reporters):
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(out / "runs")  # pushed with the model
    try:
        return args_cls(
            output_dir=str(out / "checkpoints"),
            metric_for_best_model=recipe.best_metric,
            greater_is_better=recipe.greater_is_better,
            **kwargs,
        )
    except (ValueError, TypeError) as err:
        raise RecipeError(f"training: {err}") from err


@dataclass
class Context:
    """Everything the steps after training need."""

    recipe: Recipe
    task: Task
    out: Path
    model_ref: Resolved
    data_ref: Resolved
    splits: Any = None
    features: Any = None
    tokenizer: Any = None
    model_cls: Any = None
    config: Any = None
    trainer: Any = None


def _revision(ref: Resolved) -> str | None:
    return None if ref.local else ref.sha


def prepare(recipe: Recipe) -> Context:
    """Every check that can fail fast, before weights are downloaded or training starts."""
    from transformers import AutoConfig

    task = get_task(recipe)
    out = Path(recipe.output_dir or "runs/cove").expanduser()
    say(f"hub: {endpoint()}")
    model_ref = resolve_model(recipe.model.id, recipe.model.revision)
    data_ref = resolve_dataset(recipe.dataset.id, recipe.dataset.revision)
    say(f"model {model_ref.id} @ {model_ref.sha[:19]}; dataset {data_ref.id} @ {data_ref.sha[:19]}")
    ctx = Context(recipe, task, out, model_ref, data_ref)
    try:
        config = AutoConfig.from_pretrained(model_ref.id, revision=_revision(model_ref))
    except (OSError, ValueError) as err:
        raise RecipeError(f"cannot read the config of model {model_ref.id!r}: {err}") from err
    ctx.config = config
    ctx.model_cls = task.model_class(config)
    check_method(recipe, ctx.model_cls)
    _precision(recipe)
    from .data import load_raw

    say("loading dataset")
    ctx.splits = task.prepare(load_raw(recipe.dataset, _revision(data_ref)))
    say(f"splits: {ctx.splits.info['sizes']} (split hash {ctx.splits.info['hash']['all'][:12]})")
    if recipe.push:
        _check_push_access(recipe.push.repo_id)
    return ctx


def _check_push_access(repo_id: str) -> None:
    """Fail before training when the token cannot write to the target namespace (nothing is created yet)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    fix = "log in (HF_TOKEN) with a write token for that namespace, or change push.repo_id"
    try:
        me = HfApi().whoami()
    except (HfHubHTTPError, OSError) as err:
        raise RecipeError(f"cannot push to {repo_id!r}: not logged in to {endpoint()} ({err}); {fix}") from err
    namespace = repo_id.split("/")[0] if "/" in repo_id else me["name"]
    role = (me.get("auth") or {}).get("accessToken", {}).get("role")
    writable = {me["name"]} | {
        o["name"] for o in me.get("orgs", []) if o.get("roleInOrg") in ("admin", "write")
    }  # `read` and `contributor` members open pull requests only: they can neither create the repo nor push to main
    if role == "read" or namespace not in writable:
        why = "has a read-only token" if role == "read" else f"may not write to {namespace!r}"
        raise RecipeError(f"cannot push to {repo_id!r}: {me['name']} {why}; {fix}")


def _load_model(ctx: Context) -> Any:
    recipe = ctx.recipe
    kwargs = ctx.task.model_kwargs()
    if recipe.method.name == "qlora":
        kwargs["quantization_config"] = quantization_config()
    model = ctx.model_cls.from_pretrained(ctx.model_ref.id, revision=_revision(ctx.model_ref), **kwargs)
    if ctx.tokenizer.pad_token_id is not None and getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = ctx.tokenizer.pad_token_id
    model = apply_method(model, recipe, tokenizer_name=ctx.model_ref.id)
    if recipe.method.name != "full":
        for cfg in model.peft_config.values():
            cfg.revision = _revision(ctx.model_ref)
    return model


def _max_length(recipe: Recipe, config: Any, tokenizer: Any) -> int:
    """The token budget per input: the recipe's, capped by the model's positions (less virtual tokens)."""
    positions = next(
        (
            v
            for a in ("max_position_embeddings", "n_positions")
            if isinstance(v := getattr(config, a, None), int) and v > 0
        ),
        None,
    )
    limit = recipe.preprocessing.max_length
    if 0 < getattr(tokenizer, "model_max_length", 0) < 1_000_000:
        limit = min(limit, tokenizer.model_max_length)
    if positions:
        virtual = recipe.method.num_virtual_tokens if recipe.method.name in ("prefix", "prompt") else 0
        limit = min(limit, positions - virtual)
    if limit < 8:
        raise RecipeError(f"only {limit} tokens fit the model's positions; lower method.num_virtual_tokens")
    return limit


def train(ctx: Context) -> dict[str, Any]:
    """Tokenize, build the Trainer, train with early stopping and best-model selection."""
    import torch
    from transformers import AutoTokenizer, EarlyStoppingCallback, set_seed

    recipe = ctx.recipe
    say("loading tokenizer and model")
    ctx.tokenizer = AutoTokenizer.from_pretrained(ctx.model_ref.id, revision=_revision(ctx.model_ref))
    if ctx.tokenizer.pad_token is None:
        ctx.tokenizer.pad_token = ctx.tokenizer.eos_token or ctx.tokenizer.unk_token
    ctx.task.max_length = _max_length(recipe, ctx.config, ctx.tokenizer)
    ctx.features = ctx.task.features(ctx.tokenizer, ctx.splits)
    if recipe.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    set_seed(recipe.seed, deterministic=recipe.deterministic)
    model = _load_model(ctx)
    args = _training_args(recipe, ctx.out, ctx.features, ctx.task)
    callbacks = []
    if recipe.early_stopping:
        callbacks.append(EarlyStoppingCallback(recipe.early_stopping.patience, recipe.early_stopping.threshold))
    trainer_cls = ctx.task.trainer_classes()[0]
    ctx.trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=ctx.features.train,
        eval_dataset=ctx.features.validation,
        processing_class=ctx.tokenizer,
        data_collator=ctx.task.collator(ctx.tokenizer, model),
        compute_metrics=ctx.task.compute_metrics(ctx.features, ctx.splits),
        compute_loss_func=ctx.task.loss_func(ctx.splits),
        callbacks=callbacks,
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    say(f"training {recipe.method.name}: {trainable:,} of {total:,} parameters trainable")
    start = time.perf_counter()
    result = ctx.trainer.train()
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "global_step": result.global_step,
        "train_loss": result.training_loss,
        "best_checkpoint_step": _best_step(ctx.trainer.state),
        "precision": "bf16" if ctx.trainer.args.bf16 else "fp16" if ctx.trainer.args.fp16 else "fp32",
    }


def _best_step(state: Any) -> int | None:
    best = state.best_model_checkpoint
    return int(best.rsplit("-", 1)[-1]) if best else None


def _best_validation(trainer: Any) -> dict[str, float]:
    """Validation metrics of the checkpoint that was kept (from the log; evaluated again only if missing)."""
    step = _best_step(trainer.state)
    logged = [h for h in trainer.state.log_history if "eval_loss" in h and (step is None or h.get("step") == step)]
    return _strip_prefix(logged[-1] if logged else trainer.evaluate(), "eval_")


def _strip_prefix(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    skip = ("runtime", "samples_per_second", "steps_per_second", "epoch")
    return {
        k.removeprefix(prefix): float(v) for k, v in metrics.items() if k.startswith(prefix) and not k.endswith(skip)
    }


def run(
    recipe: Recipe | str | Path | dict[str, Any], *, overrides: list[str] | None = None, push: bool = True
) -> RunResult:
    """Run a recipe end to end (the Python API behind ``cove train``).

    Args:
        recipe: A :class:`Recipe`, a path to a YAML recipe, or the recipe as a dict.
        overrides: ``a.b=c`` overrides, as ``--set`` takes them.
        push: Push to ``recipe.push.repo_id`` (when the recipe has a push section).

    Returns:
        A :class:`RunResult` (also written to ``<output_dir>/results.json``).

    Raises:
        RecipeError: a recipe, data or model problem found before training, with the fix in the message.
    """
    from . import card
    from . import push as pushing
    from .metrics import SOURCES

    started = time.perf_counter()
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    elif overrides:
        recipe = load_recipe(recipe.to_dict(), overrides)
    if not push:
        recipe = recipe.model_copy(update={"push": None})
    ctx = prepare(recipe)
    ctx.out.mkdir(parents=True, exist_ok=True)
    pinned = recipe.model_copy(deep=True)
    pinned.model.revision = ctx.model_ref.sha
    pinned.dataset.revision = ctx.data_ref.sha
    (ctx.out / "cove_recipe.yaml").write_text(pinned.to_yaml(), encoding="utf-8")

    training = train(ctx)
    say("evaluating the best model once on test")
    validation = _best_validation(ctx.trainer)
    test = ctx.task.test_metrics(ctx.trainer, ctx.features, ctx.splits)
    baseline = ctx.task.baseline(ctx.splits)
    results: dict[str, Any] = {
        "task": recipe.task,
        "method": recipe.method.name,
        "endpoint": endpoint(),
        "revisions": {"model": ctx.model_ref.sha, "dataset": ctx.data_ref.sha},
        "model_id": ctx.model_ref.id,
        "dataset_id": ctx.data_ref.id,
        "split": ctx.splits.info,
        "columns": ctx.task.columns,
        "best_metric": recipe.best_metric,
        "validation": validation,
        "test": test,
        "baseline": baseline,
        "training": training,
        "packages": package_versions(),
        "metric_sources": {m: SOURCES[m] for m in recipe.metrics or [] if m in SOURCES},
        "log_history": ctx.trainer.state.log_history,
        **ctx.task.card_extra(),
    }
    save = resolved_save(recipe)
    staged = pushing.stage(ctx, save)
    card.write(ctx, results, staged)
    results["seconds"] = time.perf_counter() - started
    text = json.dumps(results, indent=2, default=str)
    for folder in (ctx.out, staged.dir):
        (folder / "results.json").write_text(text, encoding="utf-8")
    outcome = RunResult(
        output_dir=str(ctx.out),
        test=test,
        validation=validation,
        baseline=baseline,
        revisions=results["revisions"],
        split=ctx.splits.info,
        seconds=results["seconds"],
        train_seconds=training["seconds"],
        metric_sources=results["metric_sources"],
    )
    if recipe.push:
        pushing.push_and_verify(ctx, results, staged, outcome)
    outcome.seconds = time.perf_counter() - started
    say(outcome.summary())
    return outcome
