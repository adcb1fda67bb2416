"""A server killed (SIGKILL) in the middle of commits loses nothing that was acknowledged and shows no
half-written commit: every commit is visible completely or not at all."""

from __future__ import annotations

import subprocess
import threading
import time

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
    acknowledged: list[tuple[str, bytes]] = []
    stop = threading.Event()

    def writer(w: int) -> None:
        i = 0
        while not stop.is_set():
            body = f"{w}-{i}".encode() * 1000
            try:
                api.upload_file(path_or_fileobj=body, path_in_repo=f"w{w}/{i}.txt", repo_id="crash/r")
            except Exception:  # noqa: BLE001 - the server is being killed under us
                return
            acknowledged.append((f"w{w}/{i}.txt", body))
            i += 1

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(3)]
    for t in threads:
        t.start()
    time.sleep(3)
    srv.proc.kill()
    srv.proc.wait()
    stop.set()
    acknowledged = list(acknowledged)  # nothing can be acknowledged after the kill
    assert acknowledged, "no commit went through before the kill"

    # Restart on another port, so the writers' client-side retries cannot reach it.
    srv = start_server(data, free_port())
    api = HfApi(endpoint=srv.endpoint, token=token)
    try:
        repo_dir = next((data / "repos").glob("*/*.git"))
        fsck = subprocess.run(["git", "fsck", "--no-dangling"], cwd=repo_dir, capture_output=True, text=True)
        assert fsck.returncode == 0, fsck.stderr
        head = subprocess.run(["git", "rev-parse", "refs/heads/main"], cwd=repo_dir, capture_output=True,
                              text=True).stdout.strip()
        info = api.model_info("crash/r")
        assert info.sha == head
        listed = set(api.list_repo_files("crash/r"))
        for path, body in acknowledged:
            assert path in listed
            assert httpx.get(f"{srv.endpoint}/crash/r/resolve/main/{path}").content == body
        # Every listed file is complete (no half-written blob behind a visible path).
        for path in listed - {".gitattributes"}:
            w, i = path[1:].split("/")[0], path.split("/")[1][:-4]
            assert httpx.get(f"{srv.endpoint}/crash/r/resolve/main/{path}").content == f"{w}-{i}".encode() * 1000
    finally:
        stop_server(srv.proc)


def _token(env: dict) -> str:
    import os
    import sys

    full = {**os.environ, **env}
    subprocess.run([sys.executable, "-m", "cove", "user", "add", "crash"], env=full, check=True, capture_output=True)
    return subprocess.run([sys.executable, "-m", "cove", "token", "create", "crash", "--role", "write"], env=full,
                          check=True, capture_output=True, text=True).stdout.strip()


