"""Schema migrations through Alembic (run at start-up and by `cove db upgrade`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Engine

from cove.backends import Backends

HERE = Path(__file__).parent
#: pg_advisory_lock key that serialises start-up migrations across API processes ("cove" in ASCII).
_PG_LOCK = 0x636F7665


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """One migrator at a time on PostgreSQL: processes that start together wait, then find the schema at
    head. (SQLite has one writer per file already, and no second host.)"""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK})
            conn.commit()


def upgrade(bk: Backends) -> None:
    """Bring the schema to the latest revision; then re-derive any stale index rows."""
    with migration_lock(bk.db.engine):
        command.upgrade(alembic_config(bk.settings.db_url), "head")
        from cove.services.repos import reindex_all
        from cove.services.xet import ensure_tables

        # The Xet tables are created outside Alembic; doing it here, under the lock, keeps two processes
        # from racing on CREATE TABLE at their first Xet request.
        ensure_tables(bk)
        with bk.db.session() as db:
            reindex_all(db, bk)
