"""Schema migrations through Alembic (run at start-up and by `cove db upgrade`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Engine

if TYPE_CHECKING:  # alembic and the backends are imported where they are used: admin commands stay light
    from alembic.config import Config

    from cove.backends import Backends

HERE = Path(__file__).parent
#: pg_advisory_xact_lock key that serialises start-up migrations across API processes ("cove" in ASCII).
_PG_LOCK = 0x636F7665


_REVISION_RE = re.compile(r"^(down_revision|revision)\s*=\s*['\"]?([^'\"\s]+)", re.MULTILINE)


def head_revision() -> str:
    """The newest revision, read from the migration files' ``revision``/``down_revision`` lines (no Alembic)."""
    revisions, parents = set(), set()
    for path in (HERE / "migrations" / "versions").glob("*.py"):
        for key, value in _REVISION_RE.findall(path.read_text()):
            (revisions if key == "revision" else parents).add(value)
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


def current_revision(engine: Engine) -> str | None:
    """The schema's revision (one query), or None on a database that was never migrated."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:  # noqa: BLE001 - no such table: a fresh database
        return None


def ensure_current(bk: Backends) -> None:
    """Admin commands' schema check: one query; the full `upgrade` only when the revision differs."""
    if current_revision(bk.db.engine) != head_revision():
        upgrade(bk)


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


class LockTimeout(RuntimeError):
    """The start-up migration lock stayed held by another process for longer than the bound."""


@contextmanager
def migration_lock(engine: Engine, timeout: float | None = None) -> Iterator[None]:
    """One migrator at a time on PostgreSQL: processes that start together wait, then find the schema at
    head. (SQLite has one writer per file already, and no second host.) A wait longer than `timeout` seconds
    raises `LockTimeout`, naming the holder."""
    if engine.dialect.name != "postgresql":
        yield
        return
    # A transaction-level lock, held by a transaction left open while the migration runs on other connections:
    # released by its commit, or by PostgreSQL if this process dies. (A session-level lock would stay on the
    # server connection behind PgBouncer in transaction mode, and its unlock could reach another one.)
    from sqlalchemy.exc import OperationalError

    with engine.connect() as conn:
        if timeout is not None:  # lock_timeout bounds the wait for an advisory lock too (SET LOCAL: this one only)
            conn.execute(text(f"SET LOCAL lock_timeout = '{max(1, int(timeout * 1000))}ms'"))
        try:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
                raise
            conn.rollback()
            raise LockTimeout(f"the schema migration lock has been held for more than {timeout:g} s by "
                              f"{_lock_holder(conn)} (COVE_STARTUP_LOCK_TIMEOUT_S); is a migration still "
                              "running there? Start this process again once it is done.") from None
        try:
            yield
        finally:
            conn.rollback()


def _lock_holder(conn) -> str:  # noqa: ANN001
    """Who holds the migration lock, as PostgreSQL knows it."""
    try:
        row = conn.execute(text(
            "SELECT a.pid, a.client_addr, a.application_name, now() - a.xact_start FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.classid = 0 "
            "AND l.objid = :k AND l.granted LIMIT 1"), {"k": _PG_LOCK}).first()
        conn.rollback()
    except Exception:  # noqa: BLE001 - only the message loses detail
        return "another process"
    if row is None:
        return "another process (gone now)"
    return f"PostgreSQL backend pid {row[0]} (client {row[1] or 'local'}, in its transaction for {row[3]})"


def upgrade(bk: Backends, *, reindex: bool = False) -> None:
    """Bring the schema to the latest revision (one query when it is current: no Alembic, no lock).

    The same cost at 10 repos or 100k: stale index rows (a crash between a commit and its index row) are
    healed by `cove serve` in the background (`repos.heal_in_background`) and on the next read of the repo
    (`repos.ensure_fresh`), not here; `reindex=True` (a restored backup, `cove reindex`) does all now.
    Start-up waits at most `startup_lock_timeout_s` for another process's migration (`LockTimeout`).
    """
    head = head_revision()
    if not reindex and current_revision(bk.db.engine) == head:
        from cove.services.xet import ensure_tables

        ensure_tables(bk)  # at head the Alembic revisions made them: this only checks
        return
    with migration_lock(bk.db.engine, bk.settings.startup_lock_timeout_s):
        if current_revision(bk.db.engine) != head:
            from alembic import command

            command.upgrade(alembic_config(bk.settings.db_url), "head")
        from cove.services.xet import ensure_tables

        # The Xet tables are created outside Alembic; doing it here, under the lock, keeps two processes
        # from racing on CREATE TABLE at their first Xet request.
        ensure_tables(bk)
        if reindex:
            from cove.services.repos import reindex_all

            with bk.db.session() as db:
                reindex_all(db, bk)
