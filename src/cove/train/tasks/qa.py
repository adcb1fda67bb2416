"""Extractive question answering (SQuAD format): strided context windows, span post-processing, EM/F1."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ..data import Splits, make_splits, require_columns
from ..metrics import load_metric
from ..recipe import RecipeError
from .base import SPLITS, Features, Task

if TYPE_CHECKING:
    from datasets import DatasetDict

N_BEST = 20
MAX_ANSWER_TOKENS = 30


class QuestionAnswering(Task):
    """(question, context) → the answer span in the context."""

    name = "question-answering"
    auto_class = "AutoModelForQuestionAnswering"
    pipeline_tag = "question-answering"
    baseline_name = "lead baseline"
    has_pipeline = False

    def prepare(self, dsd: DatasetDict) -> Splits:
        spec = self.recipe.dataset
        first = self.first_split(dsd)
        cols = {
            "question_column": spec.question_column or "question",
            "context_column": spec.context_column or "context",
            "answers_column": spec.answers_column or "answers",
        }
        require_columns(first, cols, hint=" (question-answering expects SQuAD-style question/context/answers)")
        self.columns = {
            "question": cols["question_column"],
            "context": cols["context_column"],
            "answers": cols["answers_column"],
        }
        sample = first[0][self.columns["answers"]]
        if not (isinstance(sample, dict) and {"text", "answer_start"} <= set(sample)):
            raise RecipeError(
                f"column {self.columns['answers']!r} must hold {{'text': [...], 'answer_start': [...]}}"
                " (SQuAD format); convert the data or set dataset.answers_column"
            )
        hash_cols = [self.columns["question"], self.columns["context"], self.columns["answers"]]
        splits = make_splits(dsd, spec, strata_of=None, hash_columns=hash_cols)
        for name in SPLITS:
            ds = getattr(splits, name)
            if "id" not in ds.column_names:
                setattr(splits, name, ds.add_column("id", [f"{name}-{i}" for i in range(len(ds))]))
        return splits

    def _short_questions(self, tokenizer: Any, questions: list[str]) -> list[str]:
        """Cut questions so every window keeps more context tokens than the stride (else tokenizers panics)."""
        limit = max(1, self.max_length - self.recipe.preprocessing.stride - 8)
        enc = tokenizer([q.lstrip() for q in questions], add_special_tokens=False, return_offsets_mapping=True)
        return [
            q.lstrip()[: offsets[limit - 1][1]] if len(offsets) > limit else q.lstrip()
            for q, offsets in zip(questions, enc["offset_mapping"], strict=True)
        ]

    def _encode(self, tokenizer: Any, batch: dict[str, list[Any]]) -> Any:
        if tokenizer.padding_side != "right":
            raise RecipeError("question-answering needs a tokenizer that pads on the right")
        return tokenizer(
            self._short_questions(tokenizer, batch[self.columns["question"]]),
            batch[self.columns["context"]],
            truncation="only_second",
            max_length=self.max_length,
            stride=self.recipe.preprocessing.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding="max_length",
        )

    @staticmethod
    def _span(seq: list[int | None], offsets: list[tuple[int, int]], answer: dict[str, Any]) -> tuple[int, int]:
        """Token start/end of the first answer in this window; (0, 0) — the CLS token — when it is not inside."""
        if not answer["answer_start"]:
            return 0, 0
        a_start = answer["answer_start"][0]
        a_end = a_start + len(answer["text"][0])
        ctx_start = seq.index(1)
        ctx_end = len(seq) - 1 - seq[::-1].index(1)
        if not (offsets[ctx_start][0] <= a_start and offsets[ctx_end][1] >= a_end):
            return 0, 0
        s = ctx_start
        while s <= ctx_end and offsets[s][0] <= a_start:
            s += 1
        e = ctx_end
        while e >= ctx_start and offsets[e][1] >= a_end:
            e -= 1
        return s - 1, e + 1

    def features(self, tokenizer: Any, splits: Splits) -> Features:
        answers_col = self.columns["answers"]

        def encode(batch: dict[str, list[Any]], keep_meta: bool) -> dict[str, Any]:
            enc = self._encode(tokenizer, batch)
            owners = enc.pop("overflow_to_sample_mapping")
            all_offsets = enc.pop("offset_mapping")
            starts, ends = [], []
            for i, offsets in enumerate(all_offsets):
                span = self._span(enc.sequence_ids(i), offsets, batch[answers_col][owners[i]])
                starts.append(span[0])
                ends.append(span[1])
            enc["start_positions"], enc["end_positions"] = starts, ends  # eval windows get them too: eval loss
            if keep_meta:
                enc["example_id"] = [batch["id"][o] for o in owners]
                enc["offset_mapping"] = [
                    [o if enc.sequence_ids(i)[k] == 1 else None for k, o in enumerate(offsets)]
                    for i, offsets in enumerate(all_offsets)
                ]
            return enc

        train = splits.train.map(
            encode,
            fn_kwargs={"keep_meta": False},
            batched=True,
            remove_columns=splits.train.column_names,
            desc="Tokenizing train",
        )
        extra: dict[str, Any] = {}
        evals = {}
        for name in ("validation", "test"):
            ds = getattr(splits, name)
            enc = ds.map(
                encode,
                fn_kwargs={"keep_meta": True},
                batched=True,
                remove_columns=ds.column_names,
                desc=f"Tokenizing {name}",
            )
            extra[name] = {"example_id": enc["example_id"], "offset_mapping": enc["offset_mapping"]}
            evals[name] = enc.remove_columns(["example_id", "offset_mapping"])
        splits.info["windows"] = {
            "train": len(train),
            "validation": len(evals["validation"]),
            "test": len(evals["test"]),
        }
        return Features(train, evals["validation"], evals["test"], extra)

    def _answers(self, start_logits: Any, end_logits: Any, meta: dict[str, Any], ds: Any) -> list[dict[str, str]]:
        import numpy as np

        by_example = defaultdict(list)
        for i, ex in enumerate(meta["example_id"]):
            by_example[ex].append(i)
        predictions = []
        for row in ds:
            best, best_score = "", -1e9
            for i in by_example[row["id"]]:
                offsets = meta["offset_mapping"][i]
                s_idx = np.argsort(start_logits[i])[-1 : -N_BEST - 1 : -1]
                e_idx = np.argsort(end_logits[i])[-1 : -N_BEST - 1 : -1]
                for s in s_idx:
                    for e in e_idx:
                        if (
                            s >= len(offsets)
                            or e >= len(offsets)
                            or offsets[s] is None
                            or offsets[e] is None
                            or e < s
                            or e - s + 1 > MAX_ANSWER_TOKENS
                        ):
                            continue
                        score = start_logits[i][s] + end_logits[i][e]
                        if score > best_score:
                            best_score = score
                            best = row[self.columns["context"]][offsets[s][0] : offsets[e][1]]
            predictions.append({"id": row["id"], "prediction_text": best})
        return predictions

    def _scores(self, predictions: Any, meta: dict[str, Any], ds: Any) -> dict[str, float]:
        start, end = predictions[:2] if isinstance(predictions, tuple) else predictions
        answers = self._answers(start, end, meta, ds)
        refs = [
            {
                "id": r["id"],
                "answers": {
                    "text": list(r[self.columns["answers"]]["text"]),
                    "answer_start": list(r[self.columns["answers"]]["answer_start"]),
                },
            }
            for r in ds
        ]
        result = load_metric("squad").compute(predictions=answers, references=refs)
        return {k: float(v) for k, v in result.items()}

    def compute_metrics(self, features: Features, splits: Splits) -> Any:
        return lambda pred: self._scores(pred.predictions, features.extra["validation"], splits.validation)

    def test_metrics(self, trainer: Any, features: Features, splits: Splits) -> dict[str, float]:
        out = self.predict_test(trainer, features)
        scores = self._scores(out.predictions, features.extra["test"], splits.test)
        if out.metrics.get("test_loss") is not None:
            scores["loss"] = float(out.metrics["test_loss"])
        return scores

    def baseline(self, splits: Splits) -> dict[str, Any]:
        """Answer with the context's first words (as many as an average training answer has)."""
        lengths = [len(a["text"][0].split()) for a in splits.train[self.columns["answers"]] if a["text"]]
        words = max(1, round(sum(lengths) / max(len(lengths), 1)))
        preds = [
            {"id": r["id"], "prediction_text": " ".join(r[self.columns["context"]].split()[:words])}
            for r in splits.test
        ]
        refs = [{"id": r["id"], "answers": dict(r[self.columns["answers"]])} for r in splits.test]
        scores: dict[str, Any] = {
            k: float(v) for k, v in load_metric("squad").compute(predictions=preds, references=refs).items()
        }
        scores["predicts"] = f"the first {words} words of the context"
        return scores

    def sample_inputs(self, splits: Splits, n: int = 4) -> list[Any]:
        rows = splits.test.select(range(min(n, len(splits.test))))
        return list(zip(rows[self.columns["question"]], rows[self.columns["context"]], strict=True))

    def predict(self, model: Any, tokenizer: Any, inputs: list[Any]) -> Any:
        import torch

        enc = tokenizer(
            [q for q, _ in inputs],
            [c for _, c in inputs],
            truncation="only_second",
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
        )
        model.eval()
        with torch.no_grad():
            out = model(**enc.to(model.device))
        return torch.cat([out.start_logits, out.end_logits], dim=-1).float().cpu()

    def pipeline_example(self, splits: Splits) -> Any:
        first = self.sample_inputs(splits, 1)
        return list(first[0]) if first else ["Who?", "Nobody."]

    def usage_code(self, example: Any) -> str:
        question, context = example
        return (
            "import torch\n\n"
            f"question, context = {question!r}, {context[:300]!r}\n"
            'inputs = tokenizer(question, context, return_tensors="pt", truncation="only_second")\n'
            "with torch.no_grad():\n    out = model(**inputs)\n"
            "start, end = int(out.start_logits.argmax()), int(out.end_logits.argmax())\n"
            "print(tokenizer.decode(inputs.input_ids[0, start:end + 1]))"
        )
