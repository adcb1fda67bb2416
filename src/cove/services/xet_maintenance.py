"""Xet upkeep: garbage collection, and converting classic LFS objects into Xet files."""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from cove.backends import Backends
from cove.db.tables import LfsObject, Repo, utcnow
from cove.db.xet_tables import XetDedup, XetFile, XetStagedUpload, XetXorb, XetXorbScope
from cove.errors import BadRequest, NotFound
from cove.services.xet import add_scope, ensure_tables, forget_cached
from cove.services.xet_shards import register_shard
from cove.xet import chunking, hashes, shard, tokens, xorb


@dataclass
class GcReport:
    files_removed: int = 0
    xorbs_removed: int = 0
    staged_removed: int = 0
    bytes_freed: int = 0


def collect_garbage(bk: Backends, *, grace_seconds: int = 24 * 3600, dry_run: bool = False) -> GcReport:
    """Forget Xet files no repo links to, then delete xorbs no remaining file uses.

    Only rows older than ``grace_seconds`` go, so uploads in flight (xorbs before their shard, files
    before their commit) survive. Index rows are removed first, blobs after: a concurrent shard that
    still names a collected xorb is refused with a 400, never left dangling.
    """
    ensure_tables(bk)
    report = GcReport()
    cutoff = utcnow() - timedelta(seconds=grace_seconds)
    doomed_xorbs: list[tuple[str, int]] = []
    with bk.db.session() as db:
        linked = set(db.scalars(select(LfsObject.xet_hash).where(LfsObject.xet_hash.is_not(None)).distinct()))
        used: set[str] = set()
        for row in db.scalars(select(XetFile)):
            if row.hash not in linked and row.created_at < cutoff:
                report.files_removed += 1
                if not dry_run:
                    db.delete(row)
                continue
            used.update(hashes.hash_to_hex(t.xorb_hash) for t in shard.unpack_terms(row.terms))
        for h, size, created in db.execute(select(XetXorb.hash, XetXorb.stored_size, XetXorb.created_at)):
            if h not in used and created < cutoff:
                doomed_xorbs.append((h, size))
        report.xorbs_removed = len(doomed_xorbs)
        report.bytes_freed = sum(size for _, size in doomed_xorbs)
        if dry_run:
            with bk.db.session() as db2:
                for row in db2.scalars(select(XetStagedUpload).where(XetStagedUpload.created_at < cutoff)):
                    report.staged_removed += 1
                    report.bytes_freed += row.size
            return report
        names = [h for h, _ in doomed_xorbs]
        for start in range(0, len(names), 500):
            batch = names[start : start + 500]
            db.query(XetDedup).filter(XetDedup.xorb_hash.in_(batch)).delete(synchronize_session=False)
            db.query(XetXorbScope).filter(XetXorbScope.xorb_hash.in_(batch)).delete(synchronize_session=False)
            db.query(XetXorb).filter(XetXorb.hash.in_(batch)).delete(synchronize_session=False)
    forget_cached()
    for h, _ in doomed_xorbs:
        bk.blobs.delete(f"xorbs/{h}")
    _collect_staged(bk, cutoff, report)
    _collect_store_uploads(bk, grace_seconds, report)
    return report


def _collect_store_uploads(bk: Backends, grace_seconds: int, report: GcReport) -> None:
    """On an object store: native multipart uploads never completed (LFS parts sent straight to the store,
    xorbs of a killed process) and LFS staging objects a killed completion left. An LFS upload may take as
    long as its part URLs live (`uploads.URL_TTL`), so those wait at least that long."""
    abort = getattr(bk.blobs, "abort_stale_multipart", None)
    if abort is None:
        return
    from cove.services import uploads

    lfs_grace = max(grace_seconds, uploads.URL_TTL)
    report.staged_removed += abort(uploads.STAGING_NS, lfs_grace) + abort("xorbs", grace_seconds)
    n, freed = bk.blobs.delete_stale(uploads.STAGING_NS, lfs_grace)  # type: ignore[attr-defined]
    report.staged_removed += n
    report.bytes_freed += freed


def _collect_staged(bk: Backends, cutoff: datetime, report: GcReport) -> None:
    """Grant bodies uploaded but never committed."""
    with bk.db.session() as db:
        stale = list(db.scalars(select(XetStagedUpload).where(XetStagedUpload.created_at < cutoff)))
        for row in stale:
            db.delete(row)
    for row in stale:
        bk.blobs.delete(row.key)
        report.staged_removed += 1
        report.bytes_freed += row.size


# --- LFS → Xet ------------------------------------------------------------------------------------

_Ref = tuple[bytes | int, int]  # (stored xorb hash, or number of a xorb built here) and chunk index


class _XorbBuilder:
    """Packs new chunks into xorbs (≤ 8192 chunks, ≤ 64 MiB) and stores each when full."""

    def __init__(self, bk: Backends, namespace: str) -> None:
        self.bk = bk
        self.namespace = namespace
        self.done: list[tuple[bytes, list[tuple[bytes, int]]]] = []  # (xorb hash, chunk leaves)
        self._records: list[bytes] = []
        self._leaves: list[tuple[bytes, int]] = []
        self._size = 0

    def add(self, h: bytes, data: bytes) -> _Ref:
        if len(self._leaves) >= xorb.MAX_XORB_CHUNKS or self._size + len(data) > xorb.MAX_XORB_UNCOMPRESSED:
            self.flush()
        self._records.append(xorb.encode_chunk(data))
        self._leaves.append((h, len(data)))
        self._size += len(data)
        return len(self.done), len(self._leaves) - 1

    def flush(self) -> None:
        if not self._leaves:
            return
        digest = hashes.xorb_hash(self._leaves)
        body = b"".join(self._records)
        name = hashes.hash_to_hex(digest)
        records, start = [], 0
        for rec, (h, n) in zip(self._records, self._leaves, strict=True):
            records.append(xorb.ChunkRecord(h, n, start, start + len(rec)))
            start += len(rec)
        with self.bk.db.session() as db:
            if db.get(XetXorb, name) is None:
                self.bk.blobs.put_bytes(f"xorbs/{name}", body)
                db.add(
                    XetXorb(
                        hash=name,
                        stored_size=len(body),
                        unpacked_size=self._size,
                        num_chunks=len(records),
                        chunk_table=xorb.pack_chunk_table(records),
                    )
                )
        add_scope(self.bk, [name], self.namespace)
        self.done.append((digest, self._leaves))
        self._records, self._leaves, self._size = [], [], 0


def _learn(bk: Backends, h: bytes, known: dict[bytes, _Ref]) -> None:
    """If the dedup index knows chunk ``h``, remember every chunk of the xorb holding it."""
    with bk.db.session() as db:
        hit = db.get(XetDedup, hashes.hash_to_hex(h))
        row = db.get(XetXorb, hit.xorb_hash) if hit else None
        if row is None:
            return
        raw = hashes.hex_to_hash(row.hash)
        for i, c in enumerate(xorb.unpack_chunk_table(row.chunk_table)):
            known.setdefault(c.hash, (raw, i))


def convert_lfs_object(bk: Backends, *, repo_pk: int, oid: str) -> str:
    """Register an LFS object of a repo as a Xet file; return its Xet hash.

    Chunks the blob exactly as ``hf_xet`` would (so the Xet hash matches a client upload of the same
    bytes), reuses chunks the server already stores (dedup index, then chunks seen earlier in this file),
    packs the rest into new xorbs, and registers the file through the same validation as a client shard.
    The LFS blob itself is left in place.
    """
    ensure_tables(bk)
    with bk.db.session() as db:
        repo = db.get(Repo, repo_pk)
        row = db.get(LfsObject, (repo_pk, oid))
        if repo is None or row is None:
            raise NotFound(f"No LFS object {oid} in this repo")
        if row.xet_hash:
            return row.xet_hash
        claims = tokens.XetClaims("write", repo.type, repo.repo_id, repo.id, "", None, int(time.time()) + 3600)
        namespace = repo.namespace
    builder = _XorbBuilder(bk, namespace)
    known: dict[bytes, _Ref] = {}
    chunk_refs: list[tuple[bytes, int, _Ref]] = []  # (chunk hash, size, where it lives)
    sha = hashlib.sha256()
    with bk.blobs.open(f"lfs/{oid}") as fh:
        for data in chunking.iter_chunks(fh):
            sha.update(data)
            h = hashes.chunk_hash(data)
            if h not in known and (not chunk_refs or hashes.hash_mod(h, 1024) == 0):
                _learn(bk, h, known)
            ref = known.get(h)
            if ref is None:
                ref = known[h] = builder.add(h, data)
            chunk_refs.append((h, len(data), ref))
    builder.flush()
    if sha.hexdigest() != oid:
        raise BadRequest(f"LFS object {oid} does not hash to its id")
    if not chunk_refs:
        raise BadRequest("Empty files are not stored in Xet")

    def xorb_of(ref: _Ref) -> bytes:
        return builder.done[ref[0]][0] if isinstance(ref[0], int) else ref[0]

    terms: list[shard.FileTerm] = []
    verification: list[bytes] = []
    run: list[bytes] = []
    for h, size, ref in chunk_refs:
        xh, idx = xorb_of(ref), ref[1]
        last = terms[-1] if terms else None
        if last is not None and last.xorb_hash == xh and last.chunk_end == idx:
            terms[-1] = shard.FileTerm(xh, last.unpacked_len + size, last.chunk_start, idx + 1)
            run.append(h)
            continue
        if run:
            verification.append(hashes.verification_hash(run))
        terms.append(shard.FileTerm(xh, size, idx, idx + 1))
        run = [h]
    verification.append(hashes.verification_hash(run))
    file_hash = hashes.file_hash((h, size) for h, size, _ in chunk_refs)
    entry = shard.FileEntry(file_hash, terms, verification, hashes.sha256_to_raw(oid))
    new_xorbs = []
    for digest, leaves in builder.done:
        offsets, pos = [], 0
        for _, n in leaves:
            offsets.append(pos)
            pos += n
        new_xorbs.append(
            shard.XorbEntry(digest, [shard.XorbChunkEntry(h, o, n) for (h, n), o in zip(leaves, offsets, strict=True)])
        )
    shard_body = io.BytesIO(shard.serialize_shard([entry], new_xorbs, full=False))
    register_shard(bk, claims, shard_body, sha256_computed=True)  # hashed above, from the verified blob
    return hashes.hash_to_hex(file_hash)


# --- LFS objects ----------------------------------------------------------------------------------


@dataclass
class LfsGcReport:
    oids: list[str]
    bytes_freed: int = 0
    supported: bool = True


def collect_lfs_garbage(bk: Backends, *, grace_seconds: int = 24 * 3600, dry_run: bool = True) -> LfsGcReport:
    """Delete `lfs/<sha256>` blobs that no `lfs_objects` row names and that are older than ``grace_seconds``.

    An upload writes its blob before its row, so a young blob without a row may be an upload in flight: the
    grace period keeps it. Each candidate is looked up again just before it goes. Local blob store only (the
    blob interface cannot list an S3 bucket).
    """
    import os
    from pathlib import Path

    root = getattr(bk.blobs, "root", None)
    report = LfsGcReport([])
    if root is None:
        report.supported = False
        return report
    cutoff = time.time() - grace_seconds
    candidates: list[tuple[str, Path, int]] = []
    for folder, _dirs, names in os.walk(Path(root) / "lfs"):
        for name in names:
            path = Path(folder) / name
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if st.st_mtime < cutoff:
                candidates.append((name, path, st.st_size))
    with bk.db.session() as db:
        named = set(db.scalars(select(LfsObject.oid).distinct()))
    for oid, path, size in candidates:
        if oid in named:
            continue
        if not dry_run:
            with bk.db.session() as db:
                if db.scalar(select(LfsObject.oid).where(LfsObject.oid == oid).limit(1)) is not None:
                    continue
                try:
                    if path.stat().st_mtime >= cutoff:  # uploaded again meanwhile
                        continue
                except FileNotFoundError:
                    continue
                bk.blobs.delete(f"lfs/{oid}")
        report.oids.append(oid)
        report.bytes_freed += size
    return report
