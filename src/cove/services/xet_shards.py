"""Shard uploads: full validation against the stored xorbs, then indexing in one unit of work."""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cove.backends import Backends
from cove.db.tables import LfsObject, Repo
from cove.db.xet_tables import XetDedup, XetFile, XetShard, XetXorbScope
from cove.errors import BadRequest, HubError, PayloadTooLarge, Unauthorized
from cove.services import access
from cove.services.xet import (
    DEDUP_MODULUS,
    ChunkTables,
    XetNotFound,
    add_scope,
    count,
    ensure_tables,
    repo_key,
    scope_of,
    stream_file,
)
from cove.xet import hashes, tokens
from cove.xet.errors import XetFormatError

if TYPE_CHECKING:  # the shard format needs numpy: imported where used, off `cove serve`'s start-up
    from cove.xet import shard


@dataclass
class _Checked:
    """What validating a shard found: its files, and per xorb entry the chunks open to global dedup."""

    files: list[shard.FileEntry]
    xorbs: set[str] = field(default_factory=set)
    dedup: dict[str, str] = field(default_factory=dict)  # chunk hash -> xorb hash


def _validate_shard(db: Session, reader: shard.ShardReader, namespace: str) -> _Checked:
    """Check every xorb entry against the stored xorb and recompute every file hash.

    Reads the xorb section one entry at a time, keeps a bounded window of chunk tables and streams each
    file's leaves into the merkle hash, so memory does not grow with the size of the files a shard describes.
    A xorb outside the namespace's scope that fails a check is reported exactly as an unknown one.
    """
    from cove.xet import shard
    tables = ChunkTables(db)
    scoped = set(db.scalars(select(XetXorbScope.xorb_hash).where(XetXorbScope.namespace == namespace)))
    checked = _Checked(reader.files())
    for x in reader.xorbs():
        name = hashes.hash_to_hex(x.xorb_hash)
        not_uploaded = BadRequest(f"Shard lists xorb {name} that was not uploaded")
        try:
            stored = tables(x.xorb_hash)
        except XetNotFound:
            raise not_uploaded from None
        chunks = x.chunks
        assert isinstance(chunks, shard.ShardChunks)  # the reader leaves chunk entries packed
        if not stored.same_chunks(chunks.hash_bytes(), chunks.sizes):
            if name not in scoped:
                raise not_uploaded
            raise BadRequest(f"Shard chunk list of xorb {name} does not match it")
        checked.xorbs.add(name)
        for i in chunks.dedup_eligible(DEDUP_MODULUS):
            checked.dedup.setdefault(hashes.hash_to_hex(chunks.hash(i)), name)
    reader.finish()
    for f in checked.files:
        if hashes.file_hash(_checked_leaves(f, tables, scoped)) != f.file_hash:
            raise BadRequest(f"File hash {hashes.hash_to_hex(f.file_hash)} does not match its terms")
        if f.terms:  # a file's first chunk is always open to global dedup
            first = f.terms[0]
            first_chunk = tables(first.xorb_hash).hash(first.chunk_start)
            checked.dedup.setdefault(hashes.hash_to_hex(first_chunk), hashes.hash_to_hex(first.xorb_hash))
    return checked


def _checked_leaves(f: shard.FileEntry, tables: ChunkTables, scoped: set[str]) -> Iterator[tuple[bytes, int]]:
    """The file's merkle leaves, term by term, each term checked against its stored xorb first."""
    name = hashes.hash_to_hex(f.file_hash)
    for i, t in enumerate(f.terms):
        xorb_name = hashes.hash_to_hex(t.xorb_hash)
        not_stored = BadRequest(f"File {name} references xorb {xorb_name}, which is not stored")
        try:
            table = tables(t.xorb_hash)
        except XetNotFound:
            raise not_stored from None
        foreign = xorb_name not in scoped  # another namespace's: no check may tell it apart from an unknown one
        if t.chunk_end > len(table):
            raise not_stored if foreign else BadRequest(f"File {name}: term {i} chunk range is outside its xorb")
        if table.unpacked(t.chunk_start, t.chunk_end) != t.unpacked_len:
            raise not_stored if foreign else BadRequest(
                f"File {name}: term {i} unpacked length does not match the xorb")
        if f.verification is not None:
            if hashes.verification_hash([table.hash_bytes(t.chunk_start, t.chunk_end)]) != f.verification[i]:
                raise not_stored if foreign else BadRequest(
                    f"File {name}: term {i} verification hash does not match")
        elif foreign:
            raise not_stored
        yield from table.leaves(t.chunk_start, t.chunk_end)


def register_shard(bk: Backends, claims: tokens.XetClaims, body: BinaryIO, *, sha256_computed: bool = False) -> int:
    """Validate and index an uploaded shard, read from a seekable stream. Returns 1 if new, 0 if seen before.

    The sha256 in a shard's file metadata is the client's claim: it maps the repo's LFS oid to the Xet file
    for this repo only (``LfsObject.sha256_verified`` unset). `sha256_computed`: the server hashed the bytes
    itself (``cove xet convert``), so the mapping is a fact. A claim is taken as is only from a token whose
    holder may write to the repo; any other reader's (a pull request's upload) is hashed here first, since a
    row the repo holds is what a later upload of that sha256, to any branch, would be served from.
    """
    from cove.xet import shard
    ensure_tables(bk)
    size = body.seek(0, io.SEEK_END)
    if size > shard.MAX_SHARD_LEN:
        raise PayloadTooLarge(f"Shards are limited to {shard.MAX_SHARD_LEN} bytes")
    body.seek(0)
    digest = hashlib.file_digest(body, "sha256").hexdigest()  # type: ignore[arg-type]
    trusted = sha256_computed or _writes(bk, claims)
    for attempt in range(3):
        try:
            seen, namespace, referenced, claimed = _index_shard(bk, claims, body, size, digest, sha256_computed,
                                                                trusted)
            break
        except IntegrityError:
            # a concurrent upload registered the same file, chunk or shard first: redo with its rows
            if attempt == 2:
                raise
    add_scope(bk, sorted(referenced), namespace)
    if claimed:
        _take_hashed_claims(bk, claims, claimed)
    count("shards_existing" if seen else "shards_registered", repo=repo_key(claims))
    return 0 if seen else 1


def _writes(bk: Backends, claims: tokens.XetClaims) -> bool:
    """Whether the token's holder may write to its repo now (not only open pull requests)."""
    with bk.db.session() as db:
        repo = db.get(Repo, claims.repo_pk)
        holder = access.holder(db, name=claims.user, role="write")
        return repo is not None and holder is not None and access.can_write(db, holder, repo)


def _take_hashed_claims(bk: Backends, claims: tokens.XetClaims, claimed: list[tuple[str, int, str]]) -> None:
    """Record an untrusted shard's (oid, size, Xet file) claims once the server has hashed each file: 400
    for a file whose bytes are not its claimed sha256 (or over the LFS size cap), and then none is recorded."""
    for oid, size, fh in claimed:
        sha, total = hashlib.sha256(), 0
        if size <= bk.settings.max_lfs_file_size:
            with contextlib.suppress(HubError, OSError, KeyError):  # not readable back: not confirmed
                for block in stream_file(bk, fh, 0, size):
                    sha.update(block)
                    total += len(block)
        if total != size or sha.hexdigest() != oid:
            raise BadRequest(f"File {fh}: its contents do not have the sha256 {oid} the shard claims")
    with bk.db.session() as db:
        for oid, size, fh in claimed:
            try:
                with db.begin_nested():
                    row = db.get(LfsObject, (claims.repo_pk, oid))
                    if row is None:
                        db.add(LfsObject(repo_pk=claims.repo_pk, oid=oid, size=size, xet_hash=fh,
                                         sha256_verified=True))
                    elif row.xet_hash is None and row.size == size:
                        row.xet_hash = fh
            except IntegrityError:
                continue  # recorded meanwhile by a concurrent upload: that row stands


def _index_shard(
    bk: Backends, claims: tokens.XetClaims, body: BinaryIO, size: int, digest: str, sha256_computed: bool,
    trusted: bool,
) -> tuple[bool, str, set[str], list[tuple[str, int, str]]]:
    """Validate and index; with `trusted` unset, the files' sha256 claims are returned instead of recorded."""
    from cove.xet import shard
    with bk.db.session() as db:
        repo = db.get(Repo, claims.repo_pk)
        if repo is None:
            raise Unauthorized("The repository of this CAS token no longer exists")
        scope = scope_of(db, claims) or ""  # an outsider's pull request: their own scope, not the namespace's
        body.seek(0)
        try:
            checked = _validate_shard(db, shard.ShardReader(body, size), scope)
        except XetFormatError as exc:
            count("shards_rejected", repo=repo_key(claims))
            raise BadRequest(f"Invalid shard: {exc}") from None
        except HubError:
            count("shards_rejected", repo=repo_key(claims))
            raise
        seen = db.get(XetShard, digest) is not None
        referenced = set(checked.xorbs)
        claimed: list[tuple[str, int, str]] = []
        for f in checked.files:
            fh = hashes.hash_to_hex(f.file_hash)
            referenced.update(hashes.hash_to_hex(t.xorb_hash) for t in f.terms)
            if db.get(XetFile, fh) is None:
                db.add(XetFile(hash=fh, size=f.size, sha256=f.sha256_hex, terms=shard.pack_terms(f.terms)))
                count("files_registered", repo=repo_key(claims))
            if f.sha256 is not None and f.size > 0 and not trusted:
                claimed.append((f.sha256_hex, f.size, fh))
            elif f.sha256 is not None and f.size > 0:
                row = db.get(LfsObject, (repo.id, f.sha256_hex))
                if row is None:
                    db.add(LfsObject(repo_pk=repo.id, oid=f.sha256_hex, size=f.size, xet_hash=fh,
                                     sha256_verified=True if sha256_computed else None))
                elif row.xet_hash is None and row.size == f.size and (sha256_computed or not row.sha256_verified):
                    row.xet_hash = fh  # a verified row takes only a Xet file known to hold its bytes
        for ch, xh in checked.dedup.items():
            if db.get(XetDedup, ch) is None:
                db.add(XetDedup(chunk_hash=ch, xorb_hash=xh))
        if not seen:
            body.seek(0)
            bk.blobs.put_verified(f"shards/{digest}", body, sha256=digest, size=size)
            db.add(XetShard(sha256=digest, size=size, repo_pk=repo.id))
        return seen, scope, referenced, claimed
