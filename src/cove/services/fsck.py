"""`cove fsck`: verify every git repo, every stored blob, every index row; repair what can be repaired.

What is checked, and what `repair` does:

- git: each repo row's bare repo opens (pygit2) and passes `git fsck --no-dangling` (connectivity and object
  hashes); a missing folder is reported (`repo-missing`); a git folder no row names is reported (`git-orphan`).
- index: `repos.sha` is the head of `main` (`index-stale`); repair re-derives the row (`repos.reindex`).
- LFS: each `lfs/<sha256>` blob hashes to its name, and its size is the one its rows record (`blob-corrupt`,
  `blob-size`); a row whose object is neither an LFS blob nor a registered Xet file is `lfs-missing`.
- Xet: each xorb row's blob exists and parses with its hash and stored size (the upload check,
  `xorb.parse_xorb`); each shard row's blob hashes to its name; each Xet file's terms name stored xorbs.
- temp files: upload temp files left behind (`temp-orphan`): every one when no server holds `serve.lock`,
  else those older than `tmp_max_age`; repair removes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pygit2
from sqlalchemy import select

from cove.backends import Backends
from cove.db.tables import LfsObject, Repo
from cove.db.xet_tables import XetFile, XetShard, XetXorb
from cove.services import tempfiles
from cove.services.xet import ensure_tables
from cove.xet import hashes, shard, xorb

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

_HASH_CHUNK = 1 << 20
#: Seconds to wait before reporting an index row that differs from git (a commit may be landing).
_SETTLE = 1.0


@dataclass
class Problem:
    kind: str
    subject: str
    detail: str
    repaired: bool = False


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, subject: str, detail: str, repaired: bool = False) -> Problem:
        p = Problem(kind, subject, detail, repaired)
        self.problems.append(p)
        return p

    def count(self, what: str, n: int = 1) -> None:
        self.checked[what] = self.checked.get(what, 0) + n

    @property
    def unrepaired(self) -> list[Problem]:
        return [p for p in self.problems if not p.repaired]

    def as_dict(self) -> dict:
        return {"ok": not self.unrepaired, "checked": self.checked, "problems": [asdict(p) for p in self.problems]}


def check(bk: Backends, *, repair: bool = False) -> Report:
    """Run every check; with `repair`, fix stale index rows and orphan temp files."""
    ensure_tables(bk)
    report = Report()
    _check_repos(bk, report, repair)
    _check_lfs(bk, report)
    _check_xet(bk, report)
    _check_temp(bk, report, repair)
    return report


def _name(repo: Repo) -> str:
    return f"{repo.type}/{repo.namespace}/{repo.name}"


def _check_repos(bk: Backends, report: Report, repair: bool) -> None:
    from cove.services.repos import reindex

    with bk.db.session() as db:
        rows = list(db.scalars(select(Repo).order_by(Repo.id)))
        known = {bk.repos.path(r.storage_key).resolve() for r in rows}
        for repo in rows:
            report.count("repos")
            path = bk.repos.path(repo.storage_key)
            if not path.is_dir():
                report.add("repo-missing", _name(repo), f"git folder {path} is missing")
                continue
            try:
                pygit2.Repository(str(path))
            except pygit2.GitError as exc:
                report.add("git", _name(repo), f"does not open: {exc}")
                continue
            out = subprocess.run(["git", "fsck", "--no-dangling", "--no-progress"], cwd=path, capture_output=True,
                                 text=True, check=False)
            if out.returncode != 0:
                report.add("git", _name(repo), (out.stdout + out.stderr).strip()[:2000] or "git fsck failed")
                continue
            try:
                head = bk.repos.head(repo.storage_key)
            except pygit2.GitError as exc:
                report.add("git", _name(repo), f"main does not resolve: {exc}")
                continue
            if head and head != repo.sha:
                # A commit in flight moves the ref a moment before its index row: look again once settled.
                time.sleep(_SETTLE)
                db.commit()  # end the read transaction, so the refresh sees rows committed since
                db.refresh(repo)
                head = bk.repos.head(repo.storage_key)
            if head and head != repo.sha:
                p = report.add("index-stale", _name(repo), f"index row names {repo.sha}, main is {head}")
                if repair:
                    bk.repos.forget(repo.storage_key)
                    p.repaired = reindex(db, bk, repo, head) and repo.sha == bk.repos.head(repo.storage_key)
                    db.flush()
    if bk.repos.root.is_dir():
        for path in sorted(bk.repos.root.glob("*/*.git")):
            if path.resolve() not in known:
                report.add("git-orphan", str(path), "no repo row names this git folder")


def _sha256(bk: Backends, key: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with bk.blobs.open(key) as fh:
        while block := fh.read(_HASH_CHUNK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _local_keys(bk: Backends, namespace: str) -> Iterator[str]:
    """Keys of one namespace found on disk (local blob store only: finds blobs no row names too)."""
    root = getattr(bk.blobs, "root", None)
    if root is None or not (Path(root) / namespace).is_dir():
        return
    for _folder, _dirs, names in os.walk(Path(root) / namespace):
        for name in names:
            yield f"{namespace}/{name}"


def _check_lfs(bk: Backends, report: Report) -> None:
    with bk.db.session() as db:
        rows = db.execute(select(LfsObject.oid, LfsObject.size, LfsObject.xet_hash)).all()
        xet_files = set(db.scalars(select(XetFile.hash)))
    sizes: dict[str, set[int]] = {}
    served_by_xet: set[str] = set()
    for oid, size, xet_hash in rows:
        sizes.setdefault(oid, set()).add(size)
        if xet_hash and xet_hash in xet_files:
            served_by_xet.add(oid)
    keys = {f"lfs/{oid}" for oid in sizes} | set(_local_keys(bk, "lfs"))
    for key in sorted(keys):
        oid = key.removeprefix("lfs/")
        if not bk.blobs.exists(key):
            if oid not in served_by_xet and sizes.get(oid) != {0}:
                report.add("lfs-missing", key, "an lfs_objects row names it; no blob or Xet file holds it")
            continue
        report.count("lfs_blobs")
        actual, size = _sha256(bk, key)
        if actual != oid:
            report.add("blob-corrupt", key, f"hashes to {actual} ({size} bytes)")
        elif oid in sizes and size not in sizes[oid]:
            report.add("blob-size", key, f"{size} bytes; its rows say {sorted(sizes[oid])}")


def _check_xet(bk: Backends, report: Report) -> None:
    with bk.db.session() as db:
        xorbs = {h: size for h, size in db.execute(select(XetXorb.hash, XetXorb.stored_size))}
        shards = {h: size for h, size in db.execute(select(XetShard.sha256, XetShard.size))}
        files = db.execute(select(XetFile.hash, XetFile.terms)).all()
    for h, stored_size in sorted(xorbs.items()):
        key = f"xorbs/{h}"
        report.count("xorbs")
        try:
            with bk.blobs.open(key) as fh:
                info = xorb.parse_xorb(fh, expected_hash=hashes.hex_to_hash(h))
        except KeyError:
            report.add("xorb-missing", key, "a xet_xorbs row names it; the blob is missing")
            continue
        except Exception as exc:  # noqa: BLE001 - any parse failure is corruption
            report.add("blob-corrupt", key, str(exc))
            continue
        if info.total_len != stored_size:
            report.add("blob-size", key, f"{info.total_len} bytes; its row says {stored_size}")
    for h, size in sorted(shards.items()):
        key = f"shards/{h}"
        report.count("shards")
        try:
            actual, n = _sha256(bk, key)
        except KeyError:
            report.add("shard-missing", key, "a xet_shards row names it; the blob is missing")
            continue
        if actual != h or n != size:
            report.add("blob-corrupt", key, f"hashes to {actual}, {n} bytes (row: {size})")
    for h, terms in files:
        report.count("xet_files")
        try:
            missing = {hashes.hash_to_hex(t.xorb_hash) for t in shard.unpack_terms(terms)} - xorbs.keys()
        except Exception as exc:  # noqa: BLE001
            report.add("xet-file", h, f"unreadable terms: {exc}")
            continue
        if missing:
            report.add("xet-file", h, f"names xorbs that are not stored: {', '.join(sorted(missing)[:3])}")


@contextlib.contextmanager
def _alone(data: Path) -> Iterator[bool]:
    """True while no server holds `serve.lock` (we hold it exclusively meanwhile)."""
    lock_path = data / "serve.lock"
    if fcntl is None or not lock_path.exists():
        yield fcntl is not None
        return
    with open(lock_path, "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _check_temp(bk: Backends, report: Report, repair: bool) -> None:
    settings = bk.settings
    with _alone(settings.data) as alone:
        cutoff = time.time() if alone else time.time() - settings.tmp_max_age
        stale = []
        for root in tempfiles.temp_roots(settings):
            if root.is_dir():
                for folder, _dirs, names in os.walk(root):
                    for name in names:
                        path = os.path.join(folder, name)
                        with contextlib.suppress(OSError):
                            if os.lstat(path).st_mtime < cutoff:
                                stale.append(path)
        if repair and stale:
            tempfiles.sweep(settings, cutoff)
        for path in stale:
            report.add("temp-orphan", path, "upload temp file no server is writing", repaired=repair
                       and not os.path.exists(path))
