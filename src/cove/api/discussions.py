"""Discussions and pull requests (`refs/pr/N`): list, open, read."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from sqlalchemy import func, select

from cove.api.shapes import iso
from cove.db.tables import Discussion
from cove.deps import Bk, CurrentActor, repo_type_of
from cove.errors import BadRequest, NotFound
from cove.services import access, discussions

router = APIRouter()


def _json(d: Discussion, repo_id: str, repo_type: str) -> dict:
    return {"num": d.num, "title": d.title, "status": d.status, "createdAt": iso(d.created_at),
            "author": {"name": d.author, "type": "user"}, "isPullRequest": d.is_pull_request,
            "repo": {"name": repo_id, "type": repo_type}, "numComments": 0, "pinned": False}


@router.get("/api/{plural}/{ns}/{name}/discussions")
def list_discussions(plural: str, ns: str, name: str, bk: Bk, actor: CurrentActor,
                     p: Annotated[int, Query(ge=0, le=2**40)] = 0) -> dict:
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
    if len(title.strip()) > discussions.MAX_TITLE:
        raise BadRequest(f"'title' is longer than {discussions.MAX_TITLE} characters")
    description = body.get("description") or ""
    if not isinstance(description, str) or len(description) > bk.settings.max_commit_description:
        raise BadRequest(f"'description' must be a string of at most {bk.settings.max_commit_description} characters")
    is_pr = bool(body.get("pullRequest"))
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        if is_pr:
            access.require_contribute(db, actor, repo)
        else:  # a discussion is a write too: not with a read token
            access.require_write_token(actor, "open a discussion")
        head = bk.repos.resolve(repo.storage_key, "main") if is_pr else None
        d = discussions.open_discussion(db, bk, repo, title=title.strip(), description=description,
                                        author=actor.name or "", pr_head=head)
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
                          "data": {"latest": {"raw": d.description}, "edited": False, "numEdits": 0,
                                   "editors": [d.author], "hidden": False, "reactions": []}}]
        if d.is_pull_request:
            out["changes"] = {"base": "refs/heads/main", "mergeCommitId": None}
            out["filesWithConflicts"] = []
        return out
