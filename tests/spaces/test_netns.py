"""`cove.spaces.netns`: connections into an app's network namespace come from one thread that entered it, not a
thread per connection (review mend), and still reach only what listens inside."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from cove.spaces import netns
from tests.conftest import free_port

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="entering a network namespace needs root")

_ECHO = """
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(c.recv(100).upper())
    c.close()
"""


def test_one_namespace_thread_makes_every_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    try:
        app = subprocess.Popen([sys.executable, "-c", _ECHO, str(port)], stdout=subprocess.PIPE,
                               preexec_fn=netns.enter_new_netns)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"no network namespaces here: {exc}")
    started: list[str] = []
    real = threading.Thread.start

    def counting(self: threading.Thread) -> None:
        started.append(self.name)
        real(self)

    monkeypatch.setattr(threading.Thread, "start", counting)
    try:
        assert app.stdout.readline() == b"ready\n"
        with pytest.raises(OSError):  # not reachable from Cove's own namespace
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        ns_fd = os.open(f"/proc/{app.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            connect = netns.Connector(ns_fd, "127.0.0.1", port)
            for i in range(5):
                with connect() as s:
                    s.sendall(b"hi %d" % i)
                    assert s.recv(100) == b"HI %d" % i
            assert len([n for n in started if n.startswith("space-netns")]) == 1
            connect.close()
        finally:
            os.close(ns_fd)
        deadline = time.monotonic() + 5
        while any(t.name.startswith("space-netns") for t in threading.enumerate()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not any(t.name.startswith("space-netns") for t in threading.enumerate())  # the namespace let go
    finally:
        app.kill()
        app.wait()
