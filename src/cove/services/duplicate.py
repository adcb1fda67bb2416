"""Duplicate a repo (`duplicate_repo`): a server-side copy of its git history, its LFS/Xet files by reference."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess

import pygit2
from sqlalchemy import select
from sqlalchemy.orm import Session

from cove.backends import Backends
from cove.db.tables import LfsObject, Repo
from cove.errors import BadRequest, Conflict
from cove.services import access, gating, mirror, repos
from cove.services.accounts import Actor, get_namespace


def duplicate(db: Session, bk: Backends, actor: Actor, src: Repo, to_id: str, *,
              private: bool | None) -> tuple[Repo, bool]:
    """Copy `src` to `to_id` (same type): every branch and tag with its history (git objects hard-linked, not
    rewritten), and the records of its LFS/Xet objects (bytes shared, never copied). The caller must read
    `src`'s files (gating included) and may create repos in the target namespace. `private` None: as `src`.
    Returns (repo, created); an existing target the caller can see comes back with created False."""
    gating.require_file_access(db, actor, src, "", bk.settings.public_endpoint)
    ns, name = repos.validate_repo_id(to_id)
    owner = get_namespace(db, ns)
    ns = owner.name if owner is not None else ns
    existing = access.find_repo(db, src.type, f"{ns}/{name}")
    if existing is not None and access.can_read(db, actor, existing):
        return existing, False
    access.require_namespace_write(db, actor, ns)
    if existing is not None:
        raise Conflict(f"You already created this {src.type} repo")
    if owner is None:
        raise BadRequest(f"Namespace {ns!r} does not exist")
    repo = Repo(type=src.type, namespace=ns, name=name, storage_key=secrets.token_hex(16),
                private=src.private if private is None else private, sdk=src.sdk, tags=[])
    db.add(repo)
    db.flush()
    _copy_git(bk, src.storage_key, repo.storage_key)
    try:
        mirror.inherit(bk, src.storage_key, repo.storage_key)  # a mirror's copy fetches what it never read
        rows = db.scalars(select(LfsObject).where(LfsObject.repo_pk == src.id)).all()
        # Each record keeps its state: a Xet sha256 that only a client claimed stays confined to the copies of
        # the repo it was made in, as it is to that repo.
        db.add_all(LfsObject(repo_pk=repo.id, oid=r.oid, size=r.size, xet_hash=r.xet_hash,
                             sha256_verified=r.sha256_verified) for r in rows)
        db.flush()
        repos.reindex(db, bk, repo)
    except BaseException:
        bk.repos.delete(repo.storage_key)
        raise
    return repo, True


def _copy_git(bk: Backends, src_key: str, dst_key: str) -> None:
    """A bare clone of the branches and tags (objects hard-linked; pull-request refs stay behind), with the
    settings `GitRepoStore.create` gives a new repo."""
    src, dst = bk.repos.path(src_key), bk.repos.path(dst_key)
    dst.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["git", "clone", "--bare", "--quiet", "--local", str(src), str(dst)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(dst, ignore_errors=True)
        raise RuntimeError(f"git clone failed: {proc.stderr.strip()}")
    git = pygit2.Repository(str(dst))
    cfg = git.config
    with contextlib.suppress(KeyError):
        del cfg["remote.origin.url"]  # the copy stands alone
    cfg["http.receivepack"] = True
    cfg["uploadpack.allowAnySHA1InWant"] = True
    cfg["receive.denyDeleteCurrent"] = True
    git.set_head("refs/heads/main")
