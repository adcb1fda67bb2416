"""`cove import model|dataset|cache` against a live `cove serve`, read back with the stock clients."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cove.cli import app

pytestmark = pytest.mark.train


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout.strip()


def test_import_data_file_then_load_dataset(hf_token, api, tmp_path: Path) -> None:
    from datasets import load_dataset

    csv = tmp_path / "tiny.csv"
    csv.write_text("text,label\ngood,1\nbad,0\nfine,1\n")
    repo_id = f"alice/tiny-csv-{uuid.uuid4().hex[:6]}"
    assert _cli("import", "dataset", str(csv), repo_id) == f"{api.endpoint}/datasets/{repo_id}"
    assert api.list_repo_files(repo_id, repo_type="dataset") == [".gitattributes", "data/tiny.csv"]
    ds = load_dataset(repo_id, split="train", cache_dir=str(tmp_path / "ds-cache"))
    assert ds["text"] == ["good", "bad", "fine"]
    api.delete_repo(repo_id, repo_type="dataset")


def test_import_model_and_from_the_cache(hf_token, api, tiny_bert: Path, tmp_path: Path) -> None:
    from huggingface_hub import snapshot_download

    source = f"alice/tiny-src-{uuid.uuid4().hex[:6]}"
    copy = f"alice/tiny-copy-{uuid.uuid4().hex[:6]}"
    _cli("import", "model", str(tiny_bert), source)
    cache = tmp_path / "hub-cache"
    snapshot_download(source, cache_dir=str(cache))
    assert _cli("import", "cache", source, copy, "--cache-dir", str(cache)) == f"{api.endpoint}/{copy}"
    assert set(api.list_repo_files(copy)) == set(api.list_repo_files(source))
    assert api.model_info(copy).card_data.license == "apache-2.0"
    for repo_id in (source, copy):
        api.delete_repo(repo_id)


def test_import_refuses_what_is_not_a_model(hf_token, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["import", "model", str(tmp_path), "alice/nothing"])
    assert result.exit_code == 2 and "no config.json" in result.output
    result = CliRunner().invoke(app, ["import", "dataset", str(tmp_path / "x.docx"), "alice/nothing"])
    assert result.exit_code == 2 and "does not exist" in result.output
