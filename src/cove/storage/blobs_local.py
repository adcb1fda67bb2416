"""Local-disk blob store: temp file → hash → fsync → rename. Readers may use sendfile."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cove.storage.direct import BlobFile
from cove.storage.interfaces import BlobInfo, BlobVerificationError

# Writes go through one 1 MiB aligned buffer per upload in flight (`BlobFile`: O_DIRECT, no page-cache copy).
# Reads for responses stay at 1 MiB (fewer thread-pool hops per GiB sent).
_READ_CHUNK = 1 << 20


def _receive(stream: BinaryIO, out: BlobFile, digest: hashlib._Hash | None, size: int | None) -> None:
    """Copy `stream` into `out` (read straight into its buffer when the stream has ``readinto``), hashing each
    filled piece once; more than `size` bytes is refused."""
    readinto = getattr(stream, "readinto", None)
    while True:
        if readinto is not None:
            room = out.free()
            try:
                n = readinto(room)
            except NotImplementedError:  # a RawIOBase that only has `read`
                readinto = None
                del room
                continue
            if n and digest is not None:
                digest.update(room[:n])
            del room
            if not n:
                return
            out.advance(n)
        else:
            block = stream.read(len(out.free()))
            if not block:
                return
            n = len(block)
            if digest is not None:
                digest.update(block)
            out.write(block)
        if size is not None and out.size > size:
            raise BlobVerificationError(f"body is larger than the announced size {size}")


class LocalWriter:
    """`LocalBlobStore.writer`: bytes written once into a temp file; the blob appears only on `commit`."""

    def __init__(self, store: LocalBlobStore, key: str) -> None:
        self._dest = store._path(key)
        fd, self._tmp = tempfile.mkstemp(dir=store.tmp)
        os.close(fd)
        self._out = BlobFile(self._tmp)

    @property
    def size(self) -> int:
        return self._out.size

    def write(self, data: bytes) -> None:
        self._out.write(data)

    def commit(self) -> None:
        try:
            self._out.close()
            self._dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._tmp, self._dest)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        self._out.abort()
        Path(self._tmp).unlink(missing_ok=True)


class LocalBlobStore:
    """Blobs under ``root/<namespace>/<aa>/<bb>/<rest-of-key>``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / ".tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        ns, _, name = key.partition("/")
        if not ns or not name or "/" in name or name.startswith(".") or ".." in key:
            raise ValueError(f"invalid blob key {key!r}")
        return self.root / ns / name[:2] / name[2:4] / name

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def stat(self, key: str) -> BlobInfo | None:
        try:
            return BlobInfo(key, self._path(key).stat().st_size)
        except FileNotFoundError:
            return None

    def put_verified(
        self, key: str, stream: BinaryIO, *, sha256: str | None = None, size: int | None = None
    ) -> BlobInfo:
        dest = self._path(key)
        digest = hashlib.sha256() if sha256 is not None else None
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp)
        os.close(fd)
        out = BlobFile(tmp_name)
        try:
            _receive(stream, out, digest, size)
            out.close()
            total = out.size
            if size is not None and total != size:
                raise BlobVerificationError(f"body has {total} bytes, expected {size}")
            if digest is not None and digest.hexdigest() != sha256:
                raise BlobVerificationError("sha256 of the body does not match the object id")
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, dest)
        except BaseException:
            out.abort()
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return BlobInfo(key, total)

    def writer(self, key: str) -> LocalWriter:
        """A sink that writes `key`'s bytes once, to a temp file that becomes the blob on ``commit()`` (fsync,
        rename); ``abort()`` leaves nothing. The caller verifies what it writes (`xet.put_xorb_streaming`)."""
        return LocalWriter(self, key)

    def publish_file(self, key: str, path: str | Path) -> BlobInfo:
        """Move a complete local file, already verified by the caller, under `key`: fsync, then one rename
        (no copy). Another filesystem: copied through `put_verified`, and `path` stays the caller's."""
        path = Path(path)
        with open(path, "rb+") as fh:
            os.fsync(fh.fileno())
            size = os.fstat(fh.fileno()).st_size
            dest = self._path(key)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(path, dest)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                return self.put_verified(key, fh, size=size)
        return BlobInfo(key, size)

    def put_bytes(self, key: str, data: bytes) -> BlobInfo:
        import io

        return self.put_verified(key, io.BytesIO(data))

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError as exc:
            raise KeyError(key) from exc

    def read_range(self, key: str, start: int, end: int) -> bytes:
        with self.open(key) as fh:
            fh.seek(start)
            return fh.read(end - start)

    def iter_range(self, key: str, start: int, end: int, chunk: int = _READ_CHUNK) -> Iterator[bytes]:
        with self.open(key) as fh:
            fh.seek(start)
            left = end - start
            while left > 0:
                block = fh.read(min(chunk, left))
                if not block:
                    break
                left -= len(block)
                yield block

    def local_path(self, key: str) -> str | None:
        return str(self._path(key))

    def url(self, key: str, *, expires: int = 3600, filename: str | None = None) -> str | None:
        return None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
