"""Git maintenance off the request path (issue 17 item 9): a scheduled `git gc` pass packs a repo after commits
(every ref, commit and file still readable, `git clone` works), never while a writer holds the repo, in one
process at a time (a lease); repository handles are bounded per thread; start-up healing opens no repository."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from tests.conftest import SERVER_ENV, free_port, start_server, stop_server


def _loose(path: Path) -> int:
    n = 0
    for sub in (f"{i:02x}" for i in range(256)):
        with contextlib.suppress(FileNotFoundError):  # none there, or removed by a gc meanwhile
            n += len(os.listdir(path / "objects" / sub))
    return n


def _packs(path: Path) -> int:
    return len(list((path / "objects" / "pack").glob("*.pack")))


def _dangling_commits(path: Path) -> int:
    out = subprocess.run(["git", "fsck", "--dangling", "--no-reflogs", "--no-progress"], cwd=path,
                         capture_output=True, text=True, check=True).stdout
    return sum(1 for line in out.splitlines() if line.startswith("dangling commit "))


def _key_of(repos_root: Path, head: str) -> str:
    from cove.storage.git_repos import GitRepoStore

    store = GitRepoStore(repos_root)
    for p in repos_root.glob("*/*.git"):
        key = p.name[:-4]
        if store.branch_head(key) == head:
            return key
    raise AssertionError(f"no repo with head {head}")


@pytest.fixture(scope="module")
def maintained(tmp_path_factory):  # noqa: ANN201
    """A server of its own whose maintenance runs every second, repacks any loose object and prunes at once."""
    data = tmp_path_factory.mktemp("gitmaint") / "data"
    srv = start_server(data, free_port(), COVE_GIT_MAINTENANCE_INTERVAL="1", COVE_GIT_GC_LOOSE_OBJECTS="0",
                       COVE_GIT_PRUNE_GRACE_S="0", COVE_GIT_MAINTENANCE_DUTY="0")
    env = {**SERVER_ENV, "COVE_DATA": str(data)}
    subprocess.run([sys.executable, "-m", "cove", "user", "add", "gm"], env=env, check=True, capture_output=True)
    token = subprocess.run([sys.executable, "-m", "cove", "token", "create", "gm", "--role", "write"], env=env,
                           check=True, capture_output=True, text=True).stdout.strip()
    try:
        yield srv, token, env
    finally:
        stop_server(srv.proc)


def test_scheduled_maintenance_packs_after_commits_and_waits_for_writers(maintained, tmp_path: Path) -> None:
    from cove.storage.git_repos import GitRepoStore

    srv, token, env = maintained
    api = HfApi(endpoint=srv.endpoint, token=token)
    repo_id = f"gm/packed-{uuid.uuid4().hex[:8]}"
    first = api.create_repo(repo_id) and api.list_repo_commits(repo_id)[0].commit_id
    key = _key_of(srv.data / "repos", first)
    store = GitRepoStore(srv.data / "repos")
    path = store.path(key)
    with store.writing(key):  # a writer holds the repo: the passes (every second) must leave it alone
        for i in range(12):
            api.upload_file(path_or_fileobj=f"v{i}\n".encode(), path_in_repo=f"f{i % 3}.txt", repo_id=repo_id)
        api.create_branch(repo_id, branch="scratch")
        for i in range(3):
            api.upload_file(path_or_fileobj=f"s{i}\n".encode(), path_in_repo="s.txt", repo_id=repo_id,
                            revision="scratch")
        api.delete_branch(repo_id, branch="scratch")  # its commits are dangling now
        api.create_tag(repo_id, tag="v1")
        time.sleep(2.5)  # two or more passes ran meanwhile
        loose_before, dangling_before = _loose(path), _dangling_commits(path)
        assert loose_before >= 12 * 3 and dangling_before >= 1, (loose_before, dangling_before)
    refs = api.list_repo_refs(repo_id)
    commits = [c.commit_id for c in api.list_repo_commits(repo_id)]
    deadline = time.monotonic() + 30
    while (_loose(path) or _packs(path) != 1) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert (_loose(path), _packs(path), _dangling_commits(path)) == (0, 1, 0)
    assert not (path / "refs" / "heads" / "main").exists() or (path / "packed-refs").exists()
    # Every ref and commit still readable, through the API and by git.
    assert api.list_repo_refs(repo_id) == refs
    assert [c.commit_id for c in api.list_repo_commits(repo_id)] == commits
    for i, sha in enumerate(commits[:12]):
        files = set(api.list_repo_files(repo_id, revision=sha))
        assert ".gitattributes" in files, i
    assert api.hf_hub_download(repo_id, "f0.txt", revision=commits[-2], cache_dir=tmp_path / "c") is not None
    url = srv.endpoint.replace("http://", f"http://gm:{token}@") + f"/{repo_id}"
    subprocess.run(["git", "clone", "-q", url, str(tmp_path / "clone")], check=True, capture_output=True,
                   env={**os.environ, "GIT_LFS_SKIP_SMUDGE": "1", "GIT_TERMINAL_PROMPT": "0"})
    log = subprocess.run(["git", "log", "--format=%H"], cwd=tmp_path / "clone", capture_output=True, text=True,
                         check=True).stdout.split()
    assert log == commits
    # A commit right after maintenance still lands (refs packed, the loose ref written over them).
    api.upload_file(path_or_fileobj=b"after\n", path_in_repo="after.txt", repo_id=repo_id)
    assert api.list_repo_commits(repo_id)[0].title == "Upload after.txt with huggingface_hub"
    stats = json.loads(subprocess.run([sys.executable, "-m", "cove", "git", "stats"], env=env, check=True,
                                      capture_output=True, text=True).stdout)
    assert stats["repos"] >= 1 and stats["refs"]["max"] >= 2 and stats["objects"]["total"] >= 40


def test_maintenance_lock_excludes_writers(tmp_path: Path) -> None:
    from cove.services.git_maintenance import maintain_repo
    from cove.storage.git_repos import FileOp, GitRepoStore

    store = GitRepoStore(tmp_path)
    head = store.create("k1", author="a", files={"a.txt": b"a"})
    with store.writing("k1"):
        assert maintain_repo(store.path("k1"), store, "k1", prune_grace_s=0) == {"busy": True}
    assert _loose(store.path("k1")) > 0
    # A ref update waits for a maintenance in progress, then lands.
    new = store.write_commit("k1", parent=head, ops=[FileOp("b.txt", b"b")], author="a", message="m")
    moved = threading.Event()
    with store.maintenance_lock("k1") as held:
        assert held
        t = threading.Thread(target=lambda: (store.update_ref("k1", "refs/heads/main", new, head), moved.set()))
        t.start()
        assert not moved.wait(0.5)
    t.join(10)
    assert moved.is_set() and store.resolve("k1", "refs/heads/main") == new
    stale = store.path("k1") / "packed-refs.lock"  # left by a gc killed earlier: it would fail this one
    stale.write_text("")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    r = maintain_repo(store.path("k1"), store, "k1", prune_grace_s=3600)
    assert r["before"]["loose_objects"] > 0 and r["after"]["loose_objects"] == 0 and r["after"]["packs"] == 1
    assert not stale.exists() and (store.path("k1") / "packed-refs").exists()


def test_stale_packed_refs_lock_does_not_wedge_ref_deletion(tmp_path: Path) -> None:
    from cove.storage.git_repos import ZERO, GitRepoStore

    store = GitRepoStore(tmp_path, stale_lock_s=30)
    head = store.create("k2", author="a")
    store.update_ref("k2", "refs/heads/b", head, ZERO)
    subprocess.run(["git", "pack-refs", "--all"], cwd=store.path("k2"), check=True)  # as maintenance leaves it
    stale = store.path("k2") / "packed-refs.lock"
    stale.write_text("")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    store.update_ref("k2", "refs/heads/b", ZERO, None)  # before: "Unable to create packed-refs.lock" forever
    assert store.resolve("k2", "b") is None and store.resolve("k2", "main") == head and not stale.exists()


def test_one_pass_at_a_time(tmp_path: Path) -> None:
    from cove.backends import build_backends
    from cove.db.migrate import upgrade
    from cove.services import leases
    from cove.settings import Settings

    bk = build_backends(Settings(data=tmp_path))
    upgrade(bk)
    won: list[str] = []
    barrier = threading.Barrier(6)

    def contend(i: int) -> None:
        barrier.wait()
        if leases.claim(bk.db, "job", f"p{i}", ttl=60):
            won.append(f"p{i}")

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    assert not leases.claim(bk.db, "job", "late", ttl=60, due=False)  # held
    leases.release(bk.db, "job", won[0], next_in=3600, report={"ok": 1})
    assert not leases.claim(bk.db, "job", "late", ttl=60)  # not due for an hour
    assert leases.claim(bk.db, "job", "manual", ttl=0.01, due=False)  # free: a manual run may take it
    time.sleep(0.05)
    assert leases.claim(bk.db, "job", "next", ttl=60, due=False)  # the holder's claim expired (it died)
    assert not leases.renew(bk.db, "job", "manual", ttl=60)
    assert leases.last_report(bk.db, "job") == {"ok": 1}


def test_open_repository_handles_are_bounded(tmp_path: Path) -> None:
    from cove.storage.git_repos import GitRepoStore

    store = GitRepoStore(tmp_path, open_repos=16)
    keys = [f"{i:03d}bounded" for i in range(48)]
    for k in keys:
        store.create(k, author="a", files={"a.txt": b"x" * 50})
        subprocess.run(["git", "repack", "-adq"], cwd=store.path(k), check=True)  # a pack: open files per handle
    fds = len(os.listdir("/proc/self/fd"))
    for k in keys:
        head = store.resolve(k, "main")
        assert store.read_blob(k, store.entry(k, head, "a.txt").oid) == b"x" * 50
    assert store.open_handles() == 16
    assert len(os.listdir("/proc/self/fd")) - fds <= 16 + 4  # one pack file each, not one per repo touched
    first = store.resolve(keys[0], "main")  # an evicted repo opens again
    assert store.read_blob(keys[0], store.entry(keys[0], first, "a.txt").oid) == b"x" * 50


def test_open_pack_files_are_bounded_process_wide(tmp_path: Path) -> None:
    """Handles of many threads together: libgit2 keeps at most `open_pack_files` pack files open."""
    import pygit2

    from cove.storage.git_repos import GitRepoStore

    before = pygit2.settings.mwindow_file_limit
    try:
        store = GitRepoStore(tmp_path, open_repos=1000, open_pack_files=8)
        keys = [f"{i:03d}packs" for i in range(40)]
        for k in keys:
            store.create(k, author="a", files={"a.txt": b"y" * 50})
            subprocess.run(["git", "repack", "-adq"], cwd=store.path(k), check=True)
        fds = len(os.listdir("/proc/self/fd"))
        for k in keys + keys[:3]:
            head = store.resolve(k, "main")
            assert store.read_blob(k, store.entry(k, head, "a.txt").oid) == b"y" * 50
        assert store.open_handles() == 40
        assert len(os.listdir("/proc/self/fd")) - fds <= 8 + 4
    finally:
        pygit2.settings.mwindow_file_limit = before


def test_healing_opens_no_repository(tmp_path: Path) -> None:
    """The index healing after an unclean stop reads each repo's head from its ref files: no libgit2 handle (no
    pack file) is opened for a repo whose index row is current."""
    from cove.backends import build_backends
    from cove.db.migrate import upgrade
    from cove.services import accounts, repos
    from cove.settings import Settings

    bk = build_backends(Settings(data=tmp_path))
    upgrade(bk)
    with bk.db.session() as db:
        user = accounts.add_user(db, "healer")
    actor = accounts.Actor(user_id=user.id, name="healer", role="write")
    with bk.db.session() as db:
        for i in range(20):
            repos.create(db, bk, actor, repo_type="model", namespace="healer", name=f"r{i}")
    bk.repos._local.repos.clear()
    assert repos.heal_stale(bk) == 0
    assert bk.repos.open_handles() == 0
