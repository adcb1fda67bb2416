"""Red team after the issue 10 fixes: holes found by attacking a real `cove serve` again as an outsider.

Each test reproduces one hole (it failed on the code before its fix)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx

from tests.conftest import ENDPOINT
from tests.security.conftest import bearer as _auth


def _inline_commit(token: str, repo_id: str, path: str, data: bytes) -> httpx.Response:
    lines = [{"key": "header", "value": {"summary": "inline"}},
             {"key": "file", "value": {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"}}]
    return httpx.post(f"{ENDPOINT}/api/models/{repo_id}/commit/main", content="\n".join(map(json.dumps, lines)),
                      headers={**_auth(token), "content-type": "application/x-ndjson"})


# -- possession: an LFS pointer written as a plain file ------------------------------------------------


def test_an_inline_lfs_pointer_opens_no_other_repos_object(api, bob, repo_factory, bob_repos, no_xet):
    """The commit API stored an inline file whose text is an LFS pointer as is; reading it, the server took it
    for an LFS file and, with no `LfsObject` row in the repo, served the shared blob ``lfs/<oid>``: anyone who
    knew the oid and size of a private file read its bytes from their own public repo."""
    secret = os.urandom(20_000) + b"TOPSECRET"
    oid, size = hashlib.sha256(secret).hexdigest(), len(secret)
    private = repo_factory("inline-secret", private=True)
    api.upload_file(path_or_fileobj=secret, path_in_repo="w.bin", repo_id=private)
    mine = bob_repos("inline-steal")
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()

    r = _inline_commit(bob.token, mine, "steal.bin", pointer)
    if r.status_code == 200:  # refused at commit, or stored as a file that serves nothing of the private repo
        got = httpx.get(f"{ENDPOINT}/{mine}/resolve/main/steal.bin", follow_redirects=True)
        assert b"TOPSECRET" not in got.content
        assert got.status_code == 404
    else:
        assert r.status_code == 400, r.text
    batch = httpx.post(f"{ENDPOINT}/{mine}.git/info/lfs/objects/batch", headers=_auth(bob.token),
                       json={"operation": "download", "objects": [{"oid": oid, "size": size}]})
    assert "actions" not in batch.json()["objects"][0]


def test_the_commit_api_applies_the_push_hooks_pointer_rule(api, alice, repo_factory, no_xet):
    """`git push` refuses a pointer to an object never uploaded to the repo; the commit API stored it (a file
    that then answered 404). One rule now: refused with 400, nothing lands; a pointer to the repo's own object
    is accepted, as the hook accepts it."""
    data = os.urandom(30_000)
    oid, size = hashlib.sha256(data).hexdigest(), len(data)
    repo = repo_factory("pointer-rule")
    head = api.model_info(repo).sha
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()

    r = _inline_commit(alice.token, repo, "p.bin", pointer)
    assert r.status_code == 400, r.text
    assert "never uploaded" in r.headers["x-error-message"]
    assert api.model_info(repo).sha == head

    api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=repo)
    assert _inline_commit(alice.token, repo, "p.bin", pointer).status_code == 200
    got = httpx.get(f"{ENDPOINT}/{repo}/resolve/main/p.bin", follow_redirects=True)
    assert got.status_code == 200 and got.content == data


# -- availability: the pickle scanner runs under limits, out of the server's process ----------------


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_zip_bomb_pickle_cannot_exhaust_the_servers_memory(tmp_path, alice, no_xet):
    """picklescan keeps every opcode of a pickle (~100 bytes per byte) and inflates zip members: a 7.9 KB
    pytorch_model.bin (a zip holding 8 MB of one-byte opcodes) grew the server by ~850 MB when scanned, in
    its own process; 1 MB of it would have needed ~100 GB (the server killed, then the scan claimed again)."""
    from huggingface_hub import HfApi

    from tests.conftest import free_port, start_server, stop_server

    port = free_port()
    srv = start_server(tmp_path / "data", port, COVE_SCAN_MAX_MEMORY=str(384 << 20), COVE_SCAN_INTERVAL="0.5")
    try:
        env = {"COVE_DATA": str(srv.data), "COVE_PORT": str(port)}
        run = [sys.executable, "-m", "cove"]
        subprocess.run([*run, "user", "add", "mallory", "--password", "mallory-password"], env={**os.environ, **env},
                       check=True, capture_output=True)
        token = subprocess.run([*run, "token", "create", "mallory", "--role", "write"], env={**os.environ, **env},
                               check=True, capture_output=True, text=True).stdout.strip()
        api = HfApi(endpoint=srv.endpoint, token=token)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("archive/data.pkl", b"\x80\x02" + b"N" * 8_000_000 + b".")
        assert len(buf.getvalue()) < 10_000
        api.create_repo("mallory/bomb")
        before = _peak_rss_kib(srv.proc.pid)
        api.upload_file(path_or_fileobj=buf.getvalue(), path_in_repo="pytorch_model.bin", repo_id="mallory/bomb")
        status = None
        deadline = time.time() + 120
        while time.time() < deadline:
            r = httpx.post(f"{srv.endpoint}/api/models/mallory/bomb/paths-info/main", headers=_auth(token),
                           data={"paths": ["pytorch_model.bin"], "expand": "true"})
            status = r.json()[0]["securityFileStatus"]
            if status["status"] != "unscanned":
                break
            time.sleep(0.5)
        grown = (_peak_rss_kib(srv.proc.pid) - before) >> 10
        assert grown < 200, f"the server grew by {grown} MiB scanning a {len(buf.getvalue())}-byte file"
        assert status is not None and status["status"] == "unsafe", status
        assert status["findings"], status  # past the memory limit: not shown safe
    finally:
        stop_server(srv.proc)


# -- availability: a pushed gitlink ---------------------------------------------------------------


def test_a_pushed_gitlink_answers_not_found_not_500(api, alice, repo_factory, tmp_path):
    """`git push` of a tree with a submodule entry (a gitlink: mode 160000, naming a commit the repo does not
    hold) landed; paths-info, the web /resolve and the blob page then answered 500 for that path."""
    from tests.security.test_cards import _git, _git_env

    repo_id = repo_factory("gitlink")
    env = _git_env(tmp_path)
    work = tmp_path / "w"
    _git(env, "clone", "-q", f"http://{alice.name}:{alice.token}@{ENDPOINT.removeprefix('http://')}/{repo_id}", work)
    _git(env, "update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},sub", cwd=work)
    _git(env, "commit", "-q", "-m", "gitlink", cwd=work)
    _git(env, "push", "-q", "origin", "HEAD:main", cwd=work)
    auth = _auth(alice.token)
    answers = {
        "paths-info": httpx.post(f"{ENDPOINT}/api/models/{repo_id}/paths-info/main", headers=auth,
                                 data={"paths": ["sub"], "expand": "true"}).status_code,
        "api resolve": httpx.get(f"{ENDPOINT}/api/models/{repo_id}/resolve/main/sub", headers=auth).status_code,
        "resolve": httpx.get(f"{ENDPOINT}/{repo_id}/resolve/main/sub", headers=auth).status_code,
        "blob page": httpx.get(f"{ENDPOINT}/{repo_id}/blob/main/sub", headers=auth).status_code,
        "tree": httpx.get(f"{ENDPOINT}/api/models/{repo_id}/tree/main", headers=auth).status_code,
        "info": httpx.get(f"{ENDPOINT}/api/models/{repo_id}", headers=auth).status_code,
    }
    assert all(code < 500 for code in answers.values()), answers
