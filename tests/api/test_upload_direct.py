"""Issue 16 item 5: an uploaded body is written once, to disk, not copied into the page cache on the way
(classic LFS, one PUT and multipart, and Xet xorbs). Checked with mincore(2) on the stored files: a blob
written with buffered writes stays cached after its fsync; one written with O_DIRECT is not (at most its
unaligned tail, written plainly)."""

from __future__ import annotations

import ctypes
import mmap
import os
import uuid
from pathlib import Path

import pytest

MIB = 1 << 20
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


def cached_bytes(path: Path) -> int:
    """Bytes of `path` in the page cache (mincore on a mapping that touches nothing)."""
    size = path.stat().st_size
    if not size:
        return 0
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert addr not in (None, ctypes.c_void_p(-1).value), ctypes.get_errno()
        pages = -(-size // mmap.PAGESIZE)
        vec = (ctypes.c_ubyte * pages)()
        try:
            assert _libc.mincore(addr, size, vec) == 0, ctypes.get_errno()
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)
    return sum(b & 1 for b in vec) * mmap.PAGESIZE


@pytest.fixture
def direct_disk(server) -> Path:
    """The server's blob folder, when its filesystem writes O_DIRECT data past the page cache (not tmpfs)."""
    blobs = Path(server.data) / "blobs"
    probe = blobs / f".probe-{uuid.uuid4().hex}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | getattr(os, "O_DIRECT", 0), 0o600)
    except OSError:
        pytest.skip("no O_DIRECT on this filesystem")
    try:
        buf = mmap.mmap(-1, MIB)
        try:
            os.write(fd, buf)
        except OSError:
            pytest.skip("no O_DIRECT writes on this filesystem")
        os.fsync(fd)
    finally:
        os.close(fd)
    cached = cached_bytes(probe)
    probe.unlink()
    if cached:
        pytest.skip("this filesystem caches O_DIRECT writes (tmpfs)")
    return blobs


def _lfs_path(blobs: Path, data: bytes) -> Path:
    import hashlib

    oid = hashlib.sha256(data).hexdigest()
    return blobs / "lfs" / oid[:2] / oid[2:4] / oid


@pytest.mark.parametrize("size", [5 * MIB + 123, 70 * MIB + 5], ids=["put", "multipart"])
def test_lfs_body_written_past_page_cache(api, alice, repo_factory, direct_disk, no_xet, size: int) -> None:
    repo = repo_factory("direct")
    data = os.urandom(size)
    api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=repo)
    blob = _lfs_path(direct_disk, data)
    assert blob.stat().st_size == size
    assert cached_bytes(blob) <= 4096  # the tail at most
    with open(blob, "rb") as fh:  # and the bytes are the ones sent
        assert fh.read() == data


def test_xorbs_written_past_page_cache(api, alice, repo_factory, direct_disk) -> None:
    repo = repo_factory("direct-xet")
    before = set((direct_disk / "xorbs").rglob("*")) if (direct_disk / "xorbs").exists() else set()
    api.upload_file(path_or_fileobj=os.urandom(12 * MIB), path_in_repo="x.bin", repo_id=repo)
    new = [p for p in (direct_disk / "xorbs").rglob("*") if p.is_file() and p not in before]
    assert new and sum(p.stat().st_size for p in new) >= 12 * MIB
    assert sum(cached_bytes(p) for p in new) <= 4096 * len(new)
