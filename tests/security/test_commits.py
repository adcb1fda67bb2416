"""Issue 10, findings 8, 9 and 17 (paths): the commit API's body, PR numbering and the one path rule.

- 8: a commit body is read as a stream: the server's memory does not grow with the body, a line over the cap
  is refused with 413, and the summary/description are capped.
- 9: PR numbers are allocated atomically; a failed `create_pr` commit leaves no `refs/pr/N`, and an orphan
  ref left by older code does not break later PRs; 16 concurrent `create_pr` commits all succeed.
- 17 (paths): the commit API and `git push` refuse the same `.git` look-alikes and undecodable names, and a
  commit cannot hold both `d` and `d/x`.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import EntryNotFoundError

from tests.conftest import ENDPOINT, SERVER_ENV, free_port, start_server, stop_server
from tests.git.conftest import Git, git, git_home, repo_url  # noqa: F401 (fixtures)

MiB = 1024 * 1024


def _ndjson(lines: list[dict]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def _post_commit(endpoint: str, repo_id: str, token: str, body, *, create_pr: bool = False) -> httpx.Response:
    params = {"create_pr": "1"} if create_pr else {}
    return httpx.post(f"{endpoint}/api/models/{repo_id}/commit/main", content=body, params=params, timeout=300,
                      headers={"authorization": f"Bearer {token}", "content-type": "application/x-ndjson"})


def _header(summary: str = "test", description: str = "") -> dict:
    return {"key": "header", "value": {"summary": summary, "description": description}}


def _file(path: str, data: bytes) -> dict:
    return {"key": "file", "value": {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"}}


# -- 8: the body is streamed ----------------------------------------------------------------------


def _rss_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def _own_cli(data: Path, *args: str, env: dict[str, str] | None = None) -> str:
    env = {**SERVER_ENV, "COVE_DATA": str(data), **(env or {})}
    return subprocess.run([sys.executable, "-m", "cove", *args], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="module")
def own_server(tmp_path_factory):
    """A server of our own, so that its peak memory is ours to measure."""
    data = tmp_path_factory.mktemp("commit-body") / "data"
    srv = start_server(data, free_port())
    _own_cli(data, "user", "add", "mem", "--password", "mem-password")
    token = _own_cli(data, "token", "create", "mem", "--role", "write", "--name", "t")
    api = HfApi(endpoint=srv.endpoint, token=token)
    repo_id = f"mem/body-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id)
    try:
        yield srv, token, repo_id
    finally:
        stop_server(srv.proc)


def test_commit_body_memory_does_not_grow_with_the_body(own_server):
    srv, token, repo_id = own_server
    files = 96
    chunk = base64.b64encode(b"\x01" * MiB).decode()

    def body():
        yield json.dumps(_header("many inline files")).encode() + b"\n"
        for i in range(files):
            yield json.dumps({"key": "file", "value": {"path": f"blobs/{i}.dat", "content": chunk,
                                                        "encoding": "base64"}}).encode() + b"\n"

    pid = srv.proc.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak RSS (VmHWM)
    before = _rss_kib(pid)["VmRSS"]
    r = _post_commit(srv.endpoint, repo_id, token, body())
    assert r.status_code == 200, r.text
    growth_mib = (_rss_kib(pid)["VmHWM"] - before) / 1024
    # The body is ~128 MiB of base64: buffering it (as the old code did) costs several times that.
    assert growth_mib < 80, f"the server's peak RSS grew by {growth_mib:.0f} MiB for a 128 MiB body"
    listed = HfApi(endpoint=srv.endpoint, token=token).list_repo_files(repo_id)
    assert len([p for p in listed if p.startswith("blobs/")]) == files


def test_commit_line_over_the_cap_is_413_without_reading_it_all(own_server):
    srv, token, repo_id = own_server
    pid = srv.proc.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = _rss_kib(pid)["VmRSS"]

    def body():
        yield json.dumps(_header()).encode() + b"\n"
        yield b'{"key": "file", "value": {"path": "big.txt", "encoding": "base64", "content": "'
        for _ in range(300):  # a 300 MiB line, never ending
            yield b"A" * MiB

    try:
        r = _post_commit(srv.endpoint, repo_id, token, body())
        assert r.status_code == 413, r.text
    except httpx.TransportError:
        pass  # the server may close the connection while the client is still sending
    growth_mib = (_rss_kib(pid)["VmHWM"] - before) / 1024
    assert growth_mib < 80, f"the server's peak RSS grew by {growth_mib:.0f} MiB"
    assert "big.txt" not in HfApi(endpoint=srv.endpoint, token=token).list_repo_files(repo_id)


def test_commit_summary_and_description_are_capped(repo_factory, alice):
    repo_id = repo_factory("caps")
    r = _post_commit(ENDPOINT, repo_id, alice.token, _ndjson([_header("s" * 2 * MiB), _file("a.txt", b"a")]))
    assert r.status_code == 400 and "summary" in r.headers.get("x-error-message", ""), r.text
    r = _post_commit(ENDPOINT, repo_id, alice.token, _ndjson([_header("ok", "d" * 2 * MiB), _file("a.txt", b"a")]))
    assert r.status_code == 400 and "description" in r.headers.get("x-error-message", ""), r.text
    r = _post_commit(ENDPOINT, repo_id, alice.token, _ndjson([_header("ok", "fine"), _file("a.txt", b"a")]))
    assert r.status_code == 200, r.text


def test_legacy_single_object_commit_still_streams(api, repo_factory, alice):
    repo_id = repo_factory("legacy")
    legacy = {"summary": "legacy", "files": [{"path": "l.txt", "content": base64.b64encode(b"legacy").decode(),
                                              "encoding": "base64"}]}
    r = _post_commit(ENDPOINT, repo_id, alice.token, json.dumps(legacy).encode())
    assert r.status_code == 200, r.text
    assert "l.txt" in api.list_repo_files(repo_id)
    r = _post_commit(ENDPOINT, repo_id, alice.token, _ndjson([legacy, _header()]))
    assert r.status_code == 400, r.text


def test_commit_operation_count_is_capped(repo_factory, alice):
    repo_id = repo_factory("ops")
    lines = [_header()] + [{"key": "deletedFile", "value": {"path": f"f{i}"}} for i in range(100_001)]
    r = _post_commit(ENDPOINT, repo_id, alice.token, _ndjson(lines))
    assert r.status_code == 413 and "operations" in r.headers.get("x-error-message", ""), r.text


# -- 9: PR numbers ----------------------------------------------------------------------------------


def _storage_path(data: Path, repo_id: str) -> Path:
    ns, name = repo_id.split("/")
    with sqlite3.connect(data / "cove.db") as conn:
        (key,) = conn.execute("select storage_key from repos where namespace=? and name=?", (ns, name)).fetchone()
    return data / "repos" / key[:2] / f"{key}.git"


def _pr_refs(api: HfApi, repo_id: str) -> dict[str, str]:
    return {r.ref: r.target_commit for r in api.list_repo_refs(repo_id, include_pull_requests=True).pull_requests}


def test_failed_create_pr_leaves_no_ref_and_later_prs_work(api, repo_factory):
    repo_id = repo_factory("prfail")
    with pytest.raises(EntryNotFoundError):
        api.create_commit(repo_id, operations=[CommitOperationDelete("missing.txt")], commit_message="bad",
                          create_pr=True)
    assert _pr_refs(api, repo_id) == {}
    info = api.create_commit(repo_id, operations=[CommitOperationAdd("a.txt", b"a")], commit_message="good",
                             create_pr=True)
    assert info.pr_num is not None
    assert _pr_refs(api, repo_id) == {f"refs/pr/{info.pr_num}": info.oid}
    assert api.get_discussion_details(repo_id, info.pr_num).title == "good"


def test_orphan_pr_ref_from_older_code_is_skipped(api, repo_factory, server):
    repo_id = repo_factory("orphan")
    head = api.repo_info(repo_id).sha
    subprocess.run(["git", "update-ref", "refs/pr/1", head], cwd=_storage_path(server.data, repo_id), check=True)
    info = api.create_commit(repo_id, operations=[CommitOperationAdd("a.txt", b"a")], commit_message="after",
                             create_pr=True)
    assert info.pr_num == 2
    assert api.get_discussion_details(repo_id, 2).title == "after"
    d = api.create_discussion(repo_id, title="a question")
    assert d.num == 3


def test_concurrent_create_pr_all_succeed_with_distinct_numbers(alice, repo_factory):
    _race_create_pr(ENDPOINT, alice.token, repo_factory("prrace"))


def _race_create_pr(endpoint: str, token: str, repo_id: str, n: int = 16) -> None:
    """``n`` clients open a PR each at once: all succeed, numbered 1..n, each ref on its own commit."""
    barrier = threading.Barrier(n)
    results: dict[int, object] = {}

    def one(i: int) -> None:
        client = HfApi(endpoint=endpoint, token=token)
        barrier.wait()
        try:
            results[i] = client.create_commit(repo_id, operations=[CommitOperationAdd(f"f{i}.txt", str(i).encode())],
                                              commit_message=f"pr {i}", create_pr=True)
        except Exception as exc:  # noqa: BLE001 (reported below)
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failures = {i: r for i, r in results.items() if isinstance(r, Exception)}
    assert not failures, failures
    nums = sorted(r.pr_num for r in results.values())
    assert nums == list(range(1, n + 1))
    api = HfApi(endpoint=endpoint, token=token)
    refs = _pr_refs(api, repo_id)
    for i, r in results.items():
        assert refs[f"refs/pr/{r.pr_num}"] == r.oid
        assert api.get_discussion_details(repo_id, r.pr_num).title == f"pr {i}"
        assert f"f{i}.txt" in api.list_repo_files(repo_id, revision=f"refs/pr/{r.pr_num}")


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory):
    """A server of our own on PostgreSQL (skipped where PostgreSQL or psycopg is missing)."""
    from tests.storage import pg as pgmod

    why = pgmod.unavailable()
    if why:
        pytest.skip(why)
    with pgmod.running() as cluster:
        url = cluster.create_database(f"cove_{uuid.uuid4().hex[:10]}")
        data = tmp_path_factory.mktemp("commit-pg") / "data"
        srv = start_server(data, free_port(), COVE_DATABASE_URL=url, COVE_SECRET="commits-pg-test-secret")
        try:
            env = {"COVE_DATABASE_URL": url}
            _own_cli(data, "user", "add", "pgu", "--password", "pgu-password", env=env)
            token = _own_cli(data, "token", "create", "pgu", "--role", "write", "--name", "t", env=env)
            yield srv, token
        finally:
            stop_server(srv.proc)


@pytest.mark.postgres
def test_concurrent_create_pr_on_postgres(pg_server):
    srv, token = pg_server
    repo_id = f"pgu/prrace-{uuid.uuid4().hex[:8]}"
    HfApi(endpoint=srv.endpoint, token=token).create_repo(repo_id)
    _race_create_pr(srv.endpoint, token, repo_id)
    api = HfApi(endpoint=srv.endpoint, token=token)
    with pytest.raises(EntryNotFoundError):  # a failed PR leaves nothing behind on PostgreSQL either
        api.create_commit(repo_id, operations=[CommitOperationDelete("missing.txt")], commit_message="bad",
                          create_pr=True)
    info = api.create_commit(repo_id, operations=[CommitOperationAdd("z.txt", b"z")], commit_message="after",
                             create_pr=True)
    assert info.pr_num == 17 and len(_pr_refs(api, repo_id)) == 17


# -- 17: one path rule --------------------------------------------------------------------------------

BAD_PATHS = [".GIT/config", ".git./config", "git~1/config", "GIT~1/hooks/x", ".git /config",
             ".Git::$INDEX_ALLOCATION/x", "a/.g\u200cit/config", "a/\ud800.txt", "a/b\nc.txt"]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_commit_api_refuses_git_lookalike_paths(repo_factory, alice, path):
    repo_id = repo_factory("paths")
    r = _post_commit(ENDPOINT, repo_id, alice.token, _ndjson([_header(), _file(path, b"[core]\n")]))
    assert r.status_code == 400, r.text
    assert "path" in r.headers.get("x-error-message", "").lower()


def test_commit_api_refuses_a_file_and_a_folder_of_the_same_name(api, repo_factory, alice):
    repo_id = repo_factory("dfile")
    r = _post_commit(ENDPOINT, repo_id, alice.token, _ndjson([_header(), _file("d", b"1"), _file("d/x", b"2")]))
    assert r.status_code == 400 and "d/x" in r.headers.get("x-error-message", ""), r.text
    r = _post_commit(ENDPOINT, repo_id, alice.token, _ndjson([_header(), _file("d/x", b"2"), _file("d", b"1")]))
    assert r.status_code == 400, r.text
    assert set(api.list_repo_files(repo_id)) == {".gitattributes"}


PUSH_NAMES = [b".GIT", b".git.", b"git~1", b".git ", b".gIt::$INDEX_ALLOCATION", b".g\xe2\x80\x8cit", b"\xed\xa0\x80",
              b"\xff"]


def _sneaky_commit(work: Path, env: dict[str, str] | None, name: bytes) -> tuple[str, str]:
    """(head, a commit on top of it whose root holds a folder ``name`` with a ``config`` file), by plumbing."""

    def plumb(*args: str, data: bytes = b"") -> bytes:
        return subprocess.run(["git", *args], cwd=work, env=env, input=data, capture_output=True,
                              check=True).stdout

    head = plumb("rev-parse", "HEAD").decode().strip()
    blob = plumb("hash-object", "-w", "--stdin", data=b"[core]\n").strip()
    inner = plumb("mktree", data=b"100644 blob " + blob + b"\tconfig\n").strip()
    root = plumb("mktree", data=plumb("ls-tree", "HEAD") + b"040000 tree " + inner + b"\t" + name + b"\n").strip()
    commit = plumb("commit-tree", root.decode(), "-p", head, "-m", "sneaky").decode().strip()
    return head, commit


@pytest.mark.parametrize("name", PUSH_NAMES)
def test_push_refuses_git_lookalike_paths(git, tmp_path, repo_factory, alice, name):  # noqa: F811
    repo_id = repo_factory("pushpaths")
    work = tmp_path / "w"
    git("clone", "-q", repo_url(repo_id, user=alice), work)
    head, commit = _sneaky_commit(work, git.env, name)
    proc = git("push", "origin", f"{commit}:refs/heads/main", cwd=work, check=False)
    assert proc.returncode != 0, proc.stderr
    # git's own fsck (receive.fsckObjects) already knows some .git look-alikes; the hook refuses them all.
    assert ("Cove: push refused" in proc.stderr and "path" in proc.stderr) or "hasDotgit" in proc.stderr, \
        proc.stderr
    assert git.out("ls-remote", "origin", "refs/heads/main", cwd=work).split()[0] == head


@pytest.mark.parametrize("name", PUSH_NAMES + [b"..", b"..\\x", b"C:\\x", b"x\x01"])
def test_pre_receive_hook_applies_the_commit_api_path_rule(tmp_path, monkeypatch, name):
    """The hook's own check, whatever git's fsck knows: the same rule as the commit API's `clean_path`."""
    from cove.services.git_push import RefUpdate, check_push

    env = {"GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=tmp_path, env=env, check=True)
    (tmp_path / "a.txt").write_text("a\n")
    subprocess.run(["git", "add", "a.txt"], cwd=tmp_path, env=env, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "first"], cwd=tmp_path, env=env, check=True)
    head, commit = _sneaky_commit(tmp_path, env, name)
    monkeypatch.chdir(tmp_path)
    errors = check_push([RefUpdate(head, commit, "refs/heads/main")], lookup_lfs=lambda oids: {},
                        max_file=1 << 20, repo_id="alice/x")
    assert errors and errors[0] == "These paths cannot be stored in a Cove repo:", errors
    assert check_push([RefUpdate(head, head, "refs/heads/main")], lookup_lfs=lambda oids: {}, max_file=1 << 20,
                      repo_id="alice/x") == []


def test_push_of_a_valid_path_is_accepted(git, tmp_path, repo_factory, alice):  # noqa: F811
    repo_id = repo_factory("pushok")
    work = tmp_path / "w"
    git("clone", "-q", repo_url(repo_id, user=alice), work)
    (work / ".github").mkdir()
    (work / ".github" / "gitconfig.txt").write_text("fine\n")
    (work / "a:b.txt").write_text("fine\n")
    git.commit_all(work, "ok")
    git("push", "-q", "origin", "main", cwd=work)
