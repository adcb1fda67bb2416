"""Sequence classification runs on local folders (no hub): full/LoRA/prompt, windows, weights, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.train.tiny import write_dataset

pytestmark = pytest.mark.train
pytest.importorskip("peft")


def _recipe(model: Path, data: Path, out: Path, **extra) -> dict:
    return {
        "model": str(model),
        "dataset": {"id": str(data), "label_names": ["Bearish", "Bullish", "Neutral"]},
        "training": {"num_train_epochs": 1, "per_device_train_batch_size": 8, **extra.pop("training", {})},
        "output_dir": str(out),
        **extra,
    }


def test_full_sliding_window_weights_accumulation(tiny_bert: Path, tiny_data: Path, tmp_path: Path) -> None:
    from cove.train import run

    out = tmp_path / "run"
    result = run(
        _recipe(
            tiny_bert,
            tiny_data,
            out,
            method="full",
            class_weights=[1, 2, 3],
            preprocessing={"long_texts": "sliding_window", "max_length": 16, "stride": 4},
            training={"gradient_accumulation_steps": 2},
        )
    )
    windows = result.split["windows"]
    assert windows["test"] > result.split["sizes"]["test"]  # long tweets became several windows...
    assert set(result.test) >= {"accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro"}
    assert 0 <= result.test["accuracy"] <= 1  # ...but metrics are per tweet, windows averaged
    assert result.split["class_weights"] == [1, 2, 3]
    assert result.baseline and result.baseline["accuracy"] == pytest.approx(1 / 3)

    results = json.loads((out / "results.json").read_text())
    assert results["revisions"]["model"].startswith("sha256:") and results["packages"]["transformers"]
    assert results["split"]["hash"]["all"] == result.split["hash"]["all"]
    pinned = yaml.safe_load((out / "cove_recipe.yaml").read_text())
    assert pinned["model"]["revision"] == results["revisions"]["model"]
    assert pinned["training"]["gradient_accumulation_steps"] == 2
    repo = out / "repo"
    assert {
        "README.md",
        "config.json",
        "model.safetensors",
        "training_curves.png",
        "results.json",
        "cove_recipe.yaml",
        "tokenizer.json",
    } <= {p.name for p in repo.iterdir()}
    readme = (repo / "README.md").read_text()
    assert "license: mit" in readme and "huggingface.co" not in readme and "| accuracy |" in readme
    assert not (out / "checkpoints").exists()


def test_lora_saves_head_with_adapter(tiny_bert: Path, tiny_data: Path, tmp_path: Path) -> None:
    from cove.train import run

    out = tmp_path / "run"
    run(
        _recipe(
            tiny_bert,
            tiny_data,
            out,
            method={"name": "lora", "r": 2},
            early_stopping=1,
            training={"num_train_epochs": 2},
        )
    )
    config = json.loads((out / "repo" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and "classifier" in config["modules_to_save"]
    from safetensors import safe_open

    with safe_open(out / "repo" / "adapter_model.safetensors", "pt") as fh:
        assert any("classifier" in k for k in fh.keys())  # noqa: SIM118 - the trained head travels with the adapter


def test_prompt_tuning_on_gpt2_and_nc_license(tiny_gpt2: Path, tiny_rows, tmp_path: Path) -> None:
    """Prompt tuning runs on GPT-2; a non-commercial dataset license reaches the card."""
    from cove.train import run

    data = write_dataset(tmp_path / "nc-data", tiny_rows, license="cc-by-nc-sa-3.0")
    result = run(_recipe(tiny_gpt2, data, tmp_path / "run", method={"name": "prompt", "num_virtual_tokens": 4}))
    readme = (tmp_path / "run" / "repo" / "README.md").read_text()
    assert "license: cc-by-nc-sa-3.0" in readme and "Non-commercial use only." in readme
    assert "PeftModel.from_pretrained(base" in readme  # adapter-only: the card shows how to load it
    assert "accuracy" in result.test
    assert json.loads((tmp_path / "run" / "repo" / "adapter_config.json").read_text())["peft_type"] == "PROMPT_TUNING"


def test_bf16_on_cpu_and_fp16_refused(tiny_bert: Path, tiny_data: Path, tmp_path: Path) -> None:
    """bf16 autocast exists on CPU, so it is honoured; fp16 mixed precision needs CUDA and is refused up front."""
    import torch

    from cove.train import RecipeError, run

    if torch.cuda.is_available():
        pytest.skip("checks the CPU behaviour")
    result = run(_recipe(tiny_bert, tiny_data, tmp_path / "bf16", method="full", precision="bf16"), push=False)
    assert json.loads((tmp_path / "bf16" / "results.json").read_text())["training"]["precision"] == "bf16"
    assert 0 <= result.test["accuracy"] <= 1
    with pytest.raises(RecipeError, match="fp16 mixed precision needs a CUDA GPU"):
        run(_recipe(tiny_bert, tiny_data, tmp_path / "fp16", method="full", precision="fp16"), push=False)
    assert not (tmp_path / "fp16" / "results.json").exists()
