"""Storage per repo (`list_user_repos`): a namespace's repos with the bytes each one keeps."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cove.backends import Backends
from cove.db.tables import LfsObject, Repo
from cove.errors import Forbidden, NotFound, Unauthorized
from cove.services import access
from cove.services.accounts import Actor, get_namespace


@dataclass(frozen=True)
class RepoUsage:
    repo_id: str
    type: str
    updated_at: datetime
    private: bool
    storage: int
    percent: float


def _folder_bytes(path: Path | str) -> int:
    """Bytes of the files under `path` (scandir: one stat per file, no path objects)."""
    total = 0
    stack = [str(path)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for e in entries:
                try:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        total += e.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
    return total


_sizes: OrderedDict[tuple[str, str], int] = OrderedDict()
_sizes_lock = threading.Lock()
_SIZES = 20_000


def _git_bytes(path: Path, stamp: str) -> int:
    """`_folder_bytes`, remembered per (folder, stamp): the repo's last change (`Repo.last_modified`, set by
    every commit, push and ref move) names its content, so a listing walks only the folders that changed since
    (a 10,000-commit repo's loose objects are tens of thousands of files). A `cove gc`/repack changes the size
    without a commit: the figure catches up at the repo's next change or restart."""
    key = (str(path), stamp)
    with _sizes_lock:
        if key in _sizes:
            _sizes.move_to_end(key)
            return _sizes[key]
    n = _folder_bytes(path)
    with _sizes_lock:
        _sizes[key] = n
        while len(_sizes) > _SIZES:
            _sizes.popitem(last=False)
    return n


def namespace_usage(db: Session, bk: Backends, actor: Actor, namespace: str | None) -> list[RepoUsage]:
    """Every repo of the caller's own namespace (None) or of an org they belong to, largest first: git
    folder plus the LFS/Xet objects it holds (shared bytes count for every repo that holds them, as on the
    Hub). 401 anonymous; 404 for an unknown org; 403 for an org the caller is not in."""
    if actor.anonymous:
        raise Unauthorized("You must be authenticated to list your repositories")
    if namespace is None:
        namespace = actor.name
    else:
        ns = get_namespace(db, namespace)
        if ns is None or ns.kind != "org":
            raise NotFound(f"Organization {namespace!r} not found")
        if access.namespace_role(db, actor, ns.name) is None:
            raise Forbidden(f"You are not a member of {ns.name!r}")
        namespace = ns.name
    lfs = dict(db.execute(select(LfsObject.repo_pk, func.sum(LfsObject.size))
                          .join(Repo, Repo.id == LfsObject.repo_pk).where(Repo.namespace == namespace)
                          .group_by(LfsObject.repo_pk)).all())
    rows = db.scalars(select(Repo).where(Repo.namespace == namespace)).all()
    sized = [(r, int(lfs.get(r.id) or 0) + _git_bytes(bk.repos.path(r.storage_key), f"{r.last_modified}/{r.sha}"))
             for r in rows]
    total = sum(n for _, n in sized) or 1
    sized.sort(key=lambda x: (-x[1], x[0].type, x[0].name))
    return [RepoUsage(r.repo_id, r.type, r.last_modified, r.private, n, round(100 * n / total, 2))
            for r, n in sized]
