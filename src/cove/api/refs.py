"""Refs: list, branches, tags."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from cove.deps import Bk, CurrentActor, repo_type_of
from cove.errors import BadRequest
from cove.services import access, refs

router = APIRouter()
OptBody = Annotated[dict[str, Any] | None, Body()]


@router.get("/api/{plural}/{ns}/{name}/refs")
def list_refs(plural: str, ns: str, name: str, bk: Bk, actor: CurrentActor, include_prs: bool = False) -> dict:
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
    return refs.list_refs(bk, repo, include_prs=include_prs)


@router.post("/api/{plural}/{ns}/{name}/branch/{branch:path}")
def create_branch(plural: str, ns: str, name: str, branch: str, bk: Bk, actor: CurrentActor,
                  body: OptBody = None) -> dict:
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        start = (body or {}).get("startingPoint")
        if start is not None and not isinstance(start, str):
            raise BadRequest("'startingPoint' must be a revision (a string)")
        refs.create_branch(db, bk, actor, repo, branch, start)
    return {}


@router.delete("/api/{plural}/{ns}/{name}/branch/{branch:path}")
def delete_branch(plural: str, ns: str, name: str, branch: str, bk: Bk, actor: CurrentActor) -> dict:
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        refs.delete_branch(db, bk, actor, repo, branch)
    return {}


@router.post("/api/{plural}/{ns}/{name}/tag/{revision:path}")
def create_tag(plural: str, ns: str, name: str, revision: str, bk: Bk, actor: CurrentActor,
               body: OptBody = None) -> dict:
    tag = (body or {}).get("tag")
    if not isinstance(tag, str):
        raise BadRequest("'tag' is required")
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        refs.create_tag(db, bk, actor, repo, tag, revision)
    return {}


@router.delete("/api/{plural}/{ns}/{name}/tag/{tag:path}")
def delete_tag(plural: str, ns: str, name: str, tag: str, bk: Bk, actor: CurrentActor) -> dict:
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        refs.delete_tag(db, bk, actor, repo, tag)
    return {}
