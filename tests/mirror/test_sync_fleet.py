"""A fleet runs the `cove mirror add` schedule once, not once per process (issue 18): two `cove serve`
processes on one data folder and one database mirror an upstream through a proxy that notes when each
branch check (the upstream's ref advertisement) arrives, and can hold those checks as a slow fetch would."""

from __future__ import annotations

import os
import signal
import sqlite3
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from tests.conftest import free_port, start_server, stop_server
from tests.mirror.test_pull_through import _cove, _Forward, _Proxy, _upstream

NAME = f"sf{uuid.uuid4().hex[:6]}"
INTERVAL = 2.0
LEASE_TTL = 3.0


class _Noted(_Forward):
    """Notes the time of every ref advertisement asked for, and holds it while the proxy's `hold` is set."""

    def _go(self) -> None:
        srv = self.server
        if "/info/refs" in self.path:
            with srv.lock:  # type: ignore[attr-defined]
                srv.checks.append(time.monotonic())  # type: ignore[attr-defined]
            hold: threading.Event | None = srv.hold  # type: ignore[attr-defined]
            if hold is not None:
                hold.wait(60)
        super()._go()

    do_GET = do_POST = do_HEAD = _go


@pytest.fixture(scope="module")
def fleet():
    root = Path(tempfile.mkdtemp(prefix="cove-mirror-fleet-"))
    up, token = _upstream(root, NAME)
    api = HfApi(endpoint=up.endpoint, token=token)
    repo_id = f"{NAME}/m-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"a\n", path_in_repo="a.txt", repo_id=repo_id)
    proxy = _Proxy.running(up.endpoint, _Noted, checks=[], hold=None)
    env = {"COVE_MIRROR_UPSTREAM": proxy.url, "COVE_MIRROR_TTL": "3600",
           "COVE_MIRROR_CONNECT_TIMEOUT": "2", "COVE_MIRROR_SYNC_INTERVAL": str(INTERVAL),
           "COVE_MIRROR_SYNC_LEASE_TTL": str(LEASE_TTL)}
    data = root / "mirror"
    a = start_server(data, free_port(), **env)
    b = None
    try:
        b = start_server(data, free_port(), **env)
        _cove(data, "mirror", "add", repo_id, **env)  # mirrored now, by the CLI; the schedule follows it
        yield {"proxy": proxy, "a": a, "b": b, "data": data}
    finally:
        proxy.hold = None
        for srv in (a, b):
            if srv is not None:
                stop_server(srv.proc)
        stop_server(up.proc)
        proxy.shutdown()


def _checks_during(proxy: _Proxy, seconds: float) -> list[float]:
    began = time.monotonic()
    time.sleep(seconds)
    with proxy.lock:
        return [t for t in proxy.checks if t >= began]  # type: ignore[attr-defined]


def _holder(data: Path) -> str | None:
    """Who holds the schedule's lease now (None: nobody, or a claim that ran out)."""
    db = sqlite3.connect(f"file:{data / 'cove.db'}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute("SELECT holder, expires_at FROM leases WHERE name = 'mirror-sync'").fetchone()
    finally:
        db.close()
    if row is None or row[0] is None:
        return None
    return row[0] if datetime.fromisoformat(row[1]) > datetime.now(UTC).replace(tzinfo=None) else None


def test_two_processes_sync_once_per_interval(fleet):
    """Over five intervals the upstream sees one branch check per interval, never two close together: each
    pass starts at least an interval after the last one ended, whichever process runs it. Before, each process
    ran its own schedule: two checks per interval, racing."""
    seen = _checks_during(fleet["proxy"], 5 * INTERVAL + 1)
    assert len(seen) >= 2, "the schedule did not run"
    gaps = [round(b - a, 2) for a, b in zip(seen, seen[1:], strict=False)]
    assert min(gaps) >= INTERVAL - 0.05, gaps
    assert len(seen) <= 6, gaps


def test_a_pass_keeps_its_lease_and_a_dead_holder_frees_it(fleet):
    """A pass held up at the upstream for twice the lease TTL keeps its lease (renewed as it runs): the other
    process starts no second pass meanwhile. The holder then dies mid-pass (SIGKILL): the other process takes
    the schedule over once the lease runs out."""
    proxy, data = fleet["proxy"], fleet["data"]
    procs = {fleet["a"].proc.pid: fleet["a"], fleet["b"].proc.pid: fleet["b"]}
    with proxy.lock:
        proxy.hold, began = threading.Event(), time.monotonic()
    deadline = time.monotonic() + 30
    while not [t for t in proxy.checks if t >= began] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [t for t in proxy.checks if t >= began], "no pass started"
    time.sleep(2 * LEASE_TTL)
    with proxy.lock:
        assert len([t for t in proxy.checks if t >= began]) == 1  # one pass, still running: no second one
    holder = _holder(data)
    assert holder is not None, "the running pass's lease ran out"
    pid = int(holder.split("pid=")[1].split()[0])
    assert pid in procs
    os.kill(pid, signal.SIGKILL)
    procs[pid].proc.wait(10)
    killed_at = time.monotonic()
    proxy.hold.set()
    proxy.hold = None
    deadline = killed_at + LEASE_TTL + INTERVAL + 20
    while time.monotonic() < deadline:
        with proxy.lock:
            later = [t for t in proxy.checks if t > killed_at]
        if later:
            break
        time.sleep(0.1)
    assert later, "the surviving process never took the schedule over"
    survivor = next(p for p in procs if p != pid)
    assert (_holder(data) or f"pid={survivor} ").find(f"pid={survivor} ") >= 0  # released, or the survivor's
