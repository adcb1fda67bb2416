"""Collection pages (issue 15): `/collections/{namespace}` lists a user's or org's collections (and creates
one), `/collections/{namespace}/{slug}` shows one with its items and notes, in order; its writers edit notes,
move items up or down, remove them, and delete the collection. A repo page's "Add to collection" form posts
to `/collections/{namespace}/{slug}/items`.

Every form goes through `cove.services.collections`, as the API does: the same rules, and a private
collection (or item) the visitor may not read answers exactly as a missing one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from cove.backends import Backends
from cove.db.tables import Collection, Namespace, Repo
from cove.errors import BadRequest, HubError, NotFound
from cove.services import accounts
from cove.services import collections as svc
from cove.services.accounts import Actor
from cove.web.render import page, repo_path
from cove.web.sessions import check_csrf, visitor

LISTED = 100  # collections shown on a namespace's page
ITEM_ACTIONS = ("note", "up", "down", "delete")


def _may_write(db, actor: Actor, namespace: str) -> bool:  # noqa: ANN001 - Session
    try:
        svc.require_write(db, actor, namespace)
    except HubError:
        return False
    return True


def _href(c: Collection) -> str:
    return f"/collections/{svc.slug_of(c)}"


def _item_view(e: svc.Entry) -> dict:
    """What the page shows of an item: a label, a link, its kind, its note."""
    row, target = e.item, e.target
    if isinstance(target, Repo):
        label, href = target.repo_id, repo_path(target.type, target.repo_id)
    elif isinstance(target, Collection):
        label, href = target.title, _href(target)
    else:
        label, href = row.paper_id, f"https://arxiv.org/abs/{row.paper_id}"
    return {"id": row.object_id, "type": row.item_type, "label": label, "href": href, "note": row.note or "",
            "private": bool(getattr(target, "private", False))}


def writable_collections(request: Request) -> list[dict]:
    """For a repo page's "Add to collection" form: the collections the visitor may add items to."""
    v = visitor(request)
    if v.actor.anonymous or not v.actor.can_write:
        return []
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        names = [v.actor.name] + [o.name for o, role in accounts.orgs_of(db, v.actor.user_id)
                                  if role in ("write", "admin")]
        rows = svc.listing(db, v.actor, svc.Listing(owners=names, items=[], search=None, sort=None),
                           offset=0, limit=LISTED)
        return [{"slug": svc.slug_of(c), "title": c.title, "owner": c.namespace.name} for c in rows]


def _namespace_ctx(request: Request, namespace: str) -> dict:
    """The collections of `namespace` the visitor may read, in the owner's order, and whether they may add one."""
    v = visitor(request)
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        ns = db.scalar(select(Namespace).where(Namespace.name == namespace))
        if ns is None:
            raise NotFound(f"No user or organization named {namespace!r}")
        rows = svc.listing(db, v.actor, svc.Listing(owners=[ns.name], items=[], search=None, sort=None),
                           offset=0, limit=LISTED)
        previews = svc.previews(db, v.actor, rows)
        cols = [{"href": _href(c), "title": c.title, "description": c.description, "private": c.private,
                 "preview": [_item_view(e) for e in previews[c.id]]} for c in rows]
        return {"owner": ns.name, "collections": cols, "may_create": _may_write(db, v.actor, ns.name)}


def namespace_page(request: Request, namespace: str) -> Response:
    """`/collections/{namespace}`: its collections, and a form to create one for those who may."""
    ctx = _namespace_ctx(request, namespace)
    return page(request, "collections.html", title=f"Collections · {ctx['owner']}", error=None, values={}, **ctx)


def create(request: Request, namespace: str, csrf_token: Annotated[str, Form()] = "",
           title: Annotated[str, Form()] = "", description: Annotated[str, Form()] = "",
           private: Annotated[str, Form()] = "") -> Response:
    v = check_csrf(request, csrf_token)
    bk: Backends = request.app.state.backends
    try:
        with bk.db.session() as db:
            c = svc.create(db, v.actor, namespace, title, description, private == "1")
            target = _href(c)
    except HubError as exc:
        if exc.status in (401, 403, 404):
            raise
        ctx = _namespace_ctx(request, namespace)  # the form again, with the message and what was typed
        return page(request, "collections.html", status=exc.status, title=f"Collections · {ctx['owner']}",
                    error=exc.message, values={"title": title, "description": description, "private": private},
                    **ctx)
    return RedirectResponse(target, status_code=303)


def collection_page(request: Request, namespace: str, slug: str) -> Response:
    """`/collections/{namespace}/{slug}`: title, description, items with notes, in order."""
    v = visitor(request)
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        ctx, items = _collection_view(db, v.actor, svc.find(db, v.actor, namespace, slug))
    if _href_of(namespace, slug) != ctx["href"]:  # an old slug (renamed) or another case: the current URL
        return RedirectResponse(ctx["href"], status_code=301)
    return page(request, "collection.html", title=f"{ctx['title_']} · {ctx['owner']}", c=ctx, items=items,
                saved=request.query_params.get("saved"))


def _collection_view(db, actor: Actor, c: Collection) -> tuple[dict, list[dict]]:  # noqa: ANN001 - Session
    """The collection page's context and its items, as ``actor`` sees them."""
    items = [_item_view(e) for e in svc.entries(db, actor, c)]
    ctx = {"title_": c.title, "description": c.description, "private": c.private, "owner": c.namespace.name,
           "href": _href(c), "can_edit": _may_write(db, actor, c.namespace.name)}
    return ctx, items


def edit(request: Request, namespace: str, slug: str, csrf_token: Annotated[str, Form()] = "",
         title: Annotated[str, Form()] = "", description: Annotated[str, Form()] = "",
         private: Annotated[str, Form()] = "") -> Response:
    """The collection's title (its URL follows; old links redirect), description and visibility."""
    v = check_csrf(request, csrf_token)
    bk: Backends = request.app.state.backends
    try:
        with bk.db.session() as db:
            c = svc.find(db, v.actor, namespace, slug)
            svc.update(db, v.actor, c, {"title": title, "description": description, "private": private == "1"})
            target = _href(c)
    except HubError as exc:
        if exc.status in (401, 403, 404):
            raise
        with bk.db.session() as db:  # the page again, with the Hub's message and what was typed
            ctx, items = _collection_view(db, v.actor, svc.find(db, v.actor, namespace, slug))
        return page(request, "collection.html", status=exc.status, title=f"{ctx['title_']} · {ctx['owner']}",
                    c=ctx, items=items, saved=None, error=exc.message,
                    values={"title": title, "description": description, "private": private == "1"})
    return RedirectResponse(f"{target}?saved=settings", status_code=303)


def _href_of(namespace: str, slug: str) -> str:
    return f"/collections/{namespace}/{slug}"


def add_item(request: Request, namespace: str, slug: str, csrf_token: Annotated[str, Form()] = "",
             item_type: Annotated[str, Form()] = "", item_id: Annotated[str, Form()] = "",
             note: Annotated[str, Form()] = "") -> Response:
    v = check_csrf(request, csrf_token)
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        c = svc.find(db, v.actor, namespace, slug)
        svc.add_item(db, v.actor, c, {"type": item_type, "id": item_id}, note or None)
        target = _href(c)
    return RedirectResponse(f"{target}?saved=added", status_code=303)


def add_repo(repo_type: str, request: Request, ns: str, name: str, csrf_token: Annotated[str, Form()] = "",
             collection: Annotated[str, Form()] = "", note: Annotated[str, Form()] = "") -> Response:
    """A repo page's "Add to collection": `collection` is the chosen one's `namespace/slug`."""
    owner, _, slug = collection.partition("/")
    return add_item(request, owner, slug, csrf_token, repo_type, f"{ns}/{name}", note)


def item_action(request: Request, namespace: str, slug: str, item: str, csrf_token: Annotated[str, Form()] = "",
                action: Annotated[str, Form()] = "", note: Annotated[str, Form()] = "") -> Response:
    """`action`: `note` (set it; empty clears), `up`, `down` (past its visible neighbour), or `delete`."""
    v = check_csrf(request, csrf_token)
    if action not in ITEM_ACTIONS:
        raise BadRequest(f"Unknown action {action!r}")
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        c = svc.find(db, v.actor, namespace, slug)
        if action == "delete":
            svc.delete_item(db, v.actor, c, item)
        elif action == "note":
            svc.update_item(db, v.actor, c, item, {"note": note})
        else:
            svc.require_write(db, v.actor, c.namespace.name)
            seen = svc.entries(db, v.actor, c)
            at = next((i for i, e in enumerate(seen) if e.item.object_id == item), None)
            if at is None:
                raise NotFound("Item not found in the collection")
            other = at - 1 if action == "up" else at + 1
            if 0 <= other < len(seen):  # the neighbour's place among all items (hidden ones included)
                svc.update_item(db, v.actor, c, item, {"position": seen[other].item.position})
        target = _href(c)
    return RedirectResponse(f"{target}?saved={action}#item-{item}", status_code=303)


def delete(request: Request, namespace: str, slug: str, csrf_token: Annotated[str, Form()] = "") -> Response:
    v = check_csrf(request, csrf_token)
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        c = svc.find(db, v.actor, namespace, slug)
        owner = c.namespace.name
        svc.delete(db, v.actor, c)
    return RedirectResponse(f"/collections/{owner}", status_code=303)
