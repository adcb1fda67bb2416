"""People and accounts: user and organization pages, sign in and out, access tokens."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from cove.backends import Backends
from cove.db.tables import Namespace
from cove.deps import client_host
from cove.errors import Forbidden, NotFound, TooManyRequests
from cove.services import accounts, likes, search, throttle, usage
from cove.web import sessions
from cove.web.render import page

_DUMMY_HASH = accounts.hash_password("cove-timing-equaliser")
PER_TYPE = 30


def _safe_next(target: str | None) -> str:
    """Only local paths: never `//evil.example` or `https://...`."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def login_form(request: Request) -> Response:
    v = sessions.visitor(request)
    nxt = _safe_next(request.query_params.get("next"))
    if v.signed_in:
        return RedirectResponse(nxt, status_code=302)
    return page(request, "login.html", title="Sign in", next=nxt, error=None, username="")


def _check_password(bk: Backends, username: str, password: str, client: str | None) -> Namespace | None:
    """The user, or None; 429 (`TooManyRequests`) while the account or the client is throttled. Unknown
    names are throttled like real ones, so the answer tells nothing about who exists."""
    account = throttle.account_key(username)
    with bk.db.session() as db:
        throttle.check(db, account, client, fresh=True)
        user = accounts.get_namespace(db, username.strip())
        stored = user.password_hash if user is not None and user.kind == "user" else None
        ok = accounts.check_password(password, stored or _DUMMY_HASH)  # the same work for unknown users
        if not ok or stored is None:
            throttle.fail(db, account, throttle.account_budget(bk.settings))
            throttle.fail(db, client, throttle.client_budget(bk.settings))
            return None
        throttle.clear(db, account)
        db.expunge(user)
        return user


def _check_token(bk: Backends, token: str, client: str | None) -> bool:
    with bk.db.session() as db:
        throttle.check(db, client, fresh=True)
        ok = accounts.actor_for_token(db, token) is not None
        if not ok:
            throttle.fail(db, client, throttle.client_budget(bk.settings))
        return ok


def login(request: Request, csrf_token: Annotated[str, Form()] = "", username: Annotated[str, Form()] = "",
          password: Annotated[str, Form()] = "", token: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "/") -> Response:  # noqa: A002
    sessions.check_csrf(request, csrf_token)
    bk: Backends = request.app.state.backends
    token = token.strip()[:500]
    client = throttle.client_key(client_host(request))
    try:
        user = None if token else _check_password(bk, username[:200], password[:1000], client)
        token_ok = bool(token) and _check_token(bk, token, client)
    except TooManyRequests as exc:
        resp = page(request, "login.html", status=429, title="Sign in", next=_safe_next(next), error=exc.message,
                    username=username[:200])
        resp.headers.update(exc.headers)
        return resp
    if (token and not token_ok) or (not token and user is None):
        error = "Invalid token" if token else "Wrong username or password"
        return page(request, "login.html", status=401, title="Sign in", next=_safe_next(next), error=error,
                    username=username[:200])
    resp = RedirectResponse(_safe_next(next), status_code=303)
    if token:
        sessions.start_with_token(bk, resp, token)  # the session is the token's: its role, its lifetime
    else:
        sessions.start(bk, resp, user)  # type: ignore[arg-type]
    return resp


def logout_form(request: Request) -> Response:
    return page(request, "logout.html", title="Sign out")


def logout(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    sessions.check_csrf(request, csrf_token)
    resp = RedirectResponse("/", status_code=303)
    sessions.end(request.app.state.backends, request, resp)
    return resp


def _signed_in(request: Request) -> sessions.Visitor | None:
    v = sessions.visitor(request)
    if v.signed_in and not v.with_password:
        # A token must not mint tokens that outlive it: token management needs the password.
        raise Forbidden("Sign in with your password to manage access tokens")
    return v if v.signed_in else None


def tokens_page(request: Request) -> Response:
    """`/settings/tokens`: the signed-in user's tokens."""
    return _tokens(request, None)


def _tokens(request: Request, created: tuple[str, str, str] | None) -> Response:
    v = _signed_in(request)
    if v is None:
        return RedirectResponse("/login?next=/settings/tokens", status_code=302)
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        rows = accounts.list_tokens(db, v.actor.name)  # type: ignore[arg-type]
        for r in rows:
            db.expunge(r)
    return page(request, "tokens.html", title="Access tokens", tokens=rows, created=created)


def create_token(request: Request, csrf_token: Annotated[str, Form()] = "", name: Annotated[str, Form()] = "",
                 role: Annotated[str, Form()] = "read") -> Response:
    sessions.check_csrf(request, csrf_token)
    v = _signed_in(request)
    if v is None:
        return RedirectResponse("/login?next=/settings/tokens", status_code=303)
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        row, secret = accounts.create_token(db, v.actor.name, role=role,  # type: ignore[arg-type]
                                            name=name.strip()[:100] or None)
        created = (row.name, row.role, secret)
    return _tokens(request, created)


def revoke_token(request: Request, csrf_token: Annotated[str, Form()] = "",
                 token_id: Annotated[str, Form()] = "") -> Response:
    sessions.check_csrf(request, csrf_token)
    v = _signed_in(request)
    if v is None:
        return RedirectResponse("/login?next=/settings/tokens", status_code=303)
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        mine = {str(t.id) for t in accounts.list_tokens(db, v.actor.name)}  # type: ignore[arg-type]
        if not any(hmac.compare_digest(token_id, t) for t in mine):
            raise NotFound("No such token")
        accounts.revoke_token(db, v.actor.name, token_id)  # type: ignore[arg-type]
    return RedirectResponse("/settings/tokens", status_code=303)


def person_page(request: Request, ns: str) -> Response:
    """`/{user_or_org}`: who they are and the repos this visitor may see."""
    v = sessions.visitor(request)
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        who = accounts.get_namespace(db, ns)
        if who is None:
            raise NotFound(f"{ns!r} not found")
        sections = []
        for repo_type in ("model", "dataset", "space"):
            q = search.Query(repo_type=repo_type, search=[], author=who.name, sort="lastModified")
            sections.append((repo_type, search.page(db, v.actor, q, offset=0, limit=PER_TYPE),
                             search.count(db, v.actor, q)))
        liked: list = []
        if who.kind == "user":
            related = [(o.name, role) for o, role in accounts.orgs_of(db, who.id)]
            # Likes, as on the Hub's profile: only repos this visitor may see (`search.visible`, in SQL), newest first.
            liked = [(r.type, r.repo_id) for r in likes.liked_page(db, v.actor, who.name, PER_TYPE)]
        else:
            related = [(u.name, role) for u, role in accounts.members_of(db, who.id)]
        db.expunge(who)
    return page(request, "person.html", title=who.fullname or who.name, who=who, sections=sections,
                related=related, liked=liked)


def storage_page(request: Request, org: str | None = None) -> Response:
    """`/settings/storage` (your repos) and `/organizations/{org}/settings/storage`: bytes kept per repo
    (`usage.namespace_usage`, what the API's repo listing with storage reports)."""
    v = sessions.visitor(request)
    if v.actor.anonymous:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=302)
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        rows = usage.namespace_usage(db, bk, v.actor, org)
    return page(request, "storage.html", title="Storage", owner=org or v.actor.name, rows=rows,
                total=sum(r.storage for r in rows))

