"""Download counting, the Hub's way: a repo is downloaded when its "query file" is fetched.

Models count `config.json` (or `adapter_config.json`, `model_index.json`, a `.gguf` file); datasets
count `README.md` and data files. `hf_hub_download` sends HEAD then maybe GET with
`X-HF-Download-Counter`: we count the HEAD, and a GET only when it came without that header
(a browser or curl), so one download counts once.

Counting is off the request's critical path: each process adds to a `Tally` in memory, and a background
thread flushes it every `download_flush_interval` seconds (and at a graceful shutdown) in one transaction
that adds the deltas (`n = n + :delta`, an upsert per day), so processes sharing one database never lose each
other's counts. A process's own readers (repo info, listings) flush first and see its counts at once; other
processes' counts show within the flush interval; a crash loses at most one interval of counts. On SQLite
the flush runs on `HeadCache`'s own connection, so it never invalidates that process's cached HEAD answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from cove import lifespan
from cove.db.changes import quiet
from cove.db.tables import Repo, utcnow

log = logging.getLogger(__name__)

MODEL_QUERY_FILES = {"config.json", "adapter_config.json", "model_index.json", "params.json"}
DATASET_SUFFIXES = (".parquet", ".csv", ".json", ".jsonl", ".arrow", ".txt", ".tsv")


def is_query_file(repo: Repo, path: str) -> bool:
    if repo.type == "model":
        return path in MODEL_QUERY_FILES or path.endswith(".gguf")
    if repo.type == "dataset":
        return path == "README.md" or path.endswith(DATASET_SUFFIXES)
    return False


def counted(repo: Repo, path: str, *, head: bool, counter_header: str | None) -> bool:
    """Does this fetch count as a download of the repo?"""
    if not is_query_file(repo, path):
        return False
    return head or not counter_header


# Three statements per flush, valid on SQLite (>= 3.24) and PostgreSQL. A repo is named by its id AND its
# storage key: a repo deleted since its download was counted is skipped (SQLite may give a new repo its id).
_DAYS = ("INSERT INTO download_days (repo_pk, day, count) "
         "SELECT CAST(:pk AS INTEGER), CAST(:day AS VARCHAR(10)), CAST(:n AS INTEGER) "
         "WHERE EXISTS (SELECT 1 FROM repos WHERE id = :pk AND storage_key = :key) "
         "ON CONFLICT (repo_pk, day) DO UPDATE SET count = download_days.count + excluded.count")
_ALL_TIME = ("UPDATE repos SET downloads_all_time = COALESCE(downloads_all_time, 0) + :n "
             "WHERE id = :pk AND storage_key = :key")
_LAST_30 = ("UPDATE repos SET downloads = (SELECT COALESCE(SUM(count), 0) FROM download_days "
            "WHERE repo_pk = :pk AND day >= :since) WHERE id = :pk AND storage_key = :key")

#: Runs `fn(dbapi_connection)` inside a transaction it opens and commits (see `Tally.sink`).
Sink = Callable[[Callable[[Any], None]], None]


class Tally:
    """A process's download counts not yet in the database: `add` is a dict update under a lock."""

    def __init__(self, bk: Any) -> None:  # noqa: ANN401 - Backends (imported late: no cycle)
        self.bk = bk
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: dict[tuple[int, str, str], int] = {}  # (repo id, storage key, day) → downloads
        #: Set by `HeadCache` on SQLite: flush on its connection, whose own commits leave its cache valid.
        self.sink: Sink | None = None
        self.flushes = 0

    def add(self, repo: tuple[int, str], n: int = 1) -> None:
        """Count `n` downloads of the repo `(id, storage_key)` today."""
        key = (repo[0], repo[1], utcnow().strftime("%Y-%m-%d"))
        with self._lock:
            self._pending[key] = self._pending.get(key, 0) + n

    def pending(self) -> int:
        with self._lock:
            return sum(self._pending.values())

    def has_pending(self) -> bool:
        """Any counts not yet written? Without the lock (a dict's truth is read atomically): the answer caches'
        per-request check."""
        return bool(self._pending)

    def flush(self) -> int:
        """Add what is pending to the database in one transaction; on failure it stays pending. Returns the
        downloads written."""
        with self._flush_lock:
            with self._lock:
                taken, self._pending = self._pending, {}
            if not taken:
                return 0
            try:
                self._write(taken)
            except Exception:
                with self._lock:
                    for k, v in taken.items():
                        self._pending[k] = self._pending.get(k, 0) + v
                raise
            self.flushes += 1
            return sum(taken.values())

    def flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001 - counts stay pending for the next flush
            log.warning("download counts not flushed yet (%s); will retry", exc)

    def _write(self, taken: dict[tuple[int, str, str], int]) -> None:
        days = [{"pk": pk, "key": key, "day": day, "n": n} for (pk, key, day), n in taken.items()]
        per_repo: dict[tuple[int, str], int] = {}
        for (pk, key, _), n in taken.items():
            per_repo[pk, key] = per_repo.get((pk, key), 0) + n
        since = (utcnow() - timedelta(days=30)).strftime("%Y-%m-%d")
        totals = [{"pk": pk, "key": key, "n": n} for (pk, key), n in per_repo.items()]
        last30 = [{"pk": pk, "key": key, "since": since} for pk, key in per_repo]
        if self.sink is not None:
            def run(conn: Any) -> None:  # noqa: ANN401 - sqlite3.Connection
                conn.executemany(_DAYS, days)
                conn.executemany(_ALL_TIME, totals)
                conn.executemany(_LAST_30, last30)

            self.sink(run)
            return
        with self.bk.db.engine.begin() as conn:
            quiet(conn)  # PostgreSQL: answer caches other than download counts stay valid (cove.db.changes)
            conn.execute(text(_DAYS), days)
            conn.execute(text(_ALL_TIME), totals)
            conn.execute(text(_LAST_30), last30)


def tally(bk: Any) -> Tally:  # noqa: ANN401 - Backends
    """The process's `Tally` for these backends (made on first use)."""
    found = bk.__dict__.get("_download_tally")
    if found is None:
        found = bk.__dict__.setdefault("_download_tally", Tally(bk))
    return found


def maybe_count(bk: Any, repo: Repo, path: str, *, head: bool, counter_header: str | None) -> bool:  # noqa: ANN401
    """Count a download of `repo` in memory if this fetch is one; True if it was (see `Tally.add`)."""
    if not counted(repo, path, head=head, counter_header=counter_header):
        return False
    tally(bk).add((repo.id, repo.storage_key))
    return True


def flush_for_read(bk: Any) -> None:  # noqa: ANN401
    """Before answering with download numbers: this process's counts are written (no-op when none)."""
    t = bk.__dict__.get("_download_tally")
    if t is not None and t.has_pending():
        t.flush_quietly()


def run_flusher_with(app: Any, bk: Any) -> None:  # noqa: ANN401
    """Flush the tally every `download_flush_interval` seconds for the app's lifetime, and at its shutdown."""
    interval = max(0.05, float(bk.settings.download_flush_interval))

    @contextlib.asynccontextmanager
    async def flushing(_a: Any):  # noqa: ANN202, ANN401
        t = tally(bk)
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                t.flush_quietly()

        try:
            async with lifespan.thread_running("cove-download-flush", loop, stop):
                yield
        finally:
            for _ in range(5):  # a busy database at shutdown: a few tries before the counts are lost
                try:
                    await asyncio.to_thread(t.flush)
                    break
                except Exception as exc:  # noqa: BLE001
                    log.warning("download counts not flushed at shutdown (%s); retrying", exc)
                    await asyncio.sleep(0.2)

    lifespan.alongside(app, flushing)


__all__ = ["Tally", "counted", "is_query_file", "maybe_count", "tally", "flush_for_read",
                          "run_flusher_with"]
