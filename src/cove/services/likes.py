"""Likes: one per user per repo; the repo row keeps the count for sorting."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cove.db.tables import Like, Namespace, Repo
from cove.services import access
from cove.services.accounts import Actor


def like(db: Session, actor: Actor, repo: Repo) -> None:
    access.require_write_token(actor, "like a repo")
    if db.get(Like, (actor.user_id, repo.id)) is None:
        db.add(Like(user_id=actor.user_id, repo_pk=repo.id))
        repo.likes = (repo.likes or 0) + 1


def unlike(db: Session, actor: Actor, repo: Repo) -> None:
    access.require_write_token(actor, "unlike a repo")
    row = db.get(Like, (actor.user_id, repo.id))
    if row is not None:
        db.delete(row)
        repo.likes = max(0, (repo.likes or 0) - 1)


def likers(db: Session, repo: Repo) -> list[tuple[str, str]]:
    """(user name, full name) of each user who likes the repo."""
    q = (select(Namespace.name, Namespace.fullname).join(Like, Like.user_id == Namespace.id)
         .where(Like.repo_pk == repo.id))
    return [(n, f or n) for n, f in db.execute(q)]


def liked_by(db: Session, user: str) -> list[tuple[Repo, object]]:
    q = (select(Repo, Like.created_at).join(Like, Like.repo_pk == Repo.id)
         .join(Namespace, Namespace.id == Like.user_id).where(func.lower(Namespace.name) == user.lower()))
    return [(r, c) for r, c in db.execute(q)]
