"""Likes: one per user per repo; the repo row keeps the count for sorting.

Concurrent likes (one user's double click, many users, several processes) neither fail nor lose counts: the
row is inserted with ON CONFLICT DO NOTHING and the count moves by an in-database increment only when a row
was really inserted (or deleted).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session, aliased

from cove.db.tables import Like, Namespace, Repo, utcnow
from cove.services import access
from cove.services.accounts import Actor


def _count(db: Session, repo: Repo, delta: int) -> None:
    """likes = max(0, likes + delta), in the database (row-locked there), never from a value read before."""
    larger = func.max if db.get_bind().dialect.name == "sqlite" else func.greatest
    new = larger(0, func.coalesce(Repo.likes, 0) + delta)
    db.execute(update(Repo).where(Repo.id == repo.id).values(likes=new).execution_options(synchronize_session=False))
    db.expire(repo, ["likes"])


def like(db: Session, actor: Actor, repo: Repo) -> None:
    access.require_write_token(actor, "like a repo")
    dialect = db.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    row = {"user_id": actor.user_id, "repo_pk": repo.id, "created_at": utcnow()}
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT's rowcount through SQLAlchemy.
    if db.execute(insert(Like).values(**row).on_conflict_do_nothing().returning(Like.user_id)).first() is not None:
        _count(db, repo, +1)


def unlike(db: Session, actor: Actor, repo: Repo) -> None:
    access.require_write_token(actor, "unlike a repo")
    gone = db.execute(delete(Like).where(Like.user_id == actor.user_id, Like.repo_pk == repo.id)
                      .returning(Like.user_id).execution_options(synchronize_session=False)).first()
    if gone is not None:
        _count(db, repo, -1)


def likers(db: Session, repo: Repo) -> list[tuple[str, str]]:
    """(user name, full name) of each user who likes the repo."""
    q = (select(Namespace.name, Namespace.fullname).join(Like, Like.user_id == Namespace.id)
         .where(Like.repo_pk == repo.id))
    return [(n, f or n) for n, f in db.execute(q)]


def _liked(db: Session, actor: Actor, user: str, *cols: Any) -> Select:  # noqa: ANN401
    """`cols` of the repos `user` liked, newest like first, among those `actor` may see (`search.visible`, in SQL:
    a private repo the actor cannot read is missing, and is never read only to be dropped)."""
    from cove.services.search import visible

    liker = aliased(Namespace)  # `visible` reads Namespace in a subquery of its own: not correlated with this one
    q = (select(Repo, *cols).join(Like, Like.repo_pk == Repo.id).join(liker, liker.id == Like.user_id)
         .where(func.lower(liker.name) == user.lower()).order_by(Like.created_at.desc(), Repo.id.desc()))
    return visible(q, db, actor)


def liked_page(db: Session, actor: Actor, user: str, limit: int) -> list[Repo]:
    """The newest `limit` likes of `user` among the repos `actor` may see (the web profile)."""
    return list(db.scalars(_liked(db, actor, user).limit(limit)))


def liked_by(db: Session, actor: Actor, user: str) -> list[tuple[Repo, object]]:
    """Every like of `user` with its time, as `liked_page` orders and filters them (the API listing)."""
    return [(r, c) for r, c in db.execute(_liked(db, actor, user, Like.created_at))]
