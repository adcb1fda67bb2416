"""FastAPI dependencies: backends, the calling actor, repo lookup from the URL."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from cove.backends import Backends
from cove.errors import BadRequest, Unauthorized
from cove.services import throttle
from cove.services.accounts import ANONYMOUS, Actor, actor_for_token

INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


def get_backends(request: Request) -> Backends:
    return request.app.state.backends


def token_from_header(value: str | None) -> str | None:
    """Bearer token, or the password of HTTP Basic auth (git sends the token that way)."""
    if not value:
        return None
    scheme, _, rest = value.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return rest.strip() or None
    if scheme == "basic":
        try:
            user, _, password = base64.b64decode(rest.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return password or None
    return None


def client_host(request: Request) -> str | None:
    """The caller's IP (uvicorn applies `X-Forwarded-For` from `FORWARDED_ALLOW_IPS`)."""
    return request.client.host if request.client else None


def resolve_actor(bk: Backends, authorization: str | None, client: str | None = None) -> Actor:
    """The token's actor. Invalid tokens count against `client` (`services.throttle`): past its budget, every
    token it sends gets 429 for a while, valid or not, so guessing gains nothing from going on."""
    token = token_from_header(authorization)
    if token is None:
        if authorization:
            raise Unauthorized(INVALID_CREDENTIALS)
        return ANONYMOUS
    key = throttle.client_key(client)
    with bk.db.session() as db:
        throttle.check(db, key)
        actor = actor_for_token(db, token)
        if actor is None:
            throttle.fail(db, key, throttle.client_budget(bk.settings))
    if actor is None:
        raise Unauthorized(INVALID_CREDENTIALS)
    return actor


def get_actor(request: Request) -> Actor:
    bk = get_backends(request)
    actor = getattr(request.state, "actor", None)
    if actor is None:
        actor = resolve_actor(bk, request.headers.get("authorization"), client_host(request))
        if actor.anonymous:
            session_actor = getattr(request.app.state, "session_actor", None)
            if session_actor is not None:
                actor = session_actor(request) or actor
    _require_login_if_closed(bk, request, actor)
    request.state.actor = actor
    return actor


def _require_login_if_closed(bk: Backends, request: Request, actor: Actor) -> None:
    if actor.anonymous and not bk.settings.anonymous_read and not _open_path(request.url.path):
        raise Unauthorized("This hub requires authentication: pass a token (HF_TOKEN)")


def _open_path(path: str) -> bool:
    """Routes anonymous callers may use even when `COVE_ANONYMOUS_READ=false`."""
    return path in ("/api/agent-harnesses", "/api/validate-yaml") or "/info/lfs/" in path


def repo_type_of(plural: str) -> str:
    mapping = {"models": "model", "datasets": "dataset", "spaces": "space"}
    if plural not in mapping:
        raise BadRequest(f"Unknown repo type {plural!r}")
    return mapping[plural]


async def _backends_dep(request: Request) -> Backends:
    # async: FastAPI runs a plain `def` dependency in the thread pool, a hop per request for nothing.
    return request.app.state.backends


async def _actor_dep(request: Request) -> Actor:
    """`get_actor`, in the thread pool only when there is something to look up (a header, a cookie)."""
    cached = getattr(request.state, "actor", None)
    if cached is not None:
        return cached
    if "authorization" not in request.headers and "cookie" not in request.headers:
        _require_login_if_closed(request.app.state.backends, request, ANONYMOUS)
        request.state.actor = ANONYMOUS  # what get_actor finds: no token, no session cookie
        return ANONYMOUS
    return await run_in_threadpool(get_actor, request)


Bk = Annotated[Backends, Depends(_backends_dep)]
CurrentActor = Annotated[Actor, Depends(_actor_dep)]
