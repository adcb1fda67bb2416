"""Fixtures for the train tests: tiny models and datasets built once per session (no downloads)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.train.tiny import build_tiny_bert, build_tiny_gpt2, twitter_rows, write_dataset


@pytest.fixture(scope="session")
def tiny_rows() -> list[dict[str, object]]:
    return twitter_rows(60)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory, tiny_rows: list[dict[str, object]]) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data") / "tiny-twitter", tiny_rows)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory, tiny_rows: list[dict[str, object]]) -> Path:
    pytest.importorskip("transformers")
    return build_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert", [str(r["text"]) for r in tiny_rows])


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory, tiny_rows: list[dict[str, object]]) -> Path:
    pytest.importorskip("transformers")
    return build_tiny_gpt2(tmp_path_factory.mktemp("models") / "tiny-gpt2", [str(r["text"]) for r in tiny_rows])


@pytest.fixture(scope="session")
def metric_org(alice) -> str:
    """The `evaluate-metric` org on the live server, owned by alice (the seeding user)."""
    from tests.conftest import cove

    cove("org", "add", "evaluate-metric", "--owner", alice.name, check=False)
    # `cove serve` creates the org at start-up (built-in metric Spaces): make alice an admin of it.
    cove("org", "member", "add", "evaluate-metric", alice.name, "--role", "admin", check=False)
    return "evaluate-metric"


@pytest.fixture(scope="session")
def seeded_metrics(metric_org: str, alice) -> list:
    """Cove's metric modules seeded into `evaluate-metric/<name>` Spaces, once per session."""
    from huggingface_hub import HfApi

    from cove.metrics import seed_metric_spaces
    from tests.conftest import ENDPOINT

    return seed_metric_spaces(HfApi(endpoint=ENDPOINT, token=alice.token))
