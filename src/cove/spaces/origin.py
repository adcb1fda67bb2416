"""A separate origin per Space (``COVE_SPACES_DOMAIN``), as the Hub's ``*.hf.space``.

With the setting, a Space's app answers at ``<scheme>://<ns>-<name>.<domain>[:port]/`` (the label: the repo id in
lower case, every run of other characters than letters and digits made one ``-``). Its pages then run in an origin
of their own, never Cove's: they can't read Cove's cookies, session or CSRF token, and their own requests are
same-origin, so a cookie scoped to that host reaches the app's every request (Gradio's queue and server-sent
events, Streamlit's socket).

A private Space's page embeds ``<origin>/?__sign=<token>``: a short-lived token signed with Cove's secret, naming
the Space and the visitor's Cove session (hashed). The app's host answers it with a cookie of its own
(`APP_COOKIE`, HttpOnly, host-only, ``SameSite=None; Secure; Partitioned`` where the browser takes a Secure cookie)
and a redirect without the token. Every request with that cookie is checked again: the session must still exist
(signing out of Cove ends it) and its user must still read the Space. Tokens in ``Authorization`` or
``X-HF-Authorization`` (`gradio_client`) work there as on Cove's own host.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from cove.backends import Backends
from cove.db.tables import Repo
from cove.services.accounts import Actor
from cove.settings import Settings

#: The cookie the app's host sets for a private Space's visitor (never Cove's session cookie).
APP_COOKIE = "cove_space"
SIGN_PARAM = "__sign"
#: Seconds a ``__sign`` token may be exchanged; seconds the app cookie lasts (its session is checked every time).
SIGN_TTL = 300
COOKIE_TTL = 12 * 3600
_NON_LABEL = re.compile(r"[^a-z0-9]+")


def label(repo_id: str) -> str:
    """The Space's host label: ``Alice/My_App`` -> ``alice-my-app``."""
    return _NON_LABEL.sub("-", repo_id.lower()).strip("-")


def domain(settings: Settings) -> tuple[str, str] | None:
    """(host suffix, ``:port`` or ``""``) of the Spaces domain, or None when apps share Cove's origin."""
    value = (settings.spaces_domain or "").strip().strip(".").lower()
    if not value:
        return None
    host, _, port = value.partition(":")
    public = httpx.URL(settings.public_endpoint)
    if not port:
        port = str(public.port or "")
    public_host = public.host
    if public_host == host or public_host.endswith("." + host):
        return None  # Cove's own host would be taken for a Space's: refused (`install` says so)
    return host, f":{port}" if port else ""


def app_origin(settings: Settings, repo_id: str) -> str | None:
    """``scheme://<label>.<domain>[:port]`` of the Space's app, or None without a Spaces domain."""
    d = domain(settings)
    if d is None:
        return None
    scheme = httpx.URL(settings.public_endpoint).scheme or "http"
    return f"{scheme}://{label(repo_id)}.{d[0]}{d[1]}"


# -- which Space a host names ---------------------------------------------------------------------------------
_labels: dict[str, str] = {}
_loaded = 0.0
#: Seconds the label -> repo id map is trusted; a label it lacks reloads it (at most once a second).
MAP_TTL = 30.0


def repo_for_host(bk: Backends, host: str) -> str | None:
    """The Space (``ns/name``) a request's ``Host`` names, or None. When two Spaces have one label, the older one
    has it."""
    global _labels, _loaded
    d = domain(bk.settings)
    host = host.split(":", 1)[0].lower() if not host.startswith("[") else ""
    if d is None or not host.endswith("." + d[0]):
        return None
    name = host[: -len(d[0]) - 1]
    now = time.monotonic()
    if now - _loaded > MAP_TTL or (name not in _labels and now - _loaded > 1.0):
        fresh: dict[str, str] = {}
        with bk.db.session() as db:
            for ns, rname in db.execute(select(Repo.namespace, Repo.name).where(Repo.type == "space")
                                        .order_by(Repo.id)):
                fresh.setdefault(label(f"{ns}/{rname}"), f"{ns}/{rname}")
        _labels, _loaded = fresh, now
    return _labels.get(name)


# -- signed values ----------------------------------------------------------------------------------------------
def _mac(settings: Settings, payload: str) -> str:
    return hmac.new(settings.signing_secret.encode(), b"space-origin:" + payload.encode(), hashlib.sha256).hexdigest()


def _sign(settings: Settings, data: dict, ttl: int) -> str:
    raw = json.dumps({**data, "e": int(time.time()) + ttl}, separators=(",", ":")).encode()
    payload = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return f"{payload}.{_mac(settings, payload)}"


def _verify(settings: Settings, value: str | None, kind: str) -> dict | None:
    if not value or len(value) > 1000 or "." not in value:
        return None
    payload, mac = value.rsplit(".", 1)
    if not hmac.compare_digest(mac.encode(), _mac(settings, payload).encode()):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError):
        return None
    if not isinstance(data, dict) or data.get("k") != kind or not isinstance(data.get("e"), int):
        return None
    return data if data["e"] >= time.time() else None


def sign_for(settings: Settings, repo_pk: int, session_cookie: str) -> str:
    """The ``__sign`` token a Space page hands its iframe: this Space, this Cove session (hashed)."""
    ref = hashlib.sha256(session_cookie.encode()).hexdigest()
    return _sign(settings, {"k": "sign", "r": repo_pk, "s": ref}, SIGN_TTL)


def cookie_from_sign(settings: Settings, token: str | None, repo_pk: int) -> str | None:
    """The app cookie's value for a valid ``__sign`` token of this Space, else None."""
    data = _verify(settings, token, "sign")
    if data is None or data.get("r") != repo_pk or not isinstance(data.get("s"), str):
        return None
    return _sign(settings, {"k": "cookie", "r": repo_pk, "s": data["s"]}, COOKIE_TTL)


def cookie_actor(db: Session, settings: Settings, value: str | None, repo_pk: int) -> Actor | None:
    """The visitor an app cookie stands for: its Cove session, while that still exists (a password session, or a
    token signed in with: `cove.web.sessions.actor_for_ref`), else None. Looked up in the caller's `db`."""
    from cove.web.sessions import actor_for_ref

    data = _verify(settings, value, "cookie")
    if data is None or data.get("r") != repo_pk or not isinstance(data.get("s"), str):
        return None
    return actor_for_ref(db, data["s"])


def cookie_header(settings: Settings, value: str, secure_ok: bool) -> str:
    """``Set-Cookie`` for the app cookie: host-only, HttpOnly; ``SameSite=None; Secure; Partitioned`` (it is set
    and sent inside Cove's page, another site) where the browser takes a Secure cookie (https, or a
    ``*.localhost`` host), else ``SameSite=Lax`` (a Spaces domain under Cove's own site, over plain http)."""
    base = f"{APP_COOKIE}={value}; Path=/; Max-Age={COOKIE_TTL}; HttpOnly"
    return base + ("; SameSite=None; Secure; Partitioned" if secure_ok else "; SameSite=Lax")


def secure_context(scheme: str, host: str) -> bool:
    h = host.split(":", 1)[0].lower()
    return scheme == "https" or h == "localhost" or h.endswith(".localhost")


def frame_url(settings: Settings, repo: Repo, session_cookie: str | None) -> str | None:
    """What the Space page embeds on the Space's own origin (a private Space's with a ``__sign`` token for a
    visitor signed in with a session cookie), or None without a Spaces domain."""
    origin = app_origin(settings, repo.repo_id)
    if origin is None:
        return None
    if repo.private and session_cookie:
        return f"{origin}/?{SIGN_PARAM}={sign_for(settings, repo.id, session_cookie)}"
    return f"{origin}/"
