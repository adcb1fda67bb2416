"""Fleet settings on PostgreSQL (issue 17 items 6 and 7): `cove serve` refuses to start without COVE_SECRET
(each process would invent its own); the engine's pool is sized by COVE_DB_POOL_SIZE / MAX_OVERFLOW /
POOL_TIMEOUT; COVE_DB_PGBOUNCER gives NullPool and no server-side prepared statements; the start-up migration
lock is transaction-scoped (nothing held on a server connection after its transaction)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from tests.storage.conftest import free_port

pytestmark = pytest.mark.postgres


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVE_")}
    return {**env, **extra}


def test_serve_on_postgres_without_secret_refuses_to_start(pg_url: str, tmp_path: Path) -> None:
    env = _env(COVE_DATA=str(tmp_path / "data"), COVE_DATABASE_URL=pg_url, COVE_PORT=str(free_port()),
               COVE_CONFIG=str(tmp_path / "cove.toml"))
    proc = subprocess.run([sys.executable, "-m", "cove", "serve"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert "set COVE_SECRET: processes sharing a database must share the secret" in proc.stderr
    assert not (tmp_path / "data" / "secret").exists()


def test_pool_sized_by_settings(pg_url: str, tmp_path: Path) -> None:
    from cove.backends import build_backends
    from cove.settings import Settings

    bk = build_backends(Settings(data=tmp_path, database_url=pg_url, db_pool_size=3, db_max_overflow=2,
                                 db_pool_timeout=7))
    pool = bk.db.engine.pool
    assert (pool.size(), pool._max_overflow, pool._timeout) == (3, 2, 7)
    bk.db.engine.dispose()


def test_pgbouncer_mode_no_pool_no_prepared_statements(pg_url: str, tmp_path: Path) -> None:
    from cove.backends import build_backends
    from cove.db.migrate import upgrade
    from cove.settings import Settings

    bk = build_backends(Settings(data=tmp_path, database_url=pg_url, db_pgbouncer=True))
    assert isinstance(bk.db.engine.pool, NullPool)
    with bk.db.engine.connect() as conn:
        assert conn.connection.dbapi_connection.prepare_threshold is None
    upgrade(bk)  # the migration lock works without a pool
    upgrade(bk)
    bk.db.engine.dispose()


def test_migration_lock_is_transaction_scoped(pg_url: str, tmp_path: Path) -> None:
    from cove.db.migrate import _PG_LOCK, migration_lock
    from cove.db.session import make_engine

    engine = make_engine(pg_url)
    order: list[str] = []

    def second() -> None:
        with migration_lock(engine):
            order.append("second")

    with migration_lock(engine):
        with engine.connect() as conn:  # held by an open transaction, not by the session
            states = conn.execute(text(
                "select a.state from pg_locks l join pg_stat_activity a on a.pid = l.pid "
                "where l.locktype = 'advisory' and l.objid = :k and l.granted"), {"k": _PG_LOCK}).scalars().all()
        assert states == ["idle in transaction"]
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.5)
        order.append("first")  # the second migrator waits for the first
    t.join(10)
    assert order == ["first", "second"]
    with engine.connect() as conn:  # no session-level advisory lock left behind
        held = conn.execute(text("select count(*) from pg_locks where locktype = 'advisory' and objid = :k"),
                            {"k": _PG_LOCK}).scalar()
    assert held == 0
    engine.dispose()
