"""A git ref lock left by a crash does not wedge the branch (issue 17 item 4): Cove clears a `<ref>.lock` whose
owner (a Cove process of this host) is gone at once, and any lock older than `COVE_GIT_STALE_LOCK_S`; a fresh lock
of a live or unknown owner is still respected."""

from __future__ import annotations

import os
import sqlite3
import time

import pytest
from huggingface_hub import CommitOperationAdd
from huggingface_hub.errors import HfHubHTTPError

from tests.storage.locks import lock_of_a_killed_process


def _lock(server, repo_id: str):  # noqa: ANN001, ANN202
    ns, name = repo_id.split("/")
    with sqlite3.connect(server.data / "cove.db") as con:
        key = con.execute("select storage_key from repos where namespace=? and name=?", (ns, name)).fetchone()[0]
    return server.data / "repos" / key[:2] / f"{key}.git" / "refs" / "heads" / "main.lock"


def _commit(api, repo_id: str, name: str) -> str:  # noqa: ANN001
    return api.create_commit(repo_id, operations=[CommitOperationAdd(name, b"x")], commit_message=name).oid


def test_lock_of_a_killed_cove_process_is_cleared_at_once(api, repo_factory, server):
    repo_id = repo_factory("stale-kill")
    lock = _lock(server, repo_id)
    lock_of_a_killed_process(lock)
    assert lock.exists()
    oid = _commit(api, repo_id, "after-kill.txt")
    assert api.list_repo_commits(repo_id)[0].commit_id == oid
    assert not lock.exists()


def test_old_lock_of_unknown_owner_is_cleared_fresh_one_respected(api, repo_factory, server):
    repo_id = repo_factory("stale-age")
    lock = _lock(server, repo_id)
    lock.write_text("")  # as `git` leaves it: no owner
    with pytest.raises(HfHubHTTPError) as exc:  # fresh: someone may hold it
        _commit(api, repo_id, "blocked.txt")
    assert exc.value.response.status_code == 409
    old = time.time() - 120
    os.utime(lock, (old, old))
    oid = _commit(api, repo_id, "after-age.txt")
    assert api.list_repo_commits(repo_id)[0].commit_id == oid
    assert not lock.exists()
    assert not [p for p in lock.parent.parent.parent.joinpath("cove-locks").glob("stale-*")]
