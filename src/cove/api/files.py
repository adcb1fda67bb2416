"""Files: tree listing, paths-info, and `/resolve` (HEAD and GET, with byte ranges)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter

from cove.api.ranges import BlobFileResponse, SpanStreamingResponse, parse_range
from cove.api.shapes import PLURAL, PREFIX, entry_json
from cove.bounded import BoundedDict
from cove.db.changes import changes_for
from cove.deps import Bk, CurrentActor, repo_type_of, token_from_header
from cove.errors import BadRequest
from cove.services import access, downloads, files, gating, mirror, mirror_lfs, scans
from cove.services.paths import clean_path, split_rev_path

router = APIRouter()
#: How often `HeadCache` dropped its answers because the database changed (not counted downloads: see its doc).
HEAD_CACHE_CLEARS = Counter("cove_head_cache_clears", "Times the HEAD /resolve cache was emptied because "
                            "another database connection committed.")
TREE_PAGE = 1000
TREE_PAGE_EXPANDED = 50


def _xet_for(db, repo, entries) -> dict[str, str]:  # noqa: ANN001
    """sha256 → xet hash for the LFS entries of a listing (only files stored in Xet)."""
    from sqlalchemy import select

    from cove.db.tables import LfsObject

    oids = {e.lfs_oid for e in entries if e.is_lfs}
    if not oids:
        return {}
    q = select(LfsObject.oid, LfsObject.xet_hash).where(
        LfsObject.repo_pk == repo.id, LfsObject.oid.in_(oids), LfsObject.xet_hash.is_not(None)
    )
    return dict(db.execute(q).all())


def _tree(plural: str, ns: str, name: str, rev: str, path: str, request: Request, bk, actor,  # noqa: ANN001
          recursive: bool, expand: bool, cursor: int, limit: int | None) -> JSONResponse:
    repo_type = repo_type_of(plural)
    rev, path = split_rev_path(rev, path)
    path = clean_path(path, allow_root=True)
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type, f"{ns}/{name}")
        sha = files.resolve_revision(bk, repo, rev)
        entries = files.list_tree(bk, repo, sha, path, recursive=recursive)
        page = limit or (TREE_PAGE_EXPANDED if expand else TREE_PAGE)
        chunk = entries[cursor: cursor + page]
        xet = _xet_for(db, repo, chunk)
        security = scans.security_for(db, chunk) if expand else {}
    out = []
    for e in chunk:
        item = entry_json(e, xet_hash=xet.get(e.lfs_oid or ""))
        if expand:
            info = bk.repos.last_commit_for(repo.storage_key, sha, e.path)
            if info:
                item["lastCommit"] = {"id": info.id, "title": info.title,
                                      "date": info.date.strftime("%Y-%m-%dT%H:%M:%S.000Z")}
            if e.type == "file":
                item["securityFileStatus"] = security[e.path]
        out.append(item)
    headers = {}
    if cursor + page < len(entries):
        base = f"{bk.settings.public_endpoint}/api/{plural}/{ns}/{name}/tree/{quote(rev, safe='')}"
        if path:
            base += "/" + quote(path, safe="")
        nxt = (f"{base}?recursive={str(recursive).lower()}&expand={str(expand).lower()}"
               f"&cursor={cursor + page}" + (f"&limit={limit}" if limit else ""))
        headers["Link"] = f'<{nxt}>; rel="next"'
    return JSONResponse(out, headers=headers)


@router.get("/api/{plural}/{ns}/{name}/tree/{rev}")
def tree_root(plural: str, ns: str, name: str, rev: str, request: Request, bk: Bk, actor: CurrentActor,
              recursive: bool = False, expand: bool = False, cursor: int = 0,
              limit: Annotated[int | None, Query(ge=1, le=10000)] = None) -> JSONResponse:
    return _tree(plural, ns, name, rev, "", request, bk, actor, recursive, expand, cursor, limit)


@router.get("/api/{plural}/{ns}/{name}/tree/{rev}/{path:path}")
def tree_path(plural: str, ns: str, name: str, rev: str, path: str, request: Request, bk: Bk,
              actor: CurrentActor, recursive: bool = False, expand: bool = False, cursor: int = 0,
              limit: Annotated[int | None, Query(ge=1, le=10000)] = None) -> JSONResponse:
    return _tree(plural, ns, name, rev, path, request, bk, actor, recursive, expand, cursor, limit)


@router.post("/api/{plural}/{ns}/{name}/paths-info/{rev:path}")
async def paths_info(plural: str, ns: str, name: str, rev: str, request: Request, bk: Bk,
                     actor: CurrentActor) -> JSONResponse:
    ctype = request.headers.get("content-type", "")
    if "json" in ctype:
        try:
            body = await request.json()
        except ValueError as exc:
            raise BadRequest("Body is not valid JSON") from exc
        paths = body.get("paths", []) if isinstance(body, dict) else []
        expand = bool(body.get("expand")) if isinstance(body, dict) else False
    else:
        form = await request.form()
        paths = form.getlist("paths")
        expand = str(form.get("expand", "")).lower() in ("1", "true")
    if not isinstance(paths, list) or len(paths) > 1000:
        raise BadRequest("'paths' must be a list of at most 1000 paths")
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_paths_info, plural, ns, name, rev, [str(p) for p in paths], bk, actor,
                                   expand)


def _paths_info(plural, ns, name, rev, paths, bk, actor, expand=False) -> JSONResponse:  # noqa: ANN001
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        sha = files.resolve_revision(bk, repo, rev)
        entries = []
        for p in paths:
            e = bk.repos.entry(repo.storage_key, sha, clean_path(p, allow_root=True))
            if e is not None and e.path:
                entries.append(e)
        xet = _xet_for(db, repo, entries)
        security = scans.security_for(db, entries) if expand else {}
    out = [entry_json(e, xet_hash=xet.get(e.lfs_oid or "")) for e in entries]
    if expand:  # as the tree's expand=true: HfFileSystem.info(expand_info=True) reads these
        for item, e in zip(out, entries, strict=True):
            info = bk.repos.last_commit_for(repo.storage_key, sha, e.path)
            if info:
                item["lastCommit"] = {"id": info.id, "title": info.title,
                                      "date": info.date.strftime("%Y-%m-%dT%H:%M:%S.000Z")}
            if e.type == "file":
                item["securityFileStatus"] = security[e.path]
    return JSONResponse(out)


# -- resolve ------------------------------------------------------------------------------------


def _resolve(repo_type: str, ns: str, name: str, rev: str, path: str, request: Request, bk, actor) -> Response:  # noqa: ANN001
    # A HEAD answered 200 here may be answered again by `HeadCache` without this function: whatever new
    # input (a header, a query parameter, a setting) this starts to read, `HeadCache` must know about.
    rev, path = split_rev_path(rev, path)
    path = clean_path(path)
    head = request.method == "HEAD"
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type, f"{ns}/{name}")
        if repo.gated:
            gating.require_file_access(db, actor, repo, path, bk.settings.public_endpoint)
        sha = files.resolve_revision(bk, repo, rev)
        entry = files.get_entry(bk, repo, sha, path)
        if entry.type != "file":
            raise files.EntryNotFound(f"{path} is a folder", headers={"X-Repo-Commit": sha})
        loc = files.locate(db, bk, repo, entry)
        lazy = mirror_lfs.pending(db, bk, repo, loc, entry.size)  # a mirror's file not fetched from upstream yet
        refusal = scans.blocked(db, bk, repo, entry)
        if refusal is not None and not head:
            raise refusal
        count_pk = (repo.id, repo.storage_key) if downloads.maybe_count(
            bk, repo, path, head=head, counter_header=request.headers.get("x-hf-download-counter")) else None
        private = repo.private
        ticket = HeadCache.ticket(request, db, repo, path)  # HEAD, or a GET that `HeadCache.serve_get` missed
    headers = _file_headers(bk, repo_type, ns, name, path, sha, entry, loc, private)
    if refusal is not None:  # HEAD: no Xet, no redirect, so the client's download is this route's GET, refused
        headers.pop("X-Xet-Hash", None)
        headers.pop("Link", None)
    if request.query_params.get("download") == "true":
        headers["Content-Disposition"] = headers["Content-Disposition"].replace("inline", "attachment", 1)
    size = entry.size
    if lazy is not None and not head:  # streamed to the client while it is stored (one fetch for all readers)
        rng = parse_range(request.headers.get("range"), size)
        start, end = rng or (0, size)
        body = mirror_lfs.read(bk, lazy, sha, path, start, end)
        return _stream(body, start, end, size, rng is not None, headers, path)
    if loc.kind == "lfs" and refusal is None and bk.blobs.local_path(loc.key) is None:
        # Object store: 302 to a presigned URL on its own origin (hub-protocol §4.3 option B). The client
        # takes commit, etag and size from this response and GETs the URL without Authorization.
        url = bk.blobs.url(loc.key, filename=path.rsplit("/", 1)[-1])
        if url is not None:
            keep = ("X-Repo-Commit", "X-Linked-Etag", "X-Linked-Size", "ETag", "Cache-Control",
                    "Access-Control-Expose-Headers")
            return Response(status_code=302, headers={**{k: headers[k] for k in keep}, "Location": url})
    if head:
        headers["Content-Length"] = str(size)
        local = loc.kind == "git" or (loc.kind == "lfs" and bk.blobs.local_path(loc.key))
        if ticket is not None and local and loc.xet_hash is None:
            ticket.remember(repo_type, ns, name, rev, path, repo.storage_key, private, count_pk)
        return Response(status_code=200, headers=headers, media_type=_media_type(path))
    rng = parse_range(request.headers.get("range"), size)
    if loc.kind == "lfs":
        local = bk.blobs.local_path(loc.key)
        if local is not None:
            if ticket is not None and count_pk is None and refusal is None and lazy is None:
                ticket.remember_get(ns, rev, sha, repo.storage_key, local, headers, _media_type(path))
            return BlobFileResponse(local, headers=headers, media_type=_media_type(path))
        start, end = rng or (0, size)
        return _stream(bk.blobs.iter_range(loc.key, start, end), start, end, size, rng is not None, headers, path)
    if loc.kind == "xet":
        from cove.services import xet as xet_service  # provided by the Xet module

        start, end = rng or (0, size)
        body = xet_service.stream_file(bk, loc.key, start, end)
        return _stream(body, start, end, size, rng is not None, headers, path)
    data = bk.repos.read_blob(repo.storage_key, loc.key)
    if rng:
        start, end = rng
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        return Response(data[start:end], status_code=206, headers=headers, media_type=_media_type(path))
    return Response(data, headers=headers, media_type=_media_type(path))


def _file_headers(bk, repo_type: str, ns: str, name: str, path: str, sha: str, entry, loc,  # noqa: ANN001
                  private: bool) -> dict[str, str]:
    headers = {
        "X-Repo-Commit": sha,
        "Accept-Ranges": "bytes",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}",
        "X-Content-Type-Options": "nosniff",  # repo bytes are never to be taken for HTML or script
        "Cache-Control": "private, max-age=0" if private else "public, max-age=0",
        "Access-Control-Expose-Headers": "X-Repo-Commit,X-Request-Id,X-Error-Code,X-Error-Message,ETag,Link,"
        "Accept-Ranges,Content-Range,X-Linked-Size,X-Linked-ETag,X-Xet-Hash",
    }
    if entry.is_lfs:
        headers["ETag"] = f'"{entry.lfs_oid}"'
        headers["X-Linked-Etag"] = f'"{entry.lfs_oid}"'
        headers["X-Linked-Size"] = str(entry.size)
    else:
        headers["ETag"] = f'"{entry.oid}"'
    if loc.xet_hash:
        p = PLURAL[repo_type]
        headers["X-Xet-Hash"] = loc.xet_hash
        headers["Link"] = (f'<{bk.settings.public_endpoint}/api/{p}/{ns}/{name}/xet-read-token/{sha}>; '
                           'rel="xet-auth"')
    return headers


def _stream(body, start: int, end: int, size: int, partial: bool, headers: dict, path: str) -> Response:  # noqa: ANN001
    headers = dict(headers, **{"Content-Length": str(end - start)})
    if partial:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return SpanStreamingResponse(body, status_code=206 if partial else 200, headers=headers,
                                 media_type=_media_type(path))


def _media_type(path: str) -> str:
    low = path.lower()
    if low.endswith((".json", ".ipynb")):
        return "application/json"
    if low.endswith((".md", ".txt", ".py", ".yaml", ".yml", ".csv", ".jinja", ".gitattributes")) or "." not in low:
        return "text/plain; charset=utf-8"
    if low.endswith(".png"):
        return "image/png"
    if low.endswith((".jpg", ".jpeg")):
        return "image/jpeg"
    return "application/octet-stream"


# -- HEAD /resolve, answered again without the framework or the database --------------------------------


def token_deadline(db, authorization: bytes | None) -> tuple[bool, float | None]:  # noqa: ANN001
    """May an answer for this Authorization be kept, and until when (`time.time()`; None: no limit)?
    `actor_for_token` refreshes a token's `last_used_at` once it is more than 60 s old: the full way then
    (and at the token's expiry, when it is refused)."""
    token = token_from_header(authorization.decode("latin-1")) if authorization is not None else None
    if token is None:
        return True, None
    from sqlalchemy import select

    from cove.db.tables import Token, utcnow
    from cove.services.accounts import hash_token

    row = db.execute(select(Token.last_used_at, Token.expires_at)
                     .where(Token.token_hash == hash_token(token))).first()
    if row is None or row.last_used_at is None:
        return False, None
    left = 60 - (utcnow() - row.last_used_at).total_seconds()
    if row.expires_at is not None:
        left = min(left, (row.expires_at - utcnow()).total_seconds())
    return True, time.time() + left


@dataclass(frozen=True)
class _Known:
    """What a HEAD /resolve took from the database (and its parsed URL), valid while `gen` is current."""

    gen: Hashable
    deadline: float | None  # time.time() after which the caller's token needs `last_used_at` refreshed
    repo_type: str
    ns: str
    name: str
    rev: str
    path: str
    storage_key: str
    private: bool
    count_pk: tuple[int, str] | None = None  # a query file: each answer counts a download of this repo (in memory)


@dataclass
class _Ticket:
    cache: HeadCache
    key: tuple
    gen: Hashable
    deadline: float | None

    def remember(self, repo_type: str, ns: str, name: str, rev: str, path: str, storage_key: str,
                 private: bool, count_pk: tuple[int, str] | None = None) -> None:
        self.cache.put(self.key, _Known(self.gen, self.deadline, repo_type, ns, name, rev, path, storage_key,
                                        private, count_pk))

    def remember_get(self, ns: str, rev: str, sha: str, storage_key: str, local: str, headers: dict[str, str],
                     media_type: str) -> None:
        """A GET of a local LFS file answered 200 (not counted, not refused): `serve_get` may send it again."""
        self.cache._gets.put(self.key, _KnownGet(self.gen, self.deadline, storage_key, rev, sha, local,
                                                 dict(headers), media_type))


@dataclass(frozen=True)
class _KnownGet:
    """A GET /resolve of a local LFS file: sent again while `gen` is current and `rev` still points at `sha`."""

    gen: Hashable
    deadline: float | None
    storage_key: str
    rev: str
    sha: str
    local: str
    headers: dict[str, str]
    media_type: str


class HeadCache:
    """Answers a repeated `HEAD /resolve` (what `hf_hub_download` sends for every file, cached or not)
    without a database round-trip, in front of FastAPI's middleware, routing and dependencies
    (`cove.app.CoveApp` calls `serve` first).

    After `_resolve` answered a HEAD with 200, the database part of that answer (the caller's token and its
    rights on the repo, the repo row, the parsed URL) is remembered per (path, query, Authorization). It is
    used again only while SQLite's `PRAGMA data_version` is unchanged, which moves on every commit of any
    other connection, from this process or another (a revoked token, a repo made private, a new member, a
    download counted), and only until the token's `last_used_at` is due for its refresh. The git part (the
    revision's commit, the tree entry, the blob's presence) is read again every time, so a push is seen at
    once. Anything else — a cookie, a `%`-encoded path, an Xet or object-store file, any error — goes the
    full way. A query file's answer counts a download in memory (`downloads.Tally`) as the full route does;
    the tally's flushes run on this cache's own connection (`execute`), which moves no data_version here, so
    a counted download invalidates nothing. On PostgreSQL the generation is `cove.db.changes.Changes`'s:
    every Cove process's write commits NOTIFY, this cache's listener sees them (this process's own at once, other
    processes' within the notification's delivery, milliseconds), and the tally's flushes are marked quiet.
    """

    MAX_ENTRIES = 10_000

    def __init__(self, bk) -> None:  # noqa: ANN001
        self.bk = bk
        url = getattr(getattr(bk.db, "engine", None), "url", None)
        db = url.database if url is not None and url.get_backend_name() == "sqlite" else None
        self._db_path = db if db and db != ":memory:" and not db.startswith("file:") else None
        self._known: BoundedDict[tuple, _Known] = BoundedDict(self.MAX_ENTRIES)
        #: key → (commit, gen, local blob path or None, raw headers)
        self._answers: BoundedDict[tuple, tuple] = BoundedDict(self.MAX_ENTRIES)
        self._gets: BoundedDict[tuple, _KnownGet] = BoundedDict(self.MAX_ENTRIES)  # GET /resolve of local LFS files
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._gen: tuple[int, int] | None = None
        self._epoch = 0
        self.tally = downloads.tally(bk)
        if self._db_path is not None:
            self.tally.sink = self.execute
        engine = getattr(bk.db, "engine", None)
        #: PostgreSQL: commits seen through LISTEN/NOTIFY (`cove.db.changes`), across processes.
        self.changes = changes_for(engine) if self._db_path is None and engine is not None else None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(self._db_path, timeout=0, isolation_level=None, check_same_thread=False)
            self._epoch += 1
        return self._conn

    def execute(self, fn) -> None:  # noqa: ANN001
        """Run `fn(connection)` in a write transaction on this cache's connection (the download tally's flush).
        SQLite's data_version moves only for other connections' commits, so the cached answers stay valid.
        While it runs, `serve` does not wait for the lock: HEADs take the full route."""
        with self._lock:
            conn = self._connect()
            conn.execute("PRAGMA busy_timeout=2000")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    fn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            finally:
                conn.execute("PRAGMA busy_timeout=0")

    def generation(self, downloads: bool = False) -> Hashable | None:
        """(connection number, SQLite's data_version) on a connection of our own that never writes; None:
        don't cache. data_version only compares within one connection, hence the number of each new one.
        On PostgreSQL `cove.db.changes.Changes.generation`. With `downloads`, also moved by download-count
        flushes (for answers that show the counts)."""
        if self._db_path is None:
            return self._pg_generation(downloads)
        gen = self._sqlite_generation()
        return gen if gen is None or not downloads else (*gen, self.tally.flushes)

    def _pg_generation(self, downloads: bool) -> Hashable | None:
        if self.changes is None:
            return None
        gen = self.changes.generation()
        if gen is None:
            return None
        if gen != self._gen:
            with self._lock:
                if gen != self._gen:
                    self._forget_all(gen)
        return self.changes.generation(downloads=True) if downloads else gen

    def _sqlite_generation(self) -> tuple[int, int] | None:
        if not self._lock.acquire(blocking=False):  # a flush is writing on the connection: the full route
            return None
        try:
            try:
                conn = self._connect()
                gen = (self._epoch, conn.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                return None
            if gen != self._gen:
                self._forget_all(gen)
            return gen
        finally:
            self._lock.release()

    def _forget_all(self, gen: Hashable) -> None:
        """The database moved to generation ``gen``: every cached answer goes (the caller holds the lock)."""
        if self._gen is not None and (self._known or self._answers):
            HEAD_CACHE_CLEARS.inc()
        self._gen = gen
        self._known.clear()
        self._answers.clear()
        self._gets.clear()

    @staticmethod
    def request_key(scope) -> tuple | None:  # noqa: ANN001
        """The answer caches' key for a request: (path, query, Authorization); None (take the full route) for a
        cookie or a `%`-encoded path."""
        raw = scope.get("raw_path")
        if raw is not None and b"%" in raw:
            return None
        auth = None
        for k, v in scope["headers"]:
            if k == b"cookie":
                return None
            if k == b"authorization":
                auth = v
        return scope["path"], scope.get("query_string", b""), auth

    async def serve(self, scope, send, request_id: bytes) -> bool:  # noqa: ANN001
        """Answer a HEAD from what is known; False (and a ticket to remember the answer) otherwise."""
        key = self.request_key(scope)
        if key is None:
            return False
        gen = self.generation()
        if gen is None:
            return False
        known = self._known.get(key)
        headers = None
        if known is not None and known.gen == gen and (known.deadline is None or time.time() < known.deadline):
            try:
                headers = self._answer(key, known)
            except Exception:  # noqa: BLE001 - the full route reports whatever this was
                headers = None
            if headers is not None and known.count_pk is not None:
                self.tally.add(known.count_pk)
        if headers is None:
            scope.setdefault("state", {})["cove.head_ticket"] = (self, key, gen)
            return False
        # What the full route sends, with RequestIdMiddleware's header appended.
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*headers, (b"x-request-id", request_id)]})
        await send({"type": "http.response.body", "body": b""})
        return True

    async def serve_get(self, scope, receive, send, request_id: bytes) -> int | None:  # noqa: ANN001
        """Send a local LFS file again, as `_resolve` did for the same (path, query, Authorization), from its
        remembered facts and live git (the revision must still point at the same commit); the Content-Length
        sent, or None (and a ticket) when it did not. Ranges and zero-copy as in the full route
        (`BlobFileResponse`). A request that may count a download (`X-HF-Download-Counter`) takes the full route."""
        if "/resolve/" not in scope["path"]:
            return None
        key = self.request_key(scope)
        if key is None or any(k == b"x-hf-download-counter" for k, _ in scope["headers"]):
            return None
        gen = self.generation()
        if gen is None:
            return None
        k = self._gets.get(key)
        if (k is None or k.gen != gen or (k.deadline is not None and time.time() >= k.deadline)
                or mirror.needs_check(self.bk, k.storage_key, k.rev)
                or self.bk.repos.resolve(k.storage_key, k.rev) != k.sha):
            scope.setdefault("state", {})["cove.head_ticket"] = (self, key, gen)
            return None
        try:
            response = BlobFileResponse(k.local, headers=k.headers, media_type=k.media_type)
        except OSError:  # the blob is gone: the full route says what happened
            scope.setdefault("state", {})["cove.head_ticket"] = (self, key, gen)
            return None

        sent = 0

        async def send_with_id(message) -> None:  # noqa: ANN001 - what RequestIdMiddleware adds
            nonlocal sent
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"x-request-id", request_id)]
                sent = next((int(v) for h, v in message["headers"] if h == b"content-length"), 0)
            await send(message)

        await response(scope, receive, send_with_id)
        return sent

    def put(self, key: tuple, known: _Known) -> None:
        self._known.put(key, known)

    @staticmethod
    def ticket(request: Request, db, repo, path: str) -> _Ticket | None:  # noqa: ANN001
        """Inside `_resolve`'s session: may this HEAD's answer be remembered, and until when?"""
        found = request.scope.get("state", {}).get("cove.head_ticket")
        if found is None:
            return None
        cache, key, gen = found
        ok, deadline = token_deadline(db, key[2])
        return _Ticket(cache, key, gen, deadline) if ok else None

    def _answer(self, key: tuple, k: _Known) -> list[tuple[bytes, bytes]] | None:
        """`_resolve`'s HEAD answer (its raw headers) from the remembered facts and live git; None: take the
        full route. The answer for a commit is kept: a commit's tree never changes, only the blob's presence
        is checked again."""
        bk = self.bk
        if mirror.needs_check(bk, k.storage_key, k.rev):
            return None  # a mirrored branch past its TTL: the full route asks the upstream
        sha = bk.repos.resolve(k.storage_key, k.rev)
        if sha is None:
            return None
        last = self._answers.get(key)
        if last is not None and last[0] == sha and last[1] == k.gen:
            _, _, local, headers = last
            return headers if local is None or os.path.isfile(local) else None
        entry = bk.repos.entry(k.storage_key, sha, k.path)
        if entry is None or entry.type != "file":
            return None
        local = None
        if entry.is_lfs:
            loc = files.BlobLocation("lfs", f"lfs/{entry.lfs_oid}")
            local = bk.blobs.local_path(loc.key)
            if local is None:
                return None  # an object store: the full route redirects
            if not os.path.isfile(local):
                return None  # Xet-stored or missing: the full route looks further
        else:
            loc = files.BlobLocation("git", entry.oid)
        headers = _file_headers(bk, k.repo_type, k.ns, k.name, k.path, sha, entry, loc, k.private)
        headers["Content-Length"] = str(entry.size)
        raw = Response(status_code=200, headers=headers, media_type=_media_type(k.path)).raw_headers
        self._answers.put(key, (sha, k.gen, local, raw))
        return raw


for _prefix, _type in (("/datasets", "dataset"), ("/spaces", "space"), ("", "model")):
    def _make(repo_type: str):  # noqa: ANN202
        def resolve(ns: str, name: str, rev: str, path: str, request: Request, bk: Bk,
                    actor: CurrentActor) -> Response:
            return _resolve(repo_type, ns, name, rev, path, request, bk, actor)

        return resolve

    router.add_api_route(f"{_prefix}/{{ns}}/{{name}}/resolve/{{rev}}/{{path:path}}", _make(_type),
                         methods=["GET", "HEAD"], name=f"resolve_{_type}")

__all__ = ["router", "PREFIX", "HeadCache"]
