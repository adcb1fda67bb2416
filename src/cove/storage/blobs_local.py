"""Local-disk blob store: temp file → hash → fsync → rename. Readers may use sendfile."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cove.storage.interfaces import BlobInfo, BlobVerificationError

# Writes copy 256 KiB at a time: a server holds one such buffer per upload in flight, and hf_xet keeps
# many xorb uploads in flight. Reads for responses stay at 1 MiB (fewer thread-pool hops per GiB sent).
_COPY_CHUNK = 256 << 10
_READ_CHUNK = 1 << 20


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
        digest = hashlib.sha256()
        total = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    block = stream.read(_COPY_CHUNK)
                    if not block:
                        break
                    total += len(block)
                    if size is not None and total > size:
                        raise BlobVerificationError(f"body is larger than the announced size {size}")
                    if sha256 is not None:
                        digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if size is not None and total != size:
                raise BlobVerificationError(f"body has {total} bytes, expected {size}")
            if sha256 is not None and digest.hexdigest() != sha256:
                raise BlobVerificationError("sha256 of the body does not match the object id")
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, dest)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return BlobInfo(key, total)

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
