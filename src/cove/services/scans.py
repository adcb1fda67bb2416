"""File scans in the database: the Hub's `securityFileStatus`, model metadata, the download block, the worker.

A file is looked at by `cove.services.scanning` once per (content, kind) and the result kept in `scans`. The
`ScanWorker` thread finds what is not scanned yet by walking every ref of every repo, off the request path;
until it gets there a file is reported `unscanned`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from datetime import timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cove import lifespan
from cove.backends import Backends
from cove.db.tables import Repo, Scan, utcnow
from cove.errors import EntryNotFound, Forbidden
from cove.services import files
from cove.services.scanning import Limits, Source, SourceUnavailable, Verdict, kind_for, scan
from cove.storage.git_repos import Entry

log = logging.getLogger("cove.scans")
PENDING = "pending"
#: A claim older than this is taken over (its worker died mid-scan).
STALE_CLAIM = timedelta(minutes=30)
#: Every ref of every repo is looked at again this often (tags, and anything a fingerprint misses).
FULL_SWEEP_S = 60.0


def content_key(e: Entry) -> str:
    return f"sha256:{e.lfs_oid}" if e.is_lfs else f"git:{e.oid}"


def scan_key(e: Entry) -> tuple[str, str]:
    return content_key(e), kind_for(e.path)


def lookup(db: Session, entries: list[Entry]) -> dict[tuple[str, str], Scan]:
    """The scan rows of these file entries, by `scan_key`."""
    wanted = {scan_key(e) for e in entries if e.type == "file"}
    keys = sorted({k for k, _ in wanted})
    out: dict[tuple[str, str], Scan] = {}
    for i in range(0, len(keys), 500):
        for row in db.scalars(select(Scan).where(Scan.key.in_(keys[i: i + 500]))):
            if (row.key, row.kind) in wanted:
                out[(row.key, row.kind)] = row
    return out


def security_status(row: Scan | None) -> dict:
    """`securityFileStatus` as the Hub shapes it; no antivirus runs here, so `avScan` is null."""
    if row is None or row.status == PENDING:
        return {"status": "unscanned", "avScan": None, "pickleImportScan": None}
    report = row.report or {}
    return {"status": row.status, "avScan": None, "pickleImportScan": report.get("pickleImportScan"),
            "headerScan": report.get("headerScan"), "findings": list(report.get("findings") or [])}


def security_for(db: Session, entries: list[Entry]) -> dict[str, dict]:
    """path → `securityFileStatus` for the file entries."""
    rows = lookup(db, entries)
    return {e.path: security_status(rows.get(scan_key(e))) for e in entries if e.type == "file"}


def model_meta(db: Session, entries: list[Entry]) -> tuple[dict | None, dict | None]:
    """(`safetensors`, `gguf`) of repo info: parameters per dtype summed over the valid .safetensors files (once
    every one is scanned; a malformed one counts nothing), and the first valid .gguf file's metadata."""
    wanted = [e for e in entries if e.type == "file" and kind_for(e.path) in ("safetensors", "gguf")]
    if not wanted:
        return None, None
    rows = lookup(db, wanted)
    st = [rows.get(scan_key(e)) for e in wanted if kind_for(e.path) == "safetensors"]
    safetensors = None
    if st and all(r is not None and r.status != PENDING for r in st) and any(r.meta for r in st):  # type: ignore[union-attr]
        params: dict[str, int] = {}
        for r in st:
            for dtype, n in ((r.meta or {}).get("parameters") or {}).items():  # type: ignore[union-attr]
                params[dtype] = params.get(dtype, 0) + int(n)
        safetensors = {"parameters": params, "total": sum(params.values())}
    gguf = None
    for e in sorted(wanted, key=lambda e: e.path):
        r = rows.get(scan_key(e))
        if kind_for(e.path) == "gguf" and r is not None and r.meta:
            gguf = dict(r.meta)
            break
    return safetensors, gguf


# -- scanning one file --------------------------------------------------------------------------


def source_for(db: Session, bk: Backends, repo: Repo, entry: Entry) -> Source | None:
    """Where the scanner reads the file's bytes; None when they are not (or no longer) stored."""
    tmp = bk.settings.data / "tmp"
    if not entry.is_lfs:
        data = bk.repos.read_blob(repo.storage_key, entry.oid)
        return Source(len(data), lambda s, e: data[s:e], tmp)
    try:
        loc = files.locate(db, bk, repo, entry)
    except EntryNotFound:  # a pointer to an object this repo does not hold: no bytes to scan
        return None
    size = entry.size
    if loc.kind == "xet":
        from cove.services import xet

        if xet.file_record(bk, loc.key) is None:
            return None
        return Source(size, _guarded(lambda s, e: b"".join(xet.stream_file(bk, loc.key, s, e))), tmp)
    if not bk.blobs.exists(loc.key):
        return None
    return Source(size, _guarded(lambda s, e: bk.blobs.read_range(loc.key, s, e)), tmp,
                  bk.blobs.local_path(loc.key))


def _guarded(read):  # noqa: ANN001, ANN202
    """A storage read whose failure says nothing about the file (`SourceUnavailable`)."""
    def guarded(start: int, end: int) -> bytes:
        if end <= start:
            return b""
        try:
            return read(start, end)
        except Exception as exc:  # noqa: BLE001 - any storage error
            raise SourceUnavailable(str(exc)) from exc
    return guarded


def _store(bk: Backends, key: tuple[str, str], verdict: Verdict) -> None:
    for _ in range(3):
        try:
            with bk.db.session() as db:
                row = db.get(Scan, key)
                if row is None:
                    row = Scan(key=key[0], kind=key[1])
                    db.add(row)
                row.status, row.report, row.meta = verdict.status, verdict.report, verdict.meta
                row.updated_at = utcnow()
            return
        except IntegrityError:  # another process inserted it meanwhile: update theirs
            continue


def _claim(bk: Backends, key: tuple[str, str]) -> bool:
    """Take `key` for scanning: no row yet, or a pending one whose worker is gone."""
    try:
        with bk.db.session() as db:
            row = db.get(Scan, key)
            if row is None:
                db.add(Scan(key=key[0], kind=key[1], status=PENDING, updated_at=utcnow()))
                return True
            if row.status == PENDING and row.updated_at < utcnow() - STALE_CLAIM:
                row.updated_at = utcnow()
                return True
            return False
    except IntegrityError:
        return False


def _release(bk: Backends, key: tuple[str, str]) -> None:
    with bk.db.session() as db:
        row = db.get(Scan, key)
        if row is not None and row.status == PENDING:
            db.delete(row)


def scan_entry(bk: Backends, repo: Repo, entry: Entry) -> Verdict | None:
    """Scan one file now and store the result; None when its bytes cannot be read."""
    with bk.db.session() as db:
        source = source_for(db, bk, repo, entry)
    if source is None:
        return None
    try:
        verdict = scan(source, kind_for(entry.path),
                       Limits(bk.settings.scan_max_memory, bk.settings.scan_cpu_seconds))
    except SourceUnavailable as exc:
        log.warning("scan of %s postponed: %s", entry.path, exc)
        return None
    _store(bk, scan_key(entry), verdict)
    return verdict


def blocked(db: Session, bk: Backends, repo: Repo, entry: Entry) -> Forbidden | None:
    """With `block_unsafe_downloads`: the refusal for a file found unsafe (None: it may be downloaded). A file
    not scanned yet is scanned first, here."""
    if not bk.settings.block_unsafe_downloads:
        return None
    row = lookup(db, [entry]).get(scan_key(entry))
    if row is not None and row.status != PENDING:
        status, findings = row.status, (row.report or {}).get("findings") or []
    else:
        verdict = scan_entry(bk, repo, entry)
        if verdict is None:
            return None
        status, findings = verdict.status, verdict.report.get("findings") or []
    if status != "unsafe":
        return None
    return Forbidden(f"{entry.path} was flagged unsafe by this server's scan ({'; '.join(findings)}) and "
                     "downloads of unsafe files are blocked here")


def check_xet_download(bk: Backends, xet_hex: str) -> None:
    """With `block_unsafe_downloads`: refuse the Xet reconstruction of a content found unsafe under any name."""
    if not bk.settings.block_unsafe_downloads:
        return
    from cove.db.tables import LfsObject

    with bk.db.session() as db:
        oids = set(db.scalars(select(LfsObject.oid).where(LfsObject.xet_hash == xet_hex.lower())))
        keys = [f"sha256:{o}" for o in oids]
        bad = keys and db.scalar(select(Scan.key).where(Scan.key.in_(keys), Scan.status == "unsafe").limit(1))
    if bad:
        raise Forbidden(f"File {xet_hex} was flagged unsafe by this server's scan and downloads of unsafe files "
                        "are blocked here")


# -- the worker ---------------------------------------------------------------------------------


class ScanWorker:
    """A daemon thread that scans every file of every ref not scanned yet, every `interval` seconds.

    Per repo it remembers (head, last_modified) and skips repos where neither moved, except on a full sweep
    every `FULL_SWEEP_S` (the first one `FULL_SWEEP_S` after start: start-up walks no repo); per commit it
    remembers that all its files are scanned. Several processes share the work through claims (`pending`
    rows). Between full sweeps a poll reads only the repos changed since the last one (a watermark on
    `last_modified`, with `WATERMARK_OVERLAP` of slack, and ids above the highest seen), not the table."""

    #: A poll re-reads repos modified this long before the newest it saw: commits that land out of order.
    WATERMARK_OVERLAP = timedelta(seconds=30)

    WALKED_MAX = 100_000

    def __init__(self, bk: Backends, interval: float) -> None:
        self.bk = bk
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fingerprints: dict[int, tuple] = {}
        self._walked: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._last_full = time.monotonic()
        self._since = utcnow() - self.WATERMARK_OVERLAP
        self._max_id: int | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cove-scanner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - the worker outlives any one bad poll
                log.exception("scan worker poll failed")
            self._stop.wait(self.interval)

    def poll(self) -> None:
        full = time.monotonic() - self._last_full >= FULL_SWEEP_S
        columns = select(Repo.id, Repo.storage_key, Repo.sha, Repo.last_modified)
        with self.bk.db.session() as db:
            if self._max_id is None:
                self._max_id = db.scalar(select(func.max(Repo.id))) or 0
            if full:
                rows = db.execute(columns).all()
            else:
                rows = db.execute(columns.where(or_(Repo.last_modified >= self._since,
                                                    Repo.id > self._max_id))).all()
        for _rid, _key, _sha, modified in rows:
            if modified is not None and modified - self.WATERMARK_OVERLAP > self._since:
                self._since = modified - self.WATERMARK_OVERLAP
        self._max_id = max([self._max_id, *(r[0] for r in rows)])
        for rid, key, sha, modified in rows:
            if self._stop.is_set():
                return
            fp = (sha, modified)
            if not full and self._fingerprints.get(rid) == fp:
                continue
            try:
                done = self._repo(rid, key)
            except Exception as exc:  # noqa: BLE001 - e.g. the repo was deleted during the walk
                log.warning("scan of repo %s skipped until the next full sweep: %s", key, exc)
                done = True  # its commits are not marked walked: the full sweep tries them again
            if done:
                self._fingerprints[rid] = fp
            else:
                self._fingerprints.pop(rid, None)
        if full:
            self._last_full = time.monotonic()

    def _repo(self, rid: int, key: str) -> bool:
        done = True
        for sha in set(self.bk.repos.refs(key).values()):
            if (key, sha) in self._walked:
                continue
            state = self._commit(rid, key, sha)
            if state == "done":
                self._walked[(key, sha)] = None
                if len(self._walked) > self.WALKED_MAX:
                    self._walked.popitem(last=False)
            elif state == "soon":
                done = False
            # "later": bytes not readable now; the next full sweep tries again
        return done

    def _commit(self, rid: int, key: str, sha: str) -> str:
        """Scan what is unscanned in commit `sha`: "done", or what is left is for the next poll ("soon": another
        process is at it) or the next full sweep ("later": bytes not readable now)."""
        entries = [e for e in self.bk.repos.list_tree(key, sha, recursive=True) or [] if e.type == "file"]
        with self.bk.db.session() as db:
            rows = lookup(db, entries)
            repo = db.get(Repo, rid)
        if repo is None:
            return "later"
        todo: dict[tuple[str, str], Entry] = {}
        for e in entries:
            k = scan_key(e)
            row = rows.get(k)
            if (row is None or row.status == PENDING) and k not in todo:
                todo[k] = e
        state = "done"
        for k, e in todo.items():
            if self._stop.is_set():
                return "soon"
            if not _claim(self.bk, k):
                state = "soon"  # another process has it
                continue
            try:
                verdict = scan_entry(self.bk, repo, e)
            except Exception:
                _release(self.bk, k)
                raise
            if verdict is None:
                _release(self.bk, k)
                state = "later" if state == "done" else state
        return state


def run_worker_with(app, bk: Backends) -> None:  # noqa: ANN001
    """Run a `ScanWorker` for the app's lifetime (inside its lifespan), unless `scan_interval` is 0."""
    if bk.settings.scan_interval <= 0:
        return
    lifespan.run_worker(app, lambda: ScanWorker(bk, bk.settings.scan_interval))
