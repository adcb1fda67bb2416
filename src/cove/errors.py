"""Domain errors that carry their HTTP status and Hub `X-Error-Code`; one handler renders them all."""

from __future__ import annotations


class HubError(Exception):
    """Base of every error a client may see. Subclasses set ``status`` and ``code``."""

    status: int = 400
    code: str | None = None

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.extra = extra


class BadRequest(HubError):
    status = 400
    code = "BadRequest"


class Unauthorized(HubError):
    status = 401
    code = "Unauthorized"


class Forbidden(HubError):
    status = 403
    code = "Forbidden"


class RepoNotFound(HubError):
    status = 404
    code = "RepoNotFound"

    def __init__(self, message: str = "Repository not found", **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]


class RepoMoved(RepoNotFound):
    """The id names a repo that has moved to ``new_id`` (and the caller may read it). Where the request's URL
    names the old id the app answers 307 to the same URL with the new id; elsewhere it is a `RepoNotFound`."""

    def __init__(self, old_id: str, new_id: str, message: str = "Repository not found") -> None:
        super().__init__(message)
        self.old_id, self.new_id = old_id, new_id


class RevisionNotFound(HubError):
    status = 404
    code = "RevisionNotFound"


class EntryNotFound(HubError):
    status = 404
    code = "EntryNotFound"


class GatedRepo(HubError):
    status = 403
    code = "GatedRepo"


class NotFound(HubError):
    status = 404
    code = "NotFound"


class Conflict(HubError):
    status = 409
    code = "Conflict"


class PreconditionFailed(HubError):
    status = 412
    code = "PreconditionFailed"


class PayloadTooLarge(HubError):
    status = 413
    code = "PayloadTooLarge"


class TooManyRequests(HubError):
    """Throttled: the caller should wait ``Retry-After`` seconds."""

    status = 429
    code = "TooManyRequests"


class RangeNotSatisfiable(HubError):
    status = 416
    code = "RangeNotSatisfiable"


class Unprocessable(HubError):
    status = 422
    code = "Unprocessable"


class InsufficientStorage(HubError):
    """The server's disk (or quota) is full: nothing was stored; retrying later may work."""

    status = 507
    code = "InsufficientStorage"


class RepoStorageDamaged(HubError):
    """A git object the repo's refs reach is missing or unreadable: not the client's fault, and retrying won't help
    until an administrator repairs it (`cove fsck` reports what is damaged)."""

    status = 500
    code = "RepoStorageDamaged"
