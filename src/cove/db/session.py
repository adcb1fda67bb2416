"""Engine and session factory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from cove.settings import Settings


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10, pool_timeout: float = 30.0,
                pgbouncer: bool = False) -> Engine:
    """SQLite with its pragmas, or a server database with a bounded pool; behind PgBouncer in transaction mode
    (`pgbouncer`), no pool of our own and no server-side prepared statements (a transaction may run on any
    server connection)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):  # noqa: ANN001
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if pgbouncer:
        args = {"prepare_threshold": None} if make_url(url).get_driver_name() == "psycopg" else {}
        engine = create_engine(url, poolclass=NullPool, connect_args=args)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow,
                               pool_timeout=pool_timeout)
    from cove.db.changes import changes_for

    changes_for(engine, listen=not pgbouncer)  # PostgreSQL: each write commit notifies the answer caches
    return engine


def engine_options(settings: Settings) -> dict:
    """`make_engine`'s pool keywords from the settings (COVE_DB_*)."""
    return {"pool_size": settings.db_pool_size, "max_overflow": settings.db_max_overflow,
            "pool_timeout": settings.db_pool_timeout, "pgbouncer": settings.db_pgbouncer}


class Database:
    """Owns the engine; hands out sessions that commit on success and roll back on error."""

    def __init__(self, url: str, **engine: object) -> None:
        self.engine = make_engine(url, **engine)
        self.factory = sessionmaker(self.engine, expire_on_commit=False)

    def create_all(self) -> None:
        from cove.db.tables import Base

        Base.metadata.create_all(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        s = self.factory()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()
