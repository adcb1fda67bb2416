"""Concurrent commits to one branch queue (issue 16 item 6): all land, one on top of the other, with no commit
rebuilt and retried (`cove_commit_retries_total`); the branch moves by compare-and-swap without a fork."""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete

from tests.conftest import ENDPOINT

N = 8


def _retries() -> float:
    text = httpx.get(f"{ENDPOINT}/metrics").text
    m = re.search(r"^cove_commit_retries_total ([0-9.e+]+)$", text, re.M)
    assert m, "cove_commit_retries_total is not exposed"
    return float(m.group(1))


def test_concurrent_commits_to_one_branch_all_land_without_retries(api, repo_factory):
    repo_id = repo_factory("queue")
    api.create_branch(repo_id, branch="dev")
    before = _retries()

    def commit(i: int) -> str:
        return api.create_commit(repo_id, operations=[CommitOperationAdd(f"f{i}.txt", f"{i}".encode())],
                                 commit_message=f"c{i}", revision="dev").oid

    for branch in ("main", "dev"):
        with ThreadPoolExecutor(N) as pool:
            oids = list(pool.map(commit if branch == "dev" else lambda i: api.create_commit(
                repo_id, operations=[CommitOperationAdd(f"m{i}.txt", b"x")], commit_message=f"m{i}").oid,
                range(N)))
        history = api.list_repo_commits(repo_id, revision=branch)
        # Linear: each commit's parent is the one before it, and every commit sent is in the history.
        assert {c.commit_id for c in history[:N]} == set(oids)
        assert len(history) == N + 1
    assert _retries() == before
    assert sorted(api.list_repo_files(repo_id, revision="dev")) == sorted(
        [".gitattributes", *(f"f{i}.txt" for i in range(N))])


def test_ref_moves_by_compare_and_swap_without_git(api, repo_factory, server, monkeypatch):
    """The branch update is done in-process: with no `git` on PATH for the server's children it would fail
    if a fork were still needed (checked on the storage layer directly)."""
    from cove.storage.git_repos import RefConflict

    repo_id = repo_factory("cas")
    api.create_commit(repo_id, operations=[CommitOperationAdd("a.txt", b"a")], commit_message="a")
    api.create_commit(repo_id, operations=[CommitOperationDelete("a.txt")], commit_message="b")
    store = _store(server)
    key = _storage_key(server, repo_id)
    head, parent = [c.commit_id for c in api.list_repo_commits(repo_id)[:2]]
    monkeypatch.setattr(subprocess, "run", _no_fork)
    with pytest.raises(RefConflict):
        store.update_ref(key, "refs/heads/main", parent, parent)  # stale old: refused
    store.update_ref(key, "refs/heads/main", parent, head)
    assert store.resolve(key, "refs/heads/main") == parent
    store.update_ref(key, "refs/heads/main", head, parent)
    assert api.list_repo_commits(repo_id)[0].commit_id == head


def _no_fork(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
    raise AssertionError(f"forked: {args[0]}")


def _store(server):  # noqa: ANN001, ANN202
    from cove.settings import Settings
    from cove.storage.git_repos import GitRepoStore

    return GitRepoStore(Settings(data=server.data).repos_dir)


def _storage_key(server, repo_id: str) -> str:  # noqa: ANN001
    import sqlite3

    ns, name = repo_id.split("/")
    with sqlite3.connect(server.data / "cove.db") as con:
        rows = con.execute("select storage_key, namespace, name from repos").fetchall()
    return next(k for k, n, m in rows if (n, m) == (ns, name))
