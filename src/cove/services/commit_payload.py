"""The NDJSON commit body, read as a stream: capped lines, inline contents decoded into one spool file.

The request body is spooled as it arrives (`LineCapper` refuses an over-long line before it is all read);
`items` then parses one line at a time, and `parse_operations` (in `cove.services.commits`) decodes each
inline ``file`` into a `ContentSpool`, so no more than one line and one decoded file are in memory at a time.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from cove.errors import BadRequest, PayloadTooLarge
from cove.settings import Settings

#: Bytes of a spool kept in memory before it rolls over to a temp file.
SPOOL_MEMORY = 1 << 20


def spool(settings: Settings) -> tempfile.SpooledTemporaryFile:
    """A spool that rolls over into the data folder's ``tmp/`` (not /tmp, which may be memory), unlinked at once:
    nothing is left behind, whatever happens to the process."""
    folder = settings.data / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY, dir=folder)  # noqa: SIM115 - the caller closes it


def max_line(settings: Settings) -> int:
    """Longest NDJSON line: an inline file at the limit in base64, or a header at its limits (JSON-escaped)."""
    inline = 4 * -(-settings.max_inline_file // 3)
    header = 6 * (settings.max_commit_summary + settings.max_commit_description)
    return max(inline, header) + (64 << 10)


class LineCapper:
    """Counts the bytes of the line being received; refuses one longer than ``limit`` as soon as it is."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.current = 0

    def feed(self, chunk: bytes) -> None:
        start = 0
        while (nl := chunk.find(b"\n", start)) >= 0:
            self._check(self.current + nl - start)
            self.current, start = 0, nl + 1
        self.current += len(chunk) - start
        self._check(self.current)

    def _check(self, length: int) -> None:
        if length > self.limit:
            raise PayloadTooLarge(f"A commit payload line is longer than {self.limit} bytes: "
                                  "upload large files as LFS")


def items(body: IO[bytes], limit: int) -> Iterator[dict]:
    """The NDJSON items, one parsed line at a time; a lone legacy object (``summary``/``files``/...) is
    expanded into the same items."""
    first = True
    for raw in iter(lambda: body.readline(limit + 2), b""):
        if len(raw) > limit + 1:
            raise PayloadTooLarge(f"A commit payload line is longer than {limit} bytes")
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError as exc:  # UnicodeDecodeError is a ValueError
            raise BadRequest(f"Malformed commit payload: {exc}") from exc
        del raw
        if first and isinstance(item, dict) and "key" not in item:
            yield from _legacy(item)
            if any(line.strip() for line in iter(lambda: body.readline(limit + 2), b"")):
                raise BadRequest("Malformed commit payload: a legacy commit object must be alone")
            return
        first = False
        yield item


def _legacy(legacy: dict) -> Iterator[dict]:
    yield {"key": "header", "value": {k: legacy.get(k) for k in ("summary", "description", "parentCommit")}}
    for key, field in (("file", "files"), ("lfsFile", "lfsFiles"), ("deletedFile", "deletedFiles")):
        values = legacy.get(field) or []
        if not isinstance(values, list):
            raise BadRequest(f"'{field}' must be a list")
        for value in values:
            yield {"key": key, "value": value}


@dataclass(frozen=True)
class InlineContent:
    """One decoded inline file: a slice of the commit's `ContentSpool`."""

    spool: ContentSpool
    offset: int
    size: int

    def read(self) -> bytes:
        return self.spool.read(self.offset, self.size)


class ContentSpool:
    """The decoded inline files of one commit, end to end in one temp file (in memory while small)."""

    def __init__(self, settings: Settings) -> None:
        self._file = spool(settings)
        self._end = 0

    def add(self, data: bytes) -> InlineContent:
        self._file.seek(self._end)
        self._file.write(data)
        content = InlineContent(self, self._end, len(data))
        self._end += len(data)
        return content

    def read(self, offset: int, size: int) -> bytes:
        self._file.seek(offset)
        return self._file.read(size)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ContentSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
