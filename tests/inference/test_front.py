"""A repeated batched inference request is answered in front of the router (`cove.api.inference_front`): the
same answer, and every change — a push, a repo made private, a revoked token — seen at once."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.conftest import ENDPOINT, cove
from tests.inference.conftest import _bert, push

pytest.importorskip("torch")
TEXT = "the stock market rises on strong earnings"


def _front_answers() -> float:
    m = re.search(r"^cove_inference_front_answers_total ([0-9.e+]+)$", httpx.get(f"{ENDPOINT}/metrics").text, re.M)
    assert m, "cove_inference_front_answers_total is not exposed"
    return float(m.group(1))


def _post(repo_id: str, token: str, **kw) -> httpx.Response:  # noqa: ANN003
    return httpx.post(f"{ENDPOINT}/models/{repo_id}", json={"inputs": TEXT, **kw},
                      headers={"Authorization": f"Bearer {token}"}, timeout=120)


def _same(r: httpx.Response) -> dict:
    return {k: v for k, v in r.headers.items() if k not in ("date", "x-request-id")}


@pytest.fixture
def clf(api, tmp_path) -> str:  # noqa: ANN001
    model, tok = _bert(tmp_path / "m", "BertForSequenceClassification", ["neg", "pos"])
    repo_id = f"alice/inf-front-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    push(api, model, tok, tmp_path / "m", repo_id)
    return repo_id


def test_repeated_request_answered_in_front_same_answer(clf, bob) -> None:
    first = _post(clf, bob.token)  # the full route: loads the model (its token use is a database write)
    _post(clf, bob.token)  # the full route again, on an unchanged database: what it took is kept
    before = _front_answers()
    again = [_post(clf, bob.token) for _ in range(3)]
    assert _front_answers() >= before + 3
    assert all(r.status_code == 200 and r.json() == first.json() and _same(r) == _same(first) for r in again)
    bad = httpx.post(f"{ENDPOINT}/models/{clf}", json={"inputs": 5}, headers={"Authorization": f"Bearer {bob.token}"})
    assert bad.status_code == 400 and bad.headers["x-error-code"] == "InferenceError"  # the worker's answer
    assert _post(clf, bob.token, parameters={"top_k": 1}).json()[0][0] == first.json()[0][0]


def test_push_privacy_and_revocation_seen_at_once(api, clf, bob, tmp_path) -> None:  # noqa: ANN001
    name = f"front-{uuid.uuid4().hex[:6]}"
    secret = cove("token", "create", "bob", "--role", "read", "--name", name).stdout.strip()
    old = [_post(clf, secret) for _ in range(3)][-1]
    model, tok = _bert(tmp_path / "v2", "BertForSequenceClassification", ["neg", "pos"], seed=7)
    sha = push(api, model, tok, tmp_path / "v2", clf)
    new = _post(clf, secret)
    assert new.headers["x-repo-commit"] == sha != old.headers["x-repo-commit"] and new.json() != old.json()
    assert [_post(clf, secret).status_code for _ in range(2)] == [200, 200]
    api.update_repo_settings(clf, private=True)
    hidden = _post(clf, secret)
    assert hidden.status_code == 404 and hidden.headers["x-error-code"] == "RepoNotFound"
    api.update_repo_settings(clf, private=False)
    assert [_post(clf, secret).status_code for _ in range(2)] == [200, 200]
    cove("token", "revoke", "bob", name)
    assert _post(clf, secret).status_code == 401
