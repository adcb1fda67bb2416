"""A mirrored repo's LFS/Xet file contents, fetched from the upstream on first read (docs/mirror.md).

The upstream's ``/resolve/{sha}/{path}`` (redirects followed to the bytes) is written to a temp file in the
blob store's folder while every reader tails that file, then hash-checked against the pointer's sha256 and
published under the ordinary ``lfs/<oid>`` key with an ordinary `LfsObject` row: later reads are ordinary
reads. Concurrent first readers of one object share one fetch: a flight per oid in this process, and a file
lock per oid across processes (a reader in another process waits for the blob instead).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import queue
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
from sqlalchemy.orm import Session

from cove.backends import Backends
from cove.db.tables import Repo
from cove.errors import EntryNotFound
from cove.services import mirror, mirror_fetch
from cove.services.files import BlobLocation
from cove.storage.interfaces import BlobVerificationError

_CHUNK = 1 << 20
#: Bytes per upstream read in the fetch thread (one write, one hash update, one wakeup each).
_FETCH_CHUNK = 4 << 20
#: A waiting zero-copy reader is woken once this much more is written (or the fetch ends).
_WAKE_AT = 4 << 20
#: Fetched blocks waiting to be written and hashed, at most (4 x 4 MiB).
_BEHIND = 4
#: Redirects a spliced fetch follows (as curl's --max-redirs).
_MAX_REDIRECTS = 10


@dataclass(frozen=True)
class Pending:
    """A mirrored repo's LFS object that is not stored here yet, and where upstream it is read from."""

    repo_pk: int
    repo_type: str
    repo_id: str
    oid: str
    size: int
    #: Fetched by oid (the upstream's LFS batch API), never by this repo's commit and path: a duplicate of a
    #: mirror, whose own commits the upstream does not have.
    by_oid: bool = False


@dataclass
class _Flight:
    cond: threading.Condition = field(default_factory=threading.Condition)
    part: Path | None = None  # the temp file being written
    written: int = 0
    started: bool = False  # bytes are coming (`part` set), or the blob is stored (`stored`), or `error`
    stored: bool = False
    #: Every byte is in `part` and hashed right: readers may have the last byte (storing it may still be going on).
    verified: bool = False
    done: bool = False
    error: str | None = None
    #: Readers on an event loop waiting for ``written`` to reach an offset: (offset, loop, future).
    waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future]] = field(default_factory=list)

    def advance(self, n: int = 0) -> None:
        """Under `cond`: `n` more bytes are in `part` (or the fetch ended); wake who can go on."""
        self.written += n
        self.cond.notify_all()
        if self.waiters:
            keep = []
            for want, loop, fut in self.waiters:
                if self.written >= want or self.done:
                    loop.call_soon_threadsafe(_wake, fut)
                else:
                    keep.append((want, loop, fut))
            self.waiters = keep


def _wake(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


class Tail:
    """Bytes ``[start, end)`` of an object still being fetched: its temp file, read no further than written.

    Iterated, it yields the bytes (read in a worker thread); `parts` instead yields ``(fd, offset, count)``
    spans of the temp file to send without reading them into Python (``os.sendfile``), on the event loop.
    A read up to the object's end gets its last byte only once the whole object hashed right: a client is
    never handed a complete body of bytes that failed the check (its body ends short instead)."""

    def __init__(self, flight: _Flight, fh, oid: str, start: int, end: int, size: int) -> None:  # noqa: ANN001
        self.flight, self.fh, self.oid, self.start, self.end, self.size = flight, fh, oid, start, end, size

    def _ready(self) -> int:
        """Under `flight.cond`: how far this read may go now."""
        flight = self.flight
        ready = min(flight.written, self.end)
        if ready == self.size and not (flight.verified or (flight.done and flight.error is None)):
            ready -= 1  # the last byte waits for the hash check (not for the fsync and rename that store it)
        return ready

    def __iter__(self) -> Iterator[bytes]:
        flight, pos, end = self.flight, self.start, self.end
        with self.fh as fh:
            fh.seek(pos)
            while pos < end:
                with flight.cond:
                    flight.cond.wait_for(lambda at=pos: self._ready() > at or flight.done)
                    avail = self._ready()
                    if avail <= pos:
                        raise OSError(f"upstream fetch of {self.oid} failed: {flight.error}")
                block = fh.read(min(avail, pos + _CHUNK * 4) - pos)
                if not block:
                    raise OSError(f"upstream fetch of {self.oid}: temp file shorter than written")
                pos += len(block)
                yield block

    async def parts(self) -> AsyncIterator[tuple[int, int, int]]:
        """``(fd, offset, count)`` spans as the fetch writes them; the file is closed when this ends."""
        flight, pos, end = self.flight, self.start, self.end
        loop = asyncio.get_running_loop()
        with self.fh as fh:
            while pos < end:
                fut = None
                with flight.cond:  # held only for counter updates by the fetch thread
                    avail = self._ready()
                    if avail <= pos and not flight.done:
                        fut = loop.create_future()
                        flight.waiters.append((min(pos + _WAKE_AT, end), loop, fut))
                if fut is not None:
                    await fut
                    continue
                if avail <= pos:
                    raise OSError(f"upstream fetch of {self.oid} failed: {flight.error}")
                n = avail - pos
                yield fh.fileno(), pos, n
                pos += n


_flights: dict[str, _Flight] = {}
_guard = threading.Lock()
#: Fetches from the upstream, for tests and metrics: how many times an object's bytes were requested there.
upstream_fetches = 0


def pending(db: Session, bk: Backends, repo: Repo, loc: BlobLocation, size: int) -> Pending | None:
    """When `loc` is a mirrored repo's (or a duplicate of one's) LFS object not stored yet: what to fetch.
    `EntryNotFound` saying the upstream is unreachable while the breaker is open (never-fetched bytes answer as
    a miss)."""
    if loc.kind != "lfs" or (source := mirror.lfs_source(bk, repo.storage_key)) is None or bk.blobs.exists(loc.key):
        return None  # the marker first: an ordinary repo's read costs no extra blob-store call (S3: a HEAD)
    if not mirror.enabled(bk) or not mirror.available():
        raise EntryNotFound(mirror.unreachable_message(bk, "File not found"))
    own = mirror.marker(bk, repo.storage_key) is not None
    return Pending(repo.id, str(source.get("type") or repo.type), str(source.get("id") or repo.repo_id),
                   loc.key.removeprefix("lfs/"), size, by_oid=not own)


def read(bk: Backends, p: Pending, sha: str | None, path: str | None, start: int, end: int) -> Iterator[bytes]:
    """Bytes ``[start, end)`` of the object, from the one fetch in flight (started here if none is).
    Returns once the bytes are coming; `EntryNotFound` if the upstream could not give them."""
    with _guard:
        flight = _flights.get(p.oid)
        leader = flight is None
        if leader:
            flight = _flights[p.oid] = _Flight()
    assert flight is not None
    if leader:
        threading.Thread(target=_fetch, args=(bk, p, sha, path, flight), daemon=True,
                         name=f"cove-mirror-{p.oid[:12]}").start()
    with flight.cond:
        flight.cond.wait_for(lambda: flight.started)
        if flight.error is not None and not flight.written:
            raise EntryNotFound(flight.error)
        stored = flight.stored or (flight.done and flight.error is None)
    if not stored:
        try:  # still readable after the publish renames it (or a failure unlinks it)
            return Tail(flight, open(flight.part, "rb"), p.oid, start, end, p.size)  # noqa: SIM115 - Tail closes it
        except (OSError, TypeError):
            pass  # published (renamed) before we got here
    return bk.blobs.iter_range(f"lfs/{p.oid}", start, end)


def fetch_now(db: Session, bk: Backends, repo: Repo, oid: str, size: int) -> bool:
    """Store a mirror's (or its duplicate's) LFS object that nobody read yet, waiting until it is published
    (`cove bundle export` of a mirror). False: nothing to fetch (stored already, or an ordinary repo).
    `EntryNotFound` when the upstream cannot give it (unreachable, no upstream configured, wrong bytes)."""
    p = pending(db, bk, repo, BlobLocation("lfs", f"lfs/{oid}"), size)
    if p is None:
        return False
    for _ in read(bk, p, None, None, 0, size):  # the last byte comes only once the whole object hashed right
        pass
    with _guard:
        flight = _flights.get(oid)
    if flight is not None:  # hashed right; the fetch may still be storing it (fsync, rename, row)
        with flight.cond:
            flight.cond.wait_for(lambda: flight.done)
    if not bk.blobs.exists(f"lfs/{oid}"):
        raise EntryNotFound(f"File not found: fetching LFS object {oid} from the upstream hub failed")
    return True


def _tmp_dir(bk: Backends) -> Path:
    folder = getattr(bk.blobs, "tmp", None)
    path = Path(folder) if folder is not None else bk.settings.data / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _fetch(bk: Backends, p: Pending, sha: str | None, path: str | None, flight: _Flight) -> None:
    """The leader: fetch once (across processes too), publish, record; readers follow `flight`."""
    key = f"lfs/{p.oid}"
    part: Path | None = None
    try:
        with mirror.single(bk, f"lfs\0{p.oid}"):
            if bk.blobs.exists(key):  # another process fetched it while we waited
                _record(bk, p)
                with flight.cond:
                    flight.stored = flight.started = True
                    flight.cond.notify_all()
                return
            try:
                url, headers = _source(bk, p, sha, path)
            except httpx.TransportError as exc:
                mirror.trip(bk)
                raise mirror.Unreachable(str(exc)) from exc
            # identity: the bytes as stored (hashed and published as they come; no decoding on the way)
            headers = {"Accept-Encoding": "identity", **headers}
            fd, name = tempfile.mkstemp(dir=_tmp_dir(bk), prefix=f"mirror-{p.oid[:16]}-")
            part = Path(name)
            os.close(fd)
            digest = _receive(bk, url, headers, part, p, path, flight)
            if flight.written != p.size or digest.hexdigest() != p.oid:
                raise BlobVerificationError(f"the upstream's bytes for {path} do not hash to {p.oid}")
            with flight.cond:  # the readers' last byte now: the fsync of the whole file below can take seconds
                flight.verified = True
                flight.advance()
            publish = getattr(bk.blobs, "publish_file", None)
            if publish is not None:
                publish(key, part)
            else:
                with open(part, "rb") as fh:
                    bk.blobs.put_verified(key, fh, sha256=p.oid, size=p.size)
            _record(bk, p)
            mirror.xet_later(bk, p.repo_pk, p.oid, sha, path)  # an upstream Xet file: served over Xet here too
    except mirror.Unreachable:
        flight.error = mirror.unreachable_message(bk, "File not found")
    except Exception as exc:  # noqa: BLE001 - every reader is told, none hangs
        flight.error = f"File not found: fetching it from the upstream hub failed ({exc})"
    finally:
        if part is not None:
            part.unlink(missing_ok=True)  # gone already when published
        with _guard:
            _flights.pop(p.oid, None)
        with flight.cond:
            flight.done = flight.started = True
            flight.advance()


def _upstream_origin(bk: Backends, url: str) -> bool:
    """Whether `url` is on the upstream's origin (the only one the upstream token is sent to)."""
    a, b = httpx.URL(url), httpx.URL(mirror.upstream(bk))
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def _receive(bk: Backends, url: str, headers: dict[str, str], part: Path, p: Pending, path: str | None,
             flight: _Flight) -> hashlib._Hash:
    """The bytes into `part` by the fetcher `COVE_MIRROR_FETCHER` names: ``auto``/``splice`` splice a plain-HTTP
    URL (`mirror_fetch.splice_into`, its redirects followed here: headers meant for one origin never go to
    another), and hand anything else (``https://``) to curl, or to httpx without curl."""
    fetcher = bk.settings.mirror_fetcher
    for _ in range(_MAX_REDIRECTS + 1):
        if fetcher not in ("auto", "splice") or not mirror_fetch.can_splice(url):
            break
        try:
            return _receive_native(bk, mirror_fetch.splice_into, url, headers, part, p, path, flight)
        except mirror_fetch.Redirected as exc:
            if _origin(exc.location) != _origin(url):
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            url = exc.location
    else:
        raise mirror.Unreachable(f"the upstream redirected more than {_MAX_REDIRECTS} times for {path}")
    curl = mirror_fetch.curl_path("auto" if fetcher == "splice" else fetcher)
    if curl is not None:
        return _receive_native(bk, functools.partial(mirror_fetch.fetch_into, curl), url, headers, part, p, path,
                               flight)
    return _receive_httpx(bk, url, headers, os.open(part, os.O_WRONLY), part, p, path, flight)


def _origin(url: str) -> tuple[str, str | None, int | None]:
    u = httpx.URL(url)
    return u.scheme, u.host, u.port


def _receive_native(bk: Backends, fetch: Callable[..., hashlib._Hash], url: str, headers: dict[str, str],
                    part: Path, p: Pending, path: str | None, flight: _Flight) -> hashlib._Hash:
    """The bytes into `part` by `fetch` (`mirror_fetch.splice_into`, plain HTTP and zero-copy, or a bound
    `mirror_fetch.fetch_into` of curl): readers see each block once it is written (hashed meanwhile; the last
    byte waits for the check). `mirror_fetch.Redirected` for a redirect of the spliced fetch."""
    global upstream_fetches
    sent = {"User-Agent": "cove-mirror", **headers}
    if bk.settings.mirror_token and _upstream_origin(bk, url):
        sent["Authorization"] = f"Bearer {bk.settings.mirror_token}"
    with flight.cond:
        flight.part = part

    def on_bytes(n: int) -> None:
        with flight.cond:
            flight.started = True
            flight.advance(n)

    upstream_fetches += 1
    try:
        return fetch(url, sent, part, p.size, on_bytes=on_bytes, connect_timeout=bk.settings.mirror_connect_timeout)
    except mirror_fetch.HttpStatus as exc:
        if exc.status >= 500:
            mirror.trip(bk)
        raise mirror.Unreachable(f"the upstream answered {exc.status} for {path}") from exc
    except mirror_fetch.TransportFailed as exc:  # refused, timed out, stalled, or cut mid-way
        mirror.trip(bk)
        raise mirror.Unreachable(str(exc)) from exc
    except mirror_fetch.TooLarge as exc:
        raise BlobVerificationError(str(exc)) from exc


def _receive_httpx(bk: Backends, url: str, headers: dict[str, str], fd: int, part: Path, p: Pending,
                   path: str | None, flight: _Flight) -> hashlib._Hash:
    """The bytes into `part` through httpx (no curl): received here, written and hashed by `_WriteBehind`."""
    global upstream_fetches
    client = mirror.client(bk)
    request = client.build_request("GET", url, headers=headers)
    if not _upstream_origin(bk, url):
        request.headers.pop("authorization", None)  # e.g. an LFS href to a CDN: the token is not for it
    with open(fd, "wb", buffering=0) as out:  # unbuffered: readers tail what each write put
        try:
            r = client.send(request, stream=True)
            try:
                upstream_fetches += 1
                if r.status_code >= 500:
                    mirror.trip(bk)
                if r.status_code != 200:
                    raise mirror.Unreachable(f"the upstream answered {r.status_code} for {path}")
                with flight.cond:
                    flight.part, flight.started = part, True
                    flight.cond.notify_all()
                behind = _WriteBehind(out, flight)
                try:
                    received = 0
                    for block in r.iter_raw(_FETCH_CHUNK):
                        received += len(block)
                        if received > p.size:
                            raise BlobVerificationError(f"the upstream sent more than {p.size} bytes")
                        behind.put(block)
                finally:
                    behind.join()
                return behind.result()
            finally:
                r.close()
        except httpx.TransportError as exc:  # refused, timed out, or cut mid-way
            mirror.trip(bk)
            raise mirror.Unreachable(str(exc)) from exc


class _WriteBehind:
    """Writes, hashes and announces the fetched blocks on a thread of its own while the fetch thread receives
    the next ones (unbuffered writes and hashlib release the GIL): receiving and storing overlap. At most
    `_BEHIND` blocks wait; readers see a block once it is written."""

    def __init__(self, out, flight: _Flight) -> None:  # noqa: ANN001
        self.out, self.flight, self.digest = out, flight, hashlib.sha256()
        self.blocks: queue.Queue[bytes | None] = queue.Queue(_BEHIND)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="cove-mirror-write")
        self.thread.start()

    def _run(self) -> None:
        while (block := self.blocks.get()) is not None:
            if self.error is not None:
                continue  # drain: the fetch thread never blocks on a dead writer
            try:
                self.out.write(block)
                self.digest.update(block)
                with self.flight.cond:
                    self.flight.advance(len(block))
            except BaseException as exc:  # noqa: BLE001 - raised in the fetch thread by put/result
                self.error = exc

    def put(self, block: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.blocks.put(block)

    def join(self) -> None:
        if self.thread.is_alive():
            self.blocks.put(None)
            self.thread.join()

    def result(self) -> hashlib._Hash:
        if self.error is not None:
            raise self.error
        return self.digest


def _source(bk: Backends, p: Pending, sha: str | None, path: str | None) -> tuple[str, dict[str, str]]:
    """Where the upstream serves the bytes: its ``/resolve/{sha}/{path}`` (redirects followed), or, for a read
    that names only the object (a git-lfs download), the href its LFS batch API gives for the oid."""
    base = f"{mirror.upstream(bk)}/{mirror.PREFIX[p.repo_type]}{p.repo_id}"
    if not mirror.available():
        raise mirror.Unreachable(base)
    if sha is not None and path is not None and not p.by_oid:
        return f"{base}/resolve/{sha}/{quote(path)}", {}
    lfs = {"Accept": "application/vnd.git-lfs+json", "Content-Type": "application/vnd.git-lfs+json"}
    r = mirror.client(bk).post(f"{base}.git/info/lfs/objects/batch", headers=lfs, json={
        "operation": "download", "transfers": ["basic"], "objects": [{"oid": p.oid, "size": p.size}]})
    if r.status_code >= 500:
        mirror.trip(bk)
        raise mirror.Unreachable(f"the upstream's LFS batch answered {r.status_code}")
    objs = r.json().get("objects") if r.status_code == 200 else None
    action = (objs[0].get("actions") or {}).get("download") if objs and isinstance(objs[0], dict) else None
    if not isinstance(action, dict) or not action.get("href"):
        raise BlobVerificationError(f"the upstream has no LFS object {p.oid} of {p.size} bytes")
    return str(action["href"]), {str(k): str(v) for k, v in (action.get("header") or {}).items()}


def _record(bk: Backends, p: Pending) -> None:
    from cove.services import uploads

    with bk.db.session() as db:
        repo = db.get(Repo, p.repo_pk)
        if repo is not None:
            uploads.adopt(db, repo, p.oid, p.size, verified=True)
