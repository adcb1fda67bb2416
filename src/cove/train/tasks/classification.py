"""Sequence classification: labels, class weights, sliding windows, majority baseline."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from ..data import Splits, infer_column, make_splits, require_columns
from ..metrics import classification_scores
from ..recipe import RecipeError
from .base import SPLITS, Features, Task

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

TEXT_NAMES = ("text", "sentence", "content", "review", "tweet", "document", "body")
LABEL_NAMES = ("label", "labels", "sentiment", "class", "target", "category")


class SequenceClassification(Task):
    """Text (or text pair) → one label."""

    name = "sequence-classification"
    auto_class = "AutoModelForSequenceClassification"
    pipeline_tag = "text-classification"
    baseline_name = "majority baseline"

    # --- data ------------------------------------------------------------------------------------
    def prepare(self, dsd: DatasetDict) -> Splits:
        spec = self.recipe.dataset
        first = self.first_split(dsd)
        require_columns(
            first,
            {
                "text_column": spec.text_column,
                "text_pair_column": spec.text_pair_column,
                "label_column": spec.label_column,
            },
            hint="",
        )
        label_col = spec.label_column or infer_column(first, "label_column", LABEL_NAMES)
        text_col = spec.text_column or infer_column(
            first, "text_column", TEXT_NAMES, kind="string", exclude=[label_col]
        )
        pair_col = spec.text_pair_column
        if pair_col and self.recipe.preprocessing.long_texts == "sliding_window":
            raise RecipeError(
                "preprocessing.long_texts: sliding_window works on single texts; use truncate with a text pair"
            )
        for name, ds in dsd.items():
            require_columns(ds, {"text_column": text_col, "label_column": label_col}, hint=f" (split {name!r})")
        self.columns = {"text": text_col, "label": label_col, **({"text_pair": pair_col} if pair_col else {})}
        hash_cols = [c for c in (text_col, pair_col, label_col) if c]
        splits = make_splits(dsd, spec, strata_of=lambda ds: ds[label_col], hash_columns=hash_cols)
        self._encode_labels(splits, first.features[label_col])
        return splits

    def _encode_labels(self, splits: Splits, feature: Any) -> None:
        """Map label values to ids 0..n-1 (ClassLabel names, recipe label_names, or sorted values)."""
        col = self.columns["label"]
        given = self.recipe.dataset.label_names
        values = sorted(set(splits.train[col]), key=lambda v: (str(type(v)), v))
        if hasattr(feature, "names"):  # ClassLabel
            names = given or list(feature.names)
            if len(names) != feature.num_classes:
                raise RecipeError(
                    f"dataset.label_names has {len(names)} names but the dataset has {feature.num_classes} classes"
                )
            to_id = {i: i for i in range(feature.num_classes)}
        elif given and all(isinstance(v, int) for v in values):
            names = list(given)
            to_id = {i: i for i in range(len(names))}
        elif given:
            names = list(given)
            to_id = {name: i for i, name in enumerate(names)}
        else:
            names = [str(v) for v in values]
            to_id = {v: i for i, v in enumerate(values)}
        if len(names) < 2:
            raise RecipeError(f"column {col!r} has a single label {names}; classification needs at least two")
        self.label_names = names
        for split_name in SPLITS:
            ds: Dataset = getattr(splits, split_name)
            unknown = sorted({str(v) for v in set(ds[col]) if v not in to_id})
            if unknown:
                raise RecipeError(
                    f"label(s) {unknown} in the {split_name} split are not among the known labels {names}; "
                    "fix the data or list every label in dataset.label_names"
                )
            encoded = ds.map(
                lambda b: {"labels": [to_id[v] for v in b[col]]},
                batched=True,
                desc=f"Encoding {split_name} labels",
            )
            setattr(splits, split_name, encoded)
        splits.info["label_counts"] = {
            s: dict(sorted(Counter(names[i] for i in getattr(splits, s)["labels"]).items()))
            for s in SPLITS
        }

    def model_kwargs(self) -> dict[str, Any]:
        assert self.label_names is not None
        return {
            "num_labels": len(self.label_names),
            "id2label": dict(enumerate(self.label_names)),
            "label2id": {n: i for i, n in enumerate(self.label_names)},
        }

    # --- features --------------------------------------------------------------------------------
    def features(self, tokenizer: Any, splits: Splits) -> Features:
        pre = self.recipe.preprocessing
        text, pair = self.columns["text"], self.columns.get("text_pair")
        sliding = pre.long_texts == "sliding_window"

        def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
            if not sliding:
                enc = tokenizer(batch[text], batch[pair] if pair else None, truncation=True, max_length=self.max_length)
                enc["labels"] = batch["labels"]
                return enc
            enc = tokenizer(
                batch[text],
                truncation=True,
                max_length=self.max_length,
                stride=pre.stride,
                return_overflowing_tokens=True,
            )
            owners = enc.pop("overflow_to_sample_mapping")
            enc["labels"] = [batch["labels"][i] for i in owners]
            enc["example"] = [batch["row"][i] for i in owners]
            return enc

        out: dict[str, Any] = {}
        windows: dict[str, list[int]] = {}
        for name in SPLITS:
            ds: Dataset = getattr(splits, name)
            if sliding:
                ds = ds.add_column("row", list(range(len(ds))))
            tok = ds.map(encode, batched=True, remove_columns=ds.column_names, desc=f"Tokenizing {name}")
            if sliding:
                windows[name] = tok["example"]
                tok = tok.remove_columns("example")
            out[name] = tok
        if sliding:
            splits.info["windows"] = {k: len(v) for k, v in windows.items()}
        return Features(out["train"], out["validation"], out["test"], {"windows": windows})

    # --- metrics ---------------------------------------------------------------------------------
    def _scores(self, logits: Any, features: Features, split: str, splits: Splits) -> dict[str, float]:
        import numpy as np

        logits = np.asarray(logits[0] if isinstance(logits, tuple) else logits)
        windows = features.extra.get("windows", {}).get(split)
        if windows:  # average the window logits of each example
            n = len(getattr(splits, split))
            summed = np.zeros((n, logits.shape[-1]))
            counts = np.zeros(n)
            np.add.at(summed, windows, logits)
            np.add.at(counts, windows, 1)
            logits = summed / counts[:, None]
        refs = getattr(splits, split)["labels"]
        assert self.label_names is not None and self.recipe.metrics is not None
        return classification_scores(logits.argmax(-1), refs, self.recipe.metrics, len(self.label_names))

    def compute_metrics(self, features: Features, splits: Splits) -> Any:
        return lambda pred: self._scores(pred.predictions, features, "validation", splits)

    def test_metrics(self, trainer: Any, features: Features, splits: Splits) -> dict[str, float]:
        out = self.predict_test(trainer, features)
        scores = self._scores(out.predictions, features, "test", splits)
        if out.metrics.get("test_loss") is not None:
            scores["loss"] = float(out.metrics["test_loss"])
        return scores

    def baseline(self, splits: Splits) -> dict[str, float]:
        assert self.label_names is not None and self.recipe.metrics is not None
        majority = Counter(splits.train["labels"]).most_common(1)[0][0]
        refs = splits.test["labels"]
        scores = classification_scores([majority] * len(refs), refs, self.recipe.metrics, len(self.label_names))
        scores["predicts"] = self.label_names[majority]  # type: ignore[assignment]
        return scores

    def loss_func(self, splits: Splits) -> Any:
        weights = self.recipe.class_weights
        if weights is None:
            return None
        assert self.label_names is not None
        n = len(self.label_names)
        if weights == "auto":
            counts = Counter(splits.train["labels"])
            total = len(splits.train)
            weights = [total / (n * counts[i]) if counts[i] else 0.0 for i in range(n)]
        elif len(weights) != n:
            raise RecipeError(f"class_weights has {len(weights)} values but there are {n} labels {self.label_names}")
        splits.info["class_weights"] = [round(w, 6) for w in weights]
        import torch

        weight = torch.tensor(weights, dtype=torch.float32)

        def weighted_ce(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
            logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
            losses = torch.nn.functional.cross_entropy(
                logits.view(-1, n).float(), labels.view(-1), weight=weight.to(logits.device), reduction="none"
            )
            denom = num_items_in_batch if num_items_in_batch is not None else labels.numel()
            return losses.sum() / denom

        return weighted_ce

    # --- reload checks and card ------------------------------------------------------------------
    def sample_inputs(self, splits: Splits, n: int = 8) -> list[Any]:
        text, pair = self.columns["text"], self.columns.get("text_pair")
        rows = splits.test.select(range(min(n, len(splits.test))))
        return [(r[text], r[pair]) if pair else r[text] for r in rows]

    def predict(self, model: Any, tokenizer: Any, inputs: list[Any]) -> Any:
        import torch

        if inputs and isinstance(inputs[0], tuple):
            enc = tokenizer(
                [a for a, _ in inputs],
                [b for _, b in inputs],
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            )
        else:
            enc = tokenizer(inputs, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")
        model.eval()
        with torch.no_grad():
            return model(**enc.to(model.device)).logits.float().cpu()

    def pipeline_example(self, splits: Splits) -> str:
        first = self.sample_inputs(splits, 1)
        return str(first[0][0] if first and isinstance(first[0], tuple) else (first[0] if first else "Hello"))

    def card_extra(self) -> dict[str, Any]:
        return {"labels": self.label_names}
