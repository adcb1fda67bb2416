"""Storage protocols. Services talk to these; only `backends.py` names an implementation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int


class BlobStore(Protocol):
    """Content-addressed, write-once byte storage.

    Keys are namespaced strings such as ``lfs/<sha256>``, ``xorbs/<hash>``, ``shards/<hash>``.
    Writers hand a stream that is verified (hash and size) before it becomes visible under its key;
    a failed or interrupted write leaves nothing behind.
    """

    def exists(self, key: str) -> bool: ...

    def stat(self, key: str) -> BlobInfo | None: ...

    def put_verified(
        self, key: str, stream: BinaryIO, *, sha256: str | None = None, size: int | None = None
    ) -> BlobInfo:
        """Stream to a temp object, check sha256/size when given, then publish atomically.

        Raises ``BlobVerificationError`` on a mismatch (nothing is kept).
        """
        ...

    def put_bytes(self, key: str, data: bytes) -> BlobInfo: ...

    def open(self, key: str) -> BinaryIO:
        """Open for reading; raise ``KeyError`` if missing."""
        ...

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)``."""
        ...

    def iter_range(self, key: str, start: int, end: int, chunk: int = 1 << 20) -> Iterator[bytes]: ...

    def local_path(self, key: str) -> str | None:
        """Filesystem path when the backend is local (lets the server use sendfile), else None."""
        ...

    def url(self, key: str, *, expires: int = 3600, filename: str | None = None) -> str | None:
        """A self-authenticating GET URL on another origin (S3 presigned), or None to stream the bytes.

        ``/resolve`` answers 302 to it for LFS files (hub-protocol §4.3 option B). The URL must honour
        ``Range`` and needs no ``Authorization`` header.
        """
        ...

    def delete(self, key: str) -> None: ...


class BlobVerificationError(ValueError):
    """The uploaded bytes do not match the announced hash or size."""


class DirectTransfers(Protocol):
    """Optional: a store that clients read and write directly (S3), so file bytes skip the API process.

    Services look these methods up with ``getattr`` (the local store has none); each URL method answers None
    when the store is set not to redirect clients (``COVE_S3_REDIRECT=false``)."""

    def range_url(self, key: str, start: int, end: int, expires: int = 3600) -> str | None:
        """A self-authenticating GET of bytes ``[start, end]`` (inclusive) and of nothing else."""
        ...

    def start_multipart(self, key: str) -> str | None:
        """Open a native multipart upload (its id)."""
        ...

    def part_url(self, key: str, upload_id: str, part: int, expires: int = 3600, *,
                 length: int | None = None) -> str: ...

    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> str:
        """The assembled object's ETag (also when an earlier call completed it); KeyError: nothing there."""
        ...

    def abort_multipart(self, key: str, upload_id: str) -> None: ...

    def etag(self, key: str) -> str | None: ...

    def copy(self, src: str, dst: str, *, if_match: str | None = None, size: int | None = None) -> None: ...
