"""A repeated HEAD /resolve is answered from `HeadCache`: the same answer, and every change seen at once."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ENDPOINT, cove


def _head(repo_id: str, filename: str, token: str | None = None, rev: str = "main") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.head(f"{ENDPOINT}/{repo_id}/resolve/{rev}/{filename}", headers=headers)


def _same(r: httpx.Response) -> dict:
    return {k: v for k, v in r.headers.items() if k not in ("date", "x-request-id")}


@pytest.fixture
def repo(api, repo_factory, no_xet):
    repo_id = repo_factory("headcache")
    api.upload_file(path_or_fileobj=b"x" * 2000, path_in_repo="w.bin", repo_id=repo_id)
    api.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id=repo_id)
    return repo_id


def test_repeated_head_is_identical(repo, alice):
    for name in ("w.bin", "a.txt", ".gitattributes"):
        for token in (None, alice.token):
            rs = [_head(repo, name, token) for _ in range(4)]
            assert [r.status_code for r in rs] == [200] * 4
            assert all(_same(r) == _same(rs[0]) for r in rs)
            assert len({r.headers["x-request-id"] for r in rs}) == 4


def test_new_commit_is_seen_at_once(api, repo):
    first = [_head(repo, "a.txt") for _ in range(3)][-1]
    api.upload_file(path_or_fileobj=b"hello again", path_in_repo="a.txt", repo_id=repo)
    again = _head(repo, "a.txt")
    assert again.headers["x-repo-commit"] != first.headers["x-repo-commit"]
    assert again.headers["content-length"] == str(len(b"hello again"))
    api.delete_file("a.txt", repo_id=repo)
    assert _head(repo, "a.txt").status_code == 404


def test_private_switch_is_seen_at_once(api, repo):
    assert [_head(repo, "w.bin").status_code for _ in range(3)] == [200] * 3
    api.update_repo_settings(repo, private=True)
    assert _head(repo, "w.bin").status_code == 404
    api.update_repo_settings(repo, private=False)
    assert _head(repo, "w.bin").status_code == 200


def test_revoked_token_is_refused_at_once(repo, alice):
    secret = cove("token", "create", "alice", "--role", "read", "--name", "headcache").stdout.strip()
    assert [_head(repo, "w.bin", secret).status_code for _ in range(3)] == [200] * 3
    cove("token", "revoke", "alice", "headcache")
    assert _head(repo, "w.bin", secret).status_code == 401


def test_client_request_id_is_echoed(repo):
    rs = [httpx.head(f"{ENDPOINT}/{repo}/resolve/main/w.bin", headers={"X-Request-Id": f"trace-{i}"})
          for i in range(3)]
    assert [r.headers["x-request-id"] for r in rs] == ["trace-0", "trace-1", "trace-2"]


def test_query_file_head_counts_every_time(api, repo):
    api.upload_file(path_or_fileobj=b'{"model_type": "bert"}', path_in_repo="config.json", repo_id=repo)
    before = api.model_info(repo).downloads or 0
    assert [_head(repo, "config.json").status_code for _ in range(3)] == [200] * 3
    assert api.model_info(repo).downloads == before + 3
