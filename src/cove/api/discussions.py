"""Discussions and pull requests (`refs/pr/N`): list, open, read."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from sqlalchemy import func, select

from cove.api.shapes import iso
from cove.db.tables import Discussion
from cove.deps import Bk, CurrentActor, repo_type_of
from cove.errors import BadRequest, NotFound
from cove.services import access
from cove.storage.git_repos import ZERO

router = APIRouter()


def _json(d: Discussion, repo_id: str, repo_type: str) -> dict:
    return {"num": d.num, "title": d.title, "status": d.status, "createdAt": iso(d.created_at),
            "author": {"name": d.author, "type": "user"}, "isPullRequest": d.is_pull_request,
            "repo": {"name": repo_id, "type": repo_type}, "numComments": 0, "pinned": False}


@router.get("/api/{plural}/{ns}/{name}/discussions")
def list_discussions(plural: str, ns: str, name: str, bk: Bk, actor: CurrentActor, p: int = 0) -> dict:
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        rows = db.scalars(select(Discussion).where(Discussion.repo_pk == repo.id)
                          .order_by(Discussion.num.desc()).offset(p * 50).limit(50)).all()
        total = db.scalar(select(func.count()).where(Discussion.repo_pk == repo.id))
        return {"discussions": [_json(d, repo.repo_id, repo.type) for d in rows], "count": total, "start": p * 50,
                "numClosedDiscussions": 0}


@router.post("/api/{plural}/{ns}/{name}/discussions")
def create_discussion(plural: str, ns: str, name: str, body: Annotated[dict[str, Any], Body()], bk: Bk,
                      actor: CurrentActor) -> dict:
    title = body.get("title")
    if not isinstance(title, str) or not title.strip():
        raise BadRequest("'title' is required")
    is_pr = bool(body.get("pullRequest"))
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        if is_pr:
            access.require_write(db, actor, repo)
        else:  # a discussion is a write too: not with a read token
            access.require_write_token(actor, "open a discussion")
        num = (db.scalar(select(func.max(Discussion.num)).where(Discussion.repo_pk == repo.id)) or 0) + 1
        if is_pr:
            head = bk.repos.resolve(repo.storage_key, "main")
            bk.repos.update_ref(repo.storage_key, f"refs/pr/{num}", head, ZERO)  # type: ignore[arg-type]
        d = Discussion(repo_pk=repo.id, num=num, title=title.strip(), description=body.get("description") or "",
                       author=actor.name or "", is_pull_request=is_pr)
        db.add(d)
        db.flush()
        return {**_json(d, repo.repo_id, repo.type), "url": f"{bk.settings.public_endpoint}/{repo.repo_id}"}


@router.get("/api/{plural}/{ns}/{name}/discussions/{num}")
def get_discussion(plural: str, ns: str, name: str, num: int, bk: Bk, actor: CurrentActor) -> dict:
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        d = None
        if 0 < num < 2**63:  # what the database's integers hold; beyond, there is no such discussion
            d = db.scalar(select(Discussion).where(Discussion.repo_pk == repo.id, Discussion.num == num))
        if d is None:
            raise NotFound(f"Discussion {num} not found")
        out = _json(d, repo.repo_id, repo.type)
        out["events"] = [{"id": f"{d.id:024x}", "type": "comment", "createdAt": iso(d.created_at),
                          "author": {"name": d.author, "type": "user"},
                          "data": {"latest": {"raw": d.description}, "numEdits": 0, "editors": [d.author],
                                   "hidden": False, "reactions": []}}]
        if d.is_pull_request:
            out["changes"] = {"base": "refs/heads/main", "mergeCommitId": None}
            out["filesWithConflicts"] = []
        return out
