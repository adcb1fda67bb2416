"""Answers for the old id of a moved repo: 307 to the same URL with the new id, as the Hub answers (the stock
client and git follow it). Only where the URL names the old id; a body naming it (delete, move) gets 404."""

from __future__ import annotations

import re
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cove.errors import RepoMoved


def moved_location(path: str, query: str, old_id: str, new_id: str) -> str | None:
    """`path` (and `query`) with its first ``/old_ns/old_name`` segments (any casing, ``.git`` kept) made
    ``/new_ns/new_name``; None when the path does not name the old id."""
    ns, _, name = old_id.partition("/")
    pattern = re.compile(rf"/{re.escape(ns)}/{re.escape(name)}(?=/|\.git(?:/|$)|$)", re.IGNORECASE)
    new_path, n = pattern.subn("/" + new_id, path, count=1)
    if not n:
        return None
    return quote(new_path) + (f"?{query}" if query else "")


def redirect(request: Request, exc: RepoMoved) -> Response | None:
    """The 307 for a request whose URL names the moved repo's old id, else None."""
    location = moved_location(request.scope["path"], request.url.query, exc.old_id, exc.new_id)
    if location is None:
        return None
    message = f"Repository moved to {exc.new_id}"
    headers = {"Location": location}
    if request.method == "HEAD":
        return Response(status_code=307, headers=headers)
    return JSONResponse({"error": message, "url": location}, status_code=307, headers=headers)
