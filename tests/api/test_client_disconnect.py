"""A client that hangs up mid-body is a client error, not a server fault: no 500, no traceback in the log."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit


def test_commit_body_cut_short_is_not_a_server_error(server, alice, repo_factory) -> None:
    repo = repo_factory("cut")
    seen = server.log.stat().st_size
    url = urlsplit(server.endpoint)
    head = (f"POST /api/models/{repo}/commit/main HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Authorization: Bearer {alice.token}\r\nContent-Type: application/x-ndjson\r\n"
            "Content-Length: 1000000\r\n\r\n")
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(head.encode() + b'{"key": "header", "value": {"summary": "cut"}}\n' + b"x" * 4096)
        time.sleep(0.3)
    time.sleep(1.0)
    with open(server.log, "rb") as fh:
        fh.seek(seen)
        tail = fh.read().decode(errors="replace")
    assert "ClientDisconnect" not in tail and "Traceback" not in tail, tail[-3000:]
    assert "/commit/" in tail and " 500 " not in tail, tail[-3000:]
