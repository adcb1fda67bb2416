"""`cove import` → `cove train` → push → reload checks → `cove reproduce`, against a live `cove serve`.

Everything goes through HF_ENDPOINT with the stock clients, in a subprocess, as a user would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.train
pytest.importorskip("peft")


def _cove(*args: str, token: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_TOKEN": token, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    out = subprocess.run([sys.executable, "-m", "cove", *args], env=env, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise AssertionError(f"cove {' '.join(args)} failed ({out.returncode}):\n{out.stderr[-4000:]}")
    return out


def _cli(*args: str) -> Any:
    """The same CLI in-process (HF_TOKEN comes from the hf_token fixture)."""
    from typer.testing import CliRunner

    from cove.cli import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture
def uploaded(hf_token, api, alice, seeded_metrics, tiny_bert: Path, tiny_data: Path) -> dict[str, str]:
    """The tiny model and dataset imported with `cove import`, and the metric Spaces seeded."""
    suffix = uuid.uuid4().hex[:6]
    model, data = f"alice/tiny-bert-{suffix}", f"alice/tiny-twitter-{suffix}"
    assert (
        _cove("import", "model", str(tiny_bert), model, token=alice.token).stdout.strip() == f"{api.endpoint}/{model}"
    )
    assert (
        _cove("import", "dataset", str(tiny_data), data, token=alice.token).stdout.strip()
        == f"{api.endpoint}/datasets/{data}"
    )
    yield {"model": model, "dataset": data, "out": f"alice/tiny-sentiment-{suffix}"}
    for repo_id, repo_type in ((model, "model"), (data, "dataset"), (f"alice/tiny-sentiment-{suffix}", "model")):
        api.delete_repo(repo_id, repo_type=repo_type, missing_ok=True)


def test_train_push_verify_reproduce(api, alice, uploaded, tmp_path: Path) -> None:
    recipe = {
        "model": uploaded["model"],
        "dataset": {"id": uploaded["dataset"], "label_names": ["Bearish", "Bullish", "Neutral"]},
        "method": {"name": "lora", "r": 4},
        "training": {
            "num_train_epochs": 2,
            "per_device_train_batch_size": 8,
            "learning_rate": "1e-3",
            "report_to": "tensorboard",
        },
        "class_weights": "auto",
        "early_stopping": {"patience": 2},
        "deterministic": True,
        "push": {"repo_id": uploaded["out"], "save": "both"},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = _cove("train", str(path), "--output-dir", str(tmp_path / "run"), "--json", token=alice.token)
    result = json.loads(out.stdout)
    assert result["url"] == f"{api.endpoint}/{uploaded['out']}"
    assert set(result["pushed"]) == {"adapter", "merged"}
    assert all(check["match"] for check in result["verification"].values()), result["verification"]
    assert set(result["metric_sources"].values()) == {
        f"{api.endpoint}/spaces/evaluate-metric/{n}" for n in ("accuracy", "f1", "precision", "recall")
    }
    assert {"accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_weighted"} <= set(result["test"])
    assert result["baseline"]["predicts"] in {"Bearish", "Bullish", "Neutral"}

    files = set(api.list_repo_files(uploaded["out"]))
    assert {
        "README.md",
        "cove_recipe.yaml",
        "results.json",
        "training_curves.png",
        "config.json",
        "model.safetensors",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
    } <= files
    assert any(f.startswith("runs/events.out.tfevents") for f in files)
    assert "adapter/README.md" not in files

    # the card: metadata through ModelCardData, nothing pointing at huggingface.co
    info = api.model_info(uploaded["out"])
    card = info.card_data
    assert card.license == "mit" and card.base_model == uploaded["model"]
    assert card.datasets == [uploaded["dataset"]] and card.pipeline_tag == "text-classification"
    assert card.eval_results and {r.metric_type for r in card.eval_results} >= {"accuracy", "f1_macro"}
    readme = Path(api.hf_hub_download(uploaded["out"], "README.md")).read_text()
    assert "huggingface.co" not in readme and api.endpoint in readme and "majority baseline" in readme

    # the pushed recipe pins exact commits
    pinned = yaml.safe_load(Path(api.hf_hub_download(uploaded["out"], "cove_recipe.yaml")).read_text())
    assert pinned["model"]["revision"] == api.model_info(uploaded["model"]).sha
    assert pinned["dataset"]["revision"] == api.dataset_info(uploaded["dataset"]).sha
    pushed = json.loads(Path(api.hf_hub_download(uploaded["out"], "results.json")).read_text())
    assert pushed["verification"]["merged"]["match"] and pushed["split"]["hash"]["all"]
    assert pushed["packages"]["torch"] and pushed["packages"]["transformers"]

    # cove reproduce: same revisions, same split, deterministic → zero deltas
    rep = json.loads(
        _cove("reproduce", uploaded["out"], "--json", "--output-dir", str(tmp_path / "again"), token=alice.token).stdout
    )
    assert rep["deltas"] and all(abs(d) < 1e-6 for d in rep["deltas"].values()), rep
    assert rep["differences"] == {}


def test_bad_input_fails_fast_with_the_fix(uploaded, alice, monkeypatch, tmp_path: Path) -> None:
    """One clear message naming the fix, raised before any weights are loaded."""
    from cove.train import RecipeError, run

    base = {"model": uploaded["model"], "dataset": uploaded["dataset"], "output_dir": str(tmp_path / "run")}
    with pytest.raises(RecipeError, match="model 'alice/missing-model' not found .*cove import model"):
        run({**base, "model": "alice/missing-model"})
    with pytest.raises(RecipeError, match="has no revision 'nope'"):
        run({**base, "dataset": {"id": uploaded["dataset"], "revision": "nope"}})
    with pytest.raises(RecipeError, match=r"column 'sentiment' \(dataset.label_column\) is not in the dataset"):
        run({**base, "dataset": {"id": uploaded["dataset"], "label_column": "sentiment"}})
    with pytest.raises(RecipeError, match="alice may not write to 'acme-nobody'"):
        run({**base, "push": {"repo_id": "acme-nobody/model"}})
    monkeypatch.setenv("HF_TOKEN", alice.read_token)
    with pytest.raises(RecipeError, match="alice has a read-only token"):
        run({**base, "push": {"repo_id": "alice/model"}})
    assert not (tmp_path / "run").exists()


def test_cli_reports_recipe_errors_with_exit_2(alice, tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text("model: a/b\ndataset: c/d\n")
    out = _cove("train", str(path), "--set", "training.learnig_rate=1e-4", token=alice.token, check=False)
    assert out.returncode == 2 and out.stdout == ""
    assert "error: unknown key 'learnig_rate' in training — did you mean 'learning_rate'?" in out.stderr


def test_causal_lm_push_both_reloads(api, hf_token, tiny_gpt2: Path, tiny_data: Path, tmp_path: Path) -> None:
    """A causal LM (LoRA) pushed as adapter + merged model; both reload from Cove with the same logits."""
    from cove.train import run

    repo_id = f"alice/tiny-gpt2-sft-{uuid.uuid4().hex[:6]}"
    result = run(
        {
            "model": str(tiny_gpt2),
            "dataset": str(tiny_data),
            "task": "causal-lm",
            "method": {"name": "lora", "r": 2},
            "training": {"num_train_epochs": 1},
            "output_dir": str(tmp_path / "run"),
            "push": {"repo_id": repo_id, "save": "both"},
        }
    )
    assert result.verification["adapter"]["match"] and result.verification["merged"]["match"]
    assert {"adapter/adapter_config.json", "model.safetensors", "README.md"} <= set(api.list_repo_files(repo_id))
    assert api.model_info(repo_id).card_data.pipeline_tag == "text-generation"
    api.delete_repo(repo_id)
