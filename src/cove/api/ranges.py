"""HTTP byte ranges: blob files served with ranges, and the `Range` header for bodies Cove builds itself."""

from __future__ import annotations

import os
import re
from urllib.parse import quote

from fastapi.responses import FileResponse, StreamingResponse
from starlette.datastructures import MutableHeaders

from cove.errors import RangeNotSatisfiable
from cove.zerocopy import ZEROCOPY


class BlobFileResponse(FileResponse):
    """Starlette's FileResponse reading 1 MiB at a time instead of 64 KiB: each read is a hop to the thread
    pool, 16,384 of them per GiB at 64 KiB. One 1 MiB buffer per download in flight, whatever the file size."""

    chunk_size = 1024 * 1024

    def __init__(self, path: str, **kwargs) -> None:  # noqa: ANN003
        # Handlers run in the thread pool: stat here, not with one more hop from the event loop.
        kwargs.setdefault("stat_result", os.stat(path))
        super().__init__(path, **kwargs)
        self._zerocopy = False

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        accel = _accel_target(scope, str(self.path)) if scope.get("method") == "GET" else None
        if accel is not None:
            # Behind nginx (COVE_ACCEL_REDIRECT): it sends the bytes and answers ranges itself, and re-adds
            # the headers below from `$upstream_http_*` (docs/scale-out.md).
            drop = (b"content-length", b"last-modified", b"accept-ranges")  # nginx sets its own
            headers = [(k, v) for k, v in self.raw_headers if k not in drop]
            await send({"type": "http.response.start", "status": 200,
                        "headers": [*headers, (b"x-accel-redirect", accel.encode()), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        self._zerocopy = ZEROCOPY in scope.get("extensions", {})  # whole files go by `pathsend` (Starlette)
        await super().__call__(scope, receive, send)

    async def _handle_single_range(self, send, start: int, end: int, file_size: int,  # noqa: ANN001
                                   send_header_only: bool) -> None:
        if not self._zerocopy or send_header_only:
            await super()._handle_single_range(send, start, end, file_size, send_header_only)
            return
        headers = MutableHeaders(raw=list(self.raw_headers))
        headers["content-range"] = f"bytes {start}-{end - 1}/{file_size}"
        headers["content-length"] = str(end - start)
        with open(self.path, "rb") as fh:
            await send({"type": "http.response.start", "status": 206, "headers": headers.raw})
            await send({"type": ZEROCOPY, "file": fh.fileno(), "offset": start, "count": end - start})

class SpanStreamingResponse(StreamingResponse):
    """A StreamingResponse whose body may also offer ``parts()``: ``(fd, offset, count)`` spans of a file
    (`cove.services.mirror_lfs.Tail`, a file still being written). Where the server offers `zerocopy`,
    the spans go by ``os.sendfile`` from the event loop; elsewhere the body is iterated as usual."""

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        parts = getattr(self._source, "parts", None)
        if parts is None or ZEROCOPY not in scope.get("extensions", {}) or scope.get("method") == "HEAD":
            await super().__call__(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for fd, offset, count in parts():
            await send({"type": ZEROCOPY, "file": fd, "offset": offset, "count": count, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if self.background is not None:
            await self.background()

    def __init__(self, content, *args, **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003
        super().__init__(content, *args, **kwargs)
        self._source = content


def _accel_target(scope, path: str) -> str | None:  # noqa: ANN001
    """The `X-Accel-Redirect` URI for a blob file when COVE_ACCEL_REDIRECT is set, else None."""
    app = scope.get("app")
    bk = getattr(getattr(app, "state", None), "backends", None)
    prefix = getattr(getattr(bk, "settings", None), "accel_redirect", None)
    if not prefix:
        return None
    rel = os.path.relpath(path, bk.settings.blobs_dir)
    if rel.startswith("..") or os.path.isabs(rel):
        return None
    return prefix.rstrip("/") + "/" + quote(rel)


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
