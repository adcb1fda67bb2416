"""S3BlobStore specifics: object layout, multipart publishing, presigned URLs."""

from __future__ import annotations

import hashlib
import io
import os

import httpx
import pytest

from cove.storage.blobs_s3 import S3BlobStore
from tests.storage.test_blob_contract import leftovers

TransferConfig = pytest.importorskip("boto3.s3.transfer").TransferConfig

DATA = os.urandom(200_000)
SHA = hashlib.sha256(DATA).hexdigest()
KEY = f"lfs/{SHA}"


def test_layout_and_metadata(s3_store: S3BlobStore) -> None:
    s3_store.put_verified(KEY, io.BytesIO(DATA), sha256=SHA, size=len(DATA))
    keys = [o["Key"] for o in s3_store.client.list_objects_v2(Bucket=s3_store.bucket)["Contents"]]
    assert keys == [f"blobs/{KEY}"]
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=f"blobs/{KEY}")
    assert head["Metadata"]["sha256"] == SHA


def test_multipart_publish(s3_store: S3BlobStore) -> None:
    s3_store._transfer = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
    big = os.urandom(12 << 20)
    sha = hashlib.sha256(big).hexdigest()
    s3_store.put_verified(f"lfs/{sha}", io.BytesIO(big), sha256=sha, size=len(big))
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=f"blobs/lfs/{sha}")
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    assert s3_store.read_range(f"lfs/{sha}", (5 << 20) - 3, (5 << 20) + 3) == big[(5 << 20) - 3:(5 << 20) + 3]
    with s3_store.open(f"lfs/{sha}") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == sha


def test_failed_multipart_is_aborted(s3_store: S3BlobStore, monkeypatch) -> None:  # noqa: ANN001
    s3_store._transfer = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20,
                                        max_concurrency=1)
    big = os.urandom(11 << 20)
    sha = hashlib.sha256(big).hexdigest()
    real = s3_store.client.upload_part
    calls = []

    def flaky(**kw):  # noqa: ANN003, ANN202
        calls.append(kw["PartNumber"])
        if kw["PartNumber"] == 2:
            raise OSError("network down")
        return real(**kw)

    monkeypatch.setattr(s3_store.client, "upload_part", flaky)
    with pytest.raises(Exception, match="network down"):
        s3_store.put_verified(f"lfs/{sha}", io.BytesIO(big), sha256=sha, size=len(big))
    monkeypatch.undo()
    assert calls
    assert not s3_store.exists(f"lfs/{sha}")
    assert leftovers(s3_store) == []


def test_presigned_url(s3_store: S3BlobStore) -> None:
    s3_store.put_bytes(KEY, DATA)
    url = s3_store.presigned_url(KEY, 60, filename="weights file.bin")
    r = httpx.get(url)
    assert r.status_code == 200 and r.content == DATA
    assert "weights%20file.bin" in r.headers["content-disposition"]
    r = httpx.get(url, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == DATA[10:20]
    assert r.headers["content-range"] == f"bytes 10-19/{len(DATA)}"
    assert httpx.get(s3_store.presigned_url("lfs/" + "0" * 64)).status_code == 404


def test_presigned_url_is_sigv4_with_expiry(s3_store: S3BlobStore) -> None:
    """moto does not check signatures or expiry, so pin the URL's shape: SigV4 query auth, our TTL."""
    from urllib.parse import parse_qs, urlsplit

    q = parse_qs(urlsplit(s3_store.presigned_url(KEY, 123)).query)
    assert q["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert q["X-Amz-Expires"] == ["123"]
    assert "X-Amz-Signature" in q and "AWSAccessKeyId" not in q


def test_public_endpoint_and_redirect_switch(s3_server, aws_env, tmp_path) -> None:  # noqa: ANN001
    public = s3_server.endpoint.replace("127.0.0.1", "localhost")
    store = S3BlobStore(bucket=s3_server.new_bucket(), endpoint_url=s3_server.endpoint, tmp_dir=tmp_path,
                        public_endpoint_url=public)
    store.put_bytes(KEY, DATA)
    url = store.url(KEY)
    assert url.startswith(public + "/")
    assert httpx.get(url).content == DATA
    off = S3BlobStore(bucket=store.bucket, endpoint_url=s3_server.endpoint, tmp_dir=tmp_path, redirect=False)
    assert off.url(KEY) is None
    assert off.presigned_url(KEY).startswith(s3_server.endpoint)


def test_native_completion_heads_the_object_only_on_a_retry(s3_store: S3BlobStore) -> None:
    """The completion's ETag comes from the store's answer, and the verified copy knows its size: no HEAD;
    a retry (the upload already completed) reads the ETag with one at most."""
    heads: list[str] = []
    s3_store.client.meta.events.register("provide-client-params.s3.HeadObject",
                                         lambda params, **_: heads.append(params["Key"]))
    staging = "lfs-staging/one"
    upload_id = s3_store.start_multipart(staging)
    part = s3_store.client.upload_part(Bucket=s3_store.bucket, Key=s3_store._obj(staging), UploadId=upload_id,
                                       PartNumber=1, Body=DATA)
    etag = s3_store.complete_multipart(staging, upload_id, [(1, part["ETag"])])
    assert etag == s3_store.client.get_object(Bucket=s3_store.bucket, Key=s3_store._obj(staging))["ETag"]
    s3_store.copy(staging, KEY, if_match=etag, size=len(DATA))
    assert heads == []
    assert s3_store.client.get_object(Bucket=s3_store.bucket, Key=s3_store._obj(KEY))["Body"].read() == DATA
    assert s3_store.complete_multipart(staging, upload_id, [(1, part["ETag"])]) == etag  # a retry
    assert heads in ([], [s3_store._obj(staging)])  # moto answers a completed upload's completion again, as AWS
