"""HMAC-signed CAS access tokens and fetch-URL signatures (no HTTP, no database)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import asdict, dataclass

MAX_TOKEN_LEN = 4096
_PREFIX = "cx1"


class TokenError(ValueError):
    """A token is malformed, tampered with or expired (``expired`` tells which)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class XetClaims:
    scope: str  # "read" | "write"
    repo_type: str
    repo_id: str
    repo_pk: int
    rev: str
    user: str | None
    exp: int

    @property
    def can_write(self) -> bool:
        return self.scope == "write"


def _key(secret: str, purpose: bytes) -> bytes:
    return hmac.new(secret.encode(), b"cove-xet/" + purpose, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_token(secret: str, claims: XetClaims) -> str:
    payload = _b64(json.dumps(asdict(claims), separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(_key(secret, b"token"), f"{_PREFIX}.{payload}".encode(), hashlib.sha256).digest()
    return f"{_PREFIX}.{payload}.{_b64(mac)}"


def verify_token(secret: str, token: str, *, now: float | None = None) -> XetClaims:
    if not token or len(token) > MAX_TOKEN_LEN:
        raise TokenError("missing or oversized token")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _PREFIX:
        raise TokenError("malformed token")
    expected = hmac.new(_key(secret, b"token"), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    try:
        mac = _unb64(parts[2])
        data = json.loads(_unb64(parts[1]))
        claims = XetClaims(**data)
    except (ValueError, TypeError) as exc:
        raise TokenError("malformed token") from exc
    if not hmac.compare_digest(mac, expected):
        raise TokenError("bad token signature")
    if claims.exp <= (time.time() if now is None else now):
        raise TokenError("token expired", expired=True)
    return claims


def fetch_signature(secret: str, xorb_hex: str, start: int, end: int, exp: int) -> str:
    """Signature of a capability URL for bytes ``[start, end]`` (inclusive) of a stored xorb."""
    msg = f"{xorb_hex}|{start}|{end}|{exp}".encode()
    return hmac.new(_key(secret, b"fetch"), msg, hashlib.sha256).hexdigest()[:40]


def check_fetch_signature(
    secret: str, xorb_hex: str, start: int, end: int, exp: int, sig: str, *, now: float | None = None
) -> bool:
    if exp <= (time.time() if now is None else now):
        return False
    return hmac.compare_digest(fetch_signature(secret, xorb_hex, start, end, exp), sig or "")


def grant_signature(secret: str, grant_id: str, xorb_hex: str, length: int, repo: str, exp: int) -> str:
    """Signature of an upload-grant PUT URL: one xorb body of ``length`` bytes for one repo."""
    msg = f"{grant_id}|{xorb_hex}|{length}|{repo}|{exp}".encode()
    return hmac.new(_key(secret, b"grant"), msg, hashlib.sha256).hexdigest()[:40]
