"""Reading repos: revisions, tree listings, single entries, and where a file's bytes live."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cove.backends import Backends
from cove.db.tables import LfsObject, Repo
from cove.errors import EntryNotFound, RevisionNotFound
from cove.services import mirror
from cove.storage.git_repos import Entry


def resolve_revision(bk: Backends, repo: Repo, rev: str) -> str:
    mirror.refresh(bk, repo, rev)  # a mirrored branch past its TTL, or a revision not fetched yet: ask upstream
    sha = bk.repos.resolve(repo.storage_key, rev)
    if sha is None:
        raise RevisionNotFound(f"Invalid rev id: {rev}")
    return sha


def get_entry(bk: Backends, repo: Repo, sha: str, path: str) -> Entry:
    entry = bk.repos.entry(repo.storage_key, sha, path)
    if entry is None:
        raise EntryNotFound(
            f"Entry not found: {path} does not exist at this revision",
            headers={"X-Repo-Commit": sha},
        )
    return entry


def list_tree(bk: Backends, repo: Repo, sha: str, path: str, *, recursive: bool) -> list[Entry]:
    entries = bk.repos.list_tree(repo.storage_key, sha, path, recursive=recursive)
    if entries is None:
        entry = bk.repos.entry(repo.storage_key, sha, path) if path else None
        if entry is not None and entry.type == "file":
            return [entry]
        raise EntryNotFound(f"Entry not found: {path} does not exist at this revision")
    return entries


@dataclass(frozen=True)
class BlobLocation:
    """Where a file's bytes come from."""

    kind: str  # "git" | "lfs" | "xet"
    key: str  # blob id, blob-store key, or xet file hash
    xet_hash: str | None = None  # set when clients can fetch the file over Xet (also for an "lfs" blob)


def xet_hash_for(db: Session, repo: Repo, oid: str) -> str | None:
    """The Xet file hash of an LFS object in this repo, when it was uploaded through Xet."""
    return db.scalar(select(LfsObject.xet_hash).where(LfsObject.repo_pk == repo.id, LfsObject.oid == oid))


def locate(db: Session, bk: Backends, repo: Repo, entry: Entry) -> BlobLocation:
    if not entry.is_lfs:
        return BlobLocation("git", entry.oid)
    return lfs_location(db, bk, repo, entry.lfs_oid)  # type: ignore[arg-type]


def lfs_location(db: Session, bk: Backends, repo: Repo, oid: str) -> BlobLocation:
    """Where this repo's LFS object is read from. The shared blob ``lfs/<oid>`` holds bytes the server hashed
    to `oid`; a row whose `oid` is only a client's claim (a Xet shard's) is read from its own Xet file, never
    from that blob, so a claimed hash opens nothing another repo uploaded. A pointer the repo holds no
    `LfsObject` row for (text that only looks like one, written as a plain file) opens nothing: not found."""
    key = f"lfs/{oid}"
    row = db.get(LfsObject, (repo.id, oid))
    if row is None and mirror.lfs_source(bk, repo.storage_key) is not None:
        return BlobLocation("lfs", key)  # a mirror's (or its copy's) object: fetched on first read (`mirror_lfs`)
    if row is None:
        raise EntryNotFound(f"The LFS object {oid} of this file is not stored in this repo")
    xh = row.xet_hash
    if row is not None and xh and not row.sha256_verified:
        return BlobLocation("xet", xh, xh)
    if bk.blobs.exists(key):  # a whole blob (classic LFS, or converted to Xet later): cheapest for plain GETs
        return BlobLocation("lfs", key, xh)
    if xh:
        return BlobLocation("xet", xh, xh)
    return BlobLocation("lfs", key)
