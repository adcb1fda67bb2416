"""The engine's bounds against a real server of its own: a model unloaded when idle, 429 past a model's queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import SERVER_ENV, free_port, start_server, stop_server
from tests.inference.conftest import _bert, push
from tests.inference.test_engine import TEXT, _worker_pid

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def limited(tmp_path_factory):  # noqa: ANN201
    """Models idle for 3 s are stopped; 2 requests may wait per model."""
    data = tmp_path_factory.mktemp("inference-limits") / "data"
    srv = start_server(data, free_port(), COVE_INFERENCE_IDLE_UNLOAD="3", COVE_INFERENCE_MAX_QUEUE="2")
    env = {**SERVER_ENV, "COVE_DATA": str(data)}
    run = [sys.executable, "-m", "cove"]
    subprocess.run([*run, "user", "add", "dora", "--password", "dora-password"], env=env, check=True,
                   capture_output=True)
    token = subprocess.run([*run, "token", "create", "dora", "--role", "write", "--name", "t"], env=env, check=True,
                           capture_output=True, text=True).stdout.strip()
    try:
        yield srv, token
    finally:
        stop_server(srv.proc)


def _gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.2)
    return False


def test_idle_model_is_unloaded_and_loaded_again(limited, tmp_path) -> None:
    from huggingface_hub import HfApi

    srv, token = limited
    api = HfApi(endpoint=srv.endpoint, token=token)
    model, tok = _bert(tmp_path / "m", "BertForSequenceClassification", ["neg", "pos"])
    api.create_repo("dora/idle")
    sha = push(api, model, tok, tmp_path / "m", "dora/idle")
    url, h = f"{srv.endpoint}/models/dora/idle", {"Authorization": f"Bearer {token}"}
    first = httpx.post(url, json={"inputs": TEXT}, headers=h, timeout=120)
    assert first.status_code == 200
    pid = _worker_pid(sha, srv.data)
    assert _gone(pid, 30), "the idle model's worker was not stopped"
    again = httpx.post(url, json={"inputs": TEXT}, headers=h, timeout=120)
    assert again.status_code == 200 and again.json() == first.json()
    assert _worker_pid(sha, srv.data) != pid


def test_past_the_queue_bound_429(limited, tmp_path) -> None:
    from huggingface_hub import HfApi

    srv, token = limited
    api = HfApi(endpoint=srv.endpoint, token=token)
    model, tok = _bert(tmp_path / "m", "BertForSequenceClassification", ["neg", "pos"], seed=2)
    api.create_repo("dora/queue")
    sha = push(api, model, tok, tmp_path / "m", "dora/queue")
    url, h = f"{srv.endpoint}/models/dora/queue", {"Authorization": f"Bearer {token}"}
    assert httpx.post(url, json={"inputs": TEXT}, headers=h, timeout=120).status_code == 200
    pid = _worker_pid(sha, srv.data)
    os.kill(pid, signal.SIGSTOP)  # one batch is held by the worker; at most 2 requests more may wait
    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(httpx.post, url, json={"inputs": TEXT}, headers=h, timeout=120) for _ in range(8)]
            time.sleep(2)
            os.kill(pid, signal.SIGCONT)
            answers = [f.result() for f in futures]
    finally:
        os.kill(pid, signal.SIGCONT)
    codes = sorted(r.status_code for r in answers)
    assert set(codes) == {200, 429} and codes.count(429) >= 4, codes  # at most 2 sent to the worker, 2 waiting
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.headers["retry-after"] == "1" and "queue is full" in refused.json()["error"]


def test_inference_turned_off(tmp_path) -> None:
    """`COVE_INFERENCE_ENABLED=false`: the routes answer 404 (the hub itself goes on)."""
    srv = start_server(tmp_path / "data", free_port(), COVE_INFERENCE_ENABLED="false")
    try:
        for path in ("/models/someone/model", "/models/someone/model/pipeline/fill-mask", "/v1/embeddings"):
            r = httpx.post(f"{srv.endpoint}{path}", json={"inputs": "x", "model": "someone/model"})
            assert r.status_code == 404 and "turned off" in r.json()["error"], path
        assert httpx.get(f"{srv.endpoint}/v1/models").status_code == 404
        assert httpx.get(f"{srv.endpoint}/api/models").status_code == 200
    finally:
        stop_server(srv.proc)
