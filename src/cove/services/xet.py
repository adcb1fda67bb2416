"""Xet CAS logic: access tokens, xorb and shard registration, global dedup, reconstruction.

No FastAPI here. Functions take the backends and already-read bodies (or spooled files), raise
``HubError``s, and keep every format rule in ``cove.xet``.
"""

from __future__ import annotations

import io
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cove.backends import Backends
from cove.db.tables import LfsObject, Repo
from cove.db.xet_tables import XetDedup, XetFile, XetShard, XetStagedUpload, XetXorb, XetXorbScope
from cove.errors import (
    BadRequest,
    Forbidden,
    HubError,
    NotFound,
    PayloadTooLarge,
    RangeNotSatisfiable,
    Unauthorized,
)
from cove.services import access
from cove.services.accounts import Actor
from cove.xet import hashes, tokens
from cove.xet.errors import XetFormatError

if TYPE_CHECKING:  # the formats need numpy: each function imports them on first use, off `cove serve`'s start-up
    from cove.xet import reconstruct, shard, xorb
    from cove.xet.shard import FileTerm
    from cove.xet.xorb import ChunkTable

FETCH_TTL = 3600
DEDUP_KEY_TTL = 14 * 24 * 3600
DEDUP_MODULUS = 1024
CAS_PREFIX = "/cas"
XORB_PREFIXES = ("default",)
DEDUP_PREFIXES = ("default", "default-merkledb")


class XetNotFound(NotFound):
    code = "XetNotFound"


# --- counters (observability and the dedup tests) ------------------------------------------------

_stats_lock = threading.Lock()
STATS: dict[str, int] = {
    "xorb_bytes_received": 0,
    "xorbs_inserted": 0,
    "xorbs_existing": 0,
    "xorbs_rejected": 0,
    "shards_registered": 0,
    "shards_existing": 0,
    "shards_rejected": 0,
    "files_registered": 0,
    "dedup_queries": 0,
    "dedup_hits": 0,
    "reconstructions": 0,
    "fetch_requests": 0,
}


REPO_STATS: dict[str, dict[str, int]] = {}


def count(name: str, n: int = 1, *, repo: str | None = None) -> None:
    """Add to a global counter and, when ``repo`` ("type/ns/name") is given, to that repo's counter."""
    with _stats_lock:
        STATS[name] = STATS.get(name, 0) + n
        if repo is not None:
            per = REPO_STATS.setdefault(repo, {})
            per[name] = per.get(name, 0) + n


def stats(repo: str | None = None) -> dict[str, int]:
    with _stats_lock:
        return dict(REPO_STATS.get(repo, {})) if repo is not None else dict(STATS)


def repo_key(claims: tokens.XetClaims) -> str:
    return f"{claims.repo_type}/{claims.repo_id}"


def scope_of(db: Session, claims: tokens.XetClaims) -> str | None:
    """The namespace whose Xet scope (`XetXorbScope`) a token's uploads, "already stored" answers and dedup
    queries use: the repo's namespace for its members, who read all of its repos; otherwise the holder's own.
    An outsider's pull request (any reader may open one) must not learn, through dedup, which bytes the
    namespace's private repos hold, nor reference them. A write token naming no one is the server's own
    (``cove xet convert``). None: no scope (a read token of the anonymous, a vanished holder)."""
    repo = db.get(Repo, claims.repo_pk)
    if repo is not None and claims.user is None:
        return repo.namespace if claims.can_write else None
    holder = access.holder(db, name=claims.user) if claims.user else None
    if repo is None or holder is None:
        return None
    if access.namespace_role(db, holder, repo.namespace) is not None:
        return repo.namespace
    return holder.name


# --- tables ---------------------------------------------------------------------------------------

_ready_lock = threading.Lock()


def ensure_tables(bk: Backends) -> None:
    """Create the Xet tables on first use (they live on the shared metadata); once per Database."""
    if getattr(bk.db, "_xet_tables_ready", False):
        return
    with _ready_lock:
        if not getattr(bk.db, "_xet_tables_ready", False):
            from cove.db.tables import Base

            tables = [m.__table__ for m in (XetXorb, XetXorbScope, XetFile, XetShard, XetDedup, XetStagedUpload)]
            Base.metadata.create_all(bk.db.engine, tables=tables)
            bk.db._xet_tables_ready = True  # type: ignore[attr-defined]


# --- tokens ---------------------------------------------------------------------------------------


def cas_url(bk: Backends) -> str:
    return bk.settings.public_endpoint + CAS_PREFIX


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    exp: int
    cas_url: str


def issue_token(
    db: Session,
    bk: Backends,
    actor: Actor,
    *,
    repo_type: str,
    repo_id: str,
    revision: str,
    scope: str,
    create_pr: bool = False,
) -> IssuedToken:
    """A CAS token for one repo. Read needs Hub read access and an existing revision. Write (upload xorbs and
    shards, ask dedup) needs `access.can_contribute` (any reader with a write token, as on the Hub): uploads
    land nowhere until a commit, which is checked on its own, and the dedup answers name only xorbs of the
    token's scope (`scope_of`), all of whose repos its holder reads."""
    if scope == "write":
        repo = access.contributable_repo(db, actor, repo_type, repo_id)
        rev = "refs/pr/*" if create_pr and revision in ("None", "") else revision
    else:
        if actor.anonymous and not bk.settings.anonymous_read:
            raise Unauthorized("You must be authenticated to read from this server")
        repo = access.readable_repo(db, actor, repo_type, repo_id)
        if repo.gated:
            _require_gate_access(db, bk, actor, repo)
        from cove.services.files import resolve_revision

        resolve_revision(bk, repo, revision)
        rev = revision
    exp = int(time.time()) + bk.settings.xet_token_ttl
    claims = tokens.XetClaims(scope, repo_type, repo_id, repo.id, rev, actor.name, exp)
    return IssuedToken(tokens.sign_token(bk.settings.signing_secret, claims), exp, cas_url(bk))


def _require_gate_access(db: Session, bk: Backends, actor: Actor, repo: Repo) -> None:
    """A read token reaches every file of the repo, so a gated repo needs granted access."""
    from cove.services import gating

    gating.require_file_access(db, actor, repo, "", bk.settings.public_endpoint)


def authenticate(db: Session, bk: Backends, authorization: str | None, *, write: bool) -> tokens.XetClaims:
    """Claims of a CAS bearer token; 401 if missing/bad/expired, 403 if its scope is insufficient."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("Missing CAS access token")
    try:
        claims = tokens.verify_token(bk.settings.signing_secret, value.strip())
    except tokens.TokenError as exc:
        raise Unauthorized(f"Invalid CAS access token: {exc}") from None
    if write and not claims.can_write:
        raise Forbidden("This CAS token is read-only")
    repo = db.get(Repo, claims.repo_pk)
    if repo is None or repo.repo_id != claims.repo_id or repo.type != claims.repo_type:
        raise Unauthorized("The repository of this CAS token no longer exists")
    # The token's subject must still have the rights it was issued for (a member removed, the repo made
    # private or gated): told exactly as for a deleted repo.
    holder = access.holder(db, name=claims.user, role="write" if claims.can_write else "read")
    allowed = (holder is not None and access.can_contribute(db, holder, repo)) if claims.can_write \
        else access.may_still_read(db, holder, repo)
    if not allowed:
        raise Unauthorized("The repository of this CAS token no longer exists")
    return claims


# --- xorbs ----------------------------------------------------------------------------------------


def _xorb_hex(text: str) -> str:
    if not hashes.is_hash_hex(text):
        raise BadRequest(f"Invalid hash {text[:80]!r}")
    return text.lower()


def _check_prefix(prefix: str, allowed: tuple[str, ...]) -> None:
    if prefix not in allowed:
        raise BadRequest(f"Unknown prefix {prefix!r}")


def xorb_exists(bk: Backends, xorb_hex: str) -> bool:
    ensure_tables(bk)
    with bk.db.session() as db:
        return db.get(XetXorb, xorb_hex) is not None


def check_xorb_upload(bk: Backends, *, prefix: str, xorb_hex: str, length: int | None) -> str:
    """Cheap checks before reading a xorb body."""
    from cove.xet import xorb
    _check_prefix(prefix, XORB_PREFIXES)
    h = _xorb_hex(xorb_hex)
    if length is not None and length > xorb.MAX_XORB_SERIALIZED:
        raise PayloadTooLarge(f"Xorb bodies are limited to {xorb.MAX_XORB_SERIALIZED} bytes")
    return h


def xorb_known_to(bk: Backends, claims: tokens.XetClaims, xorb_hex: str) -> bool:
    """Whether the xorb is stored *and* the caller's scope (`scope_of`) already uploaded or referenced it.

    Only then may an upload be skipped ("already stored"); telling anyone else would reveal that some
    other namespace holds these exact bytes.
    """
    ensure_tables(bk)
    with bk.db.session() as db:
        scope = scope_of(db, claims)
        if scope is None or db.get(XetXorb, xorb_hex) is None:
            return False
        return db.get(XetXorbScope, (xorb_hex, scope)) is not None


def store_xorb(bk: Backends, claims: tokens.XetClaims, *, xorb_hex: str, body: BinaryIO,
               path: str | None = None) -> bool:
    """Validate a spooled xorb body (every chunk decoded and hashed) and store it. `path`: the body is that
    local file, which the blob store takes by a rename (`publish_file`) once it is valid: written once.

    Returns False only when the caller's scope already had this xorb. A xorb stored for another scope is
    verified all the same and answered as inserted, so the answer reveals nothing.
    """
    from cove.xet import xorb
    ensure_tables(bk)
    h = _xorb_hex(xorb_hex)
    with bk.db.session() as db:
        namespace = scope_of(db, claims)
    if xorb_known_to(bk, claims, h):
        count("xorbs_existing", repo=repo_key(claims))
        return False
    body.seek(0)
    try:
        info = xorb.parse_xorb(body, expected_hash=hashes.hex_to_hash(h))
    except XetFormatError as exc:
        count("xorbs_rejected", repo=repo_key(claims))
        raise BadRequest(f"Invalid xorb: {exc}") from None
    if not xorb_exists(bk, h):
        body.seek(0)
        publish = getattr(bk.blobs, "publish_file", None)
        if path is not None and publish is not None and os.path.getsize(path) == info.total_len:
            publish(f"xorbs/{h}", path)
        else:
            bk.blobs.put_verified(f"xorbs/{h}", body, size=info.total_len)
        _record_xorb(bk, h, info)
    add_scope(bk, [h], namespace)  # the body was verified: the caller holds these bytes
    count("xorbs_inserted", repo=repo_key(claims))
    return True


class _Tee(io.RawIOBase):
    """A raw reader that hands every byte it reads to ``sink`` too (the store's writer). Read through an
    ``io.BufferedReader``: the parser's small reads (record headers, ~64 KiB payloads) are served in C from
    1 MiB blocks, and the sink gets 1 MiB writes."""

    def __init__(self, src: BinaryIO, sink: object) -> None:
        super().__init__()
        self.src, self.sink = src, sink

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # noqa: ANN001
        view = memoryview(b).cast("B")
        readinto = getattr(self.src, "readinto", None)
        if readinto is not None:
            n = readinto(view)
        else:
            data = self.src.read(len(view))
            n = len(data)
            view[:n] = data
        if n and self.sink is not None:
            self.sink.write(view[:n])  # type: ignore[attr-defined]
        return n


def put_xorb_streaming(bk: Backends, xorb_hex: str, body: BinaryIO, *, length: int | None = None,
                       repo: str | None = None) -> None:
    """Verify a xorb body while it streams to its final key in an object store (``bk.blobs.writer``): every
    chunk is decoded and hashed on the way, and the object appears only when the whole body is valid (the
    multipart upload is completed then, aborted otherwise). No temp file, no staging key, one pass.
    A xorb already stored is verified all the same; nothing is written. Scope is the caller's business."""
    from cove.xet import xorb
    ensure_tables(bk)
    h = _xorb_hex(xorb_hex)
    sink = None if xorb_exists(bk, h) else bk.blobs.writer(f"xorbs/{h}")  # type: ignore[attr-defined]
    try:
        reader = io.BufferedReader(_Tee(body, sink), 1 << 20)
        info = xorb.parse_xorb(reader, expected_hash=hashes.hex_to_hash(h))  # type: ignore[arg-type]
        if length is not None and info.total_len != length:
            raise XetFormatError(f"body has {info.total_len} bytes, expected {length}")
        if sink is not None:
            sink.commit()
    except XetFormatError as exc:
        if sink is not None:
            sink.abort()
        count("xorbs_rejected", repo=repo)
        raise BadRequest(f"Invalid xorb: {exc}") from None
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    if sink is not None:
        count("xorb_bytes_to_store_direct", info.total_len, repo=repo)
        _record_xorb(bk, h, info)


def _record_xorb(bk: Backends, h: str, info: xorb.XorbInfo) -> None:
    from cove.xet import xorb
    row = XetXorb(hash=h, stored_size=info.total_len, unpacked_size=info.uncompressed_len,
                  num_chunks=len(info.chunks), chunk_table=xorb.pack_chunk_table(info.chunks))
    try:
        with bk.db.session() as db:
            db.add(row)
    except IntegrityError:
        pass  # a concurrent upload of the same bytes won; they are identical


def store_xorb_streaming(bk: Backends, claims: tokens.XetClaims, *, xorb_hex: str, body: BinaryIO) -> bool:
    """`store_xorb` for a store that takes streamed writes: the body goes once, verified on the way, to its
    final key (`put_xorb_streaming`). Same answers as `store_xorb`."""
    h = _xorb_hex(xorb_hex)
    with bk.db.session() as db:
        namespace = scope_of(db, claims)
    put_xorb_streaming(bk, h, body, repo=repo_key(claims))
    add_scope(bk, [h], namespace)
    count("xorbs_inserted", repo=repo_key(claims))
    return True


def add_scope(bk: Backends, xorb_hexes: list[str], namespace: str | None) -> None:
    if not namespace:
        return
    for h in set(xorb_hexes):
        try:
            with bk.db.session() as db:
                if db.get(XetXorbScope, (h, namespace)) is None:
                    db.add(XetXorbScope(xorb_hash=h, namespace=namespace))
        except IntegrityError:
            pass


class _Lru:
    """A small thread-safe LRU for immutable, content-addressed index data (chunk tables, file records)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[tuple[str, str], object] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> object | None:
        with self.lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def put(self, key: tuple[str, str], value: object) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_tables_lru = _Lru(64)  # ~40 KiB a table: at most ~2.5 MiB, whatever the file sizes
_files_lru = _Lru(1024)


def forget_cached() -> None:
    """Drop cached index data (after garbage collection removed rows)."""
    _tables_lru.clear()
    _files_lru.clear()


#: Chunk tables one request keeps at once (~40 KiB each for a full 64 MiB xorb). A request walks a file's
#: terms in order, so a small window serves it; an unbounded one grew 40 bytes per chunk (5 MiB for 8 GiB).
REQUEST_TABLES = 32


class ChunkTables:
    """Chunk tables of stored xorbs, the last ``REQUEST_TABLES`` kept per request (and more in a shared LRU
    when ``shared``)."""

    def __init__(self, db: Session, *, shared: bool = False) -> None:
        self.db = db
        self.shared = shared
        self.tables: OrderedDict[bytes, ChunkTable] = OrderedDict()

    def __call__(self, raw: bytes) -> ChunkTable:
        from cove.xet import xorb
        table = self.tables.get(raw)
        if table is not None:
            self.tables.move_to_end(raw)
            return table
        name = hashes.hash_to_hex(raw)
        key = (str(self.db.get_bind().url), name)
        table = _tables_lru.get(key) if self.shared else None  # type: ignore[assignment]
        if table is None:
            row = self.db.get(XetXorb, name)
            if row is None:
                raise XetNotFound(f"Xorb {name} is not stored")
            table = xorb.unpack_chunk_table(row.chunk_table)
            if self.shared:
                _tables_lru.put(key, table)
        self.tables[raw] = table
        if len(self.tables) > REQUEST_TABLES:
            self.tables.popitem(last=False)
        return table


# --- global dedup ---------------------------------------------------------------------------------


#: Most xorbs in one global-dedup answer: the hit's xorb, then its neighbours in the files around it.
#: Where an answer's xorbs end, the client re-uploads until its next eligible chunk (1 in 1024: one
#: 64 MiB xorb on average), so coverage pays: 128 xorbs is ~8 GiB of file, an answer of ~8 MiB that is
#: streamed (16 bytes a chunk held). With 32, re-uploads of 4-8 GiB files with 1 MiB changed sent 1.6-4.2 %.
DEDUP_MAX_XORBS = 128
#: Most files (newest first) searched for the hit xorb's neighbours: of the caller's repo, then as many of
#: the namespace's other repos.
DEDUP_MAX_FILES = 256


def _dedup_neighbours(bk: Backends, repo_pk: int, namespace: str, hit: str) -> list[str]:
    """Xorbs that Xet files around ``hit`` use: those after it first (``hit`` excluded). Files of the caller's
    repo are searched first, then those of the other repos of its namespace, newest first.

    The client only asks about some chunks (a file's first chunk, hashes 0 mod 1024: about one per
    64 MiB xorb), so an answer with the hit's xorb alone leaves about a third of a large file's xorbs
    undiscovered and re-uploaded. The spec allows "a few more from the same upload"; Cove has no
    xorb-to-upload index, so it takes the neighbours from the files the repos link to. The namespace is
    the boundary: every member can read all of its repos (`scope_of`: an outsider's scope is their own).
    """
    raw = hashes.hex_to_hash(hit)
    with bk.db.session() as db:
        xet_files = select(LfsObject.xet_hash).where(LfsObject.xet_hash.is_not(None))
        files = db.scalars(
            xet_files.where(LfsObject.repo_pk == repo_pk).order_by(LfsObject.created_at.desc()).limit(DEDUP_MAX_FILES)
        ).all()
        files += db.scalars(
            xet_files.join(Repo, Repo.id == LfsObject.repo_pk)
            .where(Repo.namespace == namespace, LfsObject.repo_pk != repo_pk)
            .order_by(LfsObject.created_at.desc())
            .limit(DEDUP_MAX_FILES)
        ).all()
    found: dict[str, None] = {}
    for file_hex in dict.fromkeys(files):
        record = file_record(bk, file_hex)
        if record is None:
            continue
        order = list(dict.fromkeys(t.xorb_hash for t in record.terms))
        if raw not in order:
            continue
        i = order.index(raw)
        # The client reads its file front to back and asks again at the first eligible chunk it cannot place,
        # so the xorbs after the hit are worth the most; those before it come after them, nearest first.
        for j in sorted(range(len(order)), key=lambda j: (j < i, abs(j - i))):
            if order[j] != raw:
                found[hashes.hash_to_hex(order[j])] = None
        if len(found) >= DEDUP_MAX_XORBS - 1:
            break
    return list(found)[: DEDUP_MAX_XORBS - 1]


def dedup_shard(bk: Backends, claims: tokens.XetClaims, *, prefix: str, chunk_hex: str) -> Iterator[bytes]:
    """A full shard describing the xorb that holds ``chunk_hex`` and, after it, the xorbs that files of
    the caller's repo, then of its scope's namespace, use around it (at most ``DEDUP_MAX_XORBS`` in all), all
    of them xorbs of the caller's scope (`scope_of`).

    Whether the chunk is known is decided before this returns; the shard itself is produced as it is sent,
    one xorb's table at a time.
    """
    from cove.xet import shard
    ensure_tables(bk)
    if not claims.can_write:  # a read token can come from anyone who reads one public repo of the namespace
        raise Forbidden("Global dedup answers need a CAS write token")
    _check_prefix(prefix, DEDUP_PREFIXES)
    ch = _xorb_hex(chunk_hex)
    count("dedup_queries", repo=repo_key(claims))
    with bk.db.session() as db:
        hit = db.get(XetDedup, ch)
        scope = scope_of(db, claims)
        if hit is None or scope is None or db.get(XetXorbScope, (hit.xorb_hash, scope)) is None:
            raise XetNotFound("Chunk not known")
        row = db.get(XetXorb, hit.xorb_hash)
        if row is None:
            raise XetNotFound("Chunk not known")
        namespace, hit_xorb, first = scope, hit.xorb_hash, _dedup_entry(hit.xorb_hash, row)
    neighbours = _dedup_neighbours(bk, claims.repo_pk, namespace, hit_xorb)
    with bk.db.session() as db:  # the same rule as for the hit: only xorbs of the caller's scope
        scoped = set(db.scalars(select(XetXorbScope.xorb_hash).where(
            XetXorbScope.namespace == namespace, XetXorbScope.xorb_hash.in_(neighbours))))
    count("dedup_hits", repo=repo_key(claims))
    now = int(time.time())
    return shard.iter_shard(
        [], _dedup_entries(bk, first, [h for h in neighbours if h in scoped]), hmac_key=secrets.token_bytes(32),
        creation_timestamp=now, key_expiry=now + DEDUP_KEY_TTL,
    )


def _dedup_entry(name: str, row: XetXorb) -> shard.XorbEntry:
    """A stored xorb as a shard xorb entry, serialized from its packed chunk table."""
    from cove.xet import shard, xorb
    return shard.XorbEntry(hashes.hex_to_hash(name), xorb.unpack_chunk_table(row.chunk_table), row.stored_size)


def _dedup_entries(bk: Backends, first: shard.XorbEntry, neighbours: list[str]) -> Iterator[shard.XorbEntry]:
    """The hit's entry, then each neighbour's, its table loaded only as the answer is written (a session
    per xorb: no connection is held while the client reads)."""
    yield first
    for h in neighbours:
        with bk.db.session() as db:
            row = db.get(XetXorb, h)
            entry = _dedup_entry(h, row) if row is not None else None
        if entry is not None:
            yield entry


# --- reconstruction -------------------------------------------------------------------------------


def parse_range(header: str | None, size: int) -> tuple[int, int]:
    """``[start, end)`` of a single ``bytes=`` range (whole file without a header); 416 if unsatisfiable."""
    if not header:
        return 0, size
    unsat = RangeNotSatisfiable(f"Range {header[:100]!r} not satisfiable", headers={"Content-Range": f"bytes */{size}"})
    units, _, spec = header.partition("=")
    if units.strip().lower() != "bytes" or "," in spec:
        raise unsat
    first, sep, last = spec.strip().partition("-")
    try:
        if not sep:
            raise ValueError
        if first == "":
            n = int(last)
            if n <= 0:
                raise unsat
            return max(0, size - n), size
        start = int(first)
        end = size if last == "" else min(int(last) + 1, size)
    except ValueError:
        raise unsat from None
    if start < 0 or start >= size or end <= start:
        raise unsat
    return start, end


@dataclass(frozen=True)
class FileRecord:
    hash: str
    size: int
    sha256: str | None
    terms: list[FileTerm]


def file_record(bk: Backends, xet_hex: str) -> FileRecord | None:
    from cove.xet import shard
    ensure_tables(bk)
    key = (str(bk.db.engine.url), xet_hex.lower())
    cached = _files_lru.get(key)
    if cached is not None:
        return cached  # type: ignore[return-value]
    with bk.db.session() as db:
        row = db.get(XetFile, xet_hex.lower())
        if row is None:
            return None
        record = FileRecord(row.hash, row.size, row.sha256, shard.unpack_terms(row.terms))
    _files_lru.put(key, record)
    return record


def readable_file(bk: Backends, claims: tokens.XetClaims, file_hex: str) -> FileRecord:
    """The file, if the token's repo holds it (``LfsObject.xet_hash``); otherwise 404."""
    fh = _xorb_hex(file_hex)
    ensure_tables(bk)
    with bk.db.session() as db:
        linked = db.scalar(
            select(LfsObject.oid).where(LfsObject.repo_pk == claims.repo_pk, LfsObject.xet_hash == fh).limit(1)
        )
    record = file_record(bk, fh) if linked else None
    if record is None:
        raise XetNotFound(f"File {fh} not found")
    return record


def _plan(bk: Backends, record: FileRecord, start: int, end: int) -> reconstruct.Plan:
    from cove.xet import reconstruct
    with bk.db.session() as db:
        try:
            return reconstruct.plan_range(record.terms, ChunkTables(db, shared=True), start, end, record.size)
        except XetFormatError as exc:
            raise HubError(f"Stored reconstruction for {record.hash} is inconsistent: {exc}") from None


def _fetch_url(bk: Backends, xorb_hex: str, r: reconstruct.FetchRange, exp: int) -> str:
    """Where the client reads one xorb byte window: on an object store, a presigned GET of exactly that window
    (the bytes go from the store to the client, as on the Hub); else Cove's signed ``/cas/fetch`` URL."""
    last = r.byte_end - 1
    direct = getattr(bk.blobs, "range_url", None)
    url = direct(f"xorbs/{xorb_hex}", r.byte_start, last, max(1, exp - int(time.time()))) if direct else None
    if url:
        count("fetch_urls_direct")
        return url
    sig = tokens.fetch_signature(bk.settings.signing_secret, xorb_hex, r.byte_start, last, exp)
    return f"{cas_url(bk)}/fetch/{xorb_hex}?r={r.byte_start}-{last}&exp={exp}&sig={sig}"


def reconstruction(
    bk: Backends, claims: tokens.XetClaims, *, file_hex: str, range_header: str | None, version: int
) -> dict:
    """The v1 or v2 reconstruction JSON for a byte range of a file."""
    record = readable_file(bk, claims, file_hex)
    start, end = parse_range(range_header, record.size)
    plan = _plan(bk, record, start, end)
    count("reconstructions", repo=repo_key(claims))
    exp = int(time.time()) + FETCH_TTL
    terms = _terms_json(plan)
    out: dict = {"offset_into_first_range": plan.offset_into_first_range, "terms": terms}
    if version >= 2:
        out["xorbs"] = {
            hashes.hash_to_hex(xh): [
                {
                    "url": _fetch_url(bk, hashes.hash_to_hex(xh), r, exp),
                    "ranges": [
                        {
                            "chunks": {"start": r.chunk_start, "end": r.chunk_end},
                            "bytes": {"start": r.byte_start, "end": r.byte_end - 1},
                        }
                    ],
                }
                for r in ranges
            ]
            for xh, ranges in plan.fetches.items()
        }
    else:
        out["fetch_info"] = _fetch_info_v1(bk, plan, exp)
    return out


def _terms_json(plan: reconstruct.Plan) -> list[dict]:
    return [
        {
            "hash": hashes.hash_to_hex(t.xorb_hash),
            "unpacked_length": t.unpacked_len,
            "range": {"start": t.chunk_start, "end": t.chunk_end},
        }
        for t in plan.terms
    ]


def _fetch_info_v1(bk: Backends, plan: reconstruct.Plan, exp: int) -> dict[str, list[dict]]:
    return {
        hashes.hash_to_hex(xh): [
            {
                "range": {"start": r.chunk_start, "end": r.chunk_end},
                "url": _fetch_url(bk, hashes.hash_to_hex(xh), r, exp),
                "url_range": {"start": r.byte_start, "end": r.byte_end - 1},
            }
            for r in ranges
        ]
        for xh, ranges in plan.fetches.items()
    }


#: Most file ids in one batch reconstruction request (about 9 KB of query string).
MAX_BATCH_FILES = 128


def batch_reconstruction(bk: Backends, claims: tokens.XetClaims, file_hexes: list[str]) -> dict:
    """``GET /v1/reconstructions?file_id=…``: whole-file v1 terms per file and their fetch info, merged.

    Files the token's repo cannot read are left out, exactly like files that do not exist.
    """
    if len(file_hexes) > MAX_BATCH_FILES:
        raise BadRequest(f"At most {MAX_BATCH_FILES} file ids per batch reconstruction")
    files: dict[str, list[dict]] = {}
    fetch_info: dict[str, list[dict]] = {}
    exp = int(time.time()) + FETCH_TTL
    for file_hex in dict.fromkeys(_xorb_hex(h) for h in file_hexes):
        try:
            record = readable_file(bk, claims, file_hex)
        except XetNotFound:
            continue
        if record.size == 0:
            files[file_hex] = []
            continue
        plan = _plan(bk, record, 0, record.size)
        files[file_hex] = _terms_json(plan)
        for xorb_hex, infos in _fetch_info_v1(bk, plan, exp).items():
            known = fetch_info.setdefault(xorb_hex, [])
            known += [i for i in infos if i not in known]
    count("reconstructions", len(files), repo=repo_key(claims))
    return {"files": files, "fetch_info": fetch_info}


@dataclass(frozen=True)
class FetchTarget:
    key: str
    local_path: str | None
    start: int  # signed window [start, end] inclusive
    end: int
    size: int


def fetch_target(bk: Backends, *, xorb_hex: str, window: str, exp: str, sig: str) -> FetchTarget:
    """Check a capability URL (403 when bad or expired) and say what it may read."""
    count("fetch_requests")
    try:
        h = _xorb_hex(xorb_hex)
        a, _, b = window.partition("-")
        start, end, expiry = int(a), int(b), int(exp)
    except (ValueError, BadRequest):
        raise Forbidden("Invalid fetch URL") from None
    if not tokens.check_fetch_signature(bk.settings.signing_secret, h, start, end, expiry, sig):
        raise Forbidden("Fetch URL signature is invalid or expired")
    key = f"xorbs/{h}"
    info = bk.blobs.stat(key)
    if info is None or not 0 <= start <= end < info.size:
        raise XetNotFound("Xorb not stored")
    return FetchTarget(key, bk.blobs.local_path(key), start, end, info.size)


def parse_fetch_ranges(header: str | None, target: FetchTarget) -> list[tuple[int, int]]:
    """Inclusive byte ranges of a fetch ``Range`` header, each inside the signed window."""
    if not header:
        return [(target.start, target.end)]
    units, _, spec = header.partition("=")
    if units.strip().lower() != "bytes":
        raise RangeNotSatisfiable("Only byte ranges are supported")
    out = []
    for part in spec.split(",")[:64]:
        a, sep, b = part.strip().partition("-")
        try:
            start, end = int(a), int(b)
        except ValueError:
            raise RangeNotSatisfiable(f"Unsupported range {part[:40]!r}") from None
        if not sep or start > end or start < target.start or end > target.end:
            raise RangeNotSatisfiable(
                "Range outside the signed window", headers={"Content-Range": f"bytes */{target.size}"}
            )
        out.append((start, end))
    return out


# --- server-side reconstruction (plain GET /resolve of a Xet file) --------------------------------


def stream_file(bk: Backends, xet_hex: str, start: int, end: int) -> Iterator[bytes]:
    """Bytes ``[start, end)`` of a registered Xet file, decoded chunk by chunk (constant memory).

    The caller checks repo access. ``start < end <= size`` is required; use :func:`parse_range`.
    """
    from cove.xet import reconstruct
    record = file_record(bk, xet_hex)
    if record is None:
        raise XetNotFound(f"Xet file {xet_hex} is not registered")
    plan = _plan(bk, record, start, end)

    def open_xorb(raw: bytes) -> BinaryIO:
        return bk.blobs.open(f"xorbs/{hashes.hash_to_hex(raw)}")

    return _coalesce(reconstruct.stream_plan(plan, open_xorb))


#: Server-side reconstruction hands the response blocks of about this size, not single chunks (~64 KiB):
#: Starlette runs each step of a sync iterator in the thread pool, and one hop per chunk cost ~25 % of
#: the download rate. Memory stays bounded (one block plus one chunk).
STREAM_BLOCK = 1 << 20


def _coalesce(chunks: Iterator[bytes], size: int = STREAM_BLOCK) -> Iterator[bytes]:
    parts: list[bytes] = []
    n = 0
    try:
        for data in chunks:
            parts.append(data)
            n += len(data)
            if n >= size:
                yield b"".join(parts)
                parts, n = [], 0
        if parts:
            yield b"".join(parts)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # the reconstruction's open xorb files, when the client goes away early


def resolve_headers(bk: Backends, *, repo_type: str, repo_id: str, commit: str, xet_hex: str) -> dict[str, str]:
    """Headers that switch a ``/resolve`` download to Xet: ``X-Xet-Hash`` and the read-token ``Link``."""
    route = f"{bk.settings.public_endpoint}/api/{repo_type}s/{repo_id}/xet-read-token/{commit}"
    return {"X-Xet-Hash": xet_hex, "Link": f'<{route}>; rel="xet-auth"'}
