"""SQuAD v1.1 exact match and F1 (Cove's module for ``evaluate-metric/squad``; the official scoring rules)."""

import collections
import re
import string

import datasets
import evaluate

_DESCRIPTION = "Exact match and token F1 of extractive answers, with the official SQuAD v1.1 normalisation."
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of {"id": str, "prediction_text": str}.
    references: list of {"id": str, "answers": {"text": list of str, "answer_start": list of int}}.
Returns:
    exact_match (`float`): percentage (0-100) of predictions equal to a gold answer after normalisation.
    f1 (`float`): average best token F1 against the gold answers, as a percentage.
Examples:
    >>> squad = evaluate.load("squad")
    >>> squad.compute(predictions=[{"id": "1", "prediction_text": "1976"}],
    ...               references=[{"id": "1", "answers": {"text": ["1976"], "answer_start": [97]}}])
    {'exact_match': 100.0, 'f1': 100.0}
"""
_CITATION = "Rajpurkar et al., SQuAD: 100,000+ Questions for Machine Comprehension of Text, EMNLP 2016."


def normalize_answer(text):
    """Lower-case, drop punctuation and articles, squeeze whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def f1_score(prediction, ground_truth):
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(ground_truth).split()
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match_score(prediction, ground_truth):
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Squad(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": {
                        "id": datasets.Value("string"),
                        "prediction_text": datasets.Value("string"),
                    },
                    "references": {
                        "id": datasets.Value("string"),
                        "answers": datasets.features.Sequence(
                            {"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}
                        ),
                    },
                }
            ),
            reference_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
        )

    def _compute(self, predictions, references):
        golds = {ref["id"]: ref["answers"]["text"] for ref in references}
        exact = f1 = 0.0
        for pred in predictions:
            answers = golds[pred["id"]]
            exact += max(exact_match_score(pred["prediction_text"], a) for a in answers)
            f1 += max(f1_score(pred["prediction_text"], a) for a in answers)
        total = max(len(predictions), 1)
        return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total}
