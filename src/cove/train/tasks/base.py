"""What every task provides to the run: data preparation, features, metrics, baseline, predictions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..recipe import Recipe, RecipeError

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

    from ..data import Splits


@dataclass
class Features:
    """Tokenized splits ready for the Trainer, plus what maps them back to examples."""

    train: Dataset
    validation: Dataset
    test: Dataset
    extra: dict[str, Any] = field(default_factory=dict)


SPLITS = ("train", "validation", "test")


def tokenized(splits: Splits, encode: Any) -> Features:
    """Each split mapped through the batched ``encode``, its text columns replaced by the encoding."""
    out = {
        name: getattr(splits, name).map(
            encode, batched=True, remove_columns=getattr(splits, name).column_names, desc=f"Tokenizing {name}"
        )
        for name in SPLITS
    }
    return Features(out["train"], out["validation"], out["test"])


class Task:
    """Base class: one fine-tuning task. Subclasses fill in the hooks."""

    name: str = ""
    auto_class: str = ""
    pipeline_tag: str = ""
    has_pipeline: bool = True  # transformers 5 has a pipeline for this task
    baseline_name: str = "baseline"  # how the card names :meth:`baseline`

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.max_length = recipe.preprocessing.max_length  # capped to the model by the runner
        self.label_names: list[str] | None = None
        self.columns: dict[str, str] = {}

    # --- before any weights are loaded -----------------------------------------------------------
    def model_class(self, config: Any) -> type:
        """The ``AutoModelFor*`` class for this config, or a clear error when the model has no such head."""
        import transformers

        auto = getattr(transformers, self.auto_class)
        mapping = auto._model_mapping
        if type(config) not in mapping:
            raise RecipeError(
                f"model type {config.model_type!r} has no {self.name} head "
                f"({self.auto_class} cannot load it); "
                f"pick a base model whose architecture supports {self.name}"
            )
        return mapping[type(config)]

    def prepare(self, dsd: DatasetDict) -> Splits:
        """Check columns and labels, and return the train/validation/test splits."""
        raise NotImplementedError

    # --- with the tokenizer and model ------------------------------------------------------------
    def model_kwargs(self) -> dict[str, Any]:
        """Extra ``from_pretrained`` arguments (labels for the head)."""
        return {}

    def features(self, tokenizer: Any, splits: Splits) -> Features:
        """Tokenize the splits."""
        raise NotImplementedError

    def trainer_classes(self) -> tuple[type, type]:
        """The Trainer and TrainingArguments classes."""
        from transformers import Trainer, TrainingArguments

        return Trainer, TrainingArguments

    def extra_args(self) -> dict[str, Any]:
        """TrainingArguments this task needs (the recipe's ``training`` still wins)."""
        return {}

    def collator(self, tokenizer: Any, model: Any) -> Any:
        """The data collator for the Trainer."""
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def compute_metrics(self, features: Features, splits: Splits) -> Any:
        """A ``compute_metrics`` callable for validation during training (None: loss only)."""
        return None

    def loss_func(self, splits: Splits) -> Any:
        """A ``compute_loss_func`` for the Trainer, or None for the model's own loss."""
        return None

    def test_metrics(self, trainer: Any, features: Features, splits: Splits) -> dict[str, float]:
        """Evaluate the test split once, at the end."""
        raise NotImplementedError

    @staticmethod
    def predict_test(trainer: Any, features: Features) -> Any:
        """``trainer.predict`` on the test features without the validation ``compute_metrics``."""
        saved, trainer.compute_metrics = trainer.compute_metrics, None
        try:
            return trainer.predict(features.test, metric_key_prefix="test")
        finally:
            trainer.compute_metrics = saved

    def first_split(self, dsd: DatasetDict) -> Any:
        """The train split (or the first one) — what columns are checked and inferred on."""
        name = self.recipe.dataset.train_split
        return dsd[name] if name in dsd else next(iter(dsd.values()))

    def baseline(self, splits: Splits) -> dict[str, float] | None:
        """A trivial baseline on the test split (majority class for classification)."""
        return None

    # --- after training --------------------------------------------------------------------------
    def sample_inputs(self, splits: Splits, n: int = 8) -> list[Any]:
        """A few test inputs used to check that pushed models reload with the same predictions."""
        raise NotImplementedError

    def predict(self, model: Any, tokenizer: Any, inputs: list[Any]) -> Any:
        """Raw outputs (a tensor) of ``model`` for ``inputs``, for the reload check."""
        raise NotImplementedError

    def pipeline_example(self, splits: Splits) -> str:
        """An input for the card's ``pipeline`` snippet."""
        return "Hello"

    def usage_code(self, example: Any) -> str:
        """Card snippet lines that use ``model`` and ``tokenizer`` (already loaded) on ``example``."""
        return f'pipe = pipeline("{self.pipeline_tag}", model=model, tokenizer=tokenizer)\nprint(pipe({example!r}))'

    def card_extra(self) -> dict[str, Any]:
        """Task-specific card facts (labels...)."""
        return {}
