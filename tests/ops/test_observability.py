"""Operations: `/healthz`, `/readyz`, Prometheus `/metrics`, and an access log that never holds a secret."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ENDPOINT, SERVER_ENV, free_port, start_server, stop_server


def _samples(endpoint: str = ENDPOINT) -> dict[tuple, float]:
    """(sample name, sorted labels) -> value, from a scrape parsed by Prometheus' own text parser."""
    r = httpx.get(f"{endpoint}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _get(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _cli(data, *args: str) -> str:
    env = {**SERVER_ENV, "COVE_DATA": str(data)}
    return subprocess.run([sys.executable, "-m", "cove", *args], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_healthz_and_readyz(server):
    r = httpx.get(f"{ENDPOINT}/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = httpx.get(f"{ENDPOINT}/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {"database": "ok", "blobs": "ok", "repos": "ok"}


def test_readyz_fails_while_repo_storage_is_gone(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data, free_port())
    try:
        assert httpx.get(f"{srv.endpoint}/readyz").status_code == 200
        (data / "repos").rename(data / "repos-away")
        r = httpx.get(f"{srv.endpoint}/readyz")
        assert r.status_code == 503
        checks = r.json()["checks"]
        assert checks["repos"] != "ok" and checks["database"] == "ok" and checks["blobs"] == "ok"
        assert str(data) not in r.text  # no server paths in a public answer
        assert httpx.get(f"{srv.endpoint}/healthz").status_code == 200  # alive, though not ready
        (data / "repos-away").rename(data / "repos")
        assert httpx.get(f"{srv.endpoint}/readyz").status_code == 200
    finally:
        stop_server(srv.proc)


def test_metrics_count_requests_uploads_and_commits(api, repo_factory, monkeypatch):
    from huggingface_hub import constants

    repo_id = repo_factory("metrics")
    before = _samples()
    api.upload_file(path_or_fileobj=b"hello\n", path_in_repo="README.md", repo_id=repo_id)  # inline commit
    api.upload_file(path_or_fileobj=os.urandom(200_000), path_in_repo="xet.bin", repo_id=repo_id)  # Xet
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    api.upload_file(path_or_fileobj=os.urandom(5000), path_in_repo="lfs.bin", repo_id=repo_id)  # LFS
    for _ in range(3):  # HEAD /resolve: the second and third are HeadCache's
        assert httpx.head(f"{ENDPOINT}/{repo_id}/resolve/main/README.md",
                          headers={"authorization": f"Bearer {api.token}"}).status_code == 200
    httpx.get(f"{ENDPOINT}/no-such-page/{uuid.uuid4().hex}/x/y/z/w")
    after = _samples()

    def moved(name: str, **labels: str) -> float:
        return _get(after, name, **labels) - _get(before, name, **labels)

    commit = "/api/{plural}/{ns}/{name}/commit/{rev:path}"
    assert moved("cove_http_requests_total", method="POST", route=commit, status="200") >= 3
    assert moved("cove_http_request_duration_seconds_count", method="POST", route=commit) >= 3
    assert moved("cove_http_request_duration_seconds_bucket", method="POST", route=commit, le="+Inf") >= 3
    assert moved("cove_commits_total", via="api") >= 3
    assert moved("cove_uploads_total", protocol="lfs", kind="object") >= 1
    assert moved("cove_upload_bytes_total", protocol="lfs") >= 5000
    assert moved("cove_uploads_total", protocol="xet", kind="xorb") >= 1
    assert moved("cove_uploads_total", protocol="xet", kind="shard") >= 1
    assert moved("cove_http_received_bytes_total", route=commit) > 0
    assert moved("cove_http_requests_total", method="HEAD", route="/{ns}/{name}/resolve/{rev}/{path:path}",
                  status="200") >= 3
    assert moved("cove_http_requests_total", method="GET", route="(unmatched)", status="404") >= 1
    assert ("cove_http_requests_in_progress", ()) in after
    # Labels are route templates: no repo name, no raw path, so the series stay few.
    text = httpx.get(f"{ENDPOINT}/metrics").text
    assert repo_id.split("/")[1] not in text and "no-such-page" not in text


def test_access_log_names_routes_and_never_a_secret(tmp_path):
    data = tmp_path / "data"
    port = free_port()
    srv = start_server(data, port, COVE_ACCESS_LOG="json")
    try:
        user = f"log{uuid.uuid4().hex[:6]}"
        _cli(data, "user", "add", user, "--password", "a-long-password-1")
        token = _cli(data, "token", "create", user, "--role", "write", "--name", "t").splitlines()[-1].strip()
        auth = {"authorization": f"Bearer {token}"}
        repo = f"{user}/r"
        assert httpx.post(f"{srv.endpoint}/api/repos/create", headers=auth,
                          json={"name": "r", "type": "model"}).status_code == 200
        body = os.urandom(3000)
        oid = hashlib.sha256(body).hexdigest()
        batch = f"{srv.endpoint}/{repo}.git/info/lfs/objects/batch"
        up = httpx.post(batch, headers=auth, json={"operation": "upload", "objects": [{"oid": oid, "size": 3000}]})
        href = up.json()["objects"][0]["actions"]["upload"]["href"]
        upload_secret = href.rstrip("/").rsplit("/", 1)[1]
        assert httpx.put(href, content=body).status_code == 200
        lines = [{"key": "header", "value": {"summary": "s"}},
                 {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": oid, "size": 3000}}]
        assert httpx.post(f"{srv.endpoint}/api/models/{repo}/commit/main", headers=auth,
                          content="\n".join(json.dumps(x) for x in lines)).status_code == 200
        down = httpx.post(batch, headers=auth, json={"operation": "download",
                                                     "objects": [{"oid": oid, "size": 3000}]})
        dhref = down.json()["objects"][0]["actions"]["download"]["href"]
        download_secret = dhref.split("/lfs/objects/", 1)[1].split("?")[0]
        assert httpx.get(dhref).content == body
        assert httpx.get(f"{srv.endpoint}/api/whoami-v2?token={token}").status_code in (200, 401)
        for _ in range(2):  # the second is HeadCache's
            assert httpx.head(f"{srv.endpoint}/{repo}/resolve/main/w.bin", headers=auth).status_code == 200
        stop_server(srv.proc)
        log = srv.log.read_text()
        for secret in (token, upload_secret, download_secret, "a-long-password-1"):
            assert secret not in log
        entries = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
        by_route = {(e["method"], e["route"]): e for e in entries}
        put = by_route[("PUT", "/lfs/objects/{token}")]
        assert put["status"] == 200 and put["bytes_in"] == 3000 and put["request_id"]
        assert by_route[("GET", "/lfs/objects/{token}")]["bytes_out"] == 3000
        commit = by_route[("POST", "/api/{plural}/{ns}/{name}/commit/{rev:path}")]
        assert commit["user"] == user and commit["status"] == 200 and commit["duration_ms"] >= 0
        heads = [e for e in entries if e["method"] == "HEAD"]
        assert len(heads) == 2 and all(e["route"] == "/{ns}/{name}/resolve/{rev}/{path:path}" for e in heads)
    finally:
        stop_server(srv.proc)


def test_no_raw_path_in_the_log_even_at_debug(tmp_path):
    """uvicorn's own access log (raw paths and queries) stays off at every log level."""
    data, port = tmp_path / "data", free_port()
    log = tmp_path / "debug.log"
    env = {**SERVER_ENV, "COVE_DATA": str(data), "COVE_PORT": str(port), "COVE_ACCESS_LOG": "text"}
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "cove", "serve", "--log-level", "debug"], env=env,
                                stdout=fh, stderr=subprocess.STDOUT)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{endpoint}/api/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        secret = uuid.uuid4().hex
        forged = {"x-request-id": "id1 10.0.0.9 admin DELETE /api/repos/delete 200"}
        assert httpx.get(f"{endpoint}/lfs/objects/{secret}", headers=forged).status_code in (400, 401, 403, 404)
        assert httpx.get(f"{endpoint}/cas/fetch/{'0' * 64}?r=0-1&exp=1&sig={secret}x").status_code >= 400
    finally:
        stop_server(proc)
    text = log.read_text()
    assert secret not in text
    assert "GET /lfs/objects/{token} " in text  # Cove's own line, with the route template
    assert "id1_10.0.0.9_admin_DELETE_/api/repos/delete_200 127.0.0.1 anonymous GET" in text  # one field
