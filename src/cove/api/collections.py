"""Collections (`/api/collections`): list, create, read, update, delete, and their items."""

from __future__ import annotations

import html
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from cove.api.shapes import iso, repo_info_json
from cove.db.tables import Collection, Namespace, Repo
from cove.deps import Bk, CurrentActor
from cove.services import collections as svc
from cove.services.accounts import Actor

router = APIRouter()
PAGE = 100
JsonBody = Annotated[dict[str, Any], Body()]


def owner_json(ns: Namespace, endpoint: str) -> dict:
    return {"_id": f"{ns.id:024x}", "name": ns.name, "fullname": ns.fullname or ns.name,
            "type": "org" if ns.kind == "org" else "user", "avatarUrl": f"{endpoint}/avatars/{ns.name}.svg",
            "isPro": False}


def item_json(e: svc.Entry, endpoint: str) -> dict:
    row, target = e.item, e.target
    out: dict = {"_id": row.object_id, "position": e.position, "type": row.item_type}
    if isinstance(target, Repo):
        info = repo_info_json(target, sha=target.sha, siblings=None, expand=None, full=False, card=False)
        info.pop("_id", None)
        out = {**info, **out, "repoType": target.type}
    elif isinstance(target, Collection):
        out.update(id=target.object_id, slug=svc.slug_of(target), title=target.title,
                   description=target.description, lastUpdated=iso(target.updated_at), private=target.private,
                   theme=target.theme, upvotes=0, owner=target.namespace.name)
    else:
        out["id"] = row.paper_id
    if row.note:
        out["note"] = {"text": row.note, "html": html.escape(row.note)}
    return out


def collection_json(c: Collection, entries: list[svc.Entry], endpoint: str) -> dict:
    slug = svc.slug_of(c)
    return {"_id": c.object_id, "slug": slug, "title": c.title, "description": c.description, "gating": False,
            "lastUpdated": iso(c.updated_at), "owner": owner_json(c.namespace, endpoint),
            "items": [item_json(e, endpoint) for e in entries], "position": c.position, "theme": c.theme,
            "private": c.private, "upvotes": 0, "isUpvotedByUser": False,
            "shareUrl": f"{endpoint}/collections/{slug}"}


def _full(db: Session, actor: Actor, c: Collection, endpoint: str) -> dict:
    return collection_json(c, svc.entries(db, actor, c), endpoint)


@router.get("/api/collections")
def list_collections(request: Request, bk: Bk, actor: CurrentActor,
                     owner: Annotated[list[str] | None, Query()] = None,
                     item: Annotated[list[str] | None, Query()] = None,
                     sort: Annotated[str | None, Query()] = None,
                     q: Annotated[str | None, Query(max_length=200)] = None,
                     limit: Annotated[int | None, Query(ge=1, le=10**6)] = None,
                     cursor: Annotated[int, Query(ge=0, le=2**40)] = 0) -> JSONResponse:
    size = min(limit or PAGE, PAGE)
    query = svc.Listing(owners=owner or [], items=item or [], search=q, sort=sort)
    endpoint = bk.settings.public_endpoint
    with bk.db.session() as db:
        rows = svc.listing(db, actor, query, offset=cursor, limit=size + 1)
        previews = svc.previews(db, actor, rows[:size])
        out = [collection_json(c, previews[c.id], endpoint) for c in rows[:size]]
    for c in out:
        del c["position"]  # the client numbers a listing itself (a `position` here is a TypeError in it)
    headers = {}
    if len(rows) > size:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        params.append(("cursor", str(cursor + size)))
        headers["Link"] = f'<{endpoint}/api/collections?{urlencode(params)}>; rel="next"'
    return JSONResponse(out, headers=headers)


@router.post("/api/collections")
def create_collection(body: JsonBody, bk: Bk, actor: CurrentActor) -> dict:
    with bk.db.session() as db:
        c = svc.create(db, actor, body.get("namespace"), body.get("title"), body.get("description"),
                       body.get("private", False))
        return _full(db, actor, c, bk.settings.public_endpoint)


@router.get("/api/collections/{namespace}/{slug}")
def get_collection(namespace: str, slug: str, bk: Bk, actor: CurrentActor) -> dict:
    with bk.db.session() as db:
        return _full(db, actor, svc.find(db, actor, namespace, slug), bk.settings.public_endpoint)


@router.patch("/api/collections/{namespace}/{slug}")
def update_collection(namespace: str, slug: str, body: JsonBody, bk: Bk, actor: CurrentActor) -> dict:
    with bk.db.session() as db:
        c = svc.find(db, actor, namespace, slug)
        svc.update(db, actor, c, body)
        return {"success": True, "data": _full(db, actor, c, bk.settings.public_endpoint)}


@router.delete("/api/collections/{namespace}/{slug}")
def delete_collection(namespace: str, slug: str, bk: Bk, actor: CurrentActor) -> dict:
    with bk.db.session() as db:
        svc.delete(db, actor, svc.find(db, actor, namespace, slug))
    return {"success": True}


@router.post("/api/collections/{namespace}/{slug}/items")
def add_item(namespace: str, slug: str, body: JsonBody, bk: Bk, actor: CurrentActor) -> dict:
    with bk.db.session() as db:
        c = svc.find(db, actor, namespace, slug)
        svc.add_item(db, actor, c, body.get("item"), body.get("note"))
        return _full(db, actor, c, bk.settings.public_endpoint)


@router.patch("/api/collections/{namespace}/{slug}/items/{item_id}")
def update_item(namespace: str, slug: str, item_id: str, body: JsonBody, bk: Bk, actor: CurrentActor) -> dict:
    with bk.db.session() as db:
        c = svc.find(db, actor, namespace, slug)
        svc.update_item(db, actor, c, item_id, body)
    return {"success": True}


@router.delete("/api/collections/{namespace}/{slug}/items/{item_id}")
def delete_item(namespace: str, slug: str, item_id: str, bk: Bk, actor: CurrentActor) -> dict:
    with bk.db.session() as db:
        svc.delete_item(db, actor, svc.find(db, actor, namespace, slug), item_id)
    return {"success": True}
