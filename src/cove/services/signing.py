"""Self-authorising URLs: HMAC-signed, expiring capabilities (LFS transfers, Xet fetches)."""

from __future__ import annotations

from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from cove.errors import Forbidden


class Signer:
    def __init__(self, secret: str) -> None:
        self._secret = secret

    def _s(self, purpose: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self._secret, salt=f"cove:{purpose}")

    def sign(self, purpose: str, payload: Any) -> str:
        return self._s(purpose).dumps(payload)

    def load(self, purpose: str, token: str, max_age: int) -> Any:
        try:
            return self._s(purpose).loads(token, max_age=max_age)
        except SignatureExpired as exc:
            raise Forbidden("This link has expired") from exc
        except BadSignature as exc:
            raise Forbidden("Invalid signature") from exc
