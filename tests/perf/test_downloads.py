"""Download counts off the critical path (issue 16 item 1): exact under concurrency and across processes,
kept over a graceful restart, and a counted HEAD never empties the HEAD cache of other files."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from huggingface_hub import HfApi

from tests.conftest import SERVER_ENV, Server, free_port, start_server, stop_server


def _token(data: Path, name: str) -> str:
    env = {**SERVER_ENV, "COVE_DATA": str(data)}
    run = [sys.executable, "-m", "cove"]
    subprocess.run([*run, "user", "add", name], env=env, check=True, capture_output=True)
    return subprocess.run([*run, "token", "create", name, "--role", "write"], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def _model(srv: Server, user: str) -> tuple[HfApi, str]:
    api = HfApi(endpoint=srv.endpoint, token=_token(srv.data, user))
    repo_id = f"{user}/m"
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b'{"model_type": "bert"}', path_in_repo="config.json", repo_id=repo_id)
    api.upload_file(path_or_fileobj=b"plain", path_in_repo="a.txt", repo_id=repo_id)
    return api, repo_id


def _clears(endpoint: str) -> float:
    text = httpx.get(f"{endpoint}/metrics").text
    found = re.findall(r"^cove_head_cache_clears_total (\S+)$", text, re.MULTILINE)
    assert found, "the HEAD cache's clears are not exposed"
    return float(found[0])


def test_counts_are_exact_across_two_processes_under_concurrent_heads(tmp_path: Path):
    srv = start_server(tmp_path / "data", free_port(), COVE_WORKERS="2", COVE_DOWNLOAD_FLUSH_INTERVAL="0.2",
                       COVE_SCAN_INTERVAL="0")
    try:
        api, repo_id = _model(srv, "dana")
        url = f"{srv.endpoint}/{repo_id}/resolve/main/config.json"

        def hit(i: int) -> int:
            with httpx.Client() as c:  # a new connection each: both worker processes get some
                if i % 10 == 0:  # a browser GET counts; a client GET after its counted HEAD does not
                    headers = {"X-HF-Download-Counter": "1"} if i % 20 == 0 else {}
                    return c.get(url, headers=headers).status_code
                return c.head(url).status_code

        n = 400
        with ThreadPoolExecutor(32) as pool:
            codes = list(pool.map(hit, range(n)))
        assert codes == [200] * n
        expected = n - n // 20  # every request but the GETs sent with the client's counter header
        deadline = time.time() + 40  # a loaded machine: flushes every 0.2 s, but slow
        while api.model_info(repo_id).downloads != expected and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1)  # several flushes later: nothing counted twice
        assert api.model_info(repo_id).downloads == expected
    finally:
        stop_server(srv.proc)


def test_counted_heads_keep_other_answers_cached_and_survive_a_restart(tmp_path: Path):
    port, data = free_port(), tmp_path / "data"
    env = {"COVE_DOWNLOAD_FLUSH_INTERVAL": "3600", "COVE_SCAN_INTERVAL": "0"}
    srv = start_server(data, port, **env)
    try:
        api, repo_id = _model(srv, "erin")
        other = f"{srv.endpoint}/{repo_id}/resolve/main/a.txt"
        assert [httpx.head(other).status_code for _ in range(3)] == [200] * 3  # cached now
        before = _clears(srv.endpoint)
        with httpx.Client() as c:
            codes = [c.head(f"{srv.endpoint}/{repo_id}/resolve/main/config.json").status_code for _ in range(25)]
            codes += [c.head(other).status_code for _ in range(3)]
        assert codes == [200] * 28
        assert _clears(srv.endpoint) == before  # 25 counted downloads, and a.txt's answer was never dropped
        stop_server(srv.proc)  # graceful: the counts still in memory are written at shutdown
        srv = start_server(data, port, **env)
        assert api.model_info(repo_id).downloads == 25
    finally:
        stop_server(srv.proc)
