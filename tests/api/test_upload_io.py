"""Uploads write each byte once (issue 16 item 5): multipart LFS parts land in place in one temp file that
becomes the blob; the sha256 is still checked before anything is published, and a wrong one leaves no blob."""

from __future__ import annotations

import hashlib
import os

import httpx
import psutil

from tests.conftest import ENDPOINT

MiB = 1024 * 1024


def _auth(api) -> dict:  # noqa: ANN001
    return {"authorization": f"Bearer {api.token}"}


def _written(server) -> int:  # noqa: ANN001
    """Bytes the server process has written (files and sockets: `wchar`)."""
    return psutil.Process(server.proc.pid).io_counters().write_chars


def _multipart(api, repo_id: str, oid: str, size: int) -> dict:  # noqa: ANN001
    batch = httpx.post(f"{ENDPOINT}/{repo_id}.git/info/lfs/objects/batch", headers=_auth(api), json={
        "operation": "upload", "transfers": ["basic", "multipart"],
        "objects": [{"oid": oid, "size": size}]}).json()
    return batch["objects"][0]


def _upload_parts(action: dict, data: bytes, order: list[int] | None = None) -> list[dict]:
    header = action["header"]
    chunk = int(header["chunk_size"])
    urls = {int(k): v for k, v in header.items() if k.isdigit()}
    parts = []
    for n in order or sorted(urls):
        r = httpx.put(urls[n], content=data[(n - 1) * chunk:n * chunk], timeout=60)
        assert r.status_code == 200, r.text
        parts.append({"partNumber": n, "etag": r.headers["etag"]})
    return sorted(parts, key=lambda p: p["partNumber"])


def _leftovers(server, repo_id: str, oid: str) -> list:  # noqa: ANN001
    root = server.data / "tmp" / "multipart"
    return [p for p in root.glob(f"*-{oid}")] if root.exists() else []


def test_multipart_upload_writes_each_byte_once(api, repo_factory, no_xet, server, tmp_path):
    repo_id = repo_factory("once")
    data = os.urandom(70 * MiB)  # over the 64 MiB multipart threshold: three parts
    f = tmp_path / "big.bin"
    f.write_bytes(data)
    before = _written(server)
    api.upload_file(path_or_fileobj=str(f), path_in_repo="big.bin", repo_id=repo_id)
    written = _written(server) - before
    assert written < 1.3 * len(data), f"server wrote {written / MiB:.0f} MiB for a {len(data) // MiB} MiB upload"
    oid = hashlib.sha256(data).hexdigest()
    assert not _leftovers(server, repo_id, oid)
    r = httpx.get(f"{ENDPOINT}/{repo_id}/resolve/main/big.bin", headers={"range": f"bytes={33 * MiB}-{34 * MiB}"})
    assert r.content == data[33 * MiB:34 * MiB + 1]


def test_multipart_parts_out_of_order_and_a_wrong_hash(api, repo_factory, server):
    repo_id = repo_factory("order")
    data = os.urandom(65 * MiB + 5)
    oid = hashlib.sha256(data).hexdigest()
    # A wrong hash: the parts land, completion refuses, no blob and no temp file stay.
    liar = hashlib.sha256(b"other" + data).hexdigest()
    obj = _multipart(api, repo_id, liar, len(data))
    parts = _upload_parts(obj["actions"]["upload"], data)
    r = httpx.post(obj["actions"]["upload"]["href"], json={"oid": liar, "parts": parts})
    assert r.status_code == 400 and "does not match" in r.text
    assert not _leftovers(server, repo_id, liar)
    assert not list(server.data.rglob(liar))
    again = _multipart(api, repo_id, liar, len(data))
    assert "actions" in again  # still to be uploaded: nothing was kept
    # Parts out of order (hashed at completion, read back once) and one part sent twice: still verified.
    obj = _multipart(api, repo_id, oid, len(data))
    parts = _upload_parts(obj["actions"]["upload"], data, order=[3, 1, 2, 1])
    r = httpx.post(obj["actions"]["upload"]["href"], json={"oid": oid, "parts": parts})
    assert r.status_code == 200, r.text
    assert not _leftovers(server, repo_id, oid)
    verify = obj["actions"]["verify"]["href"]
    assert httpx.post(verify, json={"oid": oid, "size": len(data)}, headers=_auth(api)).status_code == 200
    # A part missing: refused.
    obj = _multipart(api, repo_id, liar, len(data))
    _upload_parts(obj["actions"]["upload"], data, order=[1, 3])
    r = httpx.post(obj["actions"]["upload"]["href"], json={"oid": liar, "parts": []})
    assert r.status_code == 400 and "Missing parts" in r.text
