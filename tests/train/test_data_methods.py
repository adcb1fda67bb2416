"""Splits, labels, columns and method checks: refused up front, before any weights are loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.train.recipe import RecipeError, load_recipe

pytestmark = pytest.mark.train
pytest.importorskip("datasets")


def _recipe(data: Path, **extra):
    return load_recipe({"model": "unused/model", "dataset": {"id": str(data), **extra.pop("dataset", {})}, **extra})


def _prepare(recipe):
    from cove.train.data import load_raw
    from cove.train.tasks import get_task

    task = get_task(recipe)
    return task, task.prepare(load_raw(recipe.dataset, None))


def test_split_is_stratified_deterministic_and_hashed(tiny_data: Path) -> None:
    recipe = _recipe(tiny_data, dataset={"label_names": ["Bearish", "Bullish", "Neutral"]})
    task, splits = _prepare(recipe)
    _, again = _prepare(recipe)
    info = splits.info
    assert info["created"] and info["stratified"] and info["seed"] == 42
    assert info["sizes"] == {"train": 48, "validation": 6, "test": 6}
    assert info["label_counts"]["test"] == {"Bearish": 2, "Bullish": 2, "Neutral": 2}
    assert info["hash"] == again.info["hash"]
    assert task.label_names == ["Bearish", "Bullish", "Neutral"]
    assert set(splits.train["text"]).isdisjoint(splits.test["text"])
    _, other_seed = _prepare(
        load_recipe({**recipe.to_dict(), "dataset": {**recipe.dataset.model_dump(), "split": {"seed": 7}}})
    )
    assert other_seed.info["hash"]["all"] != info["hash"]["all"]


def test_string_labels_and_unknown_label(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    rows = "\n".join(f"text {i},{'pos' if i % 2 else 'neg'}" for i in range(20))
    (folder / "train.csv").write_text("sentence,sentiment\n" + rows + "\n")
    (folder / "test.csv").write_text("sentence,sentiment\nfoo,pos\nbar,meh\n")
    with pytest.raises(RecipeError, match=r"label\(s\) \['meh'\] in the test split.*dataset.label_names"):
        _prepare(_recipe(folder))
    (folder / "test.csv").write_text("sentence,sentiment\nfoo,pos\nbar,neg\n")
    task, splits = _prepare(_recipe(folder))
    assert task.columns == {"text": "sentence", "label": "sentiment"} and task.label_names == ["neg", "pos"]
    assert splits.info["source"]["test"] == "test" and splits.info["sizes"]["test"] == 2


def test_missing_and_ambiguous_columns(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="column 'Text'.*did you mean 'text'"):
        _prepare(_recipe(tiny_data, dataset={"text_column": "Text"}))
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b,c\nx,y,1\nz,w,0\n")
    with pytest.raises(RecipeError, match="cannot tell which column is the label column.*dataset.label_column"):
        _prepare(_recipe(odd))
    with pytest.raises(RecipeError, match="dataset has no split 'dev'"):
        _prepare(_recipe(tiny_data, dataset={"validation_split": "dev"}))


def test_method_checks_refuse_up_front(tiny_bert: Path) -> None:
    import torch
    from transformers import BertForSequenceClassification, GPT2ForSequenceClassification, GPT2LMHeadModel

    from cove.train.methods import check_method

    def recipe(**kw):
        return load_recipe({"model": "m/m", "dataset": "d/d", **kw})

    if not torch.cuda.is_available():
        with pytest.raises(RecipeError, match="qlora.*needs a CUDA GPU.*use method: lora"):
            check_method(recipe(method="qlora"), BertForSequenceClassification)
    with pytest.raises(RecipeError, match="prefix.*BertForSequenceClassification takes no past_key_values"):
        check_method(recipe(method="prefix"), BertForSequenceClassification)
    with pytest.raises(RecipeError, match="prefix.*GPT2ForSequenceClassification.*use lora or prompt"):
        check_method(recipe(method="prefix"), GPT2ForSequenceClassification)
    check_method(recipe(method="prefix", task="causal-lm"), GPT2LMHeadModel)
    with pytest.raises(RecipeError, match="shifts the per-token outputs"):
        check_method(recipe(method="prompt", task="ner"), None)
    with pytest.raises(RecipeError, match="full fine-tuning has no adapter"):
        check_method(recipe(method="full", push={"repo_id": "a/b", "save": "both"}), None)
    with pytest.raises(RecipeError, match="cannot be merged"):
        check_method(recipe(method="prompt", push={"repo_id": "a/b", "save": "merged"}), None)


def test_qlora_on_cpu_stops_before_loading_anything(tiny_bert: Path, tiny_data: Path, monkeypatch) -> None:
    """The run fails in prepare(), before any from_pretrained of weights."""
    import torch
    import transformers

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    calls: list[str] = []
    monkeypatch.setattr(
        transformers.BertForSequenceClassification,
        "from_pretrained",
        classmethod(lambda cls, *a, **k: calls.append("loaded")),
    )
    from cove.train import run

    with pytest.raises(RecipeError, match="qlora"):
        run({"model": str(tiny_bert), "dataset": str(tiny_data), "method": "qlora"}, push=False)
    assert calls == []


def test_model_without_the_needed_head(tiny_gpt2: Path, tiny_data: Path) -> None:
    from cove.train import run

    with pytest.raises(RecipeError, match="model type 'gpt2' has no seq2seq head.*pick a base model"):
        run({"model": str(tiny_gpt2), "dataset": str(tiny_data), "task": "seq2seq"}, push=False)
