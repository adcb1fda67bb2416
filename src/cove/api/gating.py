"""Gated repos: ask for access, list and handle requests, grant access."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from cove.api.shapes import iso
from cove.deps import Bk, CurrentActor, repo_type_of
from cove.errors import BadRequest
from cove.services import access, gating

router = APIRouter()
JsonBody = Annotated[dict[str, Any] | None, Body()]


@router.post("/api/{plural}/{ns}/{name}/ask-access")
def ask_access(plural: str, ns: str, name: str, bk: Bk, actor: CurrentActor, body: JsonBody = None) -> dict:
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        return {"status": gating.request_access(db, actor, repo, (body or {}).get("fields"))}


@router.get("/api/{plural}/{ns}/{name}/user-access-request/{status}")
def list_requests(plural: str, ns: str, name: str, status: str, bk: Bk, actor: CurrentActor) -> list[dict]:
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        return [{"requestId": str(r.id), "status": r.status, "timestamp": iso(r.created_at), "fields": r.fields,
                 "user": {"user": r.user.name, "fullname": r.user.fullname, "email": r.user.email}}
                for r in gating.list_requests(db, actor, repo, status)]


@router.post("/api/{plural}/{ns}/{name}/user-access-request/handle")
def handle(plural: str, ns: str, name: str, bk: Bk, actor: CurrentActor, body: JsonBody = None) -> dict:
    body = body or {}
    rid = body.get("requestId")
    if rid is not None and not (isinstance(rid, (int, str)) and str(rid).isdecimal() and int(rid) < 2**63):
        raise BadRequest("'requestId' must be a request id (a number)")
    if body.get("user") is not None and not isinstance(body.get("user"), str):
        raise BadRequest("'user' must be a user name")
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        gating.set_status(db, actor, repo, user=body.get("user"), request_id=int(rid) if rid else None,
                          status=str(body.get("status")))
    return {}


@router.post("/api/{plural}/{ns}/{name}/user-access-request/grant")
def grant(plural: str, ns: str, name: str, bk: Bk, actor: CurrentActor, body: JsonBody = None) -> dict:
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        gating.grant(db, actor, repo, str((body or {}).get("user")))
    return {}
