"""A live `cove serve` with COVE_BLOB_BACKEND=s3 (moto): stock huggingface_hub uploads and downloads."""

from __future__ import annotations

import hashlib
import os
import uuid

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download

from tests.storage.conftest import S3Hub


@pytest.fixture
def hub_api(s3_hub: S3Hub) -> HfApi:
    return HfApi(endpoint=s3_hub.server.endpoint, token=s3_hub.user.token)


@pytest.fixture
def hub_repo(hub_api: HfApi) -> str:
    repo_id = f"carol/s3-{uuid.uuid4().hex[:8]}"
    hub_api.create_repo(repo_id)
    yield repo_id
    hub_api.delete_repo(repo_id, missing_ok=True)


@pytest.mark.no_xet
def test_lfs_upload_and_download_through_s3(s3_hub: S3Hub, hub_api: HfApi, hub_repo: str, no_xet,  # noqa: ANN001
                                            tmp_path) -> None:  # noqa: ANN001
    data = os.urandom(3_000_000)
    sha = hashlib.sha256(data).hexdigest()
    hub_api.upload_file(path_or_fileobj=data, path_in_repo="weights.bin", repo_id=hub_repo)
    hub_api.upload_file(path_or_fileobj=b'{"a": 1}', path_in_repo="config.json", repo_id=hub_repo)

    # The bytes live in the bucket, under the prefix; nothing in the local blobs folder.
    head = s3_hub.s3.client().head_object(Bucket=s3_hub.bucket, Key=f"hub/lfs/{sha}")
    assert head["ContentLength"] == len(data)
    assert not (s3_hub.server.data / "blobs" / "lfs").exists()

    path = hf_hub_download(hub_repo, "weights.bin", endpoint=s3_hub.server.endpoint, token=s3_hub.user.token,
                           cache_dir=tmp_path / "cache")
    with open(path, "rb") as fh:
        assert fh.read() == data
    assert os.path.basename(os.path.realpath(path)) == sha  # cache blob named by X-Linked-Etag
    cfg = hf_hub_download(hub_repo, "config.json", endpoint=s3_hub.server.endpoint, token=s3_hub.user.token,
                          cache_dir=tmp_path / "cache")
    with open(cfg, "rb") as fh:
        assert fh.read() == b'{"a": 1}'


@pytest.mark.no_xet
def test_resolve_redirects_lfs_to_presigned_url(s3_hub: S3Hub, hub_api: HfApi, hub_repo: str,  # noqa: ANN001
                                                no_xet) -> None:  # noqa: ANN001
    data = os.urandom(200_000)
    sha = hashlib.sha256(data).hexdigest()
    commit = hub_api.upload_file(path_or_fileobj=data, path_in_repo="dir/w 1.bin", repo_id=hub_repo).oid
    hub_api.upload_file(path_or_fileobj=b"hello", path_in_repo="notes.txt", repo_id=hub_repo)
    url = f"{s3_hub.server.endpoint}/{hub_repo}/resolve/{commit}/dir/w%201.bin"
    auth = {"authorization": f"Bearer {s3_hub.user.token}"}

    for method in ("HEAD", "GET"):
        r = httpx.request(method, url, headers=auth)
        assert r.status_code == 302
        assert r.headers["x-repo-commit"] == commit
        assert r.headers["x-linked-etag"] == f'"{sha}"'
        assert r.headers["x-linked-size"] == str(len(data))
        assert r.headers["etag"]
        loc = r.headers["location"]
        assert loc.startswith(s3_hub.s3.endpoint + "/")  # another origin: the client drops its token

    # The presigned URL needs no credentials and honours Range (what resume and HfFileSystem need).
    r = httpx.get(loc)
    assert r.status_code == 200 and r.content == data
    assert "w%201.bin" in r.headers["content-disposition"]
    r = httpx.get(url, headers={**auth, "Range": "bytes=100-199"}, follow_redirects=True)
    assert r.status_code == 206 and r.content == data[100:200]

    # Regular files are still served directly.
    r = httpx.get(f"{s3_hub.server.endpoint}/{hub_repo}/resolve/main/notes.txt", headers=auth)
    assert r.status_code == 200 and r.content == b"hello"

    # A private repo's redirect is only handed to readers.
    hub_api.update_repo_settings(hub_repo, private=True)
    assert httpx.head(url).status_code in (401, 404)
    assert httpx.head(url, headers=auth).status_code == 302


@pytest.mark.no_xet
def test_git_lfs_download_action_streams_from_s3(s3_hub: S3Hub, hub_api: HfApi, hub_repo: str,  # noqa: ANN001
                                                 no_xet) -> None:  # noqa: ANN001
    """The LFS batch download href (git-lfs clients) proxies the object from S3, with ranges."""
    data = os.urandom(150_000)
    sha = hashlib.sha256(data).hexdigest()
    hub_api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=hub_repo)
    r = httpx.post(f"{s3_hub.server.endpoint}/{hub_repo}.git/info/lfs/objects/batch",
                   headers={"authorization": f"Bearer {s3_hub.user.token}",
                            "content-type": "application/vnd.git-lfs+json"},
                   json={"operation": "download", "objects": [{"oid": sha, "size": len(data)}]})
    href = r.json()["objects"][0]["actions"]["download"]["href"]
    assert httpx.get(href).content == data
    r = httpx.get(href, headers={"Range": "bytes=5-9"})
    assert r.status_code == 206 and r.content == data[5:10]


@pytest.mark.xet
def test_xet_upload_lands_in_s3(s3_hub: S3Hub, hub_api: HfApi, hub_repo: str, tmp_path) -> None:  # noqa: ANN001
    """Xet uploads put xorbs and shards in the bucket; downloads (Xet, and plain GET reconstructed by the
    server through the seekable S3 reader) return the same bytes."""
    pytest.importorskip("hf_xet")
    data = os.urandom(2_500_000)
    hub_api.upload_file(path_or_fileobj=data, path_in_repo="x.bin", repo_id=hub_repo)
    keys = [o["Key"] for o in s3_hub.s3.client().list_objects_v2(Bucket=s3_hub.bucket,
                                                                  Prefix="hub/xorbs/").get("Contents", [])]
    assert keys
    path = hf_hub_download(hub_repo, "x.bin", endpoint=s3_hub.server.endpoint, token=s3_hub.user.token,
                           cache_dir=tmp_path / "cache")
    with open(path, "rb") as fh:
        assert fh.read() == data
    auth = {"authorization": f"Bearer {s3_hub.user.token}"}
    url = f"{s3_hub.server.endpoint}/{hub_repo}/resolve/main/x.bin"
    r = httpx.get(url, headers=auth)
    assert r.status_code == 200 and r.content == data
    r = httpx.get(url, headers={**auth, "Range": "bytes=1000000-1000999"})
    assert r.status_code == 206 and r.content == data[1_000_000:1_001_000]


@pytest.mark.no_xet
def test_client_reads_through_the_redirect(s3_hub: S3Hub, hub_api: HfApi, hub_repo: str, no_xet) -> None:  # noqa: ANN001
    """HfFileSystem ranged reads, file metadata and file_exists all go through the 302."""
    from huggingface_hub import HfFileSystem, get_hf_file_metadata, hf_hub_url

    data = os.urandom(400_000)
    hub_api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=hub_repo)
    endpoint, token = s3_hub.server.endpoint, s3_hub.user.token
    fs = HfFileSystem(endpoint=endpoint, token=token, skip_instance_cache=True)
    with fs.open(f"{hub_repo}/w.bin", "rb", block_size=0) as fh:  # streaming file
        assert fh.read() == data
    with fs.open(f"{hub_repo}/w.bin", "rb") as fh:
        fh.seek(300_000)
        assert fh.read(50_000) == data[300_000:350_000]
    meta = get_hf_file_metadata(hf_hub_url(hub_repo, "w.bin", endpoint=endpoint), token=token)
    assert meta.etag == hashlib.sha256(data).hexdigest() and meta.size == len(data)
    assert meta.location.startswith(s3_hub.s3.endpoint)
    assert hub_api.file_exists(hub_repo, "w.bin") and not hub_api.file_exists(hub_repo, "nope.bin")


def test_rejected_lfs_upload_leaves_nothing(s3_hub: S3Hub, hub_repo: str) -> None:
    """A body that does not match its oid is refused; no object in the bucket, no staged file on disk."""
    good = os.urandom(50_000)
    oid = hashlib.sha256(good).hexdigest()
    auth = {"authorization": f"Bearer {s3_hub.user.token}"}
    r = httpx.post(f"{s3_hub.server.endpoint}/{hub_repo}.git/info/lfs/objects/batch", headers=auth,
                   json={"operation": "upload", "objects": [{"oid": oid, "size": len(good)}]})
    href = r.json()["objects"][0]["actions"]["upload"]["href"]
    bad = bytearray(good)
    bad[100] ^= 1
    assert httpx.put(href, content=bytes(bad)).status_code == 400
    assert httpx.put(href, content=good[:-1]).status_code == 400
    listing = s3_hub.s3.client().list_objects_v2(Bucket=s3_hub.bucket, Prefix=f"hub/lfs/{oid}")
    assert listing.get("KeyCount", 0) == 0
    staged = [p for p in (s3_hub.server.data / "tmp").glob("up-*")]
    assert staged == []
    assert httpx.put(href, content=good).status_code == 200
    assert s3_hub.s3.client().head_object(Bucket=s3_hub.bucket, Key=f"hub/lfs/{oid}")["ContentLength"] == len(good)
