"""seqeval: entity-level P/R/F1 for sequence labelling (Cove's module for ``evaluate-metric/seqeval``)."""

import importlib

import datasets
import evaluate
from seqeval.metrics import accuracy_score, classification_report

_DESCRIPTION = "Entity-level precision, recall and F1 of IOB-tagged sequences, computed with seqeval (CoNLL style)."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `str`): Predicted tags, one list per sentence.
    references (`list` of `list` of `str`): Gold tags, one list per sentence.
    suffix (`bool`): Tags are suffixed (``PER-B``) rather than prefixed. Defaults to False.
    scheme (`str`): A seqeval scheme ("IOB1", "IOB2", "IOE1", "IOE2", "IOBES", "BILOU") for strict mode.
    mode (`str`): "strict" to match exactly with the scheme. Defaults to None (CoNLL evaluation).
    sample_weight (`list` of `float`): Sample weights. Defaults to None.
    zero_division ("warn", 0 or 1): Value returned on a zero division. Defaults to "warn".
Returns:
    One dict per entity type (precision, recall, f1, number) and overall_precision, overall_recall,
    overall_f1, overall_accuracy.
Examples:
    >>> seqeval = evaluate.load("seqeval")
    >>> tags = [["B-PER", "I-PER", "O"]]
    >>> seqeval.compute(predictions=tags, references=tags)["overall_f1"]
    1.0
"""
_CITATION = "Hiroki Nakayama, seqeval: A Python framework for sequence labeling evaluation, 2018."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Seqeval(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string", id="label"), id="sequence"),
                    "references": datasets.Sequence(datasets.Value("string", id="label"), id="sequence"),
                }
            ),
            reference_urls=["https://github.com/chakki-works/seqeval"],
        )

    def _compute(
        self,
        predictions,
        references,
        suffix=False,
        scheme=None,
        mode=None,
        sample_weight=None,
        zero_division="warn",
    ):
        if scheme is not None:
            scheme = getattr(importlib.import_module("seqeval.scheme"), scheme)
        report = classification_report(
            y_true=references,
            y_pred=predictions,
            suffix=suffix,
            output_dict=True,
            scheme=scheme,
            mode=mode,
            sample_weight=sample_weight,
            zero_division=zero_division,
        )
        report.pop("macro avg", None)
        report.pop("weighted avg", None)
        overall = report.pop("micro avg")
        scores = {
            type_name: {
                "precision": float(score["precision"]),
                "recall": float(score["recall"]),
                "f1": float(score["f1-score"]),
                "number": int(score["support"]),
            }
            for type_name, score in report.items()
        }
        scores["overall_precision"] = float(overall["precision"])
        scores["overall_recall"] = float(overall["recall"])
        scores["overall_f1"] = float(overall["f1-score"])
        scores["overall_accuracy"] = float(accuracy_score(y_true=references, y_pred=predictions))
        return scores
