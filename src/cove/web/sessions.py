"""Browser sessions and CSRF: a random cookie stored hashed (`WebSession`), a token on every form.

* Signing in with a password makes a session: 32 random bytes in the cookie, only their sha256 in
  `web_sessions`. Signing in with an access token puts that token in the cookie instead: the session then
  has exactly the token's role and ends when the token is revoked.
* The cookie is HttpOnly, SameSite=Lax, and Secure when the public endpoint is https.
* Every form carries a CSRF token: the session's (a stored random value, or an HMAC of the token for token
  sessions), or a double-submit cookie before signing in. A POST must also come from our own origin when
  the browser says where it comes from (`Origin`).
* API calls ride on the session too (`app.state.session_actor`), but an unsafe method (POST, PUT,
  DELETE...) only does so with the session's CSRF token in an `X-CSRF-Token` header.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import delete
from sqlalchemy.orm import Session

from cove.backends import Backends
from cove.db.tables import Namespace, WebSession, utcnow
from cove.deps import client_host, resolve_actor
from cove.errors import Forbidden, HubError, TooManyRequests
from cove.services import throttle
from cove.services.accounts import ANONYMOUS, TOKEN_PREFIX, Actor, actor_for_token, actor_for_token_hash, actor_for_user

SESSION_COOKIE = "cove_session"
CSRF_COOKIE = "cove_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
MAX_AGE = timedelta(days=30)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass
class Visitor:
    """Who is looking at a page, and the CSRF token their forms carry."""

    actor: Actor
    csrf: str
    new_csrf_cookie: bool = False  # an anonymous token minted by this request (set it on the response)

    @property
    def signed_in(self) -> bool:
        return not self.actor.anonymous

    @property
    def with_password(self) -> bool:
        """Signed in with a password (not a token): only such sessions manage tokens."""
        return self.signed_in and self.actor.token_name is None


def _cookie_session(request: Request) -> tuple[Actor, str] | None:
    """`_session` of the request's cookie, looked up once per request."""
    state = request.state
    if not hasattr(state, "cookie_session"):
        state.cookie_session = _session(request.app.state.backends, request.cookies.get(SESSION_COOKIE),
                                        client_host(request))
    return state.cookie_session


def _session(bk: Backends, raw: str | None, client: str | None = None) -> tuple[Actor, str] | None:
    """(actor, CSRF token) for a session cookie, or None. A token in the cookie is throttled like one in a
    header: an invalid one counts against the client, and a throttled client's token cookie is ignored."""
    if not raw or len(raw) > 200:
        return None
    with bk.db.session() as db:
        if raw.startswith(TOKEN_PREFIX):
            key = throttle.client_key(client)
            try:
                throttle.check(db, key)
            except TooManyRequests:
                return None
            actor = actor_for_token(db, raw)
            if actor is None:
                throttle.fail(db, key, throttle.client_budget(bk.settings))
                return None
            mac = hmac.new(bk.settings.signing_secret.encode(), b"csrf:" + _hash(raw).encode(), "sha256")
            return actor, mac.hexdigest()[:32]
        return _password_session(db, _hash(raw))


def _password_session(db: Session, ref: str) -> tuple[Actor, str] | None:
    """(actor, CSRF token) of the password session stored as `ref` (its cookie's hash), or None: unknown, its
    user gone, or older than `MAX_AGE` (then deleted)."""
    row = db.get(WebSession, ref)
    if row is None:
        return None
    if utcnow() - row.created_at > MAX_AGE:
        db.delete(row)
        return None
    user = db.get(Namespace, row.user_id)
    if user is None:
        return None
    return actor_for_user(db, user), row.csrf


def actor_for_ref(db: Session, ref: str) -> Actor | None:
    """Who the session whose cookie hashes to `ref` signs in, while it lasts: a password session's user, or the
    access token the cookie holds (a session signed in with a token); None once signed out, expired or revoked."""
    found = _password_session(db, ref)
    return found[0] if found is not None else actor_for_token_hash(db, ref)


def visitor(request: Request) -> Visitor:
    """The page's visitor: a session cookie, else an Authorization header, else anonymous."""
    cached = getattr(request.state, "visitor", None)
    if cached is not None:
        return cached
    bk: Backends = request.app.state.backends
    found = _cookie_session(request)
    if found is not None:
        v = Visitor(actor=found[0], csrf=found[1])
    else:
        actor = ANONYMOUS
        if request.headers.get("authorization"):
            try:
                actor = resolve_actor(bk, request.headers.get("authorization"), client_host(request))
            except HubError:
                actor = ANONYMOUS
        token = request.cookies.get(CSRF_COOKIE)
        fresh = not token or len(token) > 100
        v = Visitor(actor=actor, csrf=secrets.token_urlsafe(24) if fresh else token, new_csrf_cookie=fresh)
    request.state.visitor = v
    return v


def session_actor(request: Request) -> Actor | None:
    """`app.state.session_actor`: the signed-in user behind an API call made from the browser."""
    found = _cookie_session(request)
    if found is None:
        return None
    actor, csrf = found
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER) or ""
        if not secrets.compare_digest(sent.encode(), csrf.encode()):
            return None
    return actor


def check_csrf(request: Request, token: str | None) -> Visitor:
    """Refuse a form POST without the visitor's token, or sent from another origin."""
    v = visitor(request)
    origin = request.headers.get("origin")
    if origin and origin != "null":
        # Ours: the Host the browser used, or the public endpoint (behind a proxy that rewrites Host).
        ours = {request.headers.get("host", ""), urlsplit(request.app.state.settings.public_endpoint).netloc}
        if urlsplit(origin).netloc not in ours:
            raise Forbidden("Cross-origin form submissions are refused")
    if v.new_csrf_cookie or not token or not secrets.compare_digest(token.encode(), v.csrf.encode()):
        raise Forbidden("The form expired or did not come from this site: reload the page and try again")
    return v


def is_secure(bk: Backends) -> bool:
    return bk.settings.public_endpoint.startswith("https://")


def set_csrf_cookie(request: Request, response: Response) -> None:
    v = getattr(request.state, "visitor", None)
    if v is not None and v.new_csrf_cookie:
        response.set_cookie(CSRF_COOKIE, v.csrf, httponly=True, samesite="lax", path="/",
                            secure=is_secure(request.app.state.backends))


def _set_session_cookie(bk: Backends, response: Response, value: str) -> None:
    response.set_cookie(SESSION_COOKIE, value, max_age=int(MAX_AGE.total_seconds()), httponly=True,
                        samesite="lax", secure=is_secure(bk), path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


def start(bk: Backends, response: Response, user: Namespace) -> None:
    """Sign `user` in after a password check: a new random session (stored hashed) and its cookie."""
    raw = secrets.token_urlsafe(32)
    with bk.db.session() as db:
        db.execute(delete(WebSession).where(WebSession.created_at < utcnow() - MAX_AGE))
        db.add(WebSession(id=_hash(raw), user_id=user.id, csrf=secrets.token_urlsafe(24)))
    _set_session_cookie(bk, response, raw)


def start_with_token(bk: Backends, response: Response, token: str) -> None:
    """Sign in with an access token: the cookie holds the token, so the session is the token's."""
    _set_session_cookie(bk, response, token)


def end(bk: Backends, request: Request, response: Response) -> None:
    raw = request.cookies.get(SESSION_COOKIE)
    if raw and not raw.startswith(TOKEN_PREFIX):
        with bk.db.session() as db:
            db.execute(delete(WebSession).where(WebSession.id == _hash(raw)))
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=is_secure(bk))
