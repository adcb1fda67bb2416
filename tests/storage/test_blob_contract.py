"""The BlobStore contract, run against LocalBlobStore and S3BlobStore (on a moto server)."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from cove.storage.interfaces import BlobInfo, BlobVerificationError

DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()
KEY = f"lfs/{SHA}"


def leftovers(store) -> list[str]:  # noqa: ANN001
    """Everything a store keeps besides published blobs: staged temp files, and for S3 any object or
    unfinished multipart upload in the bucket."""
    out = [str(p) for p in store.tmp.rglob("*") if p.is_file()]
    if hasattr(store, "bucket"):
        c = store.client
        out += [o["Key"] for o in c.list_objects_v2(Bucket=store.bucket).get("Contents", [])]
        out += [u["Key"] for u in c.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])]
    return out


class Exploding(io.RawIOBase):
    """A body that fails part-way, like a client that drops the connection."""

    def __init__(self, data: bytes, fail_at: int) -> None:
        self.buf = io.BytesIO(data)
        self.fail_at = fail_at

    def read(self, n: int = -1) -> bytes:
        if self.buf.tell() >= self.fail_at:
            raise ConnectionResetError("client went away")
        return self.buf.read(min(n, self.fail_at - self.buf.tell()) if n >= 0 else -1)


def test_round_trip(store) -> None:  # noqa: ANN001
    assert not store.exists(KEY)
    assert store.stat(KEY) is None
    info = store.put_verified(KEY, io.BytesIO(DATA), sha256=SHA, size=len(DATA))
    assert info == BlobInfo(KEY, len(DATA))
    assert store.exists(KEY)
    assert store.stat(KEY) == BlobInfo(KEY, len(DATA))
    with store.open(KEY) as fh:
        assert fh.read() == DATA
    assert b"".join(store.iter_range(KEY, 0, len(DATA))) == DATA


def test_put_bytes_without_checks(store) -> None:  # noqa: ANN001
    assert store.put_bytes("shards/abcdef0123", b"shard bytes") == BlobInfo("shards/abcdef0123", 11)
    assert store.read_range("shards/abcdef0123", 0, 11) == b"shard bytes"


def test_empty_blob(store) -> None:  # noqa: ANN001
    empty = hashlib.sha256(b"").hexdigest()
    store.put_verified(f"lfs/{empty}", io.BytesIO(b""), sha256=empty, size=0)
    assert store.stat(f"lfs/{empty}") == BlobInfo(f"lfs/{empty}", 0)
    assert store.open(f"lfs/{empty}").read() == b""
    assert store.read_range(f"lfs/{empty}", 0, 0) == b""


@pytest.mark.parametrize("kw", [
    {"sha256": "0" * 64, "size": len(DATA)},        # wrong hash
    {"sha256": SHA, "size": len(DATA) + 1},          # body shorter than announced
    {"sha256": SHA, "size": len(DATA) - 1},          # body longer than announced
    {"size": 10},
])
def test_verification_failure_leaves_nothing(store, kw) -> None:  # noqa: ANN001
    with pytest.raises(BlobVerificationError):
        store.put_verified(KEY, io.BytesIO(DATA), **kw)
    assert not store.exists(KEY)
    assert store.stat(KEY) is None
    with pytest.raises(KeyError):
        store.open(KEY)
    assert leftovers(store) == []


def test_interrupted_stream_leaves_nothing(store) -> None:  # noqa: ANN001
    with pytest.raises(ConnectionResetError):
        store.put_verified(KEY, Exploding(DATA, 100_000), sha256=SHA, size=len(DATA))
    assert not store.exists(KEY)
    assert leftovers(store) == []


def test_failed_publish_keeps_nothing(store, monkeypatch) -> None:  # noqa: ANN001
    """The last step (rename / upload) fails: the error surfaces and nothing is kept."""
    if hasattr(store, "bucket"):
        monkeypatch.setattr(store.client, "upload_file", _boom)
    else:
        monkeypatch.setattr(os, "replace", _boom)
    with pytest.raises(OSError, match="boom"):
        store.put_verified(KEY, io.BytesIO(DATA), sha256=SHA, size=len(DATA))
    monkeypatch.undo()
    assert not store.exists(KEY)
    assert leftovers(store) == []


def _boom(*a, **kw):  # noqa: ANN002, ANN003, ANN202
    raise OSError("boom")


def test_idempotent_puts(store) -> None:  # noqa: ANN001
    store.put_verified(KEY, io.BytesIO(DATA), sha256=SHA, size=len(DATA))
    assert store.put_verified(KEY, io.BytesIO(DATA), sha256=SHA, size=len(DATA)) == BlobInfo(KEY, len(DATA))
    assert store.read_range(KEY, 0, len(DATA)) == DATA
    # A failed re-upload of an existing key does not disturb the published blob.
    with pytest.raises(BlobVerificationError):
        store.put_verified(KEY, io.BytesIO(DATA[:-1]), sha256=SHA, size=len(DATA))
    assert store.read_range(KEY, 0, len(DATA)) == DATA


@pytest.mark.parametrize(("start", "end"), [
    (0, 1), (0, 10), (5, 17), (1000, 250_001), (len(DATA) - 3, len(DATA)), (0, len(DATA)),
])
def test_ranges(store, start: int, end: int) -> None:  # noqa: ANN001
    store.put_bytes(KEY, DATA)
    assert store.read_range(KEY, start, end) == DATA[start:end]
    parts = list(store.iter_range(KEY, start, end, chunk=4096))
    assert b"".join(parts) == DATA[start:end]
    assert all(len(p) <= 4096 for p in parts)


def test_range_edges(store) -> None:  # noqa: ANN001
    store.put_bytes(KEY, DATA)
    n = len(DATA)
    assert store.read_range(KEY, 7, 7) == b""
    assert list(store.iter_range(KEY, 7, 7)) == []
    assert store.read_range(KEY, n - 5, n + 100) == DATA[n - 5:]        # clipped at the end
    assert b"".join(store.iter_range(KEY, n - 5, n + 100)) == DATA[n - 5:]
    assert store.read_range(KEY, n, n + 10) == b""                     # starts at the end
    assert b"".join(store.iter_range(KEY, n + 1, n + 10)) == b""


def test_open_is_seekable(store) -> None:  # noqa: ANN001
    store.put_bytes(KEY, DATA)
    with store.open(KEY) as fh:
        assert fh.read(10) == DATA[:10]
        fh.seek(200_000)
        assert fh.tell() == 200_000
        assert fh.read(5000) == DATA[200_000:205_000]
        fh.seek(3)
        assert fh.read(4) == DATA[3:7]
        fh.seek(-10, io.SEEK_END)
        assert fh.read() == DATA[-10:]
        assert fh.read(1) == b""


def test_missing_key(store) -> None:  # noqa: ANN001
    missing = "lfs/" + "e" * 64
    assert not store.exists(missing)
    assert store.stat(missing) is None
    with pytest.raises(KeyError):
        store.open(missing)
    with pytest.raises(KeyError):
        store.read_range(missing, 0, 10)
    with pytest.raises(KeyError):
        store.read_range(missing, 0, 0)
    with pytest.raises(KeyError):
        list(store.iter_range(missing, 0, 10))
    store.delete(missing)  # deleting nothing is not an error


def test_delete(store) -> None:  # noqa: ANN001
    store.put_bytes(KEY, DATA)
    store.delete(KEY)
    assert not store.exists(KEY)
    with pytest.raises(KeyError):
        store.open(KEY)


@pytest.mark.parametrize("bad", ["noslash", "/x", "lfs/", "lfs/a/b", "lfs/.hidden", "lfs/..x", "../etc"])
def test_invalid_keys(store, bad: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError):
        store.put_bytes(bad, b"x")


def test_keys_are_namespaced(store) -> None:  # noqa: ANN001
    store.put_bytes("xorbs/" + "a" * 64, b"xorb")
    store.put_bytes("shards/" + "a" * 64, b"shard")
    assert store.read_range("xorbs/" + "a" * 64, 0, 10) == b"xorb"
    assert store.read_range("shards/" + "a" * 64, 0, 10) == b"shard"


def test_local_path_and_url(store) -> None:  # noqa: ANN001
    store.put_bytes(KEY, DATA)
    if hasattr(store, "bucket"):
        assert store.local_path(KEY) is None
        assert store.url(KEY, filename="model.safetensors").startswith("http")
    else:
        with open(store.local_path(KEY), "rb") as fh:
            assert fh.read() == DATA
        assert store.url(KEY) is None
