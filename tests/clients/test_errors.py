"""What the libraries tell users when Cove says no: missing, private and gated repos, unknown revisions."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard, hf_hub_download
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError


@pytest.fixture
def gated(api, repo_factory) -> dict[str, str]:
    model = repo_factory("gated")
    api.upload_file(path_or_fileobj=b'{"model_type": "bert", "vocab_size": 10}', path_in_repo="config.json",
                    repo_id=model)
    api.upload_file(path_or_fileobj=b"---\nlicense: mit\n---\n# gated\n", path_in_repo="README.md",
                    repo_id=model)
    api.update_repo_settings(model, gated="auto")
    ds = repo_factory("gated-ds", repo_type="dataset")
    api.upload_file(path_or_fileobj=b"text,label\na,1\n", path_in_repo="train.csv", repo_id=ds,
                    repo_type="dataset")
    api.update_repo_settings(ds, repo_type="dataset", gated="manual")
    private = repo_factory("private", private=True)
    api.upload_file(path_or_fileobj=b'{"model_type": "bert"}', path_in_repo="config.json", repo_id=private)
    return {"model": model, "dataset": ds, "private": private}


def test_transformers_errors(gated, alice, bob, monkeypatch, tmp_path) -> None:
    pytest.importorskip("transformers")
    from transformers import AutoConfig

    monkeypatch.setenv("HF_TOKEN", bob.token)
    with pytest.raises(OSError, match="gated repo"):
        AutoConfig.from_pretrained(gated["model"], cache_dir=tmp_path / "a")
    with pytest.raises(OSError, match="not a valid model identifier"):
        AutoConfig.from_pretrained(gated["private"], cache_dir=tmp_path / "b")  # private = missing
    with pytest.raises(OSError, match="not a valid model identifier"):
        AutoConfig.from_pretrained("alice/no-such-model", cache_dir=tmp_path / "c")
    monkeypatch.setenv("HF_TOKEN", alice.token)
    with pytest.raises(OSError, match="not a valid git identifier"):
        AutoConfig.from_pretrained(gated["private"], revision="no-such-rev", cache_dir=tmp_path / "d")
    assert AutoConfig.from_pretrained(gated["model"], cache_dir=tmp_path / "f").vocab_size == 10  # the owner


def test_datasets_errors(gated, bob, monkeypatch, tmp_path) -> None:
    pytest.importorskip("datasets")
    from datasets import load_dataset
    from datasets.exceptions import DatasetNotFoundError

    monkeypatch.setenv("HF_TOKEN", bob.token)
    with pytest.raises(DatasetNotFoundError, match="gated dataset"):
        load_dataset(gated["dataset"], cache_dir=str(tmp_path / "a"))
    with pytest.raises(DatasetNotFoundError, match="doesn't exist on the Hub or cannot be accessed"):
        load_dataset("alice/no-such-dataset", cache_dir=str(tmp_path / "b"))
    with pytest.raises(DatasetNotFoundError, match="Revision 'nope' doesn't exist"):
        load_dataset("alice/" + gated["dataset"].split("/")[1], revision="nope", token=False,
                     cache_dir=str(tmp_path / "c"))


def test_card_and_hub_errors(api, bob_api, gated, bob, tmp_path) -> None:
    # As on the Hub, a gated repo's card stays readable; its other files need access.
    assert ModelCard.load(gated["model"], token=bob.token).data.license == "mit"
    with pytest.raises(GatedRepoError):
        hf_hub_download(gated["model"], "config.json", token=bob.token, cache_dir=tmp_path)
    with pytest.raises(RepositoryNotFoundError):
        ModelCard.load(gated["private"], token=bob.token)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(gated["model"], "README.md", revision="nope", cache_dir=tmp_path)
    # Gated repos are listed and their info is public; only files are gated.
    assert bob_api.model_info(gated["model"]).gated == "auto"
    assert bob_api.dataset_info(gated["dataset"]).gated == "manual"
