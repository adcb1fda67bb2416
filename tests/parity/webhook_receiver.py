"""A webhook receiver for the tests: ``python webhook_receiver.py PORT OUT [FAILURES [DELAY]]``.

Appends one JSON line per POST to OUT (``{"headers": {...}, "body": ...}``); answers 500 to the first FAILURES
POSTs (counted in OUT's sibling ``OUT.fails``), 200 afterwards; takes DELAY seconds over each answer.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path


class Receiver:
    """This script as a child process on `port`; `events()` reads what it got."""

    def __init__(self, port: int, out: Path, failures: int = 0, delay: float = 0.0) -> None:
        self.port, self.out, self.failures, self.delay = port, out, failures, delay
        self.url = f"http://127.0.0.1:{port}/hook"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Receiver:
        self.proc = subprocess.Popen([sys.executable, __file__, str(self.port), str(self.out), str(self.failures),
                                      str(self.delay)])
        deadline = time.time() + 10
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("the receiver did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)

    def events(self) -> list[dict]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def wait_for(self, predicate, timeout: float = 30) -> list[dict]:  # noqa: ANN001
        """The events once `predicate(events)` holds; AssertionError with what came after `timeout` s."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.events()
            if predicate(got):
                return got
            time.sleep(0.1)
        raise AssertionError(f"the receiver got: {[(e['body']['event'], e['body']['repo']['name']) for e in got]}")


def main() -> None:
    port, out = int(sys.argv[1]), Path(sys.argv[2])
    failures = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    delay = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    seen = out.with_name(out.name + ".fails")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(delay)
            failed = int(seen.read_text()) if seen.exists() else 0
            if failed < failures:
                seen.write_text(str(failed + 1))
                self.send_response(500)
                self.end_headers()
                self.wfile.write(b"not now")
                return
            with open(out, "a") as fh:
                fh.write(json.dumps({"headers": dict(self.headers), "body": json.loads(body)}) + "\n")
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    HTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
