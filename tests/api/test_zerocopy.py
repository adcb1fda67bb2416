"""Zero-copy downloads (issue 16 item 4): uvicorn with `cove.zerocopy` offers ASGI pathsend/zerocopy and sends
files with sendfile; `/resolve` and LFS GETs keep every header clients read, and ranges."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
import uuid

import httpx
import pytest
from huggingface_hub import CommitOperationAdd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from tests.conftest import ENDPOINT, free_port


def _serve(app) -> tuple[str, object]:  # noqa: ANN001
    import uvicorn

    from cove.zerocopy import ZeroCopyHttpToolsProtocol

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=ZeroCopyHttpToolsProtocol,
                                        log_level="warning", lifespan="off"))
    threading.Thread(target=srv.run, daemon=True).start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", srv


def test_protocol_offers_pathsend_and_sends_files(tmp_path):
    from cove.api.ranges import BlobFileResponse

    data = os.urandom(5 * 1024 * 1024 + 123)
    path = tmp_path / "blob"
    path.write_bytes(data)
    seen: list[dict] = []

    async def blob(request: Request):  # noqa: ANN202
        seen.append(dict(request.scope.get("extensions") or {}))
        return BlobFileResponse(str(path), headers={"ETag": '"x"', "X-Linked-Size": str(len(data))})

    async def sent(request: Request):  # noqa: ANN202 - a response that writes after the file
        async def app(scope, receive, send):  # noqa: ANN001, ANN202
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", str(len(data) + 3).encode())]})
            with open(path, "rb") as fh:
                await send({"type": "http.response.zerocopy", "file": fh.fileno(), "count": len(data),
                            "more_body": True})
            await asyncio.sleep(0)
            await send({"type": "http.response.body", "body": b"end"})
        return app

    class Raw:
        async def __call__(self, scope, receive, send):  # noqa: ANN001, ANN204
            await (await sent(Request(scope)))(scope, receive, send)

    app = Starlette(routes=[Route("/blob", blob), Route("/raw", Raw())])
    url, srv = _serve(app)
    try:
        with httpx.Client(timeout=30) as c:
            for _ in range(2):  # keep-alive: a second response on the same connection
                r = c.get(f"{url}/blob")
                assert r.status_code == 200 and r.content == data
                assert r.headers["etag"] == '"x"' and r.headers["x-linked-size"] == str(len(data))
            r = c.get(f"{url}/blob", headers={"Range": "bytes=1000-2000999"})
            assert r.status_code == 206 and r.content == data[1000:2001000]
            assert r.headers["content-range"] == f"bytes 1000-2000999/{len(data)}"
            r = c.get(f"{url}/blob", headers={"Range": "bytes=-10"})
            assert r.status_code == 206 and r.content == data[-10:]
            r = c.head(f"{url}/blob")
            assert r.status_code == 200 and r.headers["content-length"] == str(len(data)) and not r.content
            r = c.get(f"{url}/raw")
            assert r.content == data + b"end"
    finally:
        srv.should_exit = True
    assert "http.response.pathsend" in seen[0] and "http.response.zerocopy" in seen[0]


@pytest.fixture
def lfs_repo(api, repo_factory, no_xet):
    repo_id = repo_factory(f"zc-{uuid.uuid4().hex[:8]}")
    data = os.urandom(3 * 1024 * 1024 + 7)
    api.create_commit(repo_id, operations=[CommitOperationAdd("w.bin", data)], commit_message="w")
    return repo_id, data


def test_resolve_and_lfs_get_keep_headers_and_ranges(api, alice, lfs_repo):
    repo_id, data = lfs_repo
    oid = hashlib.sha256(data).hexdigest()
    sha = api.repo_info(repo_id).sha
    auth = {"authorization": f"Bearer {alice.token}"}
    url = f"{ENDPOINT}/{repo_id}/resolve/main/w.bin"
    r = httpx.get(url, headers=auth)
    assert r.status_code == 200 and r.content == data
    for k, v in {"etag": f'"{oid}"', "x-linked-etag": f'"{oid}"', "x-linked-size": str(len(data)),
                 "x-repo-commit": sha, "accept-ranges": "bytes", "content-length": str(len(data))}.items():
        assert r.headers[k] == v, k
    r = httpx.get(url, headers={**auth, "range": "bytes=100-1048675"})
    assert r.status_code == 206 and r.content == data[100:1048676]
    assert r.headers["content-range"] == f"bytes 100-1048675/{len(data)}"
    assert r.headers["x-repo-commit"] == sha and r.headers["etag"] == f'"{oid}"'
    r = httpx.get(url, headers={**auth, "range": f"bytes={len(data)}-"})
    assert r.status_code == 416
    batch = httpx.post(f"{ENDPOINT}/{repo_id}.git/info/lfs/objects/batch", headers=auth, json={
        "operation": "download", "objects": [{"oid": oid, "size": len(data)}]}).json()
    href = batch["objects"][0]["actions"]["download"]["href"]
    r = httpx.get(href)
    assert r.status_code == 200 and r.content == data and r.headers["etag"] == f'"{oid}"'
    r = httpx.get(href, headers={"range": "bytes=5-9"})
    assert r.status_code == 206 and r.content == data[5:10]
    assert r.headers["content-range"] == f"bytes 5-9/{len(data)}"
