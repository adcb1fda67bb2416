"""Repos with their storage: `GET /api/settings/repositories` and `/api/organizations/{org}/settings/repositories`
(`list_user_repos`), paginated by `Link: rel="next"`."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from cove.api.shapes import iso
from cove.deps import Bk, CurrentActor
from cove.services import usage

router = APIRouter()


def _page(bk, actor, namespace: str | None, path: str, skip: int, limit: int) -> JSONResponse:  # noqa: ANN001
    skip, limit = max(0, skip), max(1, min(limit, 1000))
    with bk.db.session() as db:
        rows = usage.namespace_usage(db, bk, actor, namespace)
    out = [{"id": u.repo_id, "type": u.type, "updatedAt": iso(u.updated_at),
            "visibility": "private" if u.private else "public", "storage": u.storage, "storagePercent": u.percent}
           for u in rows[skip:skip + limit]]
    headers = {}
    if skip + limit < len(rows):
        headers["Link"] = f'<{bk.settings.public_endpoint}{path}?skip={skip + limit}&limit={limit}>; rel="next"'
    return JSONResponse(out, headers=headers)


@router.get("/api/settings/repositories")
def my_repositories(bk: Bk, actor: CurrentActor, skip: int = 0, limit: int = 1000) -> JSONResponse:
    return _page(bk, actor, None, "/api/settings/repositories", skip, limit)


@router.get("/api/organizations/{org}/settings/repositories")
def org_repositories(org: str, bk: Bk, actor: CurrentActor, skip: int = 0, limit: int = 1000) -> JSONResponse:
    return _page(bk, actor, org, f"/api/organizations/{org}/settings/repositories", skip, limit)
