"""LFS uploads: batch negotiation, verified object writes (basic and multipart), verify."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from cove.backends import Backends
from cove.db.tables import LfsObject, Repo
from cove.errors import BadRequest, NotFound
from cove.services import access
from cove.services.accounts import Actor
from cove.storage.interfaces import BlobVerificationError

MULTIPART_THRESHOLD = 64 * 1024 * 1024
PART_SIZE = 32 * 1024 * 1024
URL_TTL = 24 * 3600


@dataclass(frozen=True)
class BatchObject:
    oid: str
    size: int


def readable_lfs(db: Session, actor: Actor, repo: Repo, oid: str) -> LfsObject | None:
    """The object if it belongs to this repo, or to another repo the caller can read."""
    row = db.get(LfsObject, (repo.id, oid))
    if row is not None:
        return row
    for other in db.scalars(select(LfsObject).where(LfsObject.oid == oid)):
        src = db.get(Repo, other.repo_pk)
        if src is not None and access.can_read(db, actor, src):
            return other
    return None


def adopt(db: Session, repo: Repo, oid: str, size: int, xet_hash: str | None = None) -> None:
    """Record that `repo` holds this object."""
    row = db.get(LfsObject, (repo.id, oid))
    if row is None:
        db.add(LfsObject(repo_pk=repo.id, oid=oid, size=size, xet_hash=xet_hash))
    elif xet_hash and not row.xet_hash:
        row.xet_hash = xet_hash
    db.flush()


def store_object(db: Session, bk: Backends, repo: Repo, oid: str, size: int, stream: BinaryIO) -> None:
    """Stream, hash and size-check the body; only a verified object is kept."""
    key = f"lfs/{oid}"
    if not bk.blobs.exists(key):
        try:
            bk.blobs.put_verified(key, stream, sha256=oid, size=size)
        except BlobVerificationError as exc:
            raise BadRequest(f"Object {oid} rejected: {exc}") from exc
    adopt(db, repo, oid, size)


class MultipartUpload:
    """Parts land in a private temp folder; completion streams them into the blob store, verified."""

    def __init__(self, bk: Backends, oid: str) -> None:
        self.dir = Path(bk.settings.data) / "tmp" / "multipart" / oid
        self.dir.mkdir(parents=True, exist_ok=True)

    def put_part(self, n: int, stream: BinaryIO, expected: int) -> str:
        fd, tmp = tempfile.mkstemp(dir=self.dir)
        import hashlib

        md5 = hashlib.md5(usedforsecurity=False)
        total = 0
        with os.fdopen(fd, "wb") as out:
            while block := stream.read(1 << 20):
                total += len(block)
                if total > expected:
                    os.unlink(tmp)
                    raise BadRequest(f"Part {n} is larger than {expected} bytes")
                md5.update(block)
                out.write(block)
        if total != expected:
            os.unlink(tmp)
            raise BadRequest(f"Part {n} has {total} bytes, expected {expected}")
        os.replace(tmp, self.dir / f"{n:05d}")
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
    row = readable_lfs(db, actor, repo, oid)
    info = bk.blobs.stat(f"lfs/{oid}")
    if row is None and info is None:
        raise NotFound(f"Object {oid} not found")
    if row is not None and row.size != size:
        raise BadRequest(f"Object {oid} has size {row.size}, not {size}")
    if row is not None and row.repo_pk != repo.id:
        adopt(db, repo, oid, row.size, row.xet_hash)
