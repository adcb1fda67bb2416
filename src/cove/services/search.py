"""Listing and search over the repo index: paginated SQL queries, never scans in Python."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, and_, exists, false, func, or_, select
from sqlalchemy.orm import Session

from cove.db.tables import Membership, Namespace, Repo, RepoTag
from cove.services.accounts import Actor

SORTS = {
    "downloads": Repo.downloads,
    "likes": Repo.likes,
    "lastModified": Repo.last_modified,
    "last_modified": Repo.last_modified,
    "createdAt": Repo.created_at,
    "created_at": Repo.created_at,
    "trendingScore": Repo.downloads,
    "trending_score": Repo.downloads,
    "id": Repo.id,
}


@dataclass
class Query:
    repo_type: str
    search: list[str]
    author: str | None = None
    filters: list[str] | None = None
    pipeline_tag: str | None = None
    library: str | None = None
    sort: str | None = None
    direction: int = -1
    gated: bool | None = None
    #: Match search terms in the card text too (the web UI), not only in repo ids (the Hub API).
    full_text: bool = False


def visible(q: Select, db: Session, actor: Actor) -> Select:
    """Hide private repos the caller cannot read (in rows and in counts)."""
    if actor.is_admin:
        return q
    if actor.anonymous:
        return q.where(Repo.private.is_(false()))
    member_of = select(Namespace.name).join(Membership, Membership.org_id == Namespace.id).where(
        Membership.user_id == actor.user_id
    )
    return q.where(or_(Repo.private.is_(false()), Repo.namespace == actor.name, Repo.namespace.in_(member_of)))


def _tag_match(value: str):  # noqa: ANN202
    """A filter value matches a tag, or the same value under a known prefix (task_categories:, language:...)."""
    prefixed = [f"{p}:{value}" for p in ("task_categories", "language", "license", "library", "task_ids")]
    return exists().where(and_(RepoTag.repo_pk == Repo.id, RepoTag.tag.in_([value, *prefixed])))


def build(db: Session, actor: Actor, query: Query) -> Select:
    q = select(Repo).where(Repo.type == query.repo_type)
    q = visible(q, db, actor)
    for term in query.search:
        if term:
            column = Repo.search_text if query.full_text else func.lower(Repo.namespace + "/" + Repo.name)
            q = q.where(column.contains(term.lower()))
    if query.author:
        q = q.where(func.lower(Repo.namespace) == query.author.lower())  # names are case-insensitive
    for f in query.filters or []:
        q = q.where(_tag_match(f))
    if query.pipeline_tag:
        q = q.where(Repo.pipeline_tag == query.pipeline_tag)
    if query.library:
        q = q.where(_tag_match(query.library))
    if query.gated is not None:
        q = q.where(Repo.gated.is_not(None) if query.gated else Repo.gated.is_(None))
    col = SORTS.get(query.sort or "")
    if col is None:
        q = q.order_by(Repo.created_at.desc(), Repo.id.desc())
    elif query.direction == 1:
        q = q.order_by(col.asc(), Repo.id.asc())
    else:
        q = q.order_by(col.desc(), Repo.id.desc())
    return q


def page(db: Session, actor: Actor, query: Query, *, offset: int, limit: int) -> list[Repo]:
    return list(db.scalars(build(db, actor, query).offset(offset).limit(limit)))


def count(db: Session, actor: Actor, query: Query) -> int:
    sub = build(db, actor, query).order_by(None).subquery()
    return db.scalar(select(func.count()).select_from(sub)) or 0
