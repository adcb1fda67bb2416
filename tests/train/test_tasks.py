"""The other tasks on tiny models and real (small) data: NER, extractive QA, causal-LM SFT, seq2seq."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.train.tiny import build_tiny_bart, write_wnut, write_xquad

pytestmark = pytest.mark.train
pytest.importorskip("peft")


def _run(model: Path, data: Path, out: Path, task: str, **extra):
    from cove.train import run

    recipe = {
        "model": str(model),
        "dataset": str(data),
        "task": task,
        "output_dir": str(out),
        "training": {"num_train_epochs": 1, "per_device_train_batch_size": 8},
        **extra,
    }
    return run(recipe, push=False)


def test_token_classification_seqeval(tiny_bert: Path, tmp_path: Path) -> None:
    result = _run(tiny_bert, write_wnut(tmp_path / "wnut"), tmp_path / "run", "ner", method="lora")
    assert set(result.test) == {"overall_precision", "overall_recall", "overall_f1", "overall_accuracy", "loss"}
    assert result.baseline and result.baseline["predicts"] == "O" and result.baseline["overall_f1"] == 0.0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["labels"][0] == "O" and any(t.startswith("B-") for t in results["labels"])
    assert "token-classification" in (tmp_path / "run" / "repo" / "README.md").read_text()


def test_extractive_qa_squad(tiny_bert: Path, tmp_path: Path) -> None:
    result = _run(
        tiny_bert,
        write_xquad(tmp_path / "xquad", n=24),
        tmp_path / "run",
        "qa",
        method="full",
        preprocessing={"max_length": 64, "stride": 16},
    )
    assert {"exact_match", "f1"} <= set(result.test) and 0 <= result.test["f1"] <= 100
    assert result.split["windows"]["test"] >= result.split["sizes"]["test"]  # long contexts → several windows
    readme = (tmp_path / "run" / "repo" / "README.md").read_text()
    assert "AutoModelForQuestionAnswering" in readme and "start_logits" in readme


def test_causal_lm_sft_perplexity(tiny_gpt2: Path, tiny_data: Path, tmp_path: Path) -> None:
    result = _run(tiny_gpt2, tiny_data, tmp_path / "run", "sft", method={"name": "lora", "r": 2}, push=None)
    assert result.test["perplexity"] > 1 and result.test["mean_perplexity"] > 1  # Trainer loss and the module
    assert result.validation["loss"] > 0
    assert json.loads((tmp_path / "run" / "results.json").read_text())["best_metric"] == "loss"


def test_prefix_tuning_causal_lm(tiny_gpt2: Path, tiny_data: Path, tmp_path: Path) -> None:
    result = _run(
        tiny_gpt2, tiny_data, tmp_path / "run", "causal-lm", method={"name": "prefix", "num_virtual_tokens": 4}
    )
    assert result.test["perplexity"] > 1
    config = json.loads((tmp_path / "run" / "repo" / "adapter_config.json").read_text())
    assert config["peft_type"] == "PREFIX_TUNING"


def test_seq2seq_rouge(tiny_rows, tmp_path: Path) -> None:
    bart = build_tiny_bart(tmp_path / "bart", [str(r["text"]) for r in tiny_rows])
    data = tmp_path / "s2s"
    data.mkdir()
    with (data / "train.jsonl").open("w") as fh:
        for r in tiny_rows:
            words = str(r["text"]).split()
            fh.write(json.dumps({"document": " ".join(words), "summary": " ".join(words[-4:])}) + "\n")
    result = _run(bart, data, tmp_path / "run", "summarization", method="lora", preprocessing={"max_target_length": 12})
    assert {"rouge1", "rouge2", "rougeL", "rougeLsum"} <= set(result.test)
    assert result.baseline and "words of the source" in result.baseline["predicts"]
