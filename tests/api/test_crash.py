"""A server killed (SIGKILL) in the middle of commits loses nothing that was acknowledged and shows no
half-written commit: every commit is visible completely or not at all."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import httpx
from huggingface_hub import HfApi

from tests.conftest import free_port, start_server, stop_server


def test_kill_mid_commit_leaves_consistent_repo(tmp_path):
    data = tmp_path / "data"
    port = free_port()
    srv = start_server(data, port)
    env_data = {"COVE_DATA": str(data)}
    token = _token(env_data)
    api = HfApi(endpoint=srv.endpoint, token=token)
    api.create_repo("crash/r")
    # The writers run in their own process: huggingface_hub shares one HTTP client per process and retries
    # a refused request for ~30 s, which must not overlap the checks below (or another test's calls).
    writers = subprocess.Popen([sys.executable, "-c", _WRITERS, srv.endpoint, token], stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
    acknowledged = []  # a path is printed only once the server acknowledged its commit
    while len(acknowledged) < 40 and (line := writers.stdout.readline()):
        acknowledged.append(line.strip())
    srv.proc.kill()  # while the three writers are mid-commit
    srv.proc.wait()
    writers.kill()
    acknowledged += writers.communicate()[0].split()  # all printed before the kill
    assert len(acknowledged) >= 40, "the writers stopped before the kill"

    # Restart with the same data folder.
    srv = start_server(data, free_port())
    api = HfApi(endpoint=srv.endpoint, token=token)
    try:
        with sqlite3.connect(data / "cove.db") as db:  # crash/r's own folder (the hub holds other repos too)
            (key,) = db.execute("SELECT storage_key FROM repos WHERE namespace='crash' AND name='r'").fetchone()
        repo_dir = next((data / "repos").glob(f"**/{key}.git"))
        fsck = subprocess.run(["git", "fsck", "--no-dangling"], cwd=repo_dir, capture_output=True, text=True)
        assert fsck.returncode == 0, fsck.stderr
        head = subprocess.run(["git", "rev-parse", "refs/heads/main"], cwd=repo_dir, capture_output=True,
                              text=True).stdout.strip()
        info = api.model_info("crash/r")
        assert info.sha == head
        listed = set(api.list_repo_files("crash/r"))
        assert set(acknowledged) <= listed
        # Every listed file is complete (no half-written blob behind a visible path).
        with httpx.Client(base_url=srv.endpoint) as http:
            for path in listed - {".gitattributes"}:
                assert http.get(f"/crash/r/resolve/main/{path}").content == _body(path)
    finally:
        stop_server(srv.proc)


_WRITERS = """
import os, sys, threading, traceback
from huggingface_hub import HfApi

api = HfApi(endpoint=sys.argv[1], token=sys.argv[2])
lock = threading.Lock()

def writer(w):
    i = 0
    while True:
        path = f"w{w}/{i}.txt"
        try:
            api.upload_file(path_or_fileobj=f"{w}-{i}".encode() * 1000, path_in_repo=path, repo_id="crash/r")
        except Exception:
            traceback.print_exc()
            os._exit(1)  # ends the test's read loop instead of leaving it waiting
        with lock:
            print(path, flush=True)
        i += 1

for w in range(3):
    threading.Thread(target=writer, args=(w,), daemon=True).start()
threading.Event().wait()
"""


def _body(path: str) -> bytes:
    w, i = path[1:].split("/")[0], path.split("/")[1][:-4]
    return f"{w}-{i}".encode() * 1000


def _token(env: dict) -> str:
    full = {**os.environ, **env}
    subprocess.run([sys.executable, "-m", "cove", "user", "add", "crash"], env=full, check=True, capture_output=True)
    return subprocess.run([sys.executable, "-m", "cove", "token", "create", "crash", "--role", "write"], env=full,
                          check=True, capture_output=True, text=True).stdout.strip()


