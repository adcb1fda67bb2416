"""Which commits a process's answer caches must see, on PostgreSQL (SQLite has `PRAGMA data_version`).

Every transaction that wrote through a Cove engine sends `NOTIFY cove_changes` as part of its commit (the
notification is delivered only if, and once, the commit is), and each process listens on a connection of
its own (`Changes`). A cache keeps an answer while `Changes.generation()` is unchanged: it moves on every
notification from any process, at once for this process's own commits (before the connection goes back
to the pool, so before the request that wrote answers), and it is None (cache nothing) until the listener
is connected, or after its connection broke, until it is back, and always behind PgBouncer in transaction
mode (`COVE_DB_PGBOUNCER`: a LISTEN is not kept there; the writes still notify the other processes).

A transaction marked `quiet` (the download tally's flush) notifies with payload `d`: it moves
`generation(downloads=True)` (answers that show download counts) but not `generation()`, so a counted
download never empties the HEAD cache.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Hashable

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

CHANNEL = "cove_changes"
_READ = re.compile(r"\s*(SELECT|WITH|SHOW|SET|EXPLAIN|BEGIN|LISTEN)\b", re.IGNORECASE)
_WROTE, _QUIET = "cove.changes.wrote", "cove.changes.quiet"


def quiet(conn: Connection) -> None:
    """Mark `conn`'s transaction as one that cached answers other than download counts need not see."""
    conn.info[_QUIET] = True


class Changes:
    """This process's view of PostgreSQL commits (see the module doc); one per engine."""

    def __init__(self, engine: Engine, listen: bool = True) -> None:
        self.engine = engine
        #: False behind PgBouncer in transaction mode, where LISTEN is not kept: writers notify, nothing is cached.
        self.listen = listen
        self._lock = threading.Lock()
        self._epoch = 0  # listener connections made: a notification lost between two is never missed
        self._connected = False
        self._writes = 0  # notifications of data changes (any process, this one included) + own commits
        self._downloads = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        event.listen(engine, "before_cursor_execute", self._mark)
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "rollback", self._forget)
        event.listen(engine.pool, "checkin", self._checkin)

    # -- writers ---------------------------------------------------------------------------------------

    @staticmethod
    def _mark(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001, PLR0913
        if _WROTE not in conn.info and not _READ.match(statement):
            conn.info[_WROTE] = True

    @staticmethod
    def _commit(conn: Connection) -> None:
        info = conn.info
        if info.pop(_WROTE, False):
            payload = "d" if info.get(_QUIET) else "w"
            with conn.connection.dbapi_connection.cursor() as cur:
                cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
            info["cove.changes.bump"] = payload

    @staticmethod
    def _forget(conn: Connection) -> None:
        conn.info.pop(_WROTE, None)
        conn.info.pop(_QUIET, None)

    def _checkin(self, dbapi_connection, record) -> None:  # noqa: ANN001
        info = record.info
        info.pop(_QUIET, None)
        info.pop(_WROTE, None)
        bump = info.pop("cove.changes.bump", None)
        if bump is not None:  # committed by this process: seen here before the writer's request answers
            self._bump(bump)

    def _bump(self, payload: str) -> None:
        """One commit seen: of download counts only (payload `d`), or of other data."""
        with self._lock:
            if payload == "d":
                self._downloads += 1
            else:
                self._writes += 1

    # -- readers ---------------------------------------------------------------------------------------

    def generation(self, downloads: bool = False) -> Hashable | None:
        """What cached answers are valid for; None: cache nothing. Starts the listener on first use."""
        if not self.listen:
            return None
        if self._thread is None:
            self.start()
        with self._lock:
            if not self._connected:
                return None
            return (self._epoch, self._writes, self._downloads) if downloads else (self._epoch, self._writes)

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._listen, name="cove-db-changes", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _listen(self) -> None:
        import psycopg

        url = self.engine.url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        warned = False
        while not self._stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    with self._lock:
                        self._epoch += 1
                        self._connected = True
                    warned = False
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._bump(note.payload)
            except Exception as exc:  # noqa: BLE001 - no caching until the listener is back
                if not warned:  # once per outage
                    log.warning("database change listener: %s; answer caches off until it reconnects", exc)
                    warned = True
            finally:
                with self._lock:
                    self._connected = False
            self._stop.wait(1.0)


def changes_for(engine: Engine, listen: bool = True) -> Changes | None:
    """The engine's `Changes` on PostgreSQL (made on first use, by `make_engine`); None on any other database."""
    if engine.dialect.name != "postgresql":
        return None
    found = engine.__dict__.get("_cove_changes")
    if found is None:
        with _made_lock:
            found = engine.__dict__.get("_cove_changes")
            if found is None:
                found = engine.__dict__["_cove_changes"] = Changes(engine, listen)
    return found


_made_lock = threading.Lock()
