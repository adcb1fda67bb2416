"""A throwaway in-memory CAS that records what the real ``hf_xet`` client uploads.

It answers the minimal protocol (token route, direct xorb POST, v1 shard POST, v1 reconstruction,
capability fetch) with no validation at all, so tests can feed the captured bytes to ``cove.xet``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Captured:
    xorbs: dict[str, bytes] = field(default_factory=dict)
    shards: list[bytes] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)


class CaptureServer:
    def __init__(self) -> None:
        self.captured = Captured()
        captured = self.captured
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes = b"", ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def do_GET(self) -> None:  # noqa: N802
                captured.requests.append(("GET", self.path))
                if self.path.startswith("/token"):
                    body = {"accessToken": "t", "exp": int(time.time()) + 3600, "casUrl": outer.url + "/cas"}
                    return self._send(200, json.dumps(body).encode())
                self._send(404, b"{}")

            def do_POST(self) -> None:  # noqa: N802
                captured.requests.append(("POST", self.path))
                body = self._body()
                m = re.fullmatch(r"/cas/v1/xorbs/default/([0-9a-f]{64})", self.path)
                if m:
                    captured.xorbs[m.group(1)] = body
                    return self._send(200, b'{"was_inserted":true}')
                if self.path == "/cas/v1/shards":
                    captured.shards.append(body)
                    return self._send(200, b'{"result":1}')
                if self.path == "/v1/telemetry":
                    return self._send(200, b"{}")
                self._send(404, b"{}")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def upload_with_hf_xet(server: CaptureServer, payloads: list[bytes]) -> list[object]:
    """Upload ``payloads`` with the real client; return the ``XetFileInfo`` of each."""
    import hf_xet

    session = hf_xet.XetSession()
    with session.new_upload_commit(token_refresh_url=server.url + "/token", token_refresh_headers={}) as commit:
        handles = [commit.start_upload_bytes(p, sha256=hf_xet.COMPUTE_SHA256) for p in payloads]
    return [h.result().xet_info for h in handles]
