"""Bytes straight between the stock clients and a real S3 server (SeaweedFS, SigV4 enforced): issue 17 items 1, 8.

Classic LFS multipart parts go to the store's presigned UploadPart URLs and completion verifies the sha256 in
the store before the object becomes visible; Xet downloads read presigned, ranged store URLs and xorb uploads
stream, verified, to their final key. Each test asserts where the bytes went (the process's counters, the
bucket's keys, no staging files) and that a tampered part or xorb leaves nothing visible.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download

from tests.conftest import Server, User, free_port, start_server, stop_server
from tests.storage.conftest import make_user

seaweed = pytest.importorskip("tests.fleet.seaweed")

MiB = 1 << 20
BIG = 64 * MiB + 1  # just over Cove's multipart threshold: parts of 32 MiB, 32 MiB and 1 byte
LFS_JSON = "application/vnd.git-lfs+json"


@dataclass
class Hub:
    server: Server
    s3: object  # tests.fleet.seaweed.SeaweedS3
    bucket: str
    user: User
    env: dict[str, str]

    def stats(self, endpoint: str | None = None) -> dict[str, int]:
        r = httpx.get(f"{endpoint or self.server.endpoint}/cas/_stats",
                      headers={"authorization": f"Bearer {self.user.token}"})
        r.raise_for_status()
        return r.json()

    def keys(self, prefix: str) -> list[str]:
        return self.s3.keys(self.bucket, f"hub/{prefix}")

    def open_uploads(self, prefix: str) -> list[dict]:
        resp = self.s3.client().list_multipart_uploads(Bucket=self.bucket, Prefix=f"hub/{prefix}")
        return resp.get("Uploads") or []


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    why = seaweed.unavailable()
    if why:
        pytest.skip(why)
    with seaweed.start_seaweed() as s3:
        root = tmp_path_factory.mktemp("s3native")
        env = {**s3.env(), "COVE_BLOB_BACKEND": "s3", "COVE_S3_BUCKET": s3.bucket,
               "COVE_S3_ENDPOINT_URL": s3.endpoint, "COVE_S3_PREFIX": "hub/"}
        server = start_server(root / "data", free_port(), **env)
        try:
            cli_env = {**{k: v for k, v in os.environ.items() if not k.startswith("COVE_")}, **env,
                       "COVE_DATA": str(server.data)}
            user = make_user(cli_env, "dora")
            yield Hub(server, s3, s3.bucket, user, env)
        finally:
            stop_server(server.proc)


@pytest.fixture
def repo(hub: Hub) -> str:
    api = HfApi(endpoint=hub.server.endpoint, token=hub.user.token)
    repo_id = f"dora/native-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id)
    return repo_id


def _no_multipart_files(hub: Hub) -> bool:
    folder = hub.server.data / "tmp" / "multipart"
    return not folder.exists() or not any(folder.iterdir())


@pytest.mark.no_xet
def test_multipart_lfs_parts_go_to_the_store(hub: Hub, repo: str, no_xet, tmp_path: Path) -> None:  # noqa: ANN001
    """HF_HUB_DISABLE_XET=1 upload_file of a file over the multipart threshold: the parts go to SeaweedFS's
    presigned URLs (Cove sees none of them), completion hashes the assembled object in the store, and only
    then does ``lfs/<oid>`` exist; no staging object, open upload or temp file is left."""
    data = os.urandom(BIG)
    sha = hashlib.sha256(data).hexdigest()
    before = hub.stats()
    api = HfApi(endpoint=hub.server.endpoint, token=hub.user.token)
    api.upload_file(path_or_fileobj=data, path_in_repo="big.bin", repo_id=repo)
    after = hub.stats()
    assert after.get("lfs_native_completed", 0) - before.get("lfs_native_completed", 0) == 1
    assert after.get("lfs_native_verify_bytes", 0) - before.get("lfs_native_verify_bytes", 0) == BIG
    assert hub.keys(f"lfs/{sha}") == [f"hub/lfs/{sha}"]
    assert hub.keys("lfs-staging/") == [] and hub.open_uploads("lfs-staging/") == []
    assert _no_multipart_files(hub)
    path = hf_hub_download(repo, "big.bin", endpoint=hub.server.endpoint, token=hub.user.token,
                           cache_dir=tmp_path / "cache")
    with open(path, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == sha


def _batch(hub: Hub, repo: str, oid: str, size: int) -> dict:
    r = httpx.post(f"{hub.server.endpoint}/{repo}.git/info/lfs/objects/batch",
                   headers={"authorization": f"Bearer {hub.user.token}", "content-type": LFS_JSON},
                   json={"operation": "upload", "transfers": ["basic", "multipart"],
                         "objects": [{"oid": oid, "size": size}]})
    r.raise_for_status()
    return r.json()["objects"][0]["actions"]["upload"]


def _put_parts(action: dict, body: bytes) -> list[dict]:
    header = action["header"]
    chunk = int(header["chunk_size"])
    urls = [header[k] for k in sorted(k for k in header if k.isdigit())]
    parts = []
    for i, url in enumerate(urls):
        r = httpx.put(url, content=body[i * chunk:(i + 1) * chunk], timeout=120)
        assert r.status_code == 200, r.text
        parts.append({"partNumber": i + 1, "etag": r.headers["etag"]})
    return parts


def test_multipart_complete_is_idempotent_across_processes_and_refuses_tampering(hub: Hub, repo: str) -> None:
    """A retried ``complete`` on another process, after the object is stored, answers 200; a part whose bytes
    differ from the announced sha256 is refused at completion and nothing becomes visible."""
    data = os.urandom(BIG)
    oid = hashlib.sha256(data).hexdigest()

    # Tampered: the last part (1 byte) flipped. The store assembles it; Cove's hash refuses it.
    action = _batch(hub, repo, oid, BIG)
    assert all(action["header"][k].startswith(hub.s3.endpoint + "/") for k in action["header"] if k.isdigit())
    # Each part URL takes exactly its part's length (Content-Length is signed): nothing more can be parked.
    assert httpx.put(action["header"]["00003"], content=b"ab").status_code == 403
    bad = bytearray(data)
    bad[-1] ^= 1
    parts = _put_parts(action, bytes(bad))
    r = httpx.post(action["href"], json={"oid": oid, "parts": parts}, timeout=120)
    assert r.status_code == 400 and "rejected" in r.headers.get("x-error-message", r.text)
    assert hub.keys(f"lfs/{oid}") == [] and hub.keys("lfs-staging/") == []
    # Wrong ETags (parts the store never received) are refused too.
    action = _batch(hub, repo, oid, BIG)
    r = httpx.post(action["href"], json={"oid": oid, "parts": [
        {"partNumber": i, "etag": '"0123456789abcdef0123456789abcdef"'} for i in (1, 2, 3)]})
    assert r.status_code == 400
    assert hub.keys(f"lfs/{oid}") == [] and hub.open_uploads("lfs-staging/") == []

    # Honest upload: complete on this process, then the client's retry lands on another one.
    action = _batch(hub, repo, oid, BIG)
    parts = _put_parts(action, data)
    assert httpx.post(action["href"], json={"oid": oid, "parts": parts}, timeout=120).status_code == 200
    other = start_server(hub.server.data, free_port(), **hub.env)
    try:
        retry = action["href"].replace(hub.server.endpoint, other.endpoint)
        r = httpx.post(retry, json={"oid": oid, "parts": parts}, timeout=120)
        assert r.status_code == 200, r.text
    finally:
        stop_server(other.proc)
    assert httpx.post(action["href"], json={"oid": oid, "parts": parts}).status_code == 200
    assert hub.keys(f"lfs/{oid}") == [f"hub/lfs/{oid}"]
    assert hub.keys("lfs-staging/") == [] and hub.open_uploads("lfs-staging/") == []
    assert _no_multipart_files(hub)


def _xet_token(hub: Hub, repo: str, scope: str) -> tuple[str, dict]:
    rev = "None" if scope == "write" else "main"
    r = httpx.get(f"{hub.server.endpoint}/api/models/{repo}/xet-{scope}-token/{rev}",
                  headers={"authorization": f"Bearer {hub.user.token}"})
    r.raise_for_status()
    body = r.json()
    return body["casUrl"], {"authorization": f"Bearer {body['accessToken']}"}


@pytest.mark.xet
def test_xet_bytes_go_between_client_and_store(hub: Hub, repo: str, tmp_path: Path) -> None:
    """hf_xet upload: xorbs stream, verified, to ``xorbs/`` (no ``xorb-staging/`` object, no temp file).
    hf_xet download: every fetch URL is a presigned store URL for one byte window, so no xorb byte crosses
    Cove (``fetch_bytes_sent`` stays 0). A plain GET (no Xet) still gets the bytes."""
    pytest.importorskip("hf_xet")
    data = os.urandom(6 * MiB)
    before = hub.stats()
    api = HfApi(endpoint=hub.server.endpoint, token=hub.user.token)
    api.upload_file(path_or_fileobj=data, path_in_repo="x.bin", repo_id=repo)
    mid = hub.stats()
    assert mid.get("xorb_bytes_to_store_direct", 0) > before.get("xorb_bytes_to_store_direct", 0)
    assert hub.keys("xorbs/") and hub.keys("xorb-staging/") == [] and hub.open_uploads("xorbs/") == []

    path = hf_hub_download(repo, "x.bin", endpoint=hub.server.endpoint, token=hub.user.token,
                           cache_dir=tmp_path / "cache")
    with open(path, "rb") as fh:
        assert fh.read() == data
    after = hub.stats()
    assert after.get("fetch_urls_direct", 0) > mid.get("fetch_urls_direct", 0)
    assert after.get("fetch_bytes_sent", 0) == mid.get("fetch_bytes_sent", 0)

    # The reconstruction's URLs point at the store and read their signed window only.
    auth = {"authorization": f"Bearer {hub.user.token}"}
    xet_hash = httpx.head(f"{hub.server.endpoint}/{repo}/resolve/main/x.bin", headers=auth).headers["x-xet-hash"]
    cas, cas_auth = _xet_token(hub, repo, "read")
    recon = httpx.get(f"{cas}/v1/reconstructions/{xet_hash}", headers=cas_auth).json()
    info = next(iter(recon["fetch_info"].values()))[0]
    assert info["url"].startswith(hub.s3.endpoint + "/")
    a, b = info["url_range"]["start"], info["url_range"]["end"]
    assert httpx.get(info["url"], headers={"Range": f"bytes={a}-{b}"}).status_code == 206
    assert httpx.get(info["url"], headers={"Range": f"bytes={a}-{b + 1}"}).status_code == 403
    assert httpx.get(info["url"]).status_code == 403

    # Clients without Xet: Cove reconstructs from the store.
    r = httpx.get(f"{hub.server.endpoint}/{repo}/resolve/main/x.bin", headers=auth)
    assert r.status_code == 200 and r.content == data


def test_tampered_xorb_is_refused_and_nothing_is_stored(hub: Hub, repo: str) -> None:
    """A xorb body streamed to the store is completed only when every chunk hashed right: a body with a
    flipped byte, or under another xorb's hash, leaves no object (and no open upload); a valid body, direct
    or through a grant, lands under ``xorbs/`` with no staging object."""
    from cove.xet import hashes
    from cove.xet import xorb as xorb_format

    cas, auth = _xet_token(hub, repo, "write")
    chunks = [os.urandom(60_000) for _ in range(200)]  # ~12 MiB: the store gets it in more than one part
    raw_hash, body = xorb_format.serialize_xorb(chunks, scheme=xorb_format.SCHEME_NONE)
    h = hashes.hash_to_hex(raw_hash)

    tampered = bytearray(body)
    tampered[len(body) // 2] ^= 1
    r = httpx.post(f"{cas}/v1/xorbs/default/{h}", content=bytes(tampered), headers=auth, timeout=60)
    assert r.status_code == 400
    other = hashes.hash_to_hex(bytes(32))
    assert httpx.post(f"{cas}/v1/xorbs/default/{other}", content=body, headers=auth, timeout=60).status_code == 400
    assert hub.keys(f"xorbs/{h}") == [] and hub.keys(f"xorbs/{other}") == [] and hub.open_uploads("xorbs/") == []

    grant = httpx.post(f"{cas}/v1/xorb-grants/default/{h}", json={"length": len(body)}, headers=auth).json()
    assert httpx.put(grant["url"], content=bytes(tampered), timeout=60).status_code == 400
    assert httpx.post(f"{cas}/v1/xorb-commits/default/{h}/grant/{grant['id']}", headers=auth).status_code == 404
    assert hub.keys(f"xorbs/{h}") == [] and hub.open_uploads("xorbs/") == []

    before = hub.stats()
    grant = httpx.post(f"{cas}/v1/xorb-grants/default/{h}", json={"length": len(body)}, headers=auth).json()
    assert httpx.put(grant["url"], content=body, timeout=60).status_code == 200
    r = httpx.post(f"{cas}/v1/xorb-commits/default/{h}/grant/{grant['id']}", headers=auth)
    assert r.status_code == 200 and r.json() == {"was_inserted": True}
    assert hub.keys(f"xorbs/{h}") == [f"hub/xorbs/{h}"] and hub.keys("xorb-staging/") == []
    after = hub.stats()
    assert after.get("xorb_bytes_to_store_direct", 0) - before.get("xorb_bytes_to_store_direct", 0) == len(body)


def test_abandoned_store_uploads_are_swept(hub: Hub) -> None:
    """What a client or a killed process leaves in the store (an open multipart upload, a staging object) is
    invisible, and `cove xet gc`'s sweep removes it once older than the grace: nothing younger."""
    from cove.storage.blobs_s3 import S3BlobStore

    bucket = hub.s3.new_bucket()
    store = S3BlobStore(bucket=bucket, prefix="hub", client=hub.s3.client())
    assert store.start_multipart("lfs-staging/abc-1")
    half = store.writer("xorbs/" + "ab" * 32, part_size=5 * MiB)
    half.write(os.urandom(6 * MiB))  # one part sent, never committed: a process killed mid-xorb
    store.put_bytes("lfs-staging/def-2", b"left by a killed completion")
    assert store.stat("xorbs/" + "ab" * 32) is None
    assert store.abort_stale_multipart("lfs-staging", 3600) == 0 and store.delete_stale("lfs-staging", 3600) == (0, 0)
    time.sleep(1.1)  # the store's timestamps have whole seconds
    assert store.abort_stale_multipart("lfs-staging", 0) == 1 and store.abort_stale_multipart("xorbs", 0) == 1
    assert store.delete_stale("lfs-staging", 0) == (1, len(b"left by a killed completion"))
    assert hub.s3.keys(bucket) == []
    assert hub.s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads") in (None, [])
