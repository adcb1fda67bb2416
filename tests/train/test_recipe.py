"""Recipe parsing: one clear message naming the fix, overrides, and no torch at import."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cove.train.recipe import RecipeError, apply_overrides, load_recipe

pytestmark = pytest.mark.train
BASE = {"model": "someone/tiny", "dataset": "someone/data"}


def _error(data: dict) -> str:
    with pytest.raises(RecipeError) as info:
        load_recipe(data)
    return str(info.value)


def test_training_typo_names_the_fix() -> None:
    msg = _error({**BASE, "training": {"learnig_rate": 3e-4}})
    assert msg == "unknown key 'learnig_rate' in training — did you mean 'learning_rate'?"


def test_section_and_top_level_typos() -> None:
    assert "did you mean 'text_column'?" in _error({**BASE, "dataset": {"id": "x", "text_colum": "t"}})
    assert _error({**BASE, "methd": "lora"}) == "unknown key 'methd' in the recipe — did you mean 'method'?"
    assert "did you mean 'lora'?" in _error({**BASE, "method": {"name": "lorra"}})
    assert "did you mean 'classification'?" in _error({**BASE, "task": "clasification"})
    assert "missing key 'dataset'" in _error({"model": "a/b"})


def test_keys_cove_sets_itself_are_refused() -> None:
    assert "use best_metric" in _error({**BASE, "training": {"metric_for_best_model": "accuracy"}})
    assert "push" in _error({**BASE, "training": {"push_to_hub": True}})


def test_impossible_settings_refused_up_front() -> None:
    assert "stride" in _error({**BASE, "preprocessing": {"long_texts": "sliding_window", "stride": 100}})
    assert "sequence-classification only" in _error({**BASE, "task": "ner", "class_weights": "auto"})
    assert "metric 'acuracy' does not apply to sequence-classification — did you mean 'accuracy'?" in _error(
        {**BASE, "metrics": ["acuracy"]}
    )
    assert "use seqeval" in _error({**BASE, "task": "ner", "metrics": ["accuracy"]})
    msg = _error({**BASE, "best_metric": "f1"})
    assert "best_metric 'f1' is not reported for sequence-classification; one of accuracy, f1_macro" in msg
    assert "did you mean 'overall_f1'?" in _error({**BASE, "task": "ner", "best_metric": "overal_f1"})


def test_defaults_and_aliases() -> None:
    recipe = load_recipe({**BASE, "task": "text-classification", "method": "lora", "early_stopping": 2})
    assert recipe.task == "sequence-classification"
    assert recipe.metrics == ["accuracy", "f1", "precision", "recall"]
    assert recipe.best_metric == "f1_macro" and recipe.greater_is_better
    assert recipe.method.name == "lora" and recipe.early_stopping and recipe.early_stopping.patience == 2
    assert load_recipe({**BASE, "task": "sft"}).greater_is_better is False


def test_set_overrides_are_typed(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("model: a/b\ndataset: c/d\nmethod: lora\n")
    recipe = load_recipe(
        path,
        [
            "training.learning_rate=3e-4",
            "method.r=4",
            "dataset.revision=abc",
            "class_weights=[1, 2.5]",
            "deterministic=true",
        ],
    )
    assert recipe.training["learning_rate"] == 3e-4
    assert recipe.method.name == "lora" and recipe.method.r == 4
    assert recipe.dataset.id == "c/d" and recipe.dataset.revision == "abc"
    assert recipe.class_weights == [1, 2.5] and recipe.deterministic is True
    with pytest.raises(RecipeError, match="KEY=VALUE"):
        apply_overrides({}, ["training.learning_rate"])


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)


def test_resolved_recipe_round_trips() -> None:
    recipe = load_recipe({**BASE, "method": "lora", "push": {"repo_id": "me/out"}})
    again = load_recipe(__import__("yaml").safe_load(recipe.to_yaml()))
    assert again == recipe


def test_importing_cove_train_never_imports_torch() -> None:
    code = textwrap.dedent(
        """
        import sys
        import cove, cove.train, cove.train.recipe, cove.metrics, cove.cli.train
        heavy = [m for m in ("torch", "transformers", "datasets", "evaluate", "peft") if m in sys.modules]
        print(",".join(heavy))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_example_recipes_are_valid() -> None:
    examples = sorted((Path(__file__).resolve().parents[2] / "examples" / "recipes").glob("*.yaml"))
    assert examples
    for path in examples:
        recipe = load_recipe(path)
        assert recipe.push and recipe.push.repo_id, path
