"""HTTP byte ranges: blob files served with ranges, and the `Range` header for bodies Cove builds itself."""

from __future__ import annotations

import re

from fastapi.responses import FileResponse

from cove.errors import RangeNotSatisfiable


class BlobFileResponse(FileResponse):
    """Starlette's FileResponse reading 1 MiB at a time instead of 64 KiB: each read is a hop to the thread
    pool, 16,384 of them per GiB at 64 KiB. One 1 MiB buffer per download in flight, whatever the file size."""

    chunk_size = 1024 * 1024

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One `bytes=a-b` range → half-open (start, end); None for no/ignored range; 416 if unsatisfiable."""
    if not header:
        return None
    m = _RANGE_RE.match(header.strip())
    if not m:
        return None  # multiple or malformed ranges: serve the whole body, as RFC 9110 allows
    a, b = m.groups()
    if a == "" and b == "":
        return None
    if a == "":
        n = int(b)
        if n == 0:
            raise RangeNotSatisfiable("Range Not Satisfiable", headers={"Content-Range": f"bytes */{size}"})
        return max(0, size - n), size
    start = int(a)
    end = min(int(b) + 1, size) if b else size
    if start >= size or start >= end:
        raise RangeNotSatisfiable("Range Not Satisfiable", headers={"Content-Range": f"bytes */{size}"})
    return start, end
