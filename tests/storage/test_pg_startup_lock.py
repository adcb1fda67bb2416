"""Start-up never waits on the migration lock for longer than a bound (issue 17 item 9): a process whose schema
is current takes no lock at all; one that needs a migration while another process holds the lock gives up after
COVE_STARTUP_LOCK_TIMEOUT_S with an error naming the holder."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.storage.conftest import free_port

pytestmark = pytest.mark.postgres


def _held(pg_url: str):  # noqa: ANN202
    """A connection of 'another process' holding the migration lock in an open transaction."""
    from cove.db.migrate import _PG_LOCK
    from cove.db.session import make_engine

    engine = make_engine(pg_url)
    conn = engine.connect()
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
    return engine, conn


def _upgrade_within(bk, seconds: float) -> BaseException | None:  # noqa: ANN001
    """Run `upgrade(bk)` in a thread: the exception it raised (None: it returned) within `seconds`."""
    from cove.db.migrate import upgrade

    out: list[BaseException | None] = []

    def run() -> None:
        try:
            upgrade(bk)
            out.append(None)
        except BaseException as exc:  # noqa: BLE001
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert out, f"upgrade still waiting after {seconds} s"
    return out[0]


def test_current_schema_starts_while_another_holds_the_lock(pg_url: str, tmp_path: Path) -> None:
    from cove.backends import build_backends
    from cove.db.migrate import upgrade
    from cove.settings import Settings

    bk = build_backends(Settings(data=tmp_path, database_url=pg_url, startup_lock_timeout_s=30))
    upgrade(bk)
    engine, conn = _held(pg_url)
    try:
        t0 = time.monotonic()
        assert _upgrade_within(bk, 10) is None
        assert time.monotonic() - t0 < 5
    finally:
        conn.close()
        engine.dispose()
        bk.db.engine.dispose()


def test_migration_waits_at_most_the_bound_and_names_the_holder(pg_url: str, tmp_path: Path) -> None:
    from cove.backends import build_backends
    from cove.db.migrate import LockTimeout
    from cove.settings import Settings

    bk = build_backends(Settings(data=tmp_path, database_url=pg_url, startup_lock_timeout_s=1))
    engine, conn = _held(pg_url)
    try:
        t0 = time.monotonic()
        exc = _upgrade_within(bk, 10)
        assert isinstance(exc, LockTimeout), exc
        assert 0.9 < time.monotonic() - t0 < 6
        assert "held for more than 1 s by PostgreSQL backend pid" in str(exc)
        # `cove serve` says so and exits, instead of hanging.
        env = {k: v for k, v in os.environ.items() if not k.startswith("COVE_")}
        env.update(COVE_DATA=str(tmp_path / "serve"), COVE_DATABASE_URL=pg_url, COVE_SECRET="s" * 32,
                   COVE_PORT=str(free_port()), COVE_STARTUP_LOCK_TIMEOUT_S="1", COVE_CONFIG=str(tmp_path / "c.toml"))
        proc = subprocess.run([sys.executable, "-m", "cove", "serve"], env=env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 1 and "Error: the schema migration lock has been held" in proc.stderr
    finally:
        conn.close()
        engine.dispose()
        bk.db.engine.dispose()
    assert _upgrade_within(bk, 60) is None  # the holder is gone: the migration runs
    bk.db.engine.dispose()


def test_git_maintenance_lease_on_postgres(pg_url: str, tmp_path: Path) -> None:
    """The maintenance job's lease on PostgreSQL: of processes racing for a due pass exactly one runs it, and
    it is not due again before the interval (the fleet runs one pass per interval, not one per process)."""
    from cove.backends import build_backends
    from cove.db.migrate import upgrade
    from cove.services import git_maintenance
    from cove.settings import Settings

    bk = build_backends(Settings(data=tmp_path, database_url=pg_url, git_maintenance_interval=3600))
    upgrade(bk)
    reports: list[object] = []
    barrier = threading.Barrier(6)

    def contend() -> None:
        barrier.wait()
        reports.append(git_maintenance.run_once(bk))

    threads = [threading.Thread(target=contend) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ran = [r for r in reports if r is not None]
    assert len(reports) == 6 and len(ran) == 1
    assert git_maintenance.run_once(bk) is None  # not due for an hour
    assert git_maintenance.run_once(bk, due=False) is not None  # `cove git maintain`
    bk.db.engine.dispose()
