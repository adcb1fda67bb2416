"""The engine behind the routes: batches, a worker killed mid-request, loading, pushes and revisions, settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import DATA, ENDPOINT, SERVER_ENV, free_port, start_server, stop_server

torch = pytest.importorskip("torch")
TEXT = "the stock market rises on strong earnings"


def _worker_pid(sha: str, data: Path = DATA) -> int:
    """The worker process of the server on `data` serving the model at commit `sha` (its command line names the
    snapshot folder, ``<data>/inference/<repo pk>/<sha>``)."""
    folder = str(data / "inference").encode()
    for _ in range(50):
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"cove.inference.worker" in cmd and any(a.startswith(folder) and a.endswith(sha.encode())
                                                       for a in cmd):
                return int(pid)
        time.sleep(0.1)
    raise AssertionError(f"no worker for {sha}")


def _post(m, token: str, **kw) -> httpx.Response:  # noqa: ANN001
    return httpx.post(m.url, json={"inputs": TEXT}, headers={"Authorization": f"Bearer {token}"}, timeout=120, **kw)


def _scores(model, tokenizer) -> dict[str, float]:  # noqa: ANN001
    with torch.no_grad():
        probs = torch.softmax(model(**tokenizer(TEXT, return_tensors="pt")).logits[0], -1)
    return {model.config.id2label[i]: float(p) for i, p in enumerate(probs)}


def test_requests_arriving_together_run_as_one_batch(models, alice) -> None:
    m = models["ner"]
    first = _post(m, alice.token)
    assert first.status_code == 200
    pid = _worker_pid(first.headers["x-repo-commit"])
    os.kill(pid, signal.SIGSTOP)  # the worker is busy: what arrives meanwhile waits in the queue
    try:
        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(_post, m, alice.token) for _ in range(16)]
            time.sleep(3)
            os.kill(pid, signal.SIGCONT)
            answers = [f.result() for f in futures]
    finally:
        os.kill(pid, signal.SIGCONT)
    assert all(r.status_code == 200 and r.json() == first.json() for r in answers)
    sizes = sorted(int(r.headers["x-inference-batch"]) for r in answers)
    # What arrived while the worker was stopped waited, and ran as one batch (on a busy machine, a few requests
    # may reach the server only after the worker goes on).
    assert sizes[-1] >= 8 and sizes.count(sizes[-1]) == sizes[-1], sizes


def test_worker_killed_mid_request_then_a_fresh_one(models, alice) -> None:
    m = models["qa"]
    body = {"inputs": {"question": "what rises", "context": TEXT}}
    h = {"Authorization": f"Bearer {alice.token}"}
    ok = httpx.post(m.url, json=body, headers=h, timeout=120)
    pid = _worker_pid(ok.headers["x-repo-commit"])
    os.kill(pid, signal.SIGSTOP)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.post, m.url, json=body, headers=h, timeout=120)
        time.sleep(0.5)
        os.kill(pid, signal.SIGKILL)  # as the out-of-memory killer would
        failed = pending.result()
    assert failed.status_code == 500 and failed.headers["x-error-code"] == "InferenceWorkerFailed"
    again = httpx.post(m.url, json=body, headers=h, timeout=120)
    assert again.status_code == 200 and again.json() == ok.json()
    assert _worker_pid(ok.headers["x-repo-commit"]) != pid
    assert httpx.get(f"{ENDPOINT}/api/models/{m.repo_id}", headers=h).status_code == 200  # the hub is fine


def test_loading_answers_503_when_asked_not_to_wait(api, models, alice, tmp_path) -> None:
    from tests.inference.conftest import _bert, push

    model, tok = _bert(tmp_path / "m", "BertForMaskedLM")
    repo_id = f"alice/inf-load-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    push(api, model, tok, tmp_path / "m", repo_id)
    url, h = f"{ENDPOINT}/models/{repo_id}", {"Authorization": f"Bearer {alice.token}"}
    r = httpx.post(url, json={"inputs": "the [MASK] rises"}, headers={**h, "X-Wait-For-Model": "false"})
    assert r.status_code == 503 and r.json()["estimated_time"] > 0 and r.headers["x-error-code"] == "ModelLoading"
    r = httpx.post(url, json={"inputs": "the [MASK] rises"}, headers=h, timeout=120)  # waits for the load
    assert r.status_code == 200 and len(r.json()) == 5


def test_push_reloads_and_revision_pins(api, models, alice, tmp_path) -> None:
    from tests.inference.conftest import _bert, push

    m = models["classifier"]
    old = _post(m, alice.token)
    old_sha = old.headers["x-repo-commit"]
    assert {o["label"]: o["score"] for o in old.json()[0]} == pytest.approx(_scores(m.model, m.tokenizer), abs=1e-5)
    model, tok = _bert(tmp_path / "v2", "BertForSequenceClassification", ["Bearish", "Bullish", "Neutral"], seed=5)
    new_sha = push(api, model, tok, tmp_path / "v2", m.repo_id)
    new = _post(m, alice.token)
    assert new.headers["x-repo-commit"] == new_sha != old_sha
    assert {o["label"]: o["score"] for o in new.json()[0]} == pytest.approx(_scores(model, tok), abs=1e-5)
    pinned = _post(m, alice.token, params={"revision": old_sha})
    assert pinned.headers["x-repo-commit"] == old_sha and pinned.json() == old.json()
    # Put the first weights back, for the other tests.
    push(api, m.model, m.tokenizer, m.folder, m.repo_id)


@pytest.fixture(scope="module")
def own(tmp_path_factory):  # noqa: ANN201
    """A server of its own: inference only for the `team` namespace, inputs up to 2,000 bytes, memory for one
    loaded model, 2 requests in flight per caller."""
    data = tmp_path_factory.mktemp("inference-own") / "data"
    srv = start_server(data, free_port(), COVE_INFERENCE_NAMESPACES="team", COVE_INFERENCE_MAX_INPUT="2000",
                       COVE_INFERENCE_MEMORY=str(1 << 20), COVE_INFERENCE_MAX_PER_USER="2")
    env = {**SERVER_ENV, "COVE_DATA": str(data)}

    def cove(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "cove", *args], env=env, capture_output=True, text=True,
                              check=True).stdout.strip()

    cove("user", "add", "carol", "--password", "carol-password")
    token = cove("token", "create", "carol", "--role", "write", "--name", "t")
    cove("org", "add", "team", "--owner", "carol")
    try:
        yield srv, token
    finally:
        stop_server(srv.proc)


def test_settings_namespaces_input_cap_memory_budget(own, tmp_path) -> None:
    from huggingface_hub import HfApi, InferenceClient
    from huggingface_hub.errors import HfHubHTTPError

    from tests.inference.conftest import _bert, push

    srv, token = own
    api = HfApi(endpoint=srv.endpoint, token=token)
    model, tok = _bert(tmp_path / "m", "BertForSequenceClassification", ["neg", "pos"])
    shas = {}
    for repo_id in ("team/clf", "carol/clf"):
        api.create_repo(repo_id)
        shas[repo_id] = push(api, model, tok, tmp_path / "m", repo_id)
    other, tok2 = _bert(tmp_path / "m2", "BertForSequenceClassification", ["neg", "pos"], seed=3)
    api.create_repo("team/clf2")
    shas["team/clf2"] = push(api, other, tok2, tmp_path / "m2", "team/clf2")  # other weights: another commit
    out = InferenceClient(model=f"{srv.endpoint}/models/team/clf", token=token).text_classification(TEXT)
    assert sorted(o.label for o in out) == ["neg", "pos"]
    first = _worker_pid(shas["team/clf"], srv.data)
    # Over the memory budget, loading a second model unloads the least recently used idle one.
    InferenceClient(model=f"{srv.endpoint}/models/team/clf2", token=token).text_classification(TEXT)
    _worker_pid(shas["team/clf2"], srv.data)
    for _ in range(50):
        if not Path(f"/proc/{first}").exists():
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{first}").exists()
    # A caller's third request in flight is turned away (429); the first two are answered.
    pid = _worker_pid(shas["team/clf2"], srv.data)
    url, h = f"{srv.endpoint}/models/team/clf2", {"Authorization": f"Bearer {token}"}
    os.kill(pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(2) as pool:
            held = [pool.submit(httpx.post, url, json={"inputs": TEXT}, headers=h, timeout=120) for _ in range(2)]
            time.sleep(2)
            third = httpx.post(url, json={"inputs": TEXT}, headers=h, timeout=120)
            os.kill(pid, signal.SIGCONT)
            assert [f.result().status_code for f in held] == [200, 200]
    finally:
        os.kill(pid, signal.SIGCONT)
    assert third.status_code == 429 and third.headers["retry-after"] == "1"
    with pytest.raises(HfHubHTTPError) as err:
        InferenceClient(model=f"{srv.endpoint}/models/carol/clf", token=token).text_classification(TEXT)
    assert err.value.response.status_code == 403 and "not enabled" in err.value.response.headers["x-error-message"]
    r = httpx.post(f"{srv.endpoint}/models/team/clf", json={"inputs": "x" * 2100},
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 413


def test_a_model_that_cannot_load(api, alice) -> None:
    """Weights that don't load: a clean 500 naming the cause, and the hub goes on."""
    repo_id = f"alice/inf-broken-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=json.dumps({"architectures": ["BertForSequenceClassification"],
                                                "model_type": "bert"}).encode(), path_in_repo="config.json",
                    repo_id=repo_id)
    api.upload_file(path_or_fileobj=b"not safetensors", path_in_repo="model.safetensors", repo_id=repo_id)
    h = {"Authorization": f"Bearer {alice.token}"}
    for _ in range(2):  # the second answer comes from memory: no worker is started again at once
        r = httpx.post(f"{ENDPOINT}/models/{repo_id}", json={"inputs": TEXT}, headers=h, timeout=120)
        assert r.status_code == 500 and r.headers["x-error-code"] == "InferenceWorkerFailed"
        assert "could not be loaded" in r.json()["error"]
    assert httpx.get(f"{ENDPOINT}/api/models/{repo_id}", headers=h).status_code == 200

