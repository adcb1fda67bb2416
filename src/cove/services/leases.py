"""Jobs that run in exactly one process of a fleet at a time: a row per job in `leases`, claimed by one atomic
UPDATE (free and due → held by me until a deadline), so two processes never both win, and a holder that died
loses its claim when the deadline passes. Portable (SQLite and PostgreSQL) and safe behind PgBouncer in
transaction mode: no session-level advisory lock is held between transactions."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from cove.db.session import Database
from cove.db.tables import Lease, utcnow


def holder_name() -> str:
    """Who claims: host, pid and a random tail (a pid is reused after a restart)."""
    return f"{socket.gethostname()} pid={os.getpid()} {uuid.uuid4().hex[:8]}"


def claim(db: Database, name: str, holder: str, *, ttl: float, due: bool = True) -> bool:
    """Hold job `name` for `ttl` seconds if nobody holds it (and, with `due`, its next run is due)."""
    now = utcnow()
    until = now + timedelta(seconds=ttl)
    cond = [Lease.name == name, Lease.expires_at <= now]
    if due:
        cond.append(Lease.next_due <= now)
    with db.session() as s:
        if s.execute(update(Lease).where(*cond).values(holder=holder, expires_at=until)).rowcount == 1:
            return True
        if s.get(Lease, name) is not None:
            return False
    try:
        with db.session() as s:
            s.add(Lease(name=name, holder=holder, expires_at=until, next_due=now))
        return True
    except IntegrityError:  # another process inserted it first: it holds the job
        return False


def renew(db: Database, name: str, holder: str, *, ttl: float) -> bool:
    """Extend a claim still held by `holder` (False: it expired and may be someone else's now)."""
    with db.session() as s:
        return s.execute(update(Lease).where(Lease.name == name, Lease.holder == holder)
                         .values(expires_at=utcnow() + timedelta(seconds=ttl))).rowcount == 1


def release(db: Database, name: str, holder: str, *, next_in: float | None = None,
            report: dict[str, Any] | None = None) -> None:
    """Give the job back; `next_in` seconds from now it is due again (None: due date unchanged)."""
    now = utcnow()
    values: dict[str, Any] = {"holder": None, "expires_at": now}
    if next_in is not None:
        values["next_due"] = now + timedelta(seconds=next_in)
    if report is not None:
        values["report"] = report
    with db.session() as s:
        s.execute(update(Lease).where(Lease.name == name, Lease.holder == holder).values(**values))


def last_report(db: Database, name: str) -> dict[str, Any] | None:
    with db.session() as s:
        row = s.get(Lease, name)
        return dict(row.report) if row is not None and row.report else None
