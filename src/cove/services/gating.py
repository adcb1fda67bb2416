"""Gated repos: the card and file list stay visible; file contents need an accepted access request.

As on huggingface.co, only `README.md` is free to read: `.gitattributes` is gated like every other file.
Handling a request answers as the Hub does: 400 when the repo is not gated, 404 when the user has no request
or it is already in the asked-for state, 400 when granting a user who already has access.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cove.db.tables import AccessRequest, Repo, utcnow
from cove.errors import BadRequest, GatedRepo, NotFound, Unauthorized
from cove.services import access
from cove.services.accounts import Actor, require_user

#: Files anyone who can see the repo may read, gated or not (as on the Hub).
UNGATED_FILES = frozenset({"README.md"})
STATUSES = ("pending", "accepted", "rejected")


def has_access(db: Session, actor: Actor, repo: Repo) -> bool:
    if not repo.gated:
        return True
    if actor.anonymous:
        return False
    if access.namespace_role(db, actor, repo.namespace) is not None:
        return True
    status = db.scalar(select(AccessRequest.status).where(AccessRequest.repo_pk == repo.id,
                                                          AccessRequest.user_id == actor.user_id))
    return status == "accepted"


def request_status(db: Session, actor: Actor, repo: Repo) -> str | None:
    """The caller's access request on this repo: pending, accepted, rejected, or None (never asked)."""
    if actor.anonymous:
        return None
    return db.scalar(select(AccessRequest.status).where(AccessRequest.repo_pk == repo.id,
                                                        AccessRequest.user_id == actor.user_id))


def require_file_access(db: Session, actor: Actor, repo: Repo, path: str, endpoint: str) -> None:
    """Raise `GatedRepo` (401 anonymous, 403 otherwise) unless the caller may read this file
    (`path` "": the repo's files as a whole, as `auth-check` and `git clone` ask)."""
    if path in UNGATED_FILES or has_access(db, actor, repo):
        return
    url = f"{endpoint}/{'' if repo.type == 'model' else repo.type + 's/'}{repo.repo_id}"
    if actor.anonymous:
        err = GatedRepo(f"Access to {repo.type} {repo.repo_id} is restricted. You must have access to it and be "
                        f"authenticated to access it. Please log in.")
        err.status = 401
        raise err
    raise GatedRepo(f"Access to {repo.type} {repo.repo_id} is restricted and you are not in the authorized list. "
                    f"Visit {url} to ask for access.")


def request_access(db: Session, actor: Actor, repo: Repo, fields: dict | None = None) -> str:
    if actor.anonymous:
        raise Unauthorized("You must be authenticated to ask for access")
    if not repo.gated:
        raise BadRequest(f"{repo.repo_id} is not gated")
    row = db.scalar(select(AccessRequest).where(AccessRequest.repo_pk == repo.id,
                                                AccessRequest.user_id == actor.user_id))
    if row is None:
        row = AccessRequest(repo_pk=repo.id, user_id=actor.user_id, fields=fields or None)
        db.add(row)
    if row.status != "accepted":
        row.status = "accepted" if repo.gated == "auto" else "pending"
    db.flush()
    return row.status


def list_requests(db: Session, actor: Actor, repo: Repo, status: str) -> list[AccessRequest]:
    access.require_write(db, actor, repo)
    if status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
    q = select(AccessRequest).where(AccessRequest.repo_pk == repo.id, AccessRequest.status == status)
    return list(db.scalars(q.order_by(AccessRequest.id)))


def set_status(db: Session, actor: Actor, repo: Repo, *, user: str | None, request_id: int | None,
               status: str) -> None:
    access.require_write(db, actor, repo)
    if status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
    _require_gated(repo)
    q = select(AccessRequest).where(AccessRequest.repo_pk == repo.id)
    if user is not None:
        q = q.where(AccessRequest.user_id == require_user(db, user).id)
    elif request_id is not None:
        q = q.where(AccessRequest.id == request_id)
    else:
        raise BadRequest("Give 'user' or 'requestId'")
    row = db.scalar(q)
    if row is None:
        raise NotFound("No such access request")
    if row.status == status:
        raise NotFound(f"The access request is already in the {status} list")
    row.status = status
    row.created_at = utcnow()


def grant(db: Session, actor: Actor, repo: Repo, user: str) -> None:
    access.require_write(db, actor, repo)
    _require_gated(repo)
    u = require_user(db, user)
    row = db.scalar(select(AccessRequest).where(AccessRequest.repo_pk == repo.id, AccessRequest.user_id == u.id))
    if row is None:
        db.add(AccessRequest(repo_pk=repo.id, user_id=u.id, status="accepted"))
    elif row.status == "accepted":
        raise BadRequest(f"{u.name} already has access to {repo.repo_id}")
    else:
        row.status = "accepted"


def _require_gated(repo: Repo) -> None:
    if not repo.gated:
        raise BadRequest(f"{repo.repo_id} is not gated")
