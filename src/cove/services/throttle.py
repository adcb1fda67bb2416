"""Throttling of failed password sign-ins and invalid tokens, per account and per client IP.

The counters live in the database (`auth_throttle`), so every API process of a scale-out deployment sees the
same counts. A key spends its budget of failures within a window; it is then blocked (429 with `Retry-After`)
for `auth_lockout` seconds, doubled for each block in a row up to `auth_max_lockout`. The doubling starts over
once the key has been quiet for `auth_max_lockout` after its last block, and a successful sign-in clears the
account's counter: the owner gets in once a block has passed.

Token checks ask a per-process copy of the blocked keys, reloaded at most once a second, so a valid token
costs no query here; a block set by this process is in its copy at once, one set by another process within
a second. Password sign-ins read the table itself.
"""

from __future__ import annotations

import math
import random
import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from cove.db.tables import AuthThrottle, utcnow
from cove.errors import TooManyRequests
from cove.settings import Settings

_STALE = timedelta(days=1)
_RELOAD = 1.0  # seconds between reloads of a process's copy of the blocked keys
#: Per database: (monotonic time of the last reload, blocked key -> until).
_blocked: weakref.WeakKeyDictionary[Engine, tuple[float, dict[str, datetime]]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Budget:
    failures: int
    window: int
    lockout: int
    max_lockout: int


def account_budget(settings: Settings) -> Budget:
    return Budget(settings.auth_account_failures, settings.auth_window, settings.auth_lockout,
                  settings.auth_max_lockout)


def client_budget(settings: Settings) -> Budget:
    return Budget(settings.auth_client_failures, settings.auth_window, settings.auth_lockout,
                  settings.auth_max_lockout)


def account_key(name: str) -> str:
    return "account:" + name.strip().lower()[:150]


def client_key(host: str | None) -> str | None:
    return f"client:{host[:150]}" if host else None


def check(db: Session, *keys: str | None, fresh: bool = False) -> None:
    """429 with `Retry-After` while any of `keys` is blocked; `fresh`: ask the table, not this process's copy."""
    wanted = [k for k in keys if k]
    if not wanted:
        return
    now = utcnow()
    if fresh:
        until = db.scalar(select(AuthThrottle.blocked_until).where(AuthThrottle.key.in_(wanted),
                                                                   AuthThrottle.blocked_until > now)
                          .order_by(AuthThrottle.blocked_until.desc()).limit(1))
    else:
        known = _blocked_keys(db)
        until = max((known[k] for k in wanted if k in known and known[k] > now), default=None)
    if until is not None:
        wait = max(1, math.ceil((until - now).total_seconds()))
        raise TooManyRequests(f"Too many failed attempts: try again in {wait} seconds",
                              headers={"Retry-After": str(wait)})


def fail(db: Session, key: str | None, budget: Budget) -> None:
    """Count one failure under `key`; block the key once the window's budget is spent."""
    if not key:
        return
    now = utcnow()
    _ensure_row(db, key, now)
    row = db.scalar(select(AuthThrottle).where(AuthThrottle.key == key).with_for_update()
                    .execution_options(populate_existing=True))
    if row is None:  # deleted by a concurrent success: count from scratch
        row = AuthThrottle(key=key, failures=0, window_start=now, strikes=0, last_failure=now)
        db.add(row)
    if now - row.window_start > timedelta(seconds=budget.window):
        row.failures, row.window_start = 0, now
    if row.blocked_until is not None and now - row.blocked_until > timedelta(seconds=budget.max_lockout):
        row.strikes = 0
    row.failures += 1
    row.last_failure = now
    if row.failures >= budget.failures:
        row.blocked_until = now + timedelta(seconds=min(budget.lockout * 2 ** min(row.strikes, 30), budget.max_lockout))
        row.strikes += 1
        row.failures, row.window_start = 0, now
        entry = _blocked.get(db.get_bind())
        if entry is not None:
            entry[1][key] = row.blocked_until
    if random.random() < 0.02:  # noqa: S311 - housekeeping, not security
        db.execute(delete(AuthThrottle).where(AuthThrottle.last_failure < now - _STALE,
                                              AuthThrottle.key != key))


def clear(db: Session, key: str | None) -> None:
    """Forget `key`'s failures (a successful sign-in)."""
    if key:
        db.execute(delete(AuthThrottle).where(AuthThrottle.key == key))


def _blocked_keys(db: Session) -> dict[str, datetime]:
    engine = db.get_bind()
    entry = _blocked.get(engine)
    if entry is None or time.monotonic() - entry[0] > _RELOAD:
        rows = db.execute(select(AuthThrottle.key, AuthThrottle.blocked_until)
                          .where(AuthThrottle.blocked_until > utcnow()))
        entry = _blocked[engine] = (time.monotonic(), {k: until for k, until in rows})
    return entry[1]


def _ensure_row(db: Session, key: str, now: datetime) -> None:
    """Insert the key's row if missing, without racing another process doing the same. On SQLite the insert
    also takes the write lock first, so the read-modify-write that follows is serialised."""
    values = {"key": key, "failures": 0, "window_start": now, "strikes": 0, "last_failure": now}
    dialect = db.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - Cove runs on SQLite or PostgreSQL
        if db.get(AuthThrottle, key) is None:
            db.add(AuthThrottle(**values))
            db.flush()
        return
    db.execute(insert(AuthThrottle).values(**values).on_conflict_do_nothing(index_elements=["key"]))
