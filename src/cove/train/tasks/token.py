"""Token classification (NER): word tags aligned to sub-tokens, entity-level seqeval metrics."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from ..data import Splits, infer_column, make_splits, require_columns
from ..metrics import load_metric
from ..recipe import RecipeError
from .base import SPLITS, Features, Task, tokenized

if TYPE_CHECKING:
    from datasets import DatasetDict

TOKENS_NAMES = ("tokens", "words")
TAGS_NAMES = ("ner_tags", "tags", "labels", "ner", "pos_tags")


class TokenClassification(Task):
    """A list of words → one tag per word (IOB2)."""

    name = "token-classification"
    auto_class = "AutoModelForTokenClassification"
    pipeline_tag = "token-classification"
    baseline_name = "majority baseline"

    def prepare(self, dsd: DatasetDict) -> Splits:
        spec = self.recipe.dataset
        first = self.first_split(dsd)
        require_columns(first, {"tokens_column": spec.tokens_column, "tags_column": spec.tags_column}, hint="")
        tokens = spec.tokens_column or infer_column(first, "tokens_column", TOKENS_NAMES)
        tags = spec.tags_column or infer_column(first, "tags_column", TAGS_NAMES, exclude=[tokens])
        self.columns = {"tokens": tokens, "tags": tags}
        splits = make_splits(dsd, spec, strata_of=None, hash_columns=[tokens, tags])
        inner = getattr(first.features[tags], "feature", None)
        given = spec.label_names
        if inner is not None and hasattr(inner, "names"):
            names, to_id = list(given or inner.names), {i: i for i in range(inner.num_classes)}
        elif given:
            names = list(given)
            to_id = {i: i for i in range(len(names))} | {n: i for i, n in enumerate(names)}
        else:
            seen = sorted({t for row in splits.train[tags] for t in row}, key=lambda t: (t != "O", str(t)))
            if seen and not isinstance(seen[0], str):
                raise RecipeError(f"column {tags!r} holds tag ids without names; list them in dataset.label_names")
            names, to_id = [str(t) for t in seen], {t: i for i, t in enumerate(seen)}
        self.label_names = names
        for split_name in SPLITS:
            ds = getattr(splits, split_name)
            unknown = sorted({str(t) for row in ds[tags] for t in row if t not in to_id})
            if unknown:
                raise RecipeError(
                    f"tag(s) {unknown} in the {split_name} split are not among {names}; fix the data "
                    "or list every tag in dataset.label_names"
                )
            setattr(
                splits,
                split_name,
                ds.map(
                    lambda b: {"tag_ids": [[to_id[t] for t in row] for row in b[tags]]},
                    batched=True,
                    desc=f"Encoding {split_name} tags",
                ),
            )
        splits.info["tag_counts"] = dict(Counter(names[i] for row in splits.train["tag_ids"] for i in row))
        return splits

    def model_kwargs(self) -> dict[str, Any]:
        assert self.label_names is not None
        return {
            "num_labels": len(self.label_names),
            "id2label": dict(enumerate(self.label_names)),
            "label2id": {n: i for i, n in enumerate(self.label_names)},
        }

    def features(self, tokenizer: Any, splits: Splits) -> Features:
        if not getattr(tokenizer, "is_fast", False):
            raise RecipeError(
                "token-classification aligns tags with a fast tokenizer's word_ids(); this model has "
                "a slow tokenizer only"
            )
        tokens = self.columns["tokens"]

        def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
            enc = tokenizer(batch[tokens], is_split_into_words=True, truncation=True, max_length=self.max_length)
            labels = []
            for i, tag_ids in enumerate(batch["tag_ids"]):
                previous, row = None, []
                for word in enc.word_ids(i):
                    row.append(-100 if word is None or word == previous else tag_ids[word])
                    previous = word
                labels.append(row)
            enc["labels"] = labels
            return enc

        return tokenized(splits, encode)

    def collator(self, tokenizer: Any, model: Any) -> Any:
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer)

    def _scores(self, predictions: list[list[str]], references: list[list[str]]) -> dict[str, float]:
        result = load_metric("seqeval").compute(predictions=predictions, references=references, zero_division=0)
        return {k: float(v) for k, v in result.items() if k.startswith("overall_")}

    def _tags(self, logits: Any, labels: Any) -> tuple[list[list[str]], list[list[str]]]:
        import numpy as np

        assert self.label_names is not None
        ids = np.asarray(logits[0] if isinstance(logits, tuple) else logits).argmax(-1)
        preds, refs = [], []
        for p_row, l_row in zip(ids, labels, strict=True):
            keep = [(p, g) for p, g in zip(p_row, l_row, strict=False) if g != -100]
            preds.append([self.label_names[p] for p, _ in keep])
            refs.append([self.label_names[g] for _, g in keep])
        return preds, refs

    def compute_metrics(self, features: Features, splits: Splits) -> Any:
        return lambda pred: self._scores(*self._tags(pred.predictions, pred.label_ids))

    def test_metrics(self, trainer: Any, features: Features, splits: Splits) -> dict[str, float]:
        out = self.predict_test(trainer, features)
        scores = self._scores(*self._tags(out.predictions, out.label_ids))
        scores["loss"] = float(out.metrics["test_loss"])
        return scores

    def baseline(self, splits: Splits) -> dict[str, Any]:
        """Every word gets the most frequent training tag (usually O: no entities)."""
        assert self.label_names is not None
        top = Counter(i for row in splits.train["tag_ids"] for i in row).most_common(1)[0][0]
        refs = [[self.label_names[i] for i in row] for row in splits.test["tag_ids"]]
        scores: dict[str, Any] = self._scores([[self.label_names[top]] * len(r) for r in refs], refs)
        scores["predicts"] = self.label_names[top]
        return scores

    def sample_inputs(self, splits: Splits, n: int = 8) -> list[Any]:
        return [list(r) for r in splits.test.select(range(min(n, len(splits.test))))[self.columns["tokens"]]]

    def predict(self, model: Any, tokenizer: Any, inputs: list[Any]) -> Any:
        import torch

        enc = tokenizer(
            inputs,
            is_split_into_words=True,
            truncation=True,
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
        )
        model.eval()
        with torch.no_grad():
            return model(**enc.to(model.device)).logits.float().cpu()

    def pipeline_example(self, splits: Splits) -> str:
        first = self.sample_inputs(splits, 1)
        return " ".join(first[0]) if first else "Apple opened a store in Paris"

    def usage_code(self, example: Any) -> str:
        return (
            f'pipe = pipeline("token-classification", model=model, tokenizer=tokenizer, '
            f'aggregation_strategy="simple")\nprint(pipe({example!r}))'
        )

    def card_extra(self) -> dict[str, Any]:
        return {"labels": self.label_names}
