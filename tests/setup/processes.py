"""Process and port checks for the start/stop tests: who a process started, and whether they are gone."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


def bindable(port: int) -> bool:
    """Nothing listens on the loopback `port` (it can be bound again)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def alive(pid: int) -> bool:
    """Running (a zombie counts as gone)."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def survivors(pids: list[int], wait: float = 15) -> list[int]:
    """Those of `pids` still alive after up to `wait` seconds."""
    deadline = time.time() + wait
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.2)
    return [p for p in pids if alive(p)]
