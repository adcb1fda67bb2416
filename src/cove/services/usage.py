"""Storage per repo (`list_user_repos`): a namespace's repos with the bytes each one keeps."""

from __future__ import annotations

import os
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


def _folder_bytes(path: Path) -> int:
    total = 0
    for folder, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += (Path(folder) / name).stat().st_size
            except OSError:
                continue
    return total


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
    sized = [(r, int(lfs.get(r.id) or 0) + _folder_bytes(bk.repos.path(r.storage_key))) for r in rows]
    total = sum(n for _, n in sized) or 1
    sized.sort(key=lambda x: (-x[1], x[0].type, x[0].name))
    return [RepoUsage(r.repo_id, r.type, r.last_modified, r.private, n, round(100 * n / total, 2))
            for r, n in sized]
