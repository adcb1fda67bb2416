"""Recipes: the YAML that describes one training run, validated with pydantic.

Nothing here imports torch: the recipe is parsed and checked before any heavy work starts.
``training`` is passed through to ``transformers.TrainingArguments``; its keys are checked against that
dataclass lazily (only when transformers is importable).
"""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

TASKS = (
    "sequence-classification",
    "token-classification",
    "question-answering",
    "causal-lm",
    "seq2seq",
)
TASK_ALIASES = {
    "text-classification": "sequence-classification",
    "classification": "sequence-classification",
    "ner": "token-classification",
    "qa": "question-answering",
    "extractive-qa": "question-answering",
    "sft": "causal-lm",
    "text-generation": "causal-lm",
    "summarization": "seq2seq",
    "text2text-generation": "seq2seq",
    "translation": "seq2seq",
}
METHODS = ("full", "lora", "qlora", "prefix", "prompt")

DEFAULT_METRICS: dict[str, list[str]] = {
    "sequence-classification": ["accuracy", "f1", "precision", "recall"],
    "token-classification": ["seqeval"],
    "question-answering": ["squad"],
    "causal-lm": ["perplexity"],
    "seq2seq": ["rouge"],
}
DEFAULT_BEST_METRIC = {
    "sequence-classification": "f1_macro",
    "token-classification": "overall_f1",
    "question-answering": "f1",
    "causal-lm": "loss",
    "seq2seq": "rougeL",
}
# TrainingArguments keys that Cove sets itself from other sections of the recipe.
MANAGED_TRAINING_KEYS = {"output_dir", "metric_for_best_model", "push_to_hub", "hub_model_id", "hub_token"}


class RecipeError(ValueError):
    """A recipe problem, worded as one message that names the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ModelSpec(_Section):
    """The base model: a hub repo id (or a local folder) and a revision."""

    id: str
    revision: str = "main"


class SplitSpec(_Section):
    """How to carve validation/test out of train when the dataset does not have them."""

    validation: float = Field(0.1, gt=0, lt=1)
    test: float = Field(0.1, gt=0, lt=1)
    seed: int = 42
    stratify: bool = True


class DatasetSpec(_Section):
    """The dataset repo, its config, splits and column mapping (inferred when obvious)."""

    id: str
    revision: str = "main"
    config: str | None = None
    data_files: str | list[str] | dict[str, str | list[str]] | None = None
    train_split: str = "train"
    validation_split: str | None = None
    test_split: str | None = None
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    tokens_column: str | None = None
    tags_column: str | None = None
    question_column: str | None = None
    context_column: str | None = None
    answers_column: str | None = None
    target_column: str | None = None
    label_names: list[str] | None = None
    split: SplitSpec = SplitSpec()
    max_train_samples: int | None = Field(None, gt=0)
    max_eval_samples: int | None = Field(None, gt=0)


class MethodSpec(_Section):
    """How the weights are trained: full fine-tuning or a PEFT method."""

    name: Literal["full", "lora", "qlora", "prefix", "prompt"] = "full"
    r: int = Field(8, gt=0)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    target_modules: list[str] | str | None = None
    modules_to_save: list[str] | None = None
    num_virtual_tokens: int = Field(20, gt=0)
    prompt_init_text: str | None = None


class PreprocessingSpec(_Section):
    """Tokenization: maximum length and what to do with texts longer than that."""

    max_length: int = Field(128, gt=8)
    long_texts: Literal["truncate", "sliding_window"] = "truncate"
    stride: int = Field(32, ge=0)
    max_target_length: int = Field(64, gt=0)

    @model_validator(mode="after")
    def _stride_fits(self) -> PreprocessingSpec:
        if self.long_texts == "sliding_window" and self.stride >= self.max_length // 2:
            raise ValueError(
                f"stride ({self.stride}) must be less than half of max_length ({self.max_length}); "
                "lower preprocessing.stride"
            )
        return self


class EarlyStoppingSpec(_Section):
    """Stop when the best metric has not improved for ``patience`` evaluations."""

    patience: int = Field(3, gt=0)
    threshold: float = 0.0


class PushSpec(_Section):
    """Where to push the trained model, and in which forms."""

    repo_id: str
    private: bool = False
    save: Literal["adapter", "merged", "both"] | None = None
    verify: bool = True
    commit_message: str = "cove train"


class Recipe(_Section):
    """One training run. See docs/train.md for every key."""

    task: str = "sequence-classification"
    model: ModelSpec
    dataset: DatasetSpec
    method: MethodSpec = MethodSpec()
    preprocessing: PreprocessingSpec = PreprocessingSpec()
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: list[str] | None = None
    best_metric: str | None = None
    class_weights: Literal["auto"] | list[float] | None = None
    early_stopping: EarlyStoppingSpec | None = None
    deterministic: bool = False
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    seed: int = 42
    output_dir: str | None = None
    push: PushSpec | None = None

    @field_validator("model", "dataset", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"id": value} if isinstance(value, str) else value

    @field_validator("method", mode="before")
    @classmethod
    def _method_shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _early_shorthand(cls, value: Any) -> Any:
        if value is True:
            return {}
        if value is False:
            return None
        if isinstance(value, int):
            return {"patience": value}
        return value

    @field_validator("task")
    @classmethod
    def _task(cls, value: str) -> str:
        task = TASK_ALIASES.get(value, value)
        if task not in TASKS:
            raise ValueError(f"unknown task {value!r}{_suggest(value, [*TASKS, *TASK_ALIASES])}; one of {TASKS}")
        return task

    @model_validator(mode="after")
    def _defaults(self) -> Recipe:
        if self.metrics is None:
            self.metrics = list(DEFAULT_METRICS[self.task])
        allowed = DEFAULT_METRICS[self.task]
        for name in self.metrics:
            if name not in allowed:
                raise ValueError(
                    f"metric {name!r} does not apply to {self.task}{_suggest(name, allowed)}; use {', '.join(allowed)}"
                )
        if self.best_metric is None:
            self.best_metric = self.training.get("metric_for_best_model") or DEFAULT_BEST_METRIC[self.task]
        choices = best_metric_choices(self.task, self.metrics)
        if self.best_metric not in choices:
            raise ValueError(
                f"best_metric {self.best_metric!r} is not reported for {self.task}"
                f"{_suggest(self.best_metric, choices)}; one of {', '.join(choices)}"
            )
        if self.class_weights is not None and self.task != "sequence-classification":
            raise ValueError("class_weights applies to sequence-classification only; remove it")
        if self.preprocessing.long_texts == "sliding_window" and self.task not in (
            "sequence-classification",
            "question-answering",
        ):
            raise ValueError(
                "preprocessing.long_texts: sliding_window works for sequence-classification and "
                "question-answering; use truncate"
            )
        if self.output_dir is None:
            name = (self.push.repo_id if self.push else self.model.id).rstrip("/").split("/")[-1]
            self.output_dir = str(Path("runs") / name)
        return self

    @property
    def greater_is_better(self) -> bool:
        """Whether a larger ``best_metric`` is better (losses and perplexity are not)."""
        return not any(k in (self.best_metric or "") for k in ("loss", "perplexity"))

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe as plain data (what ``cove_recipe.yaml`` holds)."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        """The resolved recipe as YAML."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def best_metric_choices(task: str, metrics: list[str]) -> list[str]:
    """The validation metrics a task reports, which ``best_metric`` may name."""
    if task == "sequence-classification":
        names = [
            m if m == "accuracy" else f"{m}_{avg}"
            for m in metrics
            for avg in (("",) if m == "accuracy" else ("macro", "weighted"))
        ]
    else:
        names = {
            "token-classification": ["overall_f1", "overall_precision", "overall_recall", "overall_accuracy"],
            "question-answering": ["f1", "exact_match"],
            "causal-lm": [],
            "seq2seq": ["rougeL", "rouge1", "rouge2", "rougeLsum"],
        }[task]
    return [*names, "loss"]


def _suggest(word: str, choices: Any) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" — did you mean {match[0]!r}?" if match else ""


def _section_model(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Walk the recipe models along a pydantic error location; return the model that holds the last key."""
    model: type[BaseModel] | None = Recipe
    for part in loc[:-1]:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return model


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        where = ".".join(str(p) for p in loc[:-1]) or "the recipe"
        key = loc[-1] if loc else ""
        if e["type"] == "extra_forbidden":
            model = _section_model(loc)
            hint = _suggest(str(key), model.model_fields) if model else ""
            lines.append(f"unknown key {key!r} in {where}{hint}")
        elif e["type"] == "literal_error":
            choices = re.findall(r"'([^']*)'", e.get("ctx", {}).get("expected", ""))
            hint = _suggest(str(e["input"]), choices) or f"; one of {', '.join(choices)}"
            lines.append(f"{'.'.join(str(p) for p in loc)}: unknown value {e['input']!r}{hint}")
        elif e["type"] == "missing":
            lines.append(f"missing key {key!r} in {where}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{'.'.join(str(p) for p in loc) or 'recipe'}: {msg}")
    return "; ".join(lines)


def check_training_keys(training: dict[str, Any]) -> None:
    """Reject keys that ``TrainingArguments`` does not know, with a suggestion (needs transformers)."""
    try:
        import dataclasses

        from transformers import TrainingArguments
    except ImportError:  # the train extra is not installed: nothing to check against
        return
    known = {f.name for f in dataclasses.fields(TrainingArguments) if f.init}
    for key in training:
        if key in MANAGED_TRAINING_KEYS:
            raise RecipeError(
                f"training.{key} is set by cove train itself; "
                + ("use best_metric" if key == "metric_for_best_model" else "use the push/output_dir sections")
            )
        if key not in known:
            raise RecipeError(f"unknown key {key!r} in training{_suggest(key, known)}")


def parse_recipe(data: dict[str, Any], *, check_training: bool = True) -> Recipe:
    """Validate plain data as a recipe; raise :class:`RecipeError` with one clear message."""
    if not isinstance(data, dict):
        raise RecipeError("a recipe must be a YAML mapping (key: value), not " + type(data).__name__)
    try:
        recipe = Recipe.model_validate(_numbers(data))
    except ValidationError as err:
        raise RecipeError(_format_errors(err)) from None
    if check_training:
        check_training_keys(recipe.training)
    return recipe


_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _numbers(value: Any) -> Any:
    """YAML 1.1 reads ``3e-4`` as a string; read such scientific notation as a float, as users mean it."""
    if isinstance(value, str) and _FLOAT.match(value.strip()):
        return float(value)
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


def _coerce(value: str) -> Any:
    """Turn an override's text into YAML data (numbers, booleans, lists), like the recipe file would."""
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=c`` overrides to recipe data (a deep copy is returned)."""
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"--set {item!r}: expected KEY=VALUE, e.g. training.learning_rate=3e-4")
        dotted, raw = item.split("=", 1)
        parts = dotted.strip().split(".")
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if isinstance(child, str) and part in ("model", "dataset", "method"):
                child = {"name" if part == "method" else "id": child}
            if child is None:
                child = {}
            if not isinstance(child, dict):
                raise RecipeError(f"--set {item!r}: {part!r} is not a section")
            node[part] = child
            node = child
        node[parts[-1]] = _coerce(raw)
    return data


def load_recipe(source: str | Path | dict[str, Any], overrides: list[str] | None = None) -> Recipe:
    """Load a recipe from a YAML file (or a dict), apply ``--set`` overrides and validate it."""
    if isinstance(source, dict):
        data = source
    else:
        path = Path(source)
        if not path.is_file():
            raise RecipeError(f"recipe file {str(path)!r} not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise RecipeError(f"{path}: not valid YAML ({err})") from None
    return parse_recipe(apply_overrides(data, overrides or []))
