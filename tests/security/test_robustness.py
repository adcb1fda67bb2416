"""Issue 10, findings 4, 13, 14, 16 and 17 (nosniff): gated contents on every route, bad input answers 4xx
(never a 500 or a dropped connection), error headers that uvicorn accepts, temp files that do not outlive a
crash, a full disk that answers 507."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import SERVER_ENV, Server, User, free_port, start_server, stop_server

SECRET = "the-secret-weights-" + uuid.uuid4().hex


def _auth(user: User) -> dict[str, str]:
    return {"authorization": f"Bearer {user.token}"}


def _request(method: str, url: str, **kw) -> httpx.Response:
    """One request on a fresh connection (a 500 closes the connection it came on)."""
    with httpx.Client(timeout=60) as client:
        return client.request(method, url, **kw)


# -- 4: gated file contents --------------------------------------------------------------------------------


@pytest.fixture
def gated_repo(api, repo_factory) -> str:
    repo_id = repo_factory("gated")
    api.upload_file(path_or_fileobj=b"# card\n", path_in_repo="README.md", repo_id=repo_id)
    api.upload_file(path_or_fileobj=f"v1 {SECRET}\n".encode(), path_in_repo="weights.txt", repo_id=repo_id)
    api.upload_file(path_or_fileobj=f"v2 {SECRET}\n".encode(), path_in_repo="weights.txt", repo_id=repo_id)
    api.update_repo_settings(repo_id, gated="manual")
    return repo_id


def test_gated_contents_stay_behind_the_gate_on_every_route(server: Server, alice: User, bob: User,
                                                            gated_repo: str) -> None:
    e = server.endpoint
    commits = _request("GET", f"{e}/api/models/{gated_repo}/commits/main", headers=_auth(alice)).json()
    first, last = commits[1]["id"], commits[0]["id"]  # weights.txt v1 → v2
    urls = [
        f"{e}/api/models/{gated_repo}/compare/{first}...{last}",
        f"{e}/api/models/{gated_repo}/compare/{first}...{last}?format=diff",
        f"{e}/{gated_repo}/resolve/main/weights.txt",
        f"{e}/{gated_repo}/blob/main/weights.txt",
        f"{e}/{gated_repo}/commit/{last}",
    ]
    for who in ({}, _auth(bob)):
        for url in urls:
            r = _request("GET", url, headers=who)
            assert SECRET not in r.text, (url, who, r.status_code)
        lfs = _request("POST", f"{e}/{gated_repo}.git/info/lfs/objects/batch", headers=who,
                       json={"operation": "download", "objects": [{"oid": "0" * 64, "size": 1}]})
        assert lfs.status_code in (401, 403, 404), lfs.text
    # The compare answers still list what changed, and the owner sees the contents.
    r = _request("GET", urls[0], headers=_auth(bob))
    assert r.status_code == 200 and [f["path"] for f in r.json()["files"]] == ["weights.txt"]
    assert SECRET in _request("GET", urls[1], headers=_auth(alice)).text
    # A clone of the gated repo over git's smart HTTP is refused to outsiders.
    clone = subprocess.run(["git", "clone", "-q", f"{e}/{gated_repo}", str(server.data.parent / uuid.uuid4().hex)],
                           capture_output=True, text=True, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
                           timeout=60)
    assert clone.returncode != 0


# -- 13: bad input answers 4xx -----------------------------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


def _bad_requests(e: str, repo_id: str, lfs_href: str, lfs_oid: str) -> list[tuple[str, str, str, dict]]:
    header = json.dumps({"key": "header", "value": {"summary": "x"}})
    ndjson = {"content-type": "application/x-ndjson"}
    as_json = {"content-type": "application/json"}
    long_rev = "a" * 5000
    lfs_file = {"key": "lfsFile", "value": {"path": "a.bin", "algo": "sha256", "oid": lfs_oid, "size": "abc"}}
    return [
        ("settings private=yes", "PUT", f"{e}/api/models/{repo_id}/settings", {"json": {"private": "yes"}}),
        ("direction=abc", "GET", f"{e}/api/models?direction=abc", {}),
        ("lfsFile size=abc", "POST", f"{e}/api/models/{repo_id}/commit/main",
         {"content": header + "\n" + json.dumps(lfs_file), "headers": ndjson}),
        ("deep commit", "POST", f"{e}/api/models/{repo_id}/commit/main", {"content": DEEP, "headers": ndjson}),
        ("deep paths-info", "POST", f"{e}/api/models/{repo_id}/paths-info/main",
         {"content": '{"paths":' + DEEP + "}", "headers": as_json}),
        ("deep lfs batch", "POST", f"{e}/{repo_id}.git/info/lfs/objects/batch",
         {"content": '{"objects":' + DEEP + "}", "headers": as_json}),
        ("deep lfs verify", "POST", f"{e}/{repo_id}.git/info/lfs/objects/verify",
         {"content": DEEP, "headers": as_json}),
        ("lfs batch objects=['x']", "POST", f"{e}/{repo_id}.git/info/lfs/objects/batch",
         {"json": {"operation": "upload", "objects": ["x"]}}),
        ("multipart complete, list body", "POST", lfs_href, {"json": ["x"]}),
        ("multipart complete, deep body", "POST", lfs_href, {"content": DEEP, "headers": as_json}),
        ("huge discussion number", "GET", f"{e}/api/models/{repo_id}/discussions/97551194311847575552", {}),
        ("lone surrogate, paths-info", "POST", f"{e}/api/models/{repo_id}/paths-info/main",
         {"content": '{"paths":["\\ud800"]}', "headers": as_json}),
        ("lone surrogate, commit", "POST", f"{e}/api/models/{repo_id}/commit/main",
         {"content": header + '\n{"key":"file","value":{"path":"\\ud800","content":"eA==","encoding":"base64"}}',
          "headers": ndjson}),
        ("lone surrogate, preupload", "POST", f"{e}/api/models/{repo_id}/preupload/main",
         {"content": '{"files":[{"path":"\\ud800","size":1,"sample":""}]}', "headers": as_json}),
        ("lone surrogate, branch start", "POST", f"{e}/api/models/{repo_id}/branch/b-{uuid.uuid4().hex[:6]}",
         {"content": '{"startingPoint":"\\ud800"}', "headers": as_json}),
        ("lone surrogate, tag", "POST", f"{e}/api/models/{repo_id}/tag/main",
         {"content": '{"tag":"\\ud800"}', "headers": as_json}),
        ("long revision, resolve", "GET", f"{e}/{repo_id}/resolve/{long_rev}/README.md", {}),
        ("long revision, tree", "GET", f"{e}/api/models/{repo_id}/tree/{long_rev}", {}),
        ("long revision, info", "GET", f"{e}/api/models/{repo_id}/revision/{long_rev}", {}),
        ("long revision, commit", "POST", f"{e}/api/models/{repo_id}/commit/{long_rev}",
         {"content": header, "headers": ndjson}),
        ("long revision, compare", "GET", f"{e}/api/models/{repo_id}/compare/main...{long_rev}", {}),
        ("long revision, commits", "GET", f"{e}/api/models/{repo_id}/commits/{long_rev}", {}),
        ("long revision, web tree", "GET", f"{e}/{repo_id}/tree/{long_rev}", {}),
        ("access request id 'abc'", "POST", f"{e}/api/models/{repo_id}/user-access-request/handle",
         {"json": {"requestId": "abc", "status": "accepted"}}),
        ("access request user list", "POST", f"{e}/api/models/{repo_id}/user-access-request/handle",
         {"json": {"user": ["x"], "status": "accepted"}}),
        ("preupload size 'x'", "POST", f"{e}/api/models/{repo_id}/preupload/main",
         {"json": {"files": [{"path": "a", "size": "x", "sample": ""}]}}),
        ("branch startingPoint list", "POST", f"{e}/api/models/{repo_id}/branch/b-{uuid.uuid4().hex[:6]}",
         {"json": {"startingPoint": ["x"]}}),
        ("discussions page 10**20", "GET", f"{e}/api/models/{repo_id}/discussions?p={10**20}", {}),
        ("listing cursor 10**23", "GET", f"{e}/api/models?cursor={10**23}", {}),
    ]


def test_bad_input_answers_4xx(server: Server, alice: User, api, repo_factory) -> None:
    e = server.endpoint
    repo_id = repo_factory("bad-input")
    data = b"x" * 100
    lfs_oid = hashlib.sha256(data).hexdigest()
    batch = _request("POST", f"{e}/{repo_id}.git/info/lfs/objects/batch", headers=_auth(alice),
                     json={"operation": "upload", "objects": [{"oid": lfs_oid, "size": len(data)}]}).json()
    assert _request("PUT", batch["objects"][0]["actions"]["upload"]["href"], content=data).status_code == 200
    big = _request("POST", f"{e}/{repo_id}.git/info/lfs/objects/batch", headers=_auth(alice),
                   json={"operation": "upload", "transfers": ["multipart"],
                         "objects": [{"oid": "b" * 64, "size": 100 * 1024 * 1024}]}).json()
    href = big["objects"][0]["actions"]["upload"]["href"]
    failures = []
    for label, method, url, kw in _bad_requests(e, repo_id, href, lfs_oid):
        headers = {**_auth(alice), **kw.pop("headers", {})}
        try:
            r = _request(method, url, headers=headers, **kw)
        except httpx.HTTPError as exc:
            failures.append(f"{label}: no response ({exc!r})")
            continue
        if not 400 <= r.status_code < 500:
            failures.append(f"{label}: {r.status_code}")
        elif not r.headers.get("x-error-message") and "message" not in r.text:
            failures.append(f"{label}: {r.status_code} without a message")
    assert not failures, "\n".join(failures)
    # Nothing was half-done: the repo still has its one commit, and the server still answers.
    assert len(api.list_repo_commits(repo_id)) == 1


# -- 14: control characters in error messages ----------------------------------------------------------------


def test_error_messages_with_control_characters_are_answered(server: Server, alice: User, repo_factory) -> None:
    repo_id = repo_factory("ctl")
    e = server.endpoint
    for url in (f"{e}/{repo_id}/resolve/%00/x", f"{e}/{repo_id}/resolve/main/%1B",
                f"{e}/api/models/{repo_id}/tree/main/%1B", f"{e}/api/models/{repo_id}/tree/%07x",
                f"{e}/{repo_id}/resolve/main/a%0D%0AX-Injected:%201"):
        for method in ("GET", "HEAD"):
            r = _request(method, url, headers=_auth(alice))
            assert 400 <= r.status_code < 500, (url, method, r.status_code)
            assert "x-injected" not in r.headers
            for name, value in r.headers.raw:
                assert not re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", value), (url, name, value)
            assert r.headers.get("x-error-message"), url


# -- 17: nosniff on repo file bytes ----------------------------------------------------------------------------


def test_file_bytes_are_served_with_nosniff(server: Server, alice: User, api, repo_factory, no_xet) -> None:
    repo_id = repo_factory("sniff")
    api.upload_file(path_or_fileobj=b"<html><script>alert(1)</script></html>", path_in_repo="x.bin",
                    repo_id=repo_id)
    api.upload_file(path_or_fileobj=os.urandom(200), path_in_repo="big.safetensors", repo_id=repo_id)
    e = server.endpoint
    for path in ("x.bin", "big.safetensors", "README.md", "missing"):
        for method in ("GET", "HEAD", "HEAD"):  # the second HEAD is answered from HeadCache
            r = _request(method, f"{e}/{repo_id}/resolve/main/{path}", headers=_auth(alice))
            assert r.headers.get("x-content-type-options") == "nosniff", (path, method, r.status_code)


# -- 16: temp files after a crash, and a full disk -------------------------------------------------------------


def _temp_files(data: Path) -> list[Path]:
    return [p for root in (data / "blobs" / ".tmp", data / "tmp") if root.exists() for p in root.rglob("*")
            if p.is_file()]


def _slow_body(total: int, started: threading.Event):
    sent = 0
    while sent < total:
        block = b"\0" * min(1 << 20, total - sent)
        sent += len(block)
        if sent > 8 << 20:
            started.set()
            time.sleep(0.05)
        yield block


def _user(data: Path, name: str) -> str:
    env = {**SERVER_ENV, "COVE_DATA": str(data)}
    run = [sys.executable, "-m", "cove"]
    subprocess.run([*run, "user", "add", name, "--password", f"{name}-password"], env=env, check=True,
                   capture_output=True)
    return subprocess.run([*run, "token", "create", name, "--role", "write", "--name", "t"], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def _lfs_upload_href(endpoint: str, token: str, repo_id: str, oid: str, size: int, multipart: bool = False) -> dict:
    h = {"authorization": f"Bearer {token}"}
    _request("POST", f"{endpoint}/api/repos/create", headers=h, json={"name": repo_id.split("/")[1]})
    body = {"operation": "upload", "objects": [{"oid": oid, "size": size}]}
    if multipart:
        body["transfers"] = ["multipart", "basic"]
    r = _request("POST", f"{endpoint}/{repo_id}.git/info/lfs/objects/batch", headers=h, json=body)
    return r.json()["objects"][0]["actions"]["upload"]


def test_a_killed_upload_leaves_no_temp_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    srv = start_server(data, port)
    try:
        token = _user(data, "killer")
        size = 500 << 20
        basic = _lfs_upload_href(srv.endpoint, token, "killer/basic", "c" * 64, size)
        parts = _lfs_upload_href(srv.endpoint, token, "killer/parts", "d" * 64, 100 << 20, multipart=True)
        part_1 = parts["header"]["00001"]
        part_size = int(parts["header"]["chunk_size"])
        assert _request("PUT", part_1, content=b"\0" * part_size).status_code == 200
        started = threading.Event()

        def put() -> None:
            with contextlib.suppress(httpx.HTTPError):  # the server is killed mid-body
                httpx.put(basic["href"], content=_slow_body(size, started), timeout=60)

        thread = threading.Thread(target=put, daemon=True)
        thread.start()
        assert started.wait(60)
        deadline = time.time() + 30
        while sum(p.stat().st_size for p in _temp_files(data)) < (8 << 20) + part_size and time.time() < deadline:
            time.sleep(0.1)
        assert sum(p.stat().st_size for p in _temp_files(data)) >= (8 << 20) + part_size
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait()
        thread.join(30)
    finally:
        stop_server(srv.proc)
    srv = start_server(data, port)
    try:
        assert _temp_files(data) == []
        assert not any((data / "tmp" / "multipart").glob("*")) if (data / "tmp" / "multipart").exists() else True
    finally:
        stop_server(srv.proc)


def test_stale_temp_files_are_swept_while_serving(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server(data, free_port(), COVE_TMP_MAX_AGE="60", COVE_TMP_SWEEP_INTERVAL="0.5")
    try:
        stale = [data / "blobs" / ".tmp" / "tmpstale", data / "tmp" / "multipart" / ("e" * 64) / "00001"]
        fresh = data / "blobs" / ".tmp" / "tmpfresh"
        for p in [*stale, fresh]:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"x" * 1000)
        old = time.time() - 3600
        for p in stale:
            os.utime(p, (old, old))
        os.utime(stale[1].parent, (old, old))
        deadline = time.time() + 20
        while any(p.exists() for p in stale) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(p.exists() for p in stale)
        assert not stale[1].parent.exists()
        assert fresh.exists()  # younger than COVE_TMP_MAX_AGE: it may be an upload in flight
    finally:
        stop_server(srv.proc)


@pytest.fixture
def small_disk(tmp_path: Path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_answers_507(small_disk: Path) -> None:
    data = small_disk.parent / "data"  # the data folder is on the small disk, the server's log is not
    data.symlink_to(small_disk)
    srv = start_server(data, free_port())
    try:
        token = _user(data, "filler")
        payload = os.urandom(40 << 20)
        oid = hashlib.sha256(payload).hexdigest()
        up = _lfs_upload_href(srv.endpoint, token, "filler/big", oid, len(payload))
        r = _request("PUT", up["href"], content=payload)
        assert r.status_code == 507, (r.status_code, r.text)
        assert "storage" in r.headers["x-error-message"].lower()
        assert r.headers.get("x-error-code") == "InsufficientStorage"
        assert not list((data / "blobs").rglob(oid)), "a partial blob was kept"
        assert _temp_files(data) == []
        # A commit of an inline file too big for what is left answers 507 as well, and leaves no commit.
        h = {"authorization": f"Bearer {token}"}
        filler = small_disk / "filler"
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        filler.write_bytes(b"\0" * max(0, free - (1 << 20)))
        content = base64.b64encode(os.urandom(3 << 20)).decode()
        lines = [{"key": "header", "value": {"summary": "fill"}},
                 {"key": "file", "value": {"path": "f.bin", "content": content, "encoding": "base64"}}]
        r = _request("POST", f"{srv.endpoint}/api/models/filler/big/commit/main", headers=h,
                     content="\n".join(json.dumps(x) for x in lines))
        assert r.status_code == 507, (r.status_code, r.text[:300])
        filler.unlink()
        commits = _request("GET", f"{srv.endpoint}/api/models/filler/big/commits/main", headers=h).json()
        assert len(commits) == 1
    finally:
        stop_server(srv.proc)
