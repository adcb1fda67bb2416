"""First reads from a plain-HTTP upstream are spliced (issue 18, docs/mirror.md): socket -> pipe -> temp file by
``os.splice``, hashed by a second thread, no curl. `mirror_fetch.splice_into` against a small raw HTTP server for
the cases no Cove answers (redirect, error status, a body longer than the pointer, a cut body, chunked), and a
mirror of the test server with a broken curl first on PATH: its first reads must not need curl."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download

from cove.services import mirror_fetch
from tests.conftest import free_port, start_server, stop_server

pytestmark = pytest.mark.skipif(not hasattr(os, "splice"), reason="os.splice is Linux-only")

BODY = os.urandom(3 << 20)


@pytest.fixture
def raw() -> Iterator[tuple[str, list[bytes], Callable[[Callable[[socket.socket], None]], None]]]:
    """A one-connection-at-a-time HTTP server whose answer a test writes by hand; it records each request."""
    srv = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []
    handler: list[Callable[[socket.socket], None]] = []

    def loop() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                req = b""
                while b"\r\n\r\n" not in req:
                    req += conn.recv(65536)
                seen.append(req)
                handler[0](conn)

    threading.Thread(target=loop, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}", seen, lambda h: handler.insert(0, h)
    finally:
        srv.close()


def _fetch(url: str, part: Path, size: int, **headers: str) -> tuple[hashlib._Hash, int]:
    part.write_bytes(b"")
    counted = [0]
    digest = mirror_fetch.splice_into(url, headers, part, size, connect_timeout=2,
                                      on_bytes=lambda n: counted.__setitem__(0, counted[0] + n))
    return digest, counted[0]


def test_a_body_with_a_length_is_spliced_hashed_and_announced(raw, tmp_path):
    url, seen, answer = raw
    answer(lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY))
    part = tmp_path / "part"
    digest, announced = _fetch(f"{url}/a/resolve/x/w.bin?download=1", part, len(BODY), Authorization="Bearer t")
    assert part.read_bytes() == BODY and digest.hexdigest() == hashlib.sha256(BODY).hexdigest()
    assert announced == len(BODY)
    head = seen[0].decode()
    assert head.startswith("GET /a/resolve/x/w.bin?download=1 HTTP/1.1\r\n") and "Authorization: Bearer t" in head


def test_a_chunked_body_is_received_too(raw, tmp_path):
    url, _, answer = raw
    half = len(BODY) // 2
    answer(lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               + b"%x\r\n" % half + BODY[:half] + b"\r\n"
                               + b"%x\r\n" % (len(BODY) - half) + BODY[half:] + b"\r\n0\r\n\r\n"))
    digest, announced = _fetch(url, tmp_path / "part", len(BODY))
    assert digest.hexdigest() == hashlib.sha256(BODY).hexdigest() and announced == len(BODY)


def test_redirect_status_too_large_and_cut_bodies(raw, tmp_path):
    url, _, answer = raw
    part = tmp_path / "part"
    answer(lambda c: c.sendall(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere/b?x=1\r\nContent-Length: 0\r\n\r\n"))
    with pytest.raises(mirror_fetch.Redirected) as redirected:
        _fetch(f"{url}/a", part, 10)
    assert redirected.value.location == f"{url}/elsewhere/b?x=1"

    answer(lambda c: c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"))
    with pytest.raises(mirror_fetch.HttpStatus) as status:
        _fetch(url, part, 10)
    assert status.value.status == 404

    answer(lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world"))
    with pytest.raises(mirror_fetch.TooLarge):
        _fetch(url, part, 10)
    assert part.read_bytes() == b""  # refused before a byte was written

    answer(lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY[:100_000]))
    with pytest.raises(mirror_fetch.TransportFailed):
        _fetch(url, part, len(BODY))

    port = free_port()  # nothing listens there
    with pytest.raises(mirror_fetch.TransportFailed):
        _fetch(f"http://127.0.0.1:{port}/", part, 10)


def test_a_mirror_of_a_plain_http_upstream_needs_no_curl(server, alice, no_xet, tmp_path):
    """A curl that always fails is first on PATH: with COVE_MIRROR_FETCHER=auto the first reads through the
    mirror still work (spliced), and the file is stored whole, no temp file left."""
    api = HfApi(endpoint=server.endpoint, token=alice.token)
    repo_id = f"{alice.name}/splice-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id)
    data = os.urandom(5 << 20)
    api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=repo_id)
    wrap = tmp_path / "bin"
    wrap.mkdir()
    (wrap / "curl").write_text(f"#!/bin/sh\necho called >> {tmp_path / 'curl.log'}\nexit 7\n")
    (wrap / "curl").chmod(0o755)
    mir = start_server(tmp_path / "m", free_port(), PATH=f"{wrap}:{os.environ['PATH']}",
                       COVE_MIRROR_UPSTREAM=server.endpoint, COVE_MIRROR_TOKEN=alice.token,
                       COVE_MIRROR_ALLOW=f"{alice.name}/*")
    try:
        url = f"{mir.endpoint}/{repo_id}/resolve/main/w.bin"
        with httpx.Client(timeout=60) as client:
            got: list[bytes] = []
            threads = [threading.Thread(target=lambda: got.append(client.get(url).content)) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert got == [data] * 4
        path = hf_hub_download(repo_id, "w.bin", endpoint=mir.endpoint, cache_dir=tmp_path / "cache")
        assert Path(path).read_bytes() == data
        blobs = [p for p in (tmp_path / "m").rglob("*") if p.is_file() and p.stat().st_size == len(data)]
        assert blobs and all(p.read_bytes() == data for p in blobs)
        assert not list((tmp_path / "m").rglob(f"mirror-{hashlib.sha256(data).hexdigest()[:16]}-*"))  # temp file
    finally:
        stop_server(mir.proc)
    assert not (tmp_path / "curl.log").exists()
