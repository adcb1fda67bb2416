"""Behind nginx with COVE_ACCEL_REDIRECT (issue 16 item 4, the scale-out mode): Cove answers a blob GET with
`X-Accel-Redirect` and nginx sends the bytes, with every header clients read and ranges."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
import uuid

import httpx
import pytest
from huggingface_hub import CommitOperationAdd

from tests.conftest import free_port, start_server, stop_server

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
KEPT = ("etag", "x-repo-commit", "x-linked-etag", "x-linked-size", "x-xet-hash", "link", "x-request-id",
        "access-control-expose-headers", "x-content-type-options")  # nginx passes Content-Disposition itself


def _nginx_conf(folder, port: int, upstream: int, blobs) -> str:  # noqa: ANN001
    adds = "\n".join(f"            add_header {h} $upstream_http_{h.replace('-', '_')} always;" for h in KEPT)
    temps = "\n".join(f"    {k}_temp_path {folder}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{"user root;" if os.geteuid() == 0 else ""}
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
{temps}
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header Host $http_host;
        }}
        location /_cove_blobs/ {{
            internal;
            alias {blobs}/;
            etag off;
            default_type application/octet-stream;
{adds}
        }}
    }}
}}
"""


@pytest.fixture
def behind_nginx(server, tmp_path):
    if not os.path.exists(NGINX):
        pytest.skip("nginx is not installed")
    cove_port, port = free_port(), free_port()
    # A second `cove serve` on the session server's data (same users, repos and blobs), redirecting to nginx.
    srv = start_server(server.data, cove_port, COVE_ACCEL_REDIRECT="/_cove_blobs",
                       COVE_ENDPOINT=f"http://127.0.0.1:{port}")
    conf = tmp_path / "nginx.conf"
    conf.write_text(_nginx_conf(tmp_path, port, cove_port, (server.data / "blobs").resolve()))
    proc = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/agent-harnesses", timeout=1)
                break
            except httpx.HTTPError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{cove_port}"
    finally:
        proc.terminate()
        proc.wait(10)
        stop_server(srv.proc)


def test_blob_get_through_x_accel_redirect(api, alice, repo_factory, no_xet, behind_nginx):
    front, cove = behind_nginx
    repo_id = repo_factory(f"accel-{uuid.uuid4().hex[:6]}")
    data = os.urandom(2 * 1024 * 1024 + 3)
    api.create_commit(repo_id, operations=[CommitOperationAdd("w.bin", data)], commit_message="w")
    oid = hashlib.sha256(data).hexdigest()
    auth = {"authorization": f"Bearer {alice.token}"}
    path = f"/{repo_id}/resolve/main/w.bin"
    # Cove itself: no body, the redirect to the internal location.
    r = httpx.get(cove + path, headers=auth)
    assert r.status_code == 200 and r.content == b""
    assert r.headers["x-accel-redirect"].startswith("/_cove_blobs/lfs/")
    # Through nginx: the bytes, and every header clients read.
    direct = httpx.head(cove + path, headers=auth)
    r = httpx.get(front + path, headers=auth)
    assert r.status_code == 200 and r.content == data
    assert "x-accel-redirect" not in r.headers
    for k in ("etag", "x-repo-commit", "x-linked-etag", "x-linked-size", "content-disposition"):
        assert r.headers[k] == direct.headers[k], k
    assert r.headers["etag"] == f'"{oid}"' and r.headers["accept-ranges"] == "bytes"
    r = httpx.get(front + path, headers={**auth, "range": "bytes=10-1048585"})
    assert r.status_code == 206 and r.content == data[10:1048586]
    assert r.headers["content-range"] == f"bytes 10-1048585/{len(data)}"
    assert r.headers["x-repo-commit"] == direct.headers["x-repo-commit"]
    # The internal location is not reachable from outside.
    assert httpx.get(front + "/_cove_blobs/lfs/" + oid[:2]).status_code == 404
    # A HEAD is Cove's own answer.
    assert httpx.head(front + path, headers=auth).headers["content-length"] == str(len(data))
