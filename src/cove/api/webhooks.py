"""Webhooks (`/api/settings/webhooks`): the caller's own, as `HfApi.create_webhook` & co. call them, and each
one's delivery log. Another user's webhook answers 404, as a missing one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from cove.deps import Bk, CurrentActor
from cove.errors import NotFound, Unauthorized
from cove.services import webhooks
from cove.services.accounts import Actor

router = APIRouter()
JsonBody = Annotated[dict[str, Any], Body()]


def _signed_in(actor: Actor) -> None:
    if actor.anonymous:
        raise Unauthorized("You must be authenticated to manage webhooks")


@router.get("/api/settings/webhooks")
def list_webhooks(bk: Bk, actor: CurrentActor) -> list[dict]:
    _signed_in(actor)
    with bk.db.session() as db:
        return [webhooks.webhook_json(db, wh) for wh in webhooks.list_owned(db, actor)]


@router.post("/api/settings/webhooks")
def create_webhook(body: JsonBody, bk: Bk, actor: CurrentActor) -> dict:
    _signed_in(actor)
    with bk.db.session() as db:
        wh = webhooks.create(db, actor, body)
        return {"webhook": webhooks.webhook_json(db, wh)}


@router.get("/api/settings/webhooks/{webhook_id}")
def get_webhook(webhook_id: str, bk: Bk, actor: CurrentActor) -> dict:
    _signed_in(actor)
    with bk.db.session() as db:
        return {"webhook": webhooks.webhook_json(db, webhooks.owned(db, actor, webhook_id))}


@router.post("/api/settings/webhooks/{webhook_id}")
def update_webhook(webhook_id: str, body: JsonBody, bk: Bk, actor: CurrentActor) -> dict:
    _signed_in(actor)
    with bk.db.session() as db:
        wh = webhooks.update(db, actor, webhooks.owned(db, actor, webhook_id), body)
        return {"webhook": webhooks.webhook_json(db, wh)}


@router.post("/api/settings/webhooks/{webhook_id}/{action}")
def enable_or_disable(webhook_id: str, action: str, bk: Bk, actor: CurrentActor) -> dict:
    _signed_in(actor)
    with bk.db.session() as db:
        wh = webhooks.owned(db, actor, webhook_id)
        if action not in ("enable", "disable"):
            raise NotFound(f"No action {action!r} on webhooks: 'enable' or 'disable'")
        webhooks.set_disabled(actor, wh, action == "disable")
        db.flush()
        return {"webhook": webhooks.webhook_json(db, wh)}


@router.delete("/api/settings/webhooks/{webhook_id}")
def delete_webhook(webhook_id: str, bk: Bk, actor: CurrentActor) -> dict:
    _signed_in(actor)
    with bk.db.session() as db:
        webhooks.remove(db, actor, webhooks.owned(db, actor, webhook_id))
        return {}


@router.get("/api/settings/webhooks/{webhook_id}/deliveries")
def list_deliveries(webhook_id: str, bk: Bk, actor: CurrentActor) -> dict:
    """The delivery log, newest first (the last 100): each event's tries, status codes and errors."""
    _signed_in(actor)
    with bk.db.session() as db:
        return {"deliveries": webhooks.deliveries(db, webhooks.owned(db, actor, webhook_id))}
