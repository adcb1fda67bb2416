"""F1: Cove's evaluate module for `evaluate-metric/f1`, built on scikit-learn's `f1_score`."""

import datasets
import evaluate
from sklearn.metrics import f1_score

_DESCRIPTION = "F1 score of predicted labels against references (binary, multiclass or multilabel)."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): Predicted labels.
    references (`list` of `int`): Ground truth labels.
    labels (`list` of `int`): The labels to include when average != "binary". Defaults to None.
    pos_label (`int`): The positive class when average == "binary". Defaults to 1.
    average (`str`): "binary" (default), "micro", "macro", "weighted", "samples" or None (per class).
    sample_weight (`list` of `float`): Sample weights. Defaults to None.
Returns:
    f1 (`float` or `list` of `float`): the score, or one per class when average is None.
Examples:
    >>> metric = evaluate.load("f1")
    >>> metric.compute(predictions=[0, 2, 1, 0], references=[0, 1, 2, 0], average="macro")["f1"] >= 0
    True
"""
_CITATION = "Pedregosa et al., Scikit-learn: Machine Learning in Python, JMLR 12, pp. 2825-2830, 2011."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(evaluate.Metric):
    def _info(self):
        value = datasets.Value("int32")
        if self.config_name == "multilabel":
            value = datasets.Sequence(value)
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": value, "references": value}),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html"],
        )

    def _compute(self, predictions, references, labels=None, pos_label=1, average="binary", sample_weight=None):
        score = f1_score(
            references,
            predictions,
            labels=labels,
            pos_label=pos_label,
            average=average,
            sample_weight=sample_weight,
        )
        return {"f1": score.tolist() if hasattr(score, "__len__") else float(score)}
