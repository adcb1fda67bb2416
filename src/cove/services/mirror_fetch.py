"""An upstream object's bytes into a temp file without passing them through Python (docs/mirror.md).

``curl`` receives the body and writes it to the file (C: receive and write in large blocks, TLS, redirects);
this process only reads back what it wrote, in large blocks, to hash it (hashlib and unbuffered reads release
the GIL) and to tell readers how far they may go. Used by `cove.services.mirror_lfs` when
``COVE_MIRROR_FETCHER`` is ``curl`` (or ``auto`` and ``curl`` is on PATH); its httpx path is the fallback.

The URL and headers (the upstream token among them) go to curl on its stdin as a config file, never in argv
(``ps`` shows argv); curl sends a custom ``Authorization`` header to the first URL's host and port only, not
after a redirect elsewhere (curl >= 7.83).

`splice_into` is the cheaper way for a plain-HTTP upstream (another Cove on the LAN, an internal mirror) on Linux:
the request and the response head go through h11, the body moves socket -> pipe -> temp file by ``os.splice``
(never copied into this process), and a second thread hashes what landed in the file with large reads. About
half the CPU per byte of curl (docs/mirror.md, Benchmark). TLS cannot be spliced: ``https://`` stays with curl.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import h11

#: Bytes hashed per read of the temp file, at most.
_BLOCK = 8 << 20
#: Seconds to wait before looking again when curl has written nothing new: doubled while nothing comes (a slow
#: or stalled upstream costs no busy loop), back to the first once bytes do.
_POLL = 0.002
_POLL_MAX = 0.05
#: curl exit codes that say something about this side, not the upstream's reachability.
_LOCAL = {23: "could not write the temp file", 27: "out of memory", 63: "the upstream sent more than the size"}


class HttpStatus(Exception):
    """The upstream (or a redirect's target) answered an HTTP error status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the upstream answered {status}")
        self.status = status


class TransportFailed(Exception):
    """curl could not reach the upstream, or the transfer was cut (its exit code and message)."""


class TooLarge(Exception):
    """The upstream sent more bytes than the pointer's size."""


class Redirected(Exception):
    """`splice_into` got a redirect (nothing written): follow it to `location` (absolute)."""

    def __init__(self, location: str) -> None:
        super().__init__(f"redirected to {location}")
        self.location = location


def curl_path(fetcher: str) -> str | None:
    """The curl to use for `fetcher` (``auto``, ``curl`` or ``httpx``), or None for the httpx path."""
    if fetcher == "httpx":
        return None
    found = shutil.which("curl")
    if found is None and fetcher == "curl":
        raise RuntimeError("COVE_MIRROR_FETCHER=curl, but there is no curl on PATH")
    return found


def _quoted(value: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise ValueError("a header or URL for the upstream contains a line break")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fetch_into(curl: str, url: str, headers: dict[str, str], part: Path, size: int, *,
               connect_timeout: float, on_bytes: Callable[[int], None]) -> hashlib._Hash:
    """GET `url` (redirects followed) into the existing empty file `part`; returns the sha256 of what came.
    `on_bytes(n)` is called as each further `n` bytes are in the file and hashed. `HttpStatus` for a status
    other than 200, `TransportFailed` when the upstream could not be reached or the body was cut, `TooLarge`
    past `size` bytes (curl is stopped at once)."""
    config = [f"url = {_quoted(url)}", f"output = {_quoted(str(part))}"]
    config += [f"header = {_quoted(f'{k}: {v}')}" for k, v in headers.items()]
    cmd = [curl, "--config", "-", "--silent", "--show-error", "--location", "--max-redirs", "10", "--fail",
           "--proto", "=http,https", "--proto-redir", "=http,https", "--connect-timeout", f"{connect_timeout:g}",
           "--speed-limit", "1", "--speed-time", "60", "--write-out", "%{http_code}"]
    if size > 0:
        cmd += ["--max-filesize", str(size)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdin is not None
        proc.stdin.write(("\n".join(config) + "\n").encode())
        proc.stdin.close()
        digest, total = hashlib.sha256(), 0
        buf, pause = memoryview(bytearray(_BLOCK)), _POLL
        with open(part, "rb", buffering=0) as src:
            while True:
                ended = proc.poll() is not None  # before the read: once it ended, one read sees all it wrote
                n = src.readinto(buf)
                if n:
                    total += n
                    if total > size:
                        raise TooLarge(f"the upstream sent more than {size} bytes")
                    digest.update(buf[:n])
                    on_bytes(n)
                    pause = _POLL
                elif ended:
                    break
                else:
                    time.sleep(pause)
                    pause = min(pause * 2, _POLL_MAX)
        assert proc.stdout is not None and proc.stderr is not None
        out, err = proc.stdout.read(), proc.stderr.read()  # it has ended: no pipe can fill
        status = int(out.decode(errors="replace").strip() or 0)
        message = err.decode(errors="replace").strip()
        if proc.returncode in _LOCAL:
            raise (TooLarge if proc.returncode == 63 else OSError)(f"curl: {_LOCAL[proc.returncode]} ({message})")
        if proc.returncode == 22 or (proc.returncode == 0 and status != 200):
            raise HttpStatus(status)
        if proc.returncode != 0:
            raise TransportFailed(f"curl exit {proc.returncode}: {message}")
        return digest
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


#: Bytes moved per ``os.splice`` call (the pipe is grown to this when the system allows).
_PIPE = 1 << 20
#: F_SETPIPE_SZ (Linux; ``fcntl`` names it only from Python 3.10 on some builds).
_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
#: Bytes received between two wakeups of the hashing thread, and between two announcements to readers.
_HASH_AT = 2 << 20
#: Seconds a receive may wait for the next byte before the transfer counts as stalled (as curl's speed limit).
_STALL = 60.0
_REDIRECTS = {301, 302, 303, 307, 308}


def can_splice(url: str) -> bool:
    """Whether `splice_into` can fetch `url`: a plain ``http://`` URL, on a system with ``os.splice``."""
    return hasattr(os, "splice") and urlsplit(url).scheme == "http"


class _Hasher:
    """Hashes `part` on a thread of its own as the receiving thread reports bytes written to it, in large reads
    (hashlib and unbuffered reads release the GIL). `on_bytes(n)` is called by the receiving thread once each
    further `n` bytes (`_HASH_AT` at a time, and the rest at the end) are in the file: readers are not held back
    by the hash, which covers the whole object and so vouches for no byte before the last (`finish`)."""

    def __init__(self, part: Path, on_bytes: Callable[[int], None]) -> None:
        self.part, self.on_bytes, self.digest = part, on_bytes, hashlib.sha256()
        self.cond = threading.Condition()
        self.written, self.hashed, self.ended, self.told = 0, 0, False, 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="cove-mirror-hash")
        self.thread.start()

    def wrote(self, n: int) -> None:
        with self.cond:
            self.written += n
            if self.written - self.hashed >= _HASH_AT:  # one wakeup per `_HASH_AT`, not per splice
                self.cond.notify()
        if self.written - self.told >= _HASH_AT:
            self._tell()

    def _tell(self) -> None:
        n, self.told = self.written - self.told, self.written
        if n:
            self.on_bytes(n)

    def finish(self) -> hashlib._Hash:
        """Once every byte is written: tell the rest, wait until all are hashed; the digest."""
        with self.cond:
            self.ended = True
            self.cond.notify()
        self._tell()
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.digest

    def _run(self) -> None:
        buf = memoryview(bytearray(_BLOCK))
        try:
            with open(self.part, "rb", buffering=0) as src:
                while True:
                    with self.cond:
                        self.cond.wait_for(lambda: self.written - self.hashed >= _HASH_AT or self.ended)
                        avail, ended = self.written - self.hashed, self.ended
                    if not avail:
                        if ended:
                            return
                        continue
                    n = src.readinto(buf[:min(avail, _BLOCK)])
                    if not n:
                        raise OSError("the temp file is shorter than what was written to it")
                    self.digest.update(buf[:n])
                    self.hashed += n
        except BaseException as exc:  # noqa: BLE001 - raised by `finish` in the receiving thread
            self.error = exc


def _connect(url: str, connect_timeout: float) -> socket.socket:
    u = urlsplit(url)
    try:
        sock = socket.create_connection((u.hostname or "", u.port or 80), timeout=connect_timeout)
    except OSError as exc:
        raise TransportFailed(f"could not connect to {u.hostname}:{u.port or 80}: {exc}") from exc
    sock.settimeout(None)  # blocking (splice wants it); a stall is bounded by SO_RCVTIMEO instead
    tv = int(_STALL).to_bytes(8, "little") + (0).to_bytes(8, "little")  # struct timeval {sec, usec}
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    return sock


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(64 << 10)
    except OSError as exc:  # EAGAIN after SO_RCVTIMEO: stalled
        raise TransportFailed(f"receiving from the upstream failed: {exc}") from exc


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def splice_into(url: str, headers: dict[str, str], part: Path, size: int, *, connect_timeout: float,
                on_bytes: Callable[[int], None]) -> hashlib._Hash:
    """GET the ``http://`` `url` into the existing empty file `part`; returns the sha256 of what came.
    `on_bytes(n)` is called as each further `n` bytes are in the file. `Redirected` for a redirect
    (nothing written; the caller decides where the token may go), `HttpStatus` for another status than 200,
    `TransportFailed` when the upstream could not be reached, stalled, or cut the body, `TooLarge` past `size`.
    Exactly the `headers` given are sent (and Host)."""
    u = urlsplit(url)
    target = (u.path or "/") + (f"?{u.query}" if u.query else "")
    conn = h11.Connection(h11.CLIENT)
    sock = _connect(url, connect_timeout)
    try:
        request = h11.Request(method="GET", target=target, headers=[
            ("Host", u.netloc.rsplit("@", 1)[-1]), *headers.items(), ("Connection", "close")])
        try:
            sock.sendall(conn.send(request) + conn.send(h11.EndOfMessage()))
        except OSError as exc:
            raise TransportFailed(f"sending to the upstream failed: {exc}") from exc
        response = _head(conn, sock)
        if response.status_code in _REDIRECTS:
            location = dict((k.lower(), v) for k, v in response.headers).get(b"location")
            if not location:
                raise HttpStatus(response.status_code)
            raise Redirected(urljoin(url, location.decode("latin-1")))
        if response.status_code != 200:
            raise HttpStatus(response.status_code)
        fields = {k.lower(): v for k, v in response.headers}
        length = int(fields[b"content-length"]) if b"content-length" in fields else None
        if length is not None and length > size:
            raise TooLarge(f"the upstream sent more than {size} bytes")
        with open(part, "wb", buffering=0) as out:
            hasher = _Hasher(part, on_bytes)
            try:
                if length is not None and b"chunked" not in fields.get(b"transfer-encoding", b""):
                    _splice_body(conn, sock, out.fileno(), length, hasher)
                else:
                    _copy_body(conn, sock, out.fileno(), size, hasher)
            finally:
                digest = hasher.finish()
        return digest
    finally:
        sock.close()


def _head(conn: h11.Connection, sock: socket.socket) -> h11.Response:
    """The response head; 1xx answers skipped. Any body bytes received with it stay buffered in `conn`."""
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise TransportFailed(f"the upstream's answer is not HTTP/1.1: {exc}") from exc
        if event is h11.NEED_DATA:
            conn.receive_data(_recv(sock))
        elif isinstance(event, h11.Response):
            return event
        elif isinstance(event, h11.ConnectionClosed):
            raise TransportFailed("the upstream closed the connection before answering")


def _splice_body(conn: h11.Connection, sock: socket.socket, fd: int, length: int, hasher: _Hasher) -> None:
    """`length` body bytes into `fd`: what h11 buffered with the head by a write, the rest socket -> pipe ->
    file by ``os.splice`` (no copy through this process)."""
    got = 0
    while (event := conn.next_event()) is not h11.NEED_DATA:  # the bytes that came with the head
        if isinstance(event, h11.Data):
            _write_all(fd, event.data)
            got += len(event.data)
            hasher.wrote(len(event.data))
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            break
    r, w = os.pipe()
    try:
        with contextlib.suppress(OSError):  # else the default 64 KiB pipe: more calls, same bytes
            fcntl.fcntl(w, _SETPIPE_SZ, _PIPE)
        sfd = sock.fileno()
        while got < length:
            try:
                n = os.splice(sfd, w, min(length - got, _PIPE))
            except OSError as exc:  # EAGAIN after SO_RCVTIMEO: stalled; ECONNRESET: cut
                raise TransportFailed(f"receiving from the upstream failed: {exc}") from exc
            if n == 0:
                raise TransportFailed(f"the upstream closed the connection after {got} of {length} bytes")
            got += n
            left = n
            while left:
                left -= os.splice(r, fd, left)
            hasher.wrote(n)
    finally:
        os.close(r)
        os.close(w)


def _copy_body(conn: h11.Connection, sock: socket.socket, fd: int, size: int, hasher: _Hasher) -> None:
    """A body without a length (chunked, or up to the close): through h11, written as it comes."""
    got = 0
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise TransportFailed(f"the upstream's body was cut: {exc}") from exc
        if event is h11.NEED_DATA:
            conn.receive_data(_recv(sock))
        elif isinstance(event, h11.Data):
            got += len(event.data)
            if got > size:
                raise TooLarge(f"the upstream sent more than {size} bytes")
            _write_all(fd, event.data)
            hasher.wrote(len(event.data))
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            return
