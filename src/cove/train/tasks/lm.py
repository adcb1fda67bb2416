"""Causal-LM fine-tuning (SFT, perplexity) and sequence-to-sequence (ROUGE)."""

from __future__ import annotations

import math
import shutil
import tempfile
from typing import TYPE_CHECKING, Any

from ..data import Splits, infer_column, make_splits, require_columns
from ..metrics import load_metric
from .base import Features, Task, tokenized

if TYPE_CHECKING:
    from datasets import DatasetDict

TEXT_NAMES = ("text", "content", "document", "sentence", "body")
PROMPT_NAMES = ("prompt", "instruction", "question", "input")
COMPLETION_NAMES = ("completion", "response", "answer", "output")
SOURCE_NAMES = ("document", "article", "source", "text", "input", "dialogue")
TARGET_NAMES = ("summary", "target", "highlights", "output", "headline", "title")


def _first_rows(ds: Any, n: int) -> Any:
    return ds.select(range(min(n, len(ds))))


class CausalLM(Task):
    """Causal language modelling on a text column, or SFT on prompt + completion (loss on the completion)."""

    name = "causal-lm"
    auto_class = "AutoModelForCausalLM"
    pipeline_tag = "text-generation"

    def prepare(self, dsd: DatasetDict) -> Splits:
        spec = self.recipe.dataset
        first = self.first_split(dsd)
        require_columns(first, {"text_column": spec.text_column, "target_column": spec.target_column}, hint="")
        prompt = spec.text_column
        completion = spec.target_column
        if completion is None and prompt is None:
            prompt = next((c for c in PROMPT_NAMES if c in first.column_names), None)
            completion = next((c for c in COMPLETION_NAMES if c in first.column_names), None) if prompt else None
            if completion is None:
                prompt = infer_column(first, "text_column", TEXT_NAMES, kind="string")
        assert prompt is not None
        self.columns = {"text": prompt, **({"completion": completion} if completion else {})}
        return make_splits(dsd, spec, strata_of=None, hash_columns=list(self.columns.values()))

    def features(self, tokenizer: Any, splits: Splits) -> Features:
        text, completion = self.columns["text"], self.columns.get("completion")
        eos = tokenizer.eos_token or ""

        def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
            if completion is None:
                enc = tokenizer([t + eos for t in batch[text]], truncation=True, max_length=self.max_length)
                enc["labels"] = [list(ids) for ids in enc["input_ids"]]
                return enc
            prompts = tokenizer(batch[text], add_special_tokens=True)["input_ids"]
            enc = tokenizer(
                [p + c + eos for p, c in zip(batch[text], batch[completion], strict=True)],
                truncation=True,
                max_length=self.max_length,
            )
            enc["labels"] = [
                [-100] * min(len(p), len(ids)) + list(ids[len(p) :])
                for p, ids in zip(prompts, enc["input_ids"], strict=True)
            ]
            return enc

        return tokenized(splits, encode)

    def collator(self, tokenizer: Any, model: Any) -> Any:
        from transformers import DataCollatorForSeq2Seq

        return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)

    def test_metrics(self, trainer: Any, features: Features, splits: Splits) -> dict[str, float]:
        metrics = trainer.evaluate(features.test, metric_key_prefix="test")
        loss = float(metrics["test_loss"])
        scores = {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}
        if "perplexity" in (self.recipe.metrics or []):
            mean = self._module_perplexity(trainer.model, trainer.processing_class, splits)
            if mean is not None:
                scores["mean_perplexity"] = mean
        return scores

    def _module_perplexity(self, model: Any, tokenizer: Any, splits: Splits) -> float | None:
        """evaluate's perplexity module (through the hub) on the test texts, with the trained model saved."""
        import copy

        texts = [str(t) for t in splits.test[self.columns["text"]]]
        if "completion" in self.columns:
            texts = [p + str(c) for p, c in zip(texts, splits.test[self.columns["completion"]], strict=True)]
        folder = tempfile.mkdtemp(prefix="cove-ppl-")
        try:
            full = model
            if hasattr(model, "peft_config"):
                full = copy.deepcopy(model)
                full = full.merge_and_unload() if self.recipe.method.name in ("lora", "qlora") else None
            if full is None:  # prompt/prefix tuning: the module cannot load virtual tokens
                return None
            full.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            result = load_metric("perplexity").compute(
                model_id=folder, predictions=texts, batch_size=8, max_length=self.max_length, device=str(model.device)
            )
            return float(result["mean_perplexity"])
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def sample_inputs(self, splits: Splits, n: int = 4) -> list[Any]:
        return [str(t) for t in _first_rows(splits.test, n)[self.columns["text"]]]

    def predict(self, model: Any, tokenizer: Any, inputs: list[Any]) -> Any:
        import torch

        enc = tokenizer(inputs, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")
        model.eval()
        with torch.no_grad():
            logits = model(**enc.to(model.device)).logits.float().cpu()
        return logits * enc["attention_mask"].cpu()[..., None]

    def pipeline_example(self, splits: Splits) -> str:
        first = self.sample_inputs(splits, 1)
        return first[0][:200] if first else "Hello"

    def usage_code(self, example: Any) -> str:
        return (
            f'pipe = pipeline("text-generation", model=model, tokenizer=tokenizer)\n'
            f"print(pipe({example!r}, max_new_tokens=40))"
        )


class Seq2Seq(Task):
    """Text → text (summarisation, translation) with ROUGE on generated outputs."""

    name = "seq2seq"
    auto_class = "AutoModelForSeq2SeqLM"
    pipeline_tag = "summarization"
    has_pipeline = False
    baseline_name = "lead baseline"

    def prepare(self, dsd: DatasetDict) -> Splits:
        spec = self.recipe.dataset
        first = self.first_split(dsd)
        require_columns(first, {"text_column": spec.text_column, "target_column": spec.target_column}, hint="")
        target = spec.target_column or infer_column(first, "target_column", TARGET_NAMES)
        source = spec.text_column or infer_column(first, "text_column", SOURCE_NAMES, kind="string", exclude=[target])
        self.columns = {"text": source, "target": target}
        return make_splits(dsd, spec, strata_of=None, hash_columns=[source, target])

    def trainer_classes(self) -> tuple[type, type]:
        from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

        return Seq2SeqTrainer, Seq2SeqTrainingArguments

    def extra_args(self) -> dict[str, Any]:
        return {"predict_with_generate": True, "generation_max_length": self.recipe.preprocessing.max_target_length}

    def features(self, tokenizer: Any, splits: Splits) -> Features:
        source, target = self.columns["text"], self.columns["target"]
        limit = self.recipe.preprocessing.max_target_length
        self._tokenizer = tokenizer

        def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
            enc = tokenizer(batch[source], truncation=True, max_length=self.max_length)
            enc["labels"] = tokenizer(text_target=batch[target], truncation=True, max_length=limit)["input_ids"]
            return enc

        return tokenized(splits, encode)

    def collator(self, tokenizer: Any, model: Any) -> Any:
        from transformers import DataCollatorForSeq2Seq

        return DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)

    def _rouge(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        scores = load_metric("rouge").compute(predictions=predictions, references=references)
        return {k: float(v) for k, v in scores.items()}

    def _decode(self, tokenizer: Any, ids: Any) -> list[str]:
        import numpy as np

        ids = np.asarray(ids[0] if isinstance(ids, tuple) else ids)
        ids = np.where(ids < 0, tokenizer.pad_token_id, ids)
        return [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def compute_metrics(self, features: Features, splits: Splits) -> Any:
        refs = [str(t) for t in splits.validation[self.columns["target"]]]
        return lambda pred: self._rouge(self._decode(self._tokenizer, pred.predictions), refs)

    def test_metrics(self, trainer: Any, features: Features, splits: Splits) -> dict[str, float]:
        out = self.predict_test(trainer, features)
        scores = self._rouge(
            self._decode(trainer.processing_class, out.predictions),
            [str(t) for t in splits.test[self.columns["target"]]],
        )
        if out.metrics.get("test_loss") is not None:
            scores["loss"] = float(out.metrics["test_loss"])
        return scores

    def baseline(self, splits: Splits) -> dict[str, Any]:
        """Lead baseline: the first words of the source, as many as an average training target has."""
        targets = [str(t) for t in splits.train[self.columns["target"]]]
        words = max(1, round(sum(len(t.split()) for t in targets) / max(len(targets), 1)))
        leads = [" ".join(str(s).split()[:words]) for s in splits.test[self.columns["text"]]]
        scores: dict[str, Any] = self._rouge(leads, [str(t) for t in splits.test[self.columns["target"]]])
        scores["predicts"] = f"the first {words} words of the source"
        return scores

    def sample_inputs(self, splits: Splits, n: int = 4) -> list[Any]:
        rows = _first_rows(splits.test, n)
        return list(zip(rows[self.columns["text"]], rows[self.columns["target"]], strict=True))

    def predict(self, model: Any, tokenizer: Any, inputs: list[Any]) -> Any:
        import torch

        enc = tokenizer(
            [s for s, _ in inputs], truncation=True, max_length=self.max_length, padding=True, return_tensors="pt"
        )
        labels = tokenizer(
            text_target=[t for _, t in inputs],
            truncation=True,
            padding=True,
            max_length=self.recipe.preprocessing.max_target_length,
            return_tensors="pt",
        )["input_ids"]
        model.eval()
        with torch.no_grad():
            return model(**enc.to(model.device), labels=labels.to(model.device)).logits.float().cpu()

    def pipeline_example(self, splits: Splits) -> str:
        first = self.sample_inputs(splits, 1)
        return str(first[0][0])[:300] if first else "Hello"

    def usage_code(self, example: Any) -> str:
        return (
            f'inputs = tokenizer({example!r}, return_tensors="pt")\n'
            "print(tokenizer.decode(model.generate(**inputs, max_new_tokens=60)[0], skip_special_tokens=True))"
        )
