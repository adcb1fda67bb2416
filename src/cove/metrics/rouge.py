"""ROUGE (Cove's module for ``evaluate-metric/rouge``, built on Google's rouge-score).

Aggregation is the mean F-measure over examples (deterministic), which is what the Hub module's
bootstrap "mid" estimates.
"""

import datasets
import evaluate
from rouge_score import rouge_scorer

_DESCRIPTION = "ROUGE-1/2/L/Lsum F-measures of generated texts against one or more references."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): Generated texts.
    references (`list` of `str` or `list` of `list` of `str`): One or several references each.
    rouge_types (`list` of `str`): Defaults to ["rouge1", "rouge2", "rougeL", "rougeLsum"].
    use_aggregator (`bool`): Return the mean over examples (True) or one score per example. Defaults to True.
    use_stemmer (`bool`): Porter-stem words before matching. Defaults to False.
    tokenizer (callable): A custom tokenizer (str -> list of str). Defaults to rouge-score's.
Returns:
    One entry per rouge type: a float, or a list of floats when use_aggregator is False.
Examples:
    >>> rouge = evaluate.load("rouge")
    >>> rouge.compute(predictions=["hello there"], references=["hello there"])["rouge1"]
    1.0
"""
_CITATION = "Chin-Yew Lin, ROUGE: A Package for Automatic Evaluation of Summaries, ACL 2004."


class _Tokenizer:
    def __init__(self, tokenize):
        self.tokenize = tokenize


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Rouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Value("string", id="sequence"),
                        "references": datasets.Sequence(datasets.Value("string", id="sequence")),
                    }
                ),
                datasets.Features(
                    {
                        "predictions": datasets.Value("string", id="sequence"),
                        "references": datasets.Value("string", id="sequence"),
                    }
                ),
            ],
            reference_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
        )

    def _compute(
        self,
        predictions,
        references,
        rouge_types=None,
        use_aggregator=True,
        use_stemmer=False,
        tokenizer=None,
    ):
        rouge_types = rouge_types or ["rouge1", "rouge2", "rougeL", "rougeLsum"]
        scorer = rouge_scorer.RougeScorer(
            rouge_types=rouge_types,
            use_stemmer=use_stemmer,
            tokenizer=_Tokenizer(tokenizer) if tokenizer else None,
        )
        per_type = {key: [] for key in rouge_types}
        for ref, pred in zip(references, predictions, strict=True):
            score = scorer.score_multi(ref, pred) if isinstance(ref, list) else scorer.score(ref, pred)
            for key in rouge_types:
                per_type[key].append(float(score[key].fmeasure))
        if use_aggregator:
            return {key: (sum(vals) / len(vals) if vals else 0.0) for key, vals in per_type.items()}
        return per_type
