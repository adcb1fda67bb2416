"""datasets against a live Cove: push_to_hub, load_dataset of parquet/CSV/JSON repos, slicing, data_files,
streaming (issue 2, item 9). Data: small slices of the MIT-licensed Twitter financial news sentiment set."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

pytest.importorskip("datasets")

from tests.clients.tiny import twitter_rows  # noqa: E402

CARD = """---
license: mit
language:
- en
task_categories:
- text-classification
tags:
- finance
---
# Tiny twitter financial news sentiment
"""


@pytest.fixture
def rows() -> list[dict]:
    return twitter_rows(40)


def _write_csv(path, rows) -> None:  # noqa: ANN001
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["text", "label"])
        w.writeheader()
        w.writerows(rows)


def _write_jsonl(path, rows) -> None:  # noqa: ANN001
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_dataset_push_to_hub_and_load(api, repo_factory, transfer, hf_token, rows) -> None:
    from datasets import Dataset, load_dataset

    repo_id = repo_factory("ds-push", repo_type="dataset")
    Dataset.from_list(rows).push_to_hub(repo_id)
    files = set(api.list_repo_files(repo_id, repo_type="dataset"))
    shards = [f for f in files if f.startswith("data/train-") and f.endswith(".parquet")]
    assert len(shards) == 1 and "README.md" in files
    info = api.dataset_info(repo_id)
    assert "format:parquet" in info.tags and info.card_data.configs[0]["config_name"] == "default"

    ds = load_dataset(repo_id, split="train")
    assert ds.num_rows == len(rows) and ds[0] == rows[0] and ds.to_list() == rows

    # A second push replaces the shard (the old one is deleted in the same commit).
    Dataset.from_list(rows[:10]).push_to_hub(repo_id)
    assert load_dataset(repo_id, split="train").to_list() == rows[:10]
    files = set(api.list_repo_files(repo_id, repo_type="dataset"))
    assert len([f for f in files if f.endswith(".parquet")]) == 1


def test_dataset_dict_push_to_hub_slicing_streaming(api, repo_factory, transfer, hf_token, rows) -> None:
    from datasets import Dataset, DatasetDict, load_dataset

    repo_id = repo_factory("ds-dict", repo_type="dataset")
    dd = DatasetDict(train=Dataset.from_list(rows[:30]), validation=Dataset.from_list(rows[30:]))
    dd.push_to_hub(repo_id)

    loaded = load_dataset(repo_id)
    assert set(loaded) == {"train", "validation"}
    assert loaded["train"].to_list() == rows[:30] and loaded["validation"].to_list() == rows[30:]
    assert load_dataset(repo_id, split="train[:10%]").to_list() == rows[:3]
    assert load_dataset(repo_id, split="validation[-5:]").to_list() == rows[35:]

    streamed = load_dataset(repo_id, split="train", streaming=True)
    assert list(streamed.take(5)) == rows[:5]
    assert [r["text"] for r in streamed] == [r["text"] for r in rows[:30]]

    # Made private, it still loads with the (implicit) token.
    api.update_repo_settings(repo_id, repo_type="dataset", private=True)
    assert load_dataset(repo_id, split="validation").to_list() == rows[30:]


def test_load_csv_repo(api, repo_factory, hf_token, rows, tmp_path) -> None:
    from datasets import load_dataset

    repo_id = repo_factory("ds-csv", repo_type="dataset")
    folder = tmp_path / "csv"
    _write_csv(folder / "train.csv", rows[:30])
    _write_csv(folder / "test.csv", rows[30:])
    (folder / "README.md").write_text(CARD, encoding="utf-8")
    api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="dataset")

    info = api.dataset_info(repo_id)
    assert {"format:csv", "finance", "license:mit", "language:en",
            "task_categories:text-classification"} <= set(info.tags)
    ds = load_dataset(repo_id)
    assert set(ds) == {"train", "test"}
    assert ds["train"].to_list() == rows[:30] and ds["test"].to_list() == rows[30:]
    assert load_dataset(repo_id, split="train[:10%]").num_rows == 3
    only = load_dataset(repo_id, data_files="test.csv", split="train")
    assert only.to_list() == rows[30:]
    mapped = load_dataset(repo_id, data_files={"a": "train.csv", "b": "test.csv"})
    assert mapped["a"].num_rows == 30 and mapped["b"].num_rows == 10
    assert list(load_dataset(repo_id, split="test", streaming=True)) == rows[30:]


def test_load_json_repo_without_readme(api, repo_factory, hf_token, rows, tmp_path) -> None:
    from datasets import load_dataset

    repo_id = repo_factory("ds-json", repo_type="dataset")
    _write_jsonl(tmp_path / "train.jsonl", rows[:20])
    _write_jsonl(tmp_path / "validation.jsonl", rows[20:])
    for name in ("train", "validation"):
        api.upload_file(path_or_fileobj=tmp_path / f"{name}.jsonl", path_in_repo=f"data/{name}.jsonl",
                        repo_id=repo_id, repo_type="dataset")
    # No README.md: the library needs a coded 404 (EntryNotFound) to fall back to the repo info.
    ds = load_dataset(repo_id)
    assert set(ds) == {"train", "validation"}
    assert ds["train"].to_list() == rows[:20] and ds["validation"].to_list() == rows[20:]
    assert load_dataset(repo_id, data_files="data/validation.jsonl", split="train").num_rows == 20
    assert list(load_dataset(repo_id, split="train", streaming=True).take(3)) == rows[:3]
    assert load_dataset(repo_id, split="train[50%:]").to_list() == rows[10:20]


def test_load_at_revision(api, repo_factory, hf_token, rows) -> None:
    from datasets import Dataset, load_dataset

    repo_id = repo_factory("ds-rev", repo_type="dataset")
    api.upload_file(path_or_fileobj=b"text,label\nfirst,0\n", path_in_repo="train.csv", repo_id=repo_id,
                    repo_type="dataset")
    api.create_tag(repo_id, tag="v1", repo_type="dataset")
    sha = api.dataset_info(repo_id).sha
    Dataset.from_list(rows[:4]).push_to_hub(repo_id, revision="dev")
    api.upload_file(path_or_fileobj=b"text,label\nsecond,1\n", path_in_repo="train.csv", repo_id=repo_id,
                    repo_type="dataset")
    assert load_dataset(repo_id, split="train")[0]["text"] == "second"
    for rev in ("v1", sha, sha[:7]):
        assert load_dataset(repo_id, split="train", revision=rev)[0]["text"] == "first", rev
    assert load_dataset(repo_id, split="train", revision="dev").to_list() == rows[:4]


def test_load_private_dataset_needs_token(api, repo_factory, hf_token, monkeypatch, tmp_path) -> None:
    from datasets import load_dataset
    from huggingface_hub.errors import RepositoryNotFoundError

    repo_id = repo_factory("ds-private", repo_type="dataset", private=True)
    api.upload_file(path_or_fileobj=b"text,label\nhidden,2\n", path_in_repo="train.csv", repo_id=repo_id,
                    repo_type="dataset")
    assert load_dataset(repo_id, split="train")[0]["text"] == "hidden"
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises((FileNotFoundError, RepositoryNotFoundError)):
        load_dataset(repo_id, split="train", token=False, cache_dir=str(tmp_path / "anon"))


def test_configs_shards_and_hf_urls(api, repo_factory, transfer, hf_token, rows, tmp_path) -> None:
    from datasets import Dataset, get_dataset_config_names, get_dataset_split_names, load_dataset
    from huggingface_hub import snapshot_download

    repo_id = repo_factory("ds-configs", repo_type="dataset")
    Dataset.from_list(rows).push_to_hub(repo_id, max_shard_size="1KB")  # several shards
    Dataset.from_list(rows[:6]).push_to_hub(repo_id, config_name="small", split="test")
    shards = [f for f in api.list_repo_files(repo_id, repo_type="dataset") if f.startswith("data/train-")]
    assert len(shards) > 1

    assert sorted(get_dataset_config_names(repo_id)) == ["default", "small"]
    assert get_dataset_split_names(repo_id, "small") == ["test"]
    assert load_dataset(repo_id, split="train").to_list() == rows
    assert load_dataset(repo_id, "small", split="test").to_list() == rows[:6]
    assert list(load_dataset(repo_id, split="train", streaming=True)) == rows

    # hf:// URLs as data_files of a packaged builder.
    url = f"hf://datasets/{repo_id}/{shards[0]}"
    assert load_dataset("parquet", data_files=url, split="train").num_rows > 0
    local = snapshot_download(repo_id, repo_type="dataset", allow_patterns=["small/*", "README.md"],
                              cache_dir=tmp_path / "snap")
    assert load_dataset("parquet", data_files=f"{local}/small/*.parquet", split="train").to_list() == rows[:6]


def test_pr_push_data_dir_and_compressed(api, repo_factory, acme, transfer, hf_token, rows, tmp_path) -> None:
    import gzip

    from datasets import Dataset, load_dataset

    repo_id = repo_factory("ds-org", repo_type="dataset", owner="acme")  # an org repo alice writes to
    Dataset.from_list(rows[:10]).push_to_hub(repo_id)
    Dataset.from_list(rows[10:14]).push_to_hub(repo_id, create_pr=True)
    assert [r.ref for r in api.list_repo_refs(repo_id, repo_type="dataset", include_pull_requests=True)
            .pull_requests] == ["refs/pr/1"]
    assert load_dataset(repo_id, split="train").to_list() == rows[:10]
    assert load_dataset(repo_id, split="train", revision="refs/pr/1").to_list() == rows[10:14]
    Dataset.from_list(rows[:2]).push_to_hub(repo_id, revision="feature/tiny")
    assert load_dataset(repo_id, split="train", revision="feature/tiny").to_list() == rows[:2]

    # Compressed JSON lines in a folder, picked with data_dir; gzip bytes must arrive untouched.
    raw = "".join(json.dumps(r) + "\n" for r in rows[14:24]).encode()
    api.upload_file(path_or_fileobj=gzip.compress(raw), path_in_repo="extra/part.jsonl.gz", repo_id=repo_id,
                    repo_type="dataset")
    assert load_dataset(repo_id, data_dir="extra", split="train").to_list() == rows[14:24]
    streamed = load_dataset(repo_id, data_dir="extra", split="train", streaming=True)
    assert list(streamed) == rows[14:24]


def test_push_keeps_the_existing_card(api, repo_factory, transfer, hf_token, rows) -> None:
    from datasets import Dataset, load_dataset

    repo_id = repo_factory("ds-card-kept", repo_type="dataset")
    api.upload_file(path_or_fileobj=CARD.encode(), path_in_repo="README.md", repo_id=repo_id,
                    repo_type="dataset")
    Dataset.from_list(rows[:8]).push_to_hub(repo_id)
    info = api.dataset_info(repo_id)
    assert info.card_data.license == "mit" and info.card_data.dataset_info["splits"][0]["num_examples"] == 8
    assert {"finance", "license:mit", "format:parquet", "task_categories:text-classification"} <= set(info.tags)
    readme = Path(api.hf_hub_download(repo_id, "README.md", repo_type="dataset")).read_text(encoding="utf-8")
    assert "# Tiny twitter financial news sentiment" in readme
    assert load_dataset(repo_id, split="train").num_rows == 8
    assert [d.id for d in api.list_datasets(filter=["finance", "format:parquet"], search=repo_id.split("/")[1])] \
        == [repo_id]
