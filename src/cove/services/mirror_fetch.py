"""An upstream object's bytes into a temp file without passing them through Python (docs/mirror.md).

``curl`` receives the body and writes it to the file (C: receive and write in large blocks, TLS, redirects);
this process only reads back what it wrote, in large blocks, to hash it (hashlib and unbuffered reads release
the GIL) and to tell readers how far they may go. Used by `cove.services.mirror_lfs` when
``COVE_MIRROR_FETCHER`` is ``curl`` (or ``auto`` and ``curl`` is on PATH); its httpx path is the fallback.

The URL and headers (the upstream token among them) go to curl on its stdin as a config file, never in argv
(``ps`` shows argv); curl sends a custom ``Authorization`` header to the first URL's host and port only, not
after a redirect elsewhere (curl >= 7.83).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

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
