"""Fixtures the adversarial modules share."""

from __future__ import annotations

import contextlib
import uuid

import pytest


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of a token."""
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def bob_repos(bob_api):
    """bob's own repos, deleted afterwards."""
    made: list[str] = []

    def make(prefix: str = "bob", **kw) -> str:
        repo_id = f"bob/{prefix}-{uuid.uuid4().hex[:8]}"
        bob_api.create_repo(repo_id, **kw)
        made.append(repo_id)
        return repo_id

    yield make
    for repo_id in made:
        with contextlib.suppress(Exception):
            bob_api.delete_repo(repo_id, missing_ok=True)
