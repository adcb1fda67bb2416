"""Precision: Cove's evaluate module for `evaluate-metric/precision`, built on scikit-learn."""

import datasets
import evaluate
from sklearn.metrics import precision_score

_DESCRIPTION = "Precision score of predicted labels against references (binary, multiclass or multilabel)."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): Predicted labels.
    references (`list` of `int`): Ground truth labels.
    labels (`list` of `int`): The labels to include when average != "binary". Defaults to None.
    pos_label (`int`): The positive class when average == "binary". Defaults to 1.
    average (`str`): "binary" (default), "micro", "macro", "weighted", "samples" or None (per class).
    sample_weight (`list` of `float`): Sample weights. Defaults to None.
    zero_division (`str` or `int`): Value returned when there is a zero division ("warn", 0 or 1).
Returns:
    precision (`float` or `list` of `float`): the score, or one per class when average is None.
Examples:
    >>> metric = evaluate.load("precision")
    >>> metric.compute(predictions=[0, 2, 1, 0], references=[0, 1, 2, 0], average="macro")["precision"] >= 0
    True
"""
_CITATION = "Pedregosa et al., Scikit-learn: Machine Learning in Python, JMLR 12, pp. 2825-2830, 2011."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Precision(evaluate.Metric):
    def _info(self):
        value = datasets.Value("int32")
        if self.config_name == "multilabel":
            value = datasets.Sequence(value)
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": value, "references": value}),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.precision_score.html"],
        )

    def _compute(
        self,
        predictions,
        references,
        labels=None,
        pos_label=1,
        average="binary",
        sample_weight=None,
        zero_division="warn",
    ):
        score = precision_score(
            references,
            predictions,
            labels=labels,
            pos_label=pos_label,
            average=average,
            sample_weight=sample_weight,
            zero_division=zero_division,
        )
        return {"precision": score.tolist() if hasattr(score, "__len__") else float(score)}
