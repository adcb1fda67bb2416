"""History rewrites and restores: super-squash and revert (both move a branch by compare-and-swap)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cove.backends import Backends
from cove.db.tables import Repo
from cove.errors import BadRequest, Conflict, RevisionNotFound
from cove.services import access, repos
from cove.services.accounts import Actor
from cove.storage.git_repos import RefConflict


def super_squash(db: Session, bk: Backends, actor: Actor, repo: Repo, *, branch: str, message: str) -> str:
    """Replace a branch's history with one commit holding its current tree."""
    access.require_write(db, actor, repo)
    if not bk.repos.is_branch(repo.storage_key, branch):
        raise RevisionNotFound(f"Invalid rev id: {branch}")
    ref = f"refs/heads/{branch}"
    head = bk.repos.resolve(repo.storage_key, ref)
    new = bk.repos.commit_with_tree(repo.storage_key, tree_of=head, parents=[], author=actor.name or "cove",  # type: ignore[arg-type]
                                    message=message)
    _move(bk, repo, ref, new, head)
    if branch == bk.repos.default_branch(repo.storage_key):
        repos.reindex(db, bk, repo, new)
    return new


def revert(db: Session, bk: Backends, actor: Actor, repo: Repo, *, target: str, branch: str = "main",
           message: str | None = None) -> str:
    """New commit on `branch` whose tree is the tree of `target`; history stays intact."""
    access.require_write(db, actor, repo)
    key = repo.storage_key
    sha = bk.repos.resolve(key, target)
    if sha is None:
        raise RevisionNotFound(f"Invalid rev id: {target}")
    if not bk.repos.is_branch(key, branch):
        raise RevisionNotFound(f"Invalid rev id: {branch}")
    ref = f"refs/heads/{branch}"
    head = bk.repos.resolve(key, ref)
    if head and bk.repos.tree_id(key, head) == bk.repos.tree_id(key, sha):
        raise BadRequest(f"{branch} already has the content of {sha[:12]}")
    new = bk.repos.commit_with_tree(key, tree_of=sha, parents=[head] if head else [],  # type: ignore[list-item]
                                    author=actor.name or "cove", message=message or f"Revert to {sha[:12]}")
    _move(bk, repo, ref, new, head)
    if branch == bk.repos.default_branch(key):
        repos.reindex(db, bk, repo, new)
    return new


def _move(bk: Backends, repo: Repo, ref: str, new: str, old: str | None) -> None:
    try:
        bk.repos.update_ref(repo.storage_key, ref, new, old)
    except RefConflict as exc:
        raise Conflict("The branch moved while this was being done; retry") from exc
