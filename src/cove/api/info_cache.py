"""`GET /api/{models|datasets}/{ns}/{name}` answered again from its rendered bytes, in front of FastAPI.

`model_info` / `dataset_info` (and every `from_pretrained` that lists a repo's files) ask this often, and the full
route is a database session, an access check, a tree walk and a JSON rendering. After the route answered 200,
the answer (status, headers, body) is kept per (path, query, Authorization) and sent again — with the
request's own `X-Request-Id` — only while all of these hold:

- the database is unchanged (`HeadCache.generation(downloads=True)`: SQLite's data_version, or PostgreSQL
  commits seen through `cove.db.changes`, download-count flushes included, since the answer shows them); so a
  repo made private, a revoked token, a new member, a like, a scan result all end it at once;
- this process has no download counts pending (the full route writes them first, to show them);
- the repo's default branch still points at the commit the answer describes (a push through git is seen at
  once), read from git on every request;
- the caller's token is not due for its `last_used_at` refresh nor its expiry (as `HeadCache`).

Only model and dataset repos that are not mirrors, at their default revision: a Space's answer carries its
runtime, a mirror's is checked upstream. A cookie, a `%`-encoded path or any non-200 takes the full way. A
cached answer is only ever sent for the exact credentials that the full route answered, so private == missing
holds: a caller who may not read the repo never had a 200 kept for it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Hashable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from cove.bounded import BoundedDict

INFO_PATH = re.compile(r"/api/(?:models|datasets)/[^/]+/[^/]+")
ROUTE = "/api/{plural}/{ns}/{name}"


@dataclass(frozen=True)
class _Answer:
    gen: Hashable
    deadline: float | None
    storage_key: str
    head: str
    headers: list[tuple[bytes, bytes]]
    body: bytes


class InfoCache:
    """See the module doc. `serve` runs first for every GET (`cove.app.CoveApp`); `_info` calls `remember`."""

    MAX_ENTRIES = 10_000
    #: The kept bodies' bytes at most: the key holds the query string, so a client can make any number of keys,
    #: and a body lists every file of its repo.
    MAX_BYTES = 64 << 20

    def __init__(self, head_cache) -> None:  # noqa: ANN001 - cove.api.files.HeadCache
        self.head_cache = head_cache
        self.bk = head_cache.bk
        self._answers: BoundedDict[tuple, _Answer] = BoundedDict(self.MAX_ENTRIES, self.MAX_BYTES)

    def _generation(self) -> Hashable | None:
        if self.head_cache.tally.has_pending():
            return None  # counts to write first: the full route flushes them
        return self.head_cache.generation(downloads=True)

    async def serve(self, scope, send, request_id: bytes) -> int | None:  # noqa: ANN001
        """Answer a repeated repo-info GET from what is kept (the body's length); None (and a ticket to keep
        the answer) otherwise."""
        if not INFO_PATH.fullmatch(scope["path"]):
            return None
        key = self.head_cache.request_key(scope)
        if key is None:
            return None
        gen = self._generation()
        if gen is None:
            return None
        found = self._answers.get(key)
        if (found is None or found.gen != gen or (found.deadline is not None and time.time() >= found.deadline)
                or self.bk.repos.head(found.storage_key) != found.head):
            scope.setdefault("state", {})["cove.info_ticket"] = (self, key, gen)
            return None
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*found.headers, (b"x-request-id", request_id)]})
        await send({"type": "http.response.body", "body": found.body})
        return len(found.body)

    @staticmethod
    def remember(request: Request, db, repo, head: str, response: Response) -> None:  # noqa: ANN001
        """Inside `_info`'s session, after a 200 at the default revision: keep `response` for this request's key."""
        found = request.scope.get("state", {}).get("cove.info_ticket")
        if found is None or repo.type not in ("model", "dataset"):
            return
        cache, key, gen = found
        from cove.api.files import token_deadline

        ok, deadline = token_deadline(db, key[2])
        if not ok:
            return
        headers = [(k, v) for k, v in response.raw_headers]
        if not any(k == b"x-content-type-options" for k, _ in headers):
            headers.append((b"x-content-type-options", b"nosniff"))  # as RequestIdMiddleware adds it
        answer = _Answer(gen, deadline, repo.storage_key, head, headers, bytes(response.body))
        cache._answers.put(key, answer, len(answer.body))
