"""Webhooks: a user's subscriptions, and the events the services emit for them.

An event is queued (one ``webhook_deliveries`` row per matching webhook) in the same transaction as the change
it reports, so it is sent only if the change is kept, and survives a restart; `cove.services.webhook_delivery`
sends it, off the request path. A webhook only ever hears of repos its owner may read: checked when the event
is queued and again when it is sent. The payload is the Hub's (``huggingface_hub.WebhookPayload``, version 3);
its URLs are stored as paths and made absolute with the public endpoint when sent.
"""

from __future__ import annotations

import re
import secrets
import threading
from urllib.parse import urlsplit

from sqlalchemy import delete, or_, select
from sqlalchemy import event as sql_event
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from cove.api.shapes import PLURAL, PREFIX
from cove.db.tables import Discussion, DiscussionEvent, Namespace, Repo, Webhook, WebhookDelivery, WebhookWatch
from cove.errors import BadRequest, NotFound
from cove.services import access
from cove.services.accounts import Actor

DOMAINS = ("repo", "discussion")
NAMESPACE_TYPES = ("user", "org")
WATCH_TYPES = (*access.REPO_TYPES, *NAMESPACE_TYPES)
MAX_WATCHED = 100
MAX_URL = 2000
MAX_SECRET = 200
VERSION = 3
#: Set once a transaction that queued deliveries commits: this process's worker sends them at once (other
#: processes' events wait for its next poll).
WAKE = threading.Event()
_ID_RE = re.compile(r"^[0-9a-f]{24}$")


def _text(value: object) -> bool:
    """A string the database can hold: valid Unicode (no lone surrogate), no NUL, no control characters."""
    if not isinstance(value, str) or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- the webhooks themselves ---------------------------------------------------------------------------------


def _new_id() -> str:
    return secrets.token_hex(12)


def webhook_json(db: Session, wh: Webhook) -> dict:
    """The Hub's webhook object (what ``WebhookInfo`` reads)."""
    watched = db.execute(select(WebhookWatch.type, WebhookWatch.name).where(WebhookWatch.webhook_id == wh.id)
                         .order_by(WebhookWatch.type, WebhookWatch.name)).all()
    return {"id": wh.id, "url": wh.url, "job": None, "watched": [{"type": t, "name": n} for t, n in watched],
            "domains": list(wh.domains), "secret": wh.secret, "disabled": wh.disabled}


def owned(db: Session, actor: Actor, webhook_id: str) -> Webhook:
    """The caller's webhook; anyone else's, or none, is not found."""
    wh = db.get(Webhook, webhook_id) if _ID_RE.match(webhook_id) else None
    if wh is None or actor.anonymous or wh.owner_id != actor.user_id:
        raise NotFound(f"Webhook {webhook_id} not found")
    return wh


def list_owned(db: Session, actor: Actor) -> list[Webhook]:
    return list(db.scalars(select(Webhook).where(Webhook.owner_id == actor.user_id)
                           .order_by(Webhook.created_at, Webhook.id)).all())


def _url(value: object) -> str:
    if not _text(value) or len(value) > MAX_URL:  # type: ignore[arg-type]
        raise BadRequest(f"'url' must be an http(s) URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(value)  # type: ignore[arg-type]
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a bad port or IPv6 literal
        ok = False
    if not ok:
        raise BadRequest("'url' must be an http(s) URL")
    return value  # type: ignore[return-value]


def _domains(value: object) -> list[str]:
    if not isinstance(value, list) or not value or any(d not in DOMAINS for d in value):
        raise BadRequest("'domains' must be a non-empty list of 'repo' and 'discussion'")
    return [d for d in DOMAINS if d in value]


def _secret(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not _text(value) or len(value) > MAX_SECRET:  # type: ignore[arg-type]
        raise BadRequest(f"'secret' must be a string of at most {MAX_SECRET} characters")
    return value


def _watched(db: Session, actor: Actor, value: object) -> list[tuple[str, str]]:
    """Validated watched items. A repo the caller may not read is refused exactly as a missing one."""
    if not isinstance(value, list) or not value or len(value) > MAX_WATCHED:
        raise BadRequest(f"'watched' must list 1 to {MAX_WATCHED} items")
    out: dict[tuple[str, str], None] = {}
    for item in value:
        if not isinstance(item, dict) or not _text(item.get("name")) or item.get("type") not in WATCH_TYPES:
            raise BadRequest(f"Each watched item needs a 'name' and a 'type', one of {', '.join(WATCH_TYPES)}")
        kind, name = item["type"], item["name"]
        if kind in access.REPO_TYPES:
            access.readable_repo(db, actor, kind, name)
        else:
            ns = db.scalar(select(Namespace).where(Namespace.name == name))
            if ns is None or ns.kind != kind:
                raise NotFound(f"{'User' if kind == 'user' else 'Organization'} {name!r} not found")
        out[(kind, name)] = None
    return list(out)


def create(db: Session, actor: Actor, body: dict) -> Webhook:
    access.require_write_token(actor, "create a webhook")
    if body.get("jobSourceId") is not None or body.get("secrets") is not None:
        raise BadRequest("Webhooks that run Jobs are not supported by this hub: give a 'url'")
    url = _url(body.get("url"))
    domains = _domains(body.get("domains", list(DOMAINS)))
    secret = _secret(body.get("secret"))
    watched = _watched(db, actor, body.get("watched"))
    wh = Webhook(id=_new_id(), owner_id=actor.user_id, url=url, domains=domains, secret=secret, disabled=False)
    db.add(wh)
    db.flush()
    db.add_all(WebhookWatch(webhook_id=wh.id, type=t, name=n) for t, n in watched)
    db.flush()
    return wh


def update(db: Session, actor: Actor, wh: Webhook, body: dict) -> Webhook:
    """Change what the body names. The client always sends ``watched``; an empty list keeps the current ones."""
    access.require_write_token(actor, "update a webhook")
    if body.get("jobSourceId") is not None or body.get("secrets") is not None:
        raise BadRequest("Webhooks that run Jobs are not supported by this hub: give a 'url'")
    url = _url(body["url"]) if "url" in body else wh.url
    domains = _domains(body["domains"]) if "domains" in body else list(wh.domains)
    secret = _secret(body["secret"]) if "secret" in body else wh.secret
    watched = _watched(db, actor, body["watched"]) if body.get("watched") else None
    wh.url, wh.domains, wh.secret = url, domains, secret
    if watched is not None:
        db.execute(delete(WebhookWatch).where(WebhookWatch.webhook_id == wh.id))
        db.add_all(WebhookWatch(webhook_id=wh.id, type=t, name=n) for t, n in watched)
    db.flush()
    return wh


def set_disabled(actor: Actor, wh: Webhook, disabled: bool) -> Webhook:
    access.require_write_token(actor, "change a webhook")
    wh.disabled = disabled
    return wh


def remove(db: Session, actor: Actor, wh: Webhook) -> None:
    access.require_write_token(actor, "delete a webhook")
    db.delete(wh)
    db.flush()


def deliveries(db: Session, wh: Webhook, limit: int = 100) -> list[dict]:
    """The webhook's delivery log, newest first."""
    from cove.api.shapes import iso

    rows = db.scalars(select(WebhookDelivery).where(WebhookDelivery.webhook_id == wh.id)
                      .order_by(WebhookDelivery.id.desc()).limit(limit)).all()
    return [{"id": r.id, "event": r.payload.get("event"), "repo": (r.payload.get("repo") or {}).get("name"),
             "status": "pending" if r.status == "delivering" else r.status, "attempts": r.attempts,
             "createdAt": iso(r.created_at), "finishedAt": iso(r.finished_at),
             "nextAttemptAt": iso(r.next_attempt_at) if r.status in ("pending", "delivering") else None,
             "log": list(r.log or [])} for r in rows]


# -- events ----------------------------------------------------------------------------------------------------


def _hex(db: Session, name: str) -> str:
    ns = db.scalar(select(Namespace.id).where(Namespace.name == name))
    return f"{ns:024x}" if ns is not None else name


def repo_json(db: Session, repo: Repo, head_sha: str | None = None) -> dict:
    web = f"/{PREFIX[repo.type]}{repo.repo_id}"
    out = {"type": repo.type, "name": repo.repo_id, "id": f"{repo.id:024x}", "private": repo.private,
           "url": {"web": web, "api": f"/api/{PLURAL[repo.type]}/{repo.repo_id}"},
           "headSha": head_sha or repo.sha, "owner": {"id": _hex(db, repo.namespace)}, "tags": list(repo.tags or [])}
    if repo.type == "space":
        out["subdomain"] = f"{repo.namespace}-{repo.name}".lower().replace("_", "-").replace(".", "-")
    return out


def discussion_json(db: Session, repo: Repo, d: Discussion) -> dict:
    web = f"/{PREFIX[repo.type]}{repo.repo_id}/discussions/{d.num}"
    out = {"id": f"{d.id:024x}", "num": d.num, "author": {"id": _hex(db, d.author)},
           "url": {"web": web, "api": f"/api/{PLURAL[repo.type]}/{repo.repo_id}/discussions/{d.num}"},
           "title": d.title, "isPullRequest": d.is_pull_request, "status": d.status, "pinned": False}
    if d.is_pull_request:
        merged = None
        if d.status == "merged":
            merged = db.scalar(select(DiscussionEvent.data).where(
                DiscussionEvent.discussion_pk == d.id, DiscussionEvent.type == "status-change")
                .order_by(DiscussionEvent.id.desc()).limit(1))
        store = db.info.get("repos")  # set by `build_backends`; the PR's base is the repo's default branch now
        base = store.default_branch(repo.storage_key) if store is not None else "main"
        out["changes"] = {"base": f"refs/heads/{base}", "mergeCommitId": (merged or {}).get("oid")}
    return out


def _watchers(db: Session, repo: Repo, domain: str) -> list[Webhook]:
    """Enabled webhooks of this domain watching the repo or its namespace, whose owner may read the repo."""
    match = or_((WebhookWatch.type == repo.type) & (WebhookWatch.name == repo.repo_id),
                WebhookWatch.type.in_(NAMESPACE_TYPES) & (WebhookWatch.name == repo.namespace))
    ids = select(WebhookWatch.webhook_id).where(match)
    hooks = db.scalars(select(Webhook).where(Webhook.id.in_(ids), Webhook.disabled.is_(False))
                       .order_by(Webhook.id)).all()
    return [wh for wh in hooks if domain in wh.domains and owner_may_read(db, wh, repo)]


def owner_may_read(db: Session, wh: Webhook, repo: Repo) -> bool:
    """The webhook's owner may read the repo now (visibility and membership)."""
    owner = access.holder(db, user_id=wh.owner_id)
    return owner is not None and access.can_read(db, owner, repo)


def _queue(db: Session, repo: Repo, domain: str, event: dict) -> None:
    hooks = _watchers(db, repo, domain)
    for wh in hooks:
        db.add(WebhookDelivery(webhook_id=wh.id, repo_pk=repo.id, payload={**event, "webhook": {
            "id": wh.id, "version": VERSION}}, status="pending", attempts=0, log=[]))
    if hooks:
        db.flush()
        if not db.info.get("webhooks.wake"):
            db.info["webhooks.wake"] = True
            sql_event.listen(db, "after_commit", _wake, once=True)


def _wake(db: Session) -> None:
    db.info.pop("webhooks.wake", None)
    WAKE.set()


def repo_event(db: Session, repo: Repo, action: str, scope: str = "repo", *,
               refs: list[tuple[str, str | None, str | None]] | None = None, head_sha: str | None = None,
               moved_to: str | None = None) -> None:
    """A repo event: ``create``/``delete``/``move`` (scope ``repo``), ``update`` of ``repo.content`` (``refs``:
    (ref, old sha, new sha) each) or of ``repo.config`` (visibility)."""
    event: dict = {"event": {"action": action, "scope": scope}, "repo": repo_json(db, repo, head_sha)}
    if refs:
        event["updatedRefs"] = [{"ref": r, "oldSha": old, "newSha": new} for r, old, new in refs]
    if moved_to:
        event["movedTo"] = {"name": moved_to, "owner": {"id": _hex(db, moved_to.partition("/")[0])}}
    _queue(db, repo, "repo", event)


def repo_moved(db: Session, repo: Repo, to_repo_id: str) -> None:
    """A ``move`` (called before the rename): the watchers of the old name hear of it, and their watch follows
    the repo to its new name (unless they watch that name already)."""
    repo_event(db, repo, "move", moved_to=to_repo_id)
    taken = select(WebhookWatch.webhook_id).where(WebhookWatch.type == repo.type, WebhookWatch.name == to_repo_id)
    db.execute(sql_update(WebhookWatch).where(WebhookWatch.type == repo.type, WebhookWatch.name == repo.repo_id,
                                          WebhookWatch.webhook_id.not_in(taken)).values(name=to_repo_id))


def discussion_event(db: Session, d: Discussion, action: str, comment: DiscussionEvent | None = None) -> None:
    """A discussion or pull request ``create``d or ``update``d (status, title), or a comment ``create``d."""
    repo = db.get(Repo, d.repo_pk)
    if repo is None:
        return
    event: dict = {"event": {"action": action, "scope": "discussion.comment" if comment else "discussion"},
                   "repo": repo_json(db, repo), "discussion": discussion_json(db, repo, d)}
    if comment is not None:
        raw = comment.data.get("raw", "")
        hidden = bool(comment.data.get("hidden"))
        cid = f"d{d.id:023x}" if comment.type == "opening" else f"e{comment.id:023x}"  # as discussions' event ids
        event["comment"] = {"id": cid, "author": {"id": _hex(db, comment.author)}, "hidden": hidden,
                            "content": None if hidden else raw,
                            "url": {"web": f"{event['discussion']['url']['web']}#{cid}"}}
    _queue(db, repo, "discussion", event)


def comment_changed(comment: DiscussionEvent) -> None:
    """A comment edited or hidden: ``update`` of ``discussion.comment`` (in the comment's own session)."""
    db = Session.object_session(comment)
    d = db.get(Discussion, comment.discussion_pk) if db is not None else None
    if d is not None:
        discussion_event(db, d, "update", comment)


def refs_changed(before: dict[str, str], after: dict[str, str]) -> list[tuple[str, str | None, str | None]]:
    """(ref, old, new) for each ref a push created, moved or deleted."""
    return [(r, before.get(r), after.get(r)) for r in sorted(set(before) | set(after)) if before.get(r) != after.get(r)]


def absolute(payload: dict, endpoint: str) -> dict:
    """The payload with its ``url`` paths made absolute."""
    def fix(value: object) -> object:
        if isinstance(value, dict):
            return {k: (endpoint + v if k in ("web", "api") and isinstance(v, str) and v.startswith("/")
                        else fix(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value
    return fix(payload)  # type: ignore[return-value]

