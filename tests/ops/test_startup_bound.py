"""Start-up never blocks on a lock for longer than COVE_STARTUP_LOCK_TIMEOUT_S (issue 17 item 9): another process
holding `serve.lock` exclusively (its start-up sweep of a big temp folder on a shared volume) delays a new
`cove serve` by at most the bound."""

from __future__ import annotations

import fcntl
from pathlib import Path

from tests.conftest import free_port, start_server, stop_server


def test_serve_starts_while_another_process_sweeps(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with open(data / "serve.lock", "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # what a process doing its start-up sweep holds
        srv = start_server(data, free_port(), COVE_STARTUP_LOCK_TIMEOUT_S="1")  # before: waited for the lock
        try:
            assert "start-up sweep for more than 1 s: starting anyway" in srv.log.read_text()
        finally:
            stop_server(srv.proc)


def test_temp_sweeps_run_in_one_process_at_a_time(tmp_path: Path) -> None:
    import os
    import time

    from cove.services import tempfiles
    from cove.settings import Settings

    settings = Settings(data=tmp_path, tmp_max_age=60)
    old = tmp_path / "tmp" / "left-by-a-killed-upload"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"x" * 10)
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    with open(tmp_path / "tmp-sweep.lock", "a+b") as other:
        fcntl.flock(other, fcntl.LOCK_EX)  # another process is sweeping
        assert tempfiles.sweep_alone(settings) is None
        assert old.exists()
    assert tempfiles.sweep_alone(settings) == (1, 10)
    assert not old.exists()
