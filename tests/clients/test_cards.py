"""Repo cards against a live Cove: ModelCard.load/push_to_hub, metadata_update, model-index in cardData
(issue 2, item 10)."""

from __future__ import annotations

import pytest
from huggingface_hub import (
    DatasetCard,
    DatasetCardData,
    EvalResult,
    ModelCard,
    ModelCardData,
    metadata_eval_result,
    metadata_load,
    metadata_update,
)
from huggingface_hub.errors import EntryNotFoundError


def _card(repo_id: str) -> ModelCard:
    data = ModelCardData(
        language="en", license="mit", library_name="transformers", pipeline_tag="text-classification",
        tags=["finance", "sentiment"], datasets=["alice/twitter-fin"], base_model="alice/tiny-bert",
        model_name=repo_id.split("/")[1],
        eval_results=[
            EvalResult(task_type="text-classification", dataset_type="alice/twitter-fin",
                       dataset_name="Twitter financial news", dataset_split="validation",
                       metric_type="accuracy", metric_value=0.87),
            EvalResult(task_type="text-classification", dataset_type="alice/twitter-fin",
                       dataset_name="Twitter financial news", dataset_split="validation",
                       metric_type="f1", metric_value=0.81, metric_name="F1 (macro)"),
        ],
    )
    return ModelCard.from_template(data, model_description="A tiny sentiment model.")


def test_model_card_push_load_and_model_index(api, repo_factory, hf_token) -> None:
    repo_id = repo_factory("card")
    with pytest.raises(EntryNotFoundError):
        ModelCard.load(repo_id)  # no README yet: a coded 404

    card = _card(repo_id)
    card.validate()  # POST /api/validate-yaml without auth
    card.push_to_hub(repo_id)

    loaded = ModelCard.load(repo_id)
    assert loaded.data.license == "mit" and loaded.data.tags == ["finance", "sentiment"]
    assert "A tiny sentiment model." in loaded.text
    results = {r.metric_type: r.metric_value for r in loaded.data.eval_results}
    assert results == {"accuracy": 0.87, "f1": 0.81}

    info = api.model_info(repo_id)
    assert info.pipeline_tag == "text-classification" and info.library_name == "transformers"
    cd = info.card_data
    assert cd.license == "mit" and cd.base_model == "alice/tiny-bert"
    assert {r.metric_type: r.metric_value for r in cd.eval_results} == results
    assert {"finance", "sentiment", "license:mit", "en", "dataset:alice/twitter-fin",
            "base_model:alice/tiny-bert", "text-classification"} <= set(info.tags)
    index = info.model_index
    assert index[0]["name"] == repo_id.split("/")[1]
    metrics = index[0]["results"][0]["metrics"]
    assert {m["type"]: m["value"] for m in metrics} == results

    # The raw JSON: `cardData` holds the YAML (with model-index); `model-index` is also top level.
    raw = api.model_info(repo_id, expand=["cardData", "model-index"])
    assert raw.card_data.eval_results[0].metric_value == 0.87 and raw.model_index == index
    only = api.model_info(repo_id, expand=["cardData"])
    assert only.card_data.license == "mit" and only.pipeline_tag is None and only.sha is None


def test_metadata_update(api, repo_factory, hf_token) -> None:
    repo_id = repo_factory("meta")
    # No README: metadata_update starts from the template.
    metadata_update(repo_id, {"license": "apache-2.0", "tags": ["finance"]})
    assert metadata_load(api.hf_hub_download(repo_id, "README.md"))["license"] == "apache-2.0"
    assert api.model_info(repo_id).card_data.license == "apache-2.0"

    with pytest.raises(ValueError, match="overwrite"):
        metadata_update(repo_id, {"license": "mit"})
    metadata_update(repo_id, {"license": "mit", "pipeline_tag": "text-classification"}, overwrite=True)
    evals = metadata_eval_result(model_pretty_name="meta-model", task_pretty_name="Text Classification",
                                 task_id="text-classification", metrics_pretty_name="Accuracy",
                                 metrics_id="accuracy", metrics_value=0.5, dataset_pretty_name="Tweets",
                                 dataset_id="alice/tweets")
    url = metadata_update(repo_id, evals, commit_message="Add eval results")
    assert "/commit/" in url
    info = api.model_info(repo_id)
    assert info.card_data.license == "mit" and info.pipeline_tag == "text-classification"
    assert info.card_data.eval_results[0].metric_value == 0.5
    assert info.model_index[0]["results"][0]["metrics"][0]["value"] == 0.5
    assert "license:mit" in info.tags and "license:apache-2.0" not in info.tags
    assert api.list_repo_commits(repo_id)[0].title == "Add eval results"

    # A metadata_update as a pull request leaves main alone.
    metadata_update(repo_id, {"tags": ["finance", "extra"]}, overwrite=True, create_pr=True)
    assert "extra" not in (api.model_info(repo_id).card_data.tags or [])


def test_invalid_card_metadata_is_rejected(api, repo_factory, hf_token) -> None:
    repo_id = repo_factory("bad-card")
    for text in ("---\nlicense: [unclosed\n---\n# broken\n", "---\nmodel-index: not-a-list\n---\n# odd\n"):
        with pytest.raises(ValueError, match="Invalid metadata in README.md"):
            api.upload_file(path_or_fileobj=text.encode(), path_in_repo="README.md", repo_id=repo_id)
    assert [c.title for c in api.list_repo_commits(repo_id)] == ["initial commit"]


def test_dataset_card_push_and_load(api, repo_factory, hf_token) -> None:
    repo_id = repo_factory("ds-card", repo_type="dataset")
    data = DatasetCardData(language="en", license="mit", task_categories=["text-classification"],
                           tags=["finance"], pretty_name="Tiny tweets", size_categories=["n<1K"])
    DatasetCard.from_template(data).push_to_hub(repo_id)
    loaded = DatasetCard.load(repo_id)
    assert loaded.data.pretty_name == "Tiny tweets" and loaded.data.license == "mit"
    info = api.dataset_info(repo_id)
    assert info.card_data.task_categories == ["text-classification"]
    assert {"finance", "license:mit", "language:en", "task_categories:text-classification",
            "size_categories:n<1K"} <= set(info.tags)
    listed = list(api.list_datasets(author="alice", search=repo_id.split("/")[1], full=True))
    assert [d.id for d in listed] == [repo_id] and listed[0].card_data.license == "mit"
