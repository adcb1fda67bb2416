"""Cove's evaluate-compatible metric modules: same results as the reference libraries, and served by Cove."""

from __future__ import annotations

import pytest

from cove.metrics import METRICS, module_path, seed_metric_spaces

pytestmark = pytest.mark.train
evaluate = pytest.importorskip("evaluate")
sklearn_metrics = pytest.importorskip("sklearn.metrics")

PREDS = [0, 1, 2, 0, 1, 2, 2, 1]
REFS = [0, 1, 1, 0, 2, 2, 2, 0]


def _load(name: str):
    return evaluate.load(str(module_path(name)))


def test_classification_modules_match_sklearn() -> None:
    assert _load("accuracy").compute(predictions=PREDS, references=REFS) == {
        "accuracy": sklearn_metrics.accuracy_score(REFS, PREDS)
    }
    for name, fn in (
        ("f1", sklearn_metrics.f1_score),
        ("precision", sklearn_metrics.precision_score),
        ("recall", sklearn_metrics.recall_score),
    ):
        for average in ("macro", "weighted"):
            got = _load(name).compute(predictions=PREDS, references=REFS, average=average)[name]
            assert got == pytest.approx(fn(REFS, PREDS, average=average))
        per_class = _load(name).compute(predictions=PREDS, references=REFS, average=None)[name]
        assert per_class == pytest.approx(list(fn(REFS, PREDS, average=None)))


def test_seqeval_squad_rouge() -> None:
    seq = _load("seqeval").compute(
        predictions=[["B-PER", "I-PER", "O", "B-LOC"]], references=[["B-PER", "I-PER", "O", "B-ORG"]]
    )
    assert seq["overall_f1"] == pytest.approx(0.5) and seq["PER"]["f1"] == 1.0 and seq["ORG"]["number"] == 1
    squad = _load("squad").compute(
        predictions=[{"id": "1", "prediction_text": "The 1976"}, {"id": "2", "prediction_text": "red car"}],
        references=[
            {"id": "1", "answers": {"text": ["1976"], "answer_start": [0]}},
            {"id": "2", "answers": {"text": ["blue car"], "answer_start": [0]}},
        ],
    )
    assert squad == {"exact_match": 50.0, "f1": pytest.approx(75.0)}
    rouge = _load("rouge").compute(predictions=["hello there general"], references=["hello there"])
    assert rouge["rouge1"] == pytest.approx(0.8) and rouge["rouge2"] == pytest.approx(2 / 3)


def test_perplexity_module(tiny_gpt2) -> None:
    out = _load("perplexity").compute(model_id=str(tiny_gpt2), predictions=["$AAPL up", "shares fall"], batch_size=2)
    assert len(out["perplexities"]) == 2 and out["mean_perplexity"] > 1


def test_evaluate_load_fetches_seeded_spaces_from_cove(api, seeded_metrics) -> None:
    """The seed's call, `evaluate.load("accuracy")`, served by a live Cove after seeding."""
    from cove.train.hub import sync_evaluate_endpoint

    seeded = seeded_metrics
    assert [s.repo_id for s in seeded] == [f"evaluate-metric/{n}" for n in METRICS]
    assert "accuracy.py" in api.list_repo_files("evaluate-metric/accuracy", repo_type="space")
    sync_evaluate_endpoint()
    assert evaluate.config.HUB_EVALUATE_URL.startswith(api.endpoint)
    accuracy = evaluate.load("accuracy", download_mode="force_redownload")
    assert accuracy.compute(predictions=[0, 1, 1], references=[0, 1, 0])["accuracy"] == pytest.approx(2 / 3)
    f1 = evaluate.load("f1", download_mode="force_redownload")
    assert f1.compute(predictions=PREDS, references=REFS, average="macro")["f1"] == pytest.approx(
        sklearn_metrics.f1_score(REFS, PREDS, average="macro")
    )
    # seeding again is idempotent
    assert len(seed_metric_spaces(api, names=["accuracy"])) == 1
