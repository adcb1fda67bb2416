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


# A real GitRepoStore moving a branch, stopped inside its fsync (the slow step, where a kill most likely lands).
_MOVER = """
import os, sys, time
from cove.storage.git_repos import GitRepoStore
store = GitRepoStore(sys.argv[1])
head = store.resolve("k1", "main")
def stuck(fd):
    print(1, flush=True)
    time.sleep(60)
os.fsync = stuck
store.update_ref("k1", "refs/heads/main", "1" * 40, head)
"""


def test_a_cove_process_killed_while_moving_a_branch_leaves_a_lock_cleared_at_once(tmp_path):
    """Killed at its slowest step (the fsync of the new value), the lock it leaves still names it, so the branch is
    free at once, not after COVE_GIT_STALE_LOCK_S (before: the lock then held the new id and looked anonymous)."""
    import signal
    import subprocess
    import sys

    from cove.storage.git_repos import GitRepoStore

    store = GitRepoStore(tmp_path, stale_lock_s=3600)
    head = store.create("k1", author="tester")
    proc = subprocess.Popen([sys.executable, "-c", _MOVER, str(tmp_path)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"1"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    lock = store.path("k1") / "refs" / "heads" / "main.lock"
    assert lock.exists()
    assert store.clear_stale_lock("k1", "refs/heads/main") and not lock.exists()
    assert store.resolve("k1", "main") == head
