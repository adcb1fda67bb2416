"""A repo whose git storage is damaged (an object missing) answers a clear Hub-style 5xx naming `cove fsck`, logged
once at error level without a traceback; other repos read as before."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from tests.conftest import SERVER_ENV, free_port, start_server, stop_server


def test_a_missing_git_object_is_a_clear_error_not_a_traceback(tmp_path: Path):
    data, port = tmp_path / "data", free_port()
    env = {**SERVER_ENV, "COVE_DATA": str(data)}
    srv = start_server(data, port)
    try:
        subprocess.run([sys.executable, "-m", "cove", "user", "add", "dora", "--password", "dora-password"], env=env,
                       capture_output=True, check=True)
        token = subprocess.run([sys.executable, "-m", "cove", "token", "create", "dora", "--role", "write", "--name",
                                "t"], env=env, capture_output=True, text=True, check=True).stdout.strip()
        api = HfApi(endpoint=srv.endpoint, token=token)
        for name in ("dora/broken", "dora/fine"):
            api.create_repo(name)
            api.upload_file(path_or_fileobj=f"{name}\n".encode(), path_in_repo="sub/f.txt", repo_id=name)
    finally:
        stop_server(srv.proc)
    # The broken repo's root tree (a loose object) goes missing while no server runs: pygit2 would otherwise still
    # hold it in its object cache.
    heads = {p.read_text().strip(): p.parents[2] for p in data.glob("repos/*/*.git/refs/heads/main")}
    for head, git_dir in heads.items():
        files = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{head}:sub/f.txt"], capture_output=True,
                               text=True, check=False).stdout
        if files == "dora/broken\n":
            broken_head = head
            tree = subprocess.run(["git", f"--git-dir={git_dir}", "rev-parse", f"{head}^{{tree}}"],
                                  capture_output=True, text=True, check=True).stdout.strip()
            (git_dir / "objects" / tree[:2] / tree[2:]).unlink()
    srv = start_server(data, port)
    try:
        api = HfApi(endpoint=srv.endpoint, token=token)
        log_before = srv.log.stat().st_size
        with pytest.raises(HfHubHTTPError) as err:
            api.model_info("dora/broken", files_metadata=True)
        # The tree over raw HTTP: `list_repo_tree` retries a 500 for 15 s first, then raises the same error.
        tree = httpx.get(f"{srv.endpoint}/api/models/dora/broken/tree/main",
                         headers={"Authorization": f"Bearer {token}"})
        for r in (err.value.response, tree):
            assert r.status_code == 500 and r.headers["X-Error-Code"] == "RepoStorageDamaged"
            message = r.headers["X-Error-Message"]
            assert "damaged" in message and "cove fsck" in message and "dora/broken" in message
        # The web pages too, those that read git through pygit2 themselves (a folder's history: `web.gitviews`).
        for page in ("/dora/broken", "/dora/broken/tree/main", "/dora/broken/commits/main/sub",
                     f"/dora/broken/commit/{broken_head}"):
            r = httpx.get(f"{srv.endpoint}{page}", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 500 and r.headers["X-Error-Code"] == "RepoStorageDamaged"
        intact = [f.path for f in api.list_repo_tree("dora/fine", recursive=True)]
        assert intact == [".gitattributes", "sub", "sub/f.txt"]  # other repos read as before
        logged = srv.log.read_bytes()[log_before:].decode(errors="replace")
    finally:
        stop_server(srv.proc)
    assert "Traceback" not in logged and "KeyError" not in logged
    assert logged.count("repo storage damaged") == 1 and "dora/broken" in logged  # once, for two requests
    fsck = subprocess.run([sys.executable, "-m", "cove", "fsck"], env=env, capture_output=True, text=True, check=False)
    assert fsck.returncode == 1 and "dora/broken" in fsck.stdout + fsck.stderr  # the command the message names
