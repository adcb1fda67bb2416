"""Zero-copy file responses under uvicorn: the ASGI `http.response.pathsend` and `http.response.zerocopy`
extensions, sent with `os.sendfile` (the kernel copies page cache to socket, as nginx does).

uvicorn offers neither extension. `ZeroCopyHttpToolsProtocol` is its httptools protocol with both added on
plain-TCP connections (never under TLS: sendfile would bypass the encryption). Starlette's `FileResponse`
sends a whole file with `pathsend` when the server offers it; `cove.api.ranges.BlobFileResponse` sends a
single range with `zerocopy`. Any other server (or TLS) gets the ordinary `http.response.body` messages.
"""

from __future__ import annotations

import asyncio
import os

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

PATHSEND = "http.response.pathsend"
ZEROCOPY = "http.response.zerocopy"
#: Bytes per `sendfile` call: the kernel stops at what the socket buffer takes anyway.
_MAX_SEND = 1 << 30


class ZeroCopyCycle(RequestResponseCycle):
    """uvicorn's request/response cycle, also taking `pathsend` and `zerocopy` body messages."""

    async def send(self, message) -> None:  # noqa: ANN001
        kind = message["type"]
        if kind not in (PATHSEND, ZEROCOPY):
            await super().send(message)
            return
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if not self.response_started or self.response_complete:
            raise RuntimeError(f"Unexpected ASGI message {kind!r}")
        more_body = kind == ZEROCOPY and message.get("more_body", False)
        if kind == PATHSEND:
            with open(message["path"], "rb") as fh:
                count = os.fstat(fh.fileno()).st_size
                await self._sendfile(fh.fileno(), 0, count)
        else:
            file = message["file"]
            fd = file if isinstance(file, int) else file.fileno()
            offset = message.get("offset")
            if offset is None:
                offset = os.lseek(fd, 0, os.SEEK_CUR)
            count = message.get("count")
            if count is None:
                count = os.fstat(fd).st_size - offset
            await self._sendfile(fd, offset, count)
        await super().send({"type": "http.response.body", "body": b"", "more_body": more_body})

    async def _sendfile(self, fd: int, offset: int, count: int) -> None:
        if self.scope["method"] == "HEAD" or count <= 0:
            return
        if self.chunked_encoding or count > self.expected_content_length:
            # No Content-Length (or a smaller one): the bytes go through the ordinary path.
            while count > 0 and not self.disconnected:
                block = os.pread(fd, min(count, 1 << 20), offset)
                if not block:
                    raise RuntimeError("File shorter than announced")
                offset += len(block)
                count -= len(block)
                await super().send({"type": "http.response.body", "body": block, "more_body": True})
            return
        loop = asyncio.get_running_loop()
        while self.transport.get_write_buffer_size() and not self.disconnected:
            await asyncio.sleep(0.001)  # the headers are still queued (rare): sendfile must come after them
        sock = os.dup(self.transport.get_extra_info("socket").fileno())  # the loop refuses the transport's own fd
        try:
            sent = await _sendfile(loop, sock, fd, offset, count)
        except (BrokenPipeError, ConnectionResetError):
            self.disconnected = True
        else:
            self.expected_content_length -= sent
        finally:
            os.close(sock)
        if self.disconnected:
            self.expected_content_length = 0


async def _sendfile(loop: asyncio.AbstractEventLoop, sock: int, fd: int, offset: int, count: int) -> int:
    """`count` bytes of `fd` from `offset` to the non-blocking socket `sock`; the bytes sent.

    Driven by the loop's writability callback, as nginx does it: each wake sends what the socket buffer
    takes and returns (a short send means the buffer is full) — no coroutine or future per wake, the writer
    registered once per response."""
    done = loop.create_future()
    state = [offset, count]

    def pump() -> None:
        try:
            while state[1] > 0:
                want = min(state[1], _MAX_SEND)
                n = os.sendfile(sock, fd, state[0], want)
                if n == 0:
                    raise RuntimeError("File shorter than announced")
                state[0] += n
                state[1] -= n
                if n < want:
                    return  # the socket buffer is full: wait for the next writable
        except BlockingIOError:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            if not done.done():
                done.set_exception(exc)
            return
        if not done.done():
            done.set_result(None)

    pump()
    if not done.done():
        loop.add_writer(sock, pump)
        try:
            await done
        finally:
            loop.remove_writer(sock)
    else:
        done.result()
    return count - state[1]


class ZeroCopyHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; plain-TCP connections offer `pathsend` and `zerocopy`."""

    def connection_made(self, transport) -> None:  # noqa: ANN001
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        self._zerocopy = sock is not None and transport.get_extra_info("sslcontext") is None

    def on_headers_complete(self) -> None:
        if self._zerocopy:
            self.scope.setdefault("extensions", {}).update({PATHSEND: {}, ZEROCOPY: {}})
        super().on_headers_complete()
        if self._zerocopy and type(self.cycle) is RequestResponseCycle:
            # The cycle's task has not run yet: from its first `send` on, it is a ZeroCopyCycle.
            self.cycle.__class__ = ZeroCopyCycle
