"""`cove demo` and `cove serve` stop with everything they started (SIGTERM, SIGINT), and a second instance
refuses a busy port before it claims anything (no data folder, no migrations, no child)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SERVER_ENV, free_port
from tests.setup.processes import bindable, children, survivors


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    return {**SERVER_ENV, "COVE_DATA": str(tmp_path / "data"), "COVE_PORT": str(port),
            "COVE_CONFIG": str(tmp_path / "config.toml"), "PYTHONUNBUFFERED": "1"}


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_busy_port_refused_before_anything_is_claimed(tmp_path: Path, command: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        run = subprocess.run([sys.executable, "-m", "cove", command], env=_env(tmp_path, port),
                             capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr[-3000:]
    assert f"127.0.0.1:{port}" in run.stderr and "--port" in run.stderr, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "data").exists()  # no hub created, no migration run


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_demo_stops_its_server_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "cove", "demo"], env=_env(tmp_path, port), stdout=fh,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 300
        while "Cove demo is ready" not in log.read_text():
            assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        started = children(proc.pid)
        assert started and not bindable(port)
        proc.send_signal(sig)  # to the demo process only, as `kill` or a supervisor sends it
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    leftover = survivors(started)
    for c in leftover:  # don't leave an orphan behind for the rest of the session
        subprocess.run(["kill", str(c)])
    assert not leftover, log.read_text()[-3000:]
    assert bindable(port)
