"""`cove reproduce`'s comparison: metric deltas and every recorded fact that changed."""

from __future__ import annotations

import pytest

from cove.train.reproduce import Reproduction, compare

pytestmark = pytest.mark.train

RECORDED = {
    "test": {"accuracy": 0.8, "f1_macro": 0.7, "loss": 0.5},
    "revisions": {"model": "aaa", "dataset": "bbb"},
    "split": {"hash": {"all": "h1"}},
    "packages": {"torch": "2.13.0", "transformers": "5.24.0", "platform": "x"},
}


def test_identical_run_has_zero_deltas_and_no_differences() -> None:
    deltas, differences = compare(RECORDED, RECORDED)
    assert deltas == {"accuracy": 0.0, "f1_macro": 0.0, "loss": 0.0} and differences == {}


def test_changes_are_reported() -> None:
    new = {
        **RECORDED,
        "test": {"accuracy": 0.75, "f1_macro": 0.72, "loss": 0.5},
        "revisions": {"model": "ccc", "dataset": "bbb"},
        "split": {"hash": {"all": "h2"}},
        "packages": {"torch": "2.14.0", "transformers": "5.24.0", "platform": "y"},
    }
    deltas, differences = compare(RECORDED, new)
    assert deltas["accuracy"] == pytest.approx(-0.05) and deltas["f1_macro"] == pytest.approx(0.02)
    assert differences == {
        "revision.model": ("aaa", "ccc"),
        "split hash": ("h1", "h2"),
        "package torch": ("2.13.0", "2.14.0"),
    }
    rep = Reproduction("a/b", RECORDED["test"], new["test"], deltas, differences)
    assert rep.max_abs_delta() == pytest.approx(0.05)
    text = rep.report()
    assert "accuracy" in text and "-0.0500" in text and "differs: package torch" in text
