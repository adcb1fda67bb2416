"""A git ref lock left behind as a crashed Cove process leaves it (shared by tests/storage and tests/fleet)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

# Takes the lock as Cove does (exclusive create, owner written), says so, then waits to be killed.
_HOLDER = ("import os, socket, sys, time; fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL);"
           "os.write(fd, f'cove pid={os.getpid()} host={socket.gethostname()}\\n'.encode()); print(1, flush=True);"
           "time.sleep(60)")


def lock_of_a_killed_process(lock: Path) -> None:
    """Create ``lock`` in a process of this host that is then SIGKILLed holding it: the lock stays, its owner is
    gone."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(lock)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"1"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
