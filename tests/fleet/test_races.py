"""Concurrency across the processes of a real fleet (issue 17 items 2-4): download counts, likes and PR numbers
under concurrent requests through the balancer (every acknowledged action counted), racing commits (every
acknowledged commit lands), and a git ref lock left by a SIGKILLed process."""

from __future__ import annotations

import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, get_hf_file_metadata, hf_hub_url

from tests.conftest import User
from tests.fleet.stack import Fleet
from tests.storage.locks import lock_of_a_killed_process

pytestmark = pytest.mark.postgres


def _repo(fleet: Fleet, user: User, prefix: str) -> str:
    repo_id = f"{user.name}/{prefix}-{uuid.uuid4().hex[:8]}"
    fleet.api(user.token).create_repo(repo_id)
    return repo_id


def _until(check, timeout: float = 20):  # noqa: ANN001, ANN202
    deadline = time.time() + timeout
    while True:
        got = check()
        if got or time.time() > deadline:
            return got
        time.sleep(0.25)


def test_concurrent_heads_of_config_json_all_counted(fleet: Fleet, erin) -> None:  # noqa: ANN001
    api = fleet.api(erin.token)
    repo_id = _repo(fleet, erin, "count")
    api.upload_file(path_or_fileobj=b'{"model_type": "bert"}', path_in_repo="config.json", repo_id=repo_id)
    url = hf_hub_url(repo_id, "config.json", endpoint=fleet.endpoint)
    n = 200

    def head(_: int) -> bool:
        try:
            get_hf_file_metadata(url, token=erin.read_token, endpoint=fleet.endpoint)
            return True
        except Exception:  # noqa: BLE001 - counted as not acknowledged
            return False

    mark = fleet.mark()
    with ThreadPoolExecutor(32) as pool:
        acked = sum(pool.map(head, range(n)))
    hits = [h for h in fleet.hits(mark) if h.method == "HEAD"]
    assert acked == n, f"{n - acked} HEADs failed"
    assert len({fleet.port_of(h) for h in hits}) == 2
    # Counts reach the database within the flush interval, from both processes.
    got = _until(lambda: api.model_info(repo_id, expand=["downloads"]).downloads == acked)
    assert got, api.model_info(repo_id, expand=["downloads"]).downloads


def test_concurrent_likes_all_counted(fleet: Fleet, erin) -> None:  # noqa: ANN001
    repo_id = _repo(fleet, erin, "likes")
    names = [f"liker{uuid.uuid4().hex[:6]}" for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        likers = list(pool.map(lambda n: fleet.user(n, read_token=False), names))

    def like(user: User) -> int:
        r = httpx.post(f"{fleet.endpoint}/api/models/{repo_id}/like",
                       headers={"authorization": f"Bearer {user.token}"}, timeout=30)
        return r.status_code

    with ThreadPoolExecutor(12) as pool:  # each user three times at once: a like is idempotent
        statuses = list(pool.map(like, likers * 3))
    assert all(s == 200 for s in statuses), statuses
    api = fleet.api(erin.token)
    assert api.model_info(repo_id, expand=["likes"]).likes == len(likers)
    assert sorted(u.username for u in api.list_repo_likers(repo_id)) == sorted(names)


def test_concurrent_create_pr_commits_get_distinct_numbers(fleet: Fleet, erin) -> None:  # noqa: ANN001
    api = fleet.api(erin.token)
    repo_id = _repo(fleet, erin, "prs")
    api.upload_file(path_or_fileobj=b"base\n", path_in_repo="base.txt", repo_id=repo_id)
    n = 16

    def pr(i: int):  # noqa: ANN202
        try:
            return api.create_commit(repo_id, operations=[CommitOperationAdd(f"pr{i}.txt", f"{i}\n".encode())],
                                     commit_message=f"pr {i}", create_pr=True)
        except Exception as exc:  # noqa: BLE001
            return exc

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(pr, range(n)))
    acked = [r for r in results if not isinstance(r, Exception)]
    assert len(acked) == n, [r for r in results if isinstance(r, Exception)]
    nums = sorted(r.pr_num for r in acked)
    assert nums == sorted(set(nums))
    prs = [d for d in api.get_repo_discussions(repo_id) if d.is_pull_request]
    assert sorted(d.num for d in prs) == nums
    for r in acked:  # each PR ref holds its own commit
        assert api.list_repo_commits(repo_id, revision=r.pr_revision)[0].commit_id == r.oid


def test_racing_commits_every_acknowledged_one_lands(fleet: Fleet, erin) -> None:  # noqa: ANN001
    api = fleet.api(erin.token)
    repo_id = _repo(fleet, erin, "race")
    threads, each = 8, 4

    def worker(t: int) -> list[tuple[str, str]]:
        done = []
        for i in range(each):
            name = f"t{t}/c{i}.txt"
            try:
                info = api.create_commit(repo_id, operations=[CommitOperationAdd(name, name.encode())],
                                         commit_message=name)
            except Exception:  # noqa: BLE001 - not acknowledged: may or may not have landed
                continue
            done.append((info.oid, name))
        return done

    mark = fleet.mark()
    with ThreadPoolExecutor(threads) as pool:
        acked = [x for got in pool.map(worker, range(threads)) for x in got]
    commits = [h for h in fleet.hits(mark) if h.uri.endswith("/commit/main")]
    assert len({fleet.port_of(h) for h in commits}) == 2
    assert len(acked) == threads * each, f"only {len(acked)} of {threads * each} commits acknowledged"
    history = {c.commit_id for c in api.list_repo_commits(repo_id)}
    assert {oid for oid, _ in acked} <= history
    files = set(api.list_repo_files(repo_id))
    assert {name for _, name in acked} <= files


def _ref_lock(fleet: Fleet, repo_id: str) -> Path:
    import psycopg

    ns, name = repo_id.split("/")
    with psycopg.connect(fleet.db_url.replace("+psycopg", "")) as conn:
        key = conn.execute("select storage_key from repos where namespace=%s and name=%s", (ns, name)).fetchone()[0]
    return fleet.data / "repos" / key[:2] / f"{key}.git" / "refs" / "heads" / "main.lock"


def test_ref_lock_of_a_sigkilled_process_does_not_wedge_the_branch(fleet: Fleet, erin) -> None:  # noqa: ANN001
    """A process SIGKILLed holding `refs/heads/main.lock` (after creating it, before the rename): the next
    commit, through either process, lands without waiting for the lock to age."""
    api = fleet.api(erin.token)
    repo_id = _repo(fleet, erin, "stale")
    api.upload_file(path_or_fileobj=b"0", path_in_repo="a.txt", repo_id=repo_id)
    lock = _ref_lock(fleet, repo_id)
    lock_of_a_killed_process(lock)
    assert lock.exists() and socket.gethostname() in lock.read_text()
    started = time.time()
    oids = [api.create_commit(repo_id, operations=[CommitOperationAdd(f"b{i}.txt", b"1")],
                              commit_message=f"b{i}").oid for i in range(2)]  # round robin: both processes
    assert time.time() - started < 20
    assert [c.commit_id for c in api.list_repo_commits(repo_id)][:2] == oids[::-1]
    assert not lock.exists()


def test_a_real_cove_process_sigkilled_mid_commits_leaves_no_wedged_branch(fleet: Fleet, erin) -> None:  # noqa: ANN001
    """SIGKILL one process while both take commits to one branch; whatever it left (a ref lock, a half-written
    object), the survivor and the restarted process go on committing."""
    api = fleet.api(erin.token)
    repo_id = _repo(fleet, erin, "kill")

    def commit(k: int):  # noqa: ANN202
        try:
            return api.create_commit(repo_id, operations=[CommitOperationAdd(f"p/{k}.bin", os.urandom(2048))],
                                     commit_message=f"c{k}").oid
        except Exception:  # noqa: BLE001 - those in flight on the killed process fail (nginx: 502)
            return None

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(commit, k) for k in range(24)]
        time.sleep(0.5)
        fleet.kill(0)
        oids = [f.result() for f in futures]
    acked = [o for o in oids if o]
    assert acked, "no commit was acknowledged"
    after = api.create_commit(repo_id, operations=[CommitOperationAdd("after.txt", b"x")],
                              commit_message="after").oid
    fleet.start(0)
    restarted = fleet.api(erin.token, endpoint=fleet.direct(0))
    again = restarted.create_commit(repo_id, operations=[CommitOperationAdd("again.txt", b"x")],
                                    commit_message="again").oid
    history = [c.commit_id for c in api.list_repo_commits(repo_id)]
    assert history[:2] == [again, after]
    assert set(acked) <= set(history)


def test_cached_head_answers_follow_writes_made_elsewhere(fleet: Fleet, erin) -> None:  # noqa: ANN001
    """Each process caches the database part of a `HEAD /resolve` answer (issue 17 item 9: on PostgreSQL too).
    A repo made private through the other process, and a token revoked by the admin CLI (a third process),
    take effect on a process that has the answer cached: at once, or within the notification's delivery."""
    from huggingface_hub.errors import HfHubHTTPError

    api = fleet.api(erin.token)
    repo_id = _repo(fleet, erin, "cache")
    api.upload_file(path_or_fileobj=b'{"model_type": "bert"}', path_in_repo="config.json", repo_id=repo_id)
    url = hf_hub_url(repo_id, "config.json", endpoint=fleet.direct(0))
    token = fleet.cli("token", "create", "erin", "--role", "read", "--name", "to-revoke")

    def status(tok: str | None) -> int:
        try:
            get_hf_file_metadata(url, token=tok or False, endpoint=fleet.direct(0))
            return 200
        except HfHubHTTPError as exc:
            return exc.response.status_code

    for _ in range(3):  # cached on process 0
        assert status(None) == 200 and status(token) == 200
    fleet.api(erin.token, endpoint=fleet.direct(1)).update_repo_settings(repo_id, private=True)
    assert _until(lambda: status(None) in (401, 404), timeout=2), "process 0 still serves a now-private repo"
    assert status(token) == 200
    fleet.cli("token", "revoke", "erin", "to-revoke")
    assert _until(lambda: status(token) == 401, timeout=2), "process 0 still accepts a revoked token"
    assert status(erin.read_token) == 200


def test_restarting_process_sweeps_only_stale_temp_files_of_the_shared_volume(fleet: Fleet) -> None:
    """Crash leftovers on the shared `COVE_DATA/tmp` (issue 17 item 5): a process restarting while another
    serves is not alone, so it removes only temp files older than `COVE_TMP_MAX_AGE`, never one that a live
    process may still be writing."""
    tmp = fleet.data / "tmp"
    stale = tmp / "multipart" / f"1-{uuid.uuid4().hex}" / "00001"
    fresh = tmp / f"upload-{uuid.uuid4().hex}"
    for path in (stale, fresh):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(1000))
    old = time.time() - 26 * 3600
    os.utime(stale, (old, old))
    fleet.kill(0)  # as a crash: the restart is the sweep's moment
    fleet.start(0)
    assert not stale.exists() and not stale.parent.exists()
    assert fresh.exists()
    fresh.unlink()
