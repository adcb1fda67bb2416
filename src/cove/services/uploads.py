"""LFS uploads: batch negotiation, verified object writes (basic and multipart), verify.

An object joins a repo only when (a) the caller uploaded it and the server hashed and size-checked those
bytes, or (b) a repo whose file contents the caller may read (visibility and gating) holds it under a
sha256 the server computed itself. A sha256 that only a client claimed (a Xet shard's metadata) answers for
its own repo and nowhere else, until the server has hashed the Xet file (`confirm_sha256`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cove.backends import Backends
from cove.db.tables import LfsObject, Repo
from cove.errors import BadRequest, HubError, NotFound
from cove.services import access, gating
from cove.services.accounts import Actor
from cove.storage.interfaces import BlobVerificationError

MULTIPART_THRESHOLD = 64 * 1024 * 1024
PART_SIZE = 32 * 1024 * 1024
#: Most parts one multipart upload is cut into (S3's limit): larger objects get larger parts.
MAX_PARTS = 10_000
URL_TTL = 24 * 3600


@dataclass(frozen=True)
class BatchObject:
    oid: str
    size: int


def held(db: Session, repo: Repo, oid: str) -> LfsObject | None:
    """This repo's own record of the object (what LFS downloads from this repo may serve)."""
    return db.get(LfsObject, (repo.id, oid))


def may_borrow_from(db: Session, actor: Actor, src: Repo) -> bool:
    """Whether the caller may read `src`'s file contents: visibility, then gating."""
    return access.can_read(db, actor, src) and gating.has_access(db, actor, src)


def readable_lfs(db: Session, bk: Backends, actor: Actor, repo: Repo, oid: str) -> LfsObject | None:
    """The object if this repo holds it, or if a repo whose files the caller may read holds it under a
    server-computed sha256 (a Xet claim there is confirmed first). Otherwise None, as for an unknown oid."""
    row = held(db, repo, oid)
    if row is not None:
        return row
    q = select(LfsObject).where(LfsObject.oid == oid, LfsObject.repo_pk != repo.id,
                                LfsObject.sha256_verified.is_not(False))
    for other in sorted(db.scalars(q), key=lambda r: r.sha256_verified is not True):
        src = db.get(Repo, other.repo_pk)
        if src is None or not may_borrow_from(db, actor, src):
            continue
        if other.sha256_verified or confirm_sha256(db, bk, other):
            return other
    return None


def confirm_sha256(db: Session, bk: Backends, row: LfsObject) -> bool:
    """Hash the Xet file a row names and record whether it really has the row's sha256 and size.

    Runs once per (oid, Xet file): every row that makes the same claim gets the answer. Files over the
    LFS size cap are not hashed (they stay confined to their repos).
    """
    if not row.xet_hash or row.size > bk.settings.max_lfs_file_size:
        return False
    from cove.services import xet as xet_service

    digest, total = hashlib.sha256(), 0
    try:
        for block in xet_service.stream_file(bk, row.xet_hash, 0, row.size) if row.size else ():
            digest.update(block)
            total += len(block)
    except (HubError, OSError, KeyError):
        return False  # not reconstructible now: unconfirmed, not refuted
    ok = total == row.size and digest.hexdigest() == row.oid
    db.execute(update(LfsObject).where(LfsObject.oid == row.oid, LfsObject.xet_hash == row.xet_hash,
                                       LfsObject.sha256_verified.is_(None)).values(sha256_verified=ok))
    db.refresh(row)
    return ok


def adopt(db: Session, repo: Repo, oid: str, size: int, xet_hash: str | None = None, *,
          verified: bool | None) -> None:
    """Record that `repo` holds this object. `verified`: the server hashed these bytes (and the Xet file
    `xet_hash` names, if any) itself; a repo's own unverified claim then gives way to them."""
    row = db.get(LfsObject, (repo.id, oid))
    if row is None:
        db.add(LfsObject(repo_pk=repo.id, oid=oid, size=size, xet_hash=xet_hash, sha256_verified=verified))
    elif verified and not row.sha256_verified:
        row.size, row.xet_hash, row.sha256_verified = size, xet_hash, True
    elif verified and xet_hash and not row.xet_hash:
        row.xet_hash = xet_hash
    db.flush()


def already_stored(db: Session, bk: Backends, actor: Actor, repo: Repo, oid: str, size: int) -> bool:
    """Whether an upload may be skipped: this repo holds the object, or may take it (`readable_lfs`) and
    now does. Any other answer would tell the caller what other repos hold."""
    known = readable_lfs(db, bk, actor, repo, oid)
    if known is None or known.size != size or not (known.xet_hash or bk.blobs.exists(f"lfs/{oid}")):
        return False
    if known.repo_pk != repo.id:
        adopt(db, repo, oid, size, known.xet_hash, verified=True)
    return True


def _check_body(stream: BinaryIO, oid: str, size: int) -> None:
    """Hash and size-check a body whose object is stored already; the bytes are dropped."""
    digest, total = hashlib.sha256(), 0
    while block := stream.read(1 << 20):
        total += len(block)
        if total > size:
            raise BlobVerificationError(f"body is larger than the announced size {size}")
        digest.update(block)
    if total != size:
        raise BlobVerificationError(f"body has {total} bytes, expected {size}")
    if digest.hexdigest() != oid:
        raise BlobVerificationError("sha256 of the body does not match the object id")


def store_object(db: Session, bk: Backends, repo: Repo, oid: str, size: int, stream: BinaryIO) -> None:
    """Stream, hash and size-check the body, whether or not the object is stored already (one copy is
    kept); only then does the repo hold it."""
    key = f"lfs/{oid}"
    try:
        if bk.blobs.exists(key):
            _check_body(stream, oid, size)
        else:
            bk.blobs.put_verified(key, stream, sha256=oid, size=size)
    except BlobVerificationError as exc:
        raise BadRequest(f"Object {oid} rejected: {exc}") from exc
    adopt(db, repo, oid, size, verified=True)


def part_size(size: int) -> int:
    """Bytes per part of a multipart upload of `size` bytes: at most `MAX_PARTS` parts."""
    return max(PART_SIZE, -(-size // MAX_PARTS))


def part_count(size: int) -> int:
    return -(-size // part_size(size))


class MultipartUpload:
    """Parts land in a temp folder of this repo and object (another repo's upload of the same object never
    shares it); completion streams them into the blob store, verified."""

    def __init__(self, bk: Backends, repo_pk: int, oid: str) -> None:
        self.dir = Path(bk.settings.data) / "tmp" / "multipart" / f"{repo_pk}-{oid}"
        self.dir.mkdir(parents=True, exist_ok=True)

    def put_part(self, n: int, stream: BinaryIO, expected: int) -> str:
        fd, tmp = tempfile.mkstemp(dir=self.dir)
        md5 = hashlib.md5(usedforsecurity=False)
        total = 0
        try:  # whatever stops the part (a short body, a client gone, a full disk), its temp file goes
            with os.fdopen(fd, "wb") as out:
                while block := stream.read(1 << 20):
                    total += len(block)
                    if total > expected:
                        raise BadRequest(f"Part {n} is larger than {expected} bytes")
                    md5.update(block)
                    out.write(block)
            if total != expected:
                raise BadRequest(f"Part {n} has {total} bytes, expected {expected}")
            os.replace(tmp, self.dir / f"{n:05d}")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return md5.hexdigest()

    def complete(self, db: Session, bk: Backends, repo: Repo, oid: str, size: int, n_parts: int) -> None:
        parts = [self.dir / f"{i:05d}" for i in range(1, n_parts + 1)]
        missing = [p.name for p in parts if not p.exists()]
        if missing:
            raise BadRequest(f"Missing parts: {', '.join(missing)}")
        try:
            store_object(db, bk, repo, oid, size, _Concat(parts))
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class _Concat:
    """A read-only stream over several files, in order."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = list(paths)
        self.fh: BinaryIO | None = None

    def read(self, n: int = -1) -> bytes:
        while True:
            if self.fh is None:
                if not self.paths:
                    return b""
                self.fh = open(self.paths.pop(0), "rb")  # noqa: SIM115 - closed once drained
            block = self.fh.read(n)
            if block:
                return block
            self.fh.close()
            self.fh = None


def verify(db: Session, bk: Backends, actor: Actor, repo: Repo, oid: str, size: int) -> None:
    """git-lfs's check after an upload. An object held only where the caller may not take it from answers
    exactly as an unknown one."""
    row = readable_lfs(db, bk, actor, repo, oid)
    if row is None:
        raise NotFound(f"Object {oid} not found")
    if row.size != size:
        raise BadRequest(f"Object {oid} has size {row.size}, not {size}")
    if row.repo_pk != repo.id:
        adopt(db, repo, oid, row.size, row.xet_hash, verified=True)
