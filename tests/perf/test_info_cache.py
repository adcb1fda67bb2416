"""Repo info (`model_info`) answered again from its rendered bytes (issue 16 item 3), without a database
statement, and every change that alters the answer seen at once: private == missing holds in the cache."""

from __future__ import annotations

import base64
import json
import threading

from fastapi.testclient import TestClient
from sqlalchemy import event

from cove.app import create_app
from cove.backends import build_backends
from cove.db.migrate import upgrade
from cove.services import accounts
from cove.settings import Settings


def _commit(client: TestClient, repo: str, token: str, path: str, data: bytes) -> None:
    lines = [{"key": "header", "value": {"summary": f"add {path}"}},
             {"key": "file", "value": {"path": path, "encoding": "base64", "content": base64.b64encode(data).decode()}}]
    r = client.post(f"/api/models/{repo}/commit/main", headers={"Authorization": f"Bearer {token}",
                                                                "Content-Type": "application/x-ndjson"},
                    content="\n".join(json.dumps(x) for x in lines))
    assert r.status_code == 200, r.text


def test_repeated_repo_info_runs_no_statement_and_sees_every_change(tmp_path):
    settings = Settings(data=tmp_path, secret="s", scan_interval=0)
    bk = build_backends(settings)
    upgrade(bk)
    with bk.db.session() as db:
        accounts.add_user(db, "sam")
        accounts.add_user(db, "bob")
        _, sam = accounts.create_token(db, "sam", role="write")
        _, bob = accounts.create_token(db, "bob", role="write")
    statements: list[str] = []

    def seen(*_args) -> None:  # noqa: ANN002
        if threading.current_thread().name != "cove-download-flush":
            statements.append("x")

    with TestClient(create_app(settings, bk)) as client:
        auth = {"Authorization": f"Bearer {sam}"}
        assert client.post("/api/repos/create", json={"name": "m"}, headers=auth).status_code == 200
        _commit(client, "sam/m", sam, "config.json", b"{}")
        url = "/api/models/sam/m"
        first = client.get(url)
        assert first.status_code == 200
        mine = [client.get(url, headers=auth)]
        event.listen(bk.db.engine, "before_cursor_execute", seen)
        try:
            again = [client.get(url) for _ in range(3)]
            mine += [client.get(url, headers=auth) for _ in range(2)]
        finally:
            event.remove(bk.db.engine, "before_cursor_execute", seen)
        assert statements == []
        assert {r.content for r in again} == {first.content}
        assert {r.content for r in mine} == {first.content}
        assert len({r.headers["x-request-id"] for r in again}) == 3
        assert all(r.headers["x-content-type-options"] == "nosniff" for r in again)
        assert {r.status_code for r in mine} == {200}

        _commit(client, "sam/m", sam, "a.txt", b"a")  # a new commit: seen at once
        new = client.get(url).json()
        assert new["sha"] != first.json()["sha"]
        assert "a.txt" in {s["rfilename"] for s in new["siblings"]}

        assert client.post(f"{url}/like", headers={"Authorization": f"Bearer {bob}"}).status_code == 200
        assert client.get(url).json()["likes"] == 1

        client.get(url, headers={"Authorization": f"Bearer {bob}"})  # bob's answer kept, then the repo goes private
        r = client.put(f"{url}/settings", json={"private": True}, headers=auth)
        assert r.status_code == 200
        assert client.get(url).status_code == 404  # anonymous: missing
        assert client.get(url, headers={"Authorization": f"Bearer {bob}"}).status_code == 404
        assert client.get(url, headers=auth).json()["private"] is True

        with bk.db.session() as db:  # a revoked token is refused at once
            accounts.revoke_token(db, "sam", "write-token")
        assert client.get(url, headers=auth).status_code == 401


def test_answers_over_the_byte_budget_are_not_kept(tmp_path, monkeypatch):
    """The kept bodies are bounded in bytes (any query string makes a key): one over the budget takes the full
    route again."""
    from cove.api.info_cache import InfoCache

    monkeypatch.setattr(InfoCache, "MAX_BYTES", 10)
    settings = Settings(data=tmp_path, secret="s", scan_interval=0)
    bk = build_backends(settings)
    upgrade(bk)
    with bk.db.session() as db:
        accounts.add_user(db, "sam")
        _, sam = accounts.create_token(db, "sam", role="write")
    statements: list[str] = []
    with TestClient(create_app(settings, bk)) as client:
        auth = {"Authorization": f"Bearer {sam}"}
        assert client.post("/api/repos/create", json={"name": "m"}, headers=auth).status_code == 200
        first = client.get("/api/models/sam/m")
        event.listen(bk.db.engine, "before_cursor_execute", lambda *_a: statements.append("x"))
        assert client.get("/api/models/sam/m").content == first.content
    assert statements
