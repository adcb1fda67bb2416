"""`POST /api/{models,datasets,spaces}/{repo}/duplicate` (`duplicate_repo`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from cove.api.shapes import repo_url
from cove.deps import Bk, CurrentActor, repo_type_of
from cove.errors import BadRequest, Unauthorized
from cove.services import access, duplicate

router = APIRouter()


@router.post("/api/{plural}/{ns}/{name}/duplicate")
def duplicate_repo(plural: str, ns: str, name: str, bk: Bk, actor: CurrentActor,
                   body: Annotated[dict[str, Any], Body()]) -> JSONResponse:
    """The copy's id is `repository`; `visibility` (or `private`) defaults to the source's. A Space copy gets the
    request's `secrets`, `variables` and `sleepTimeSeconds` (never the source's secrets or variables); its
    `hardware` (one tier here), `volumes` and `resourceGroupId` are accepted and ignored."""
    target = body.get("repository")
    if not isinstance(target, str) or not target:
        raise BadRequest("'repository' is required: the new repo's id (namespace/name)")
    if "/" not in target:
        if actor.anonymous:
            raise Unauthorized("You must be authenticated to duplicate a repo")
        target = f"{actor.name}/{target}"
    visibility, private = body.get("visibility"), body.get("private")
    if visibility is not None:
        if visibility not in ("public", "private", "protected"):
            raise BadRequest("visibility must be public, private or protected")
        private = visibility != "public"
    elif private is not None and not isinstance(private, bool):
        raise BadRequest("'private' must be true or false")
    space = None
    if repo_type_of(plural) == "space":
        from cove.spaces import service as spaces

        space = spaces.duplicate_settings(body)
    with bk.db.session() as db:
        src = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        repo, created = duplicate.duplicate(db, bk, actor, src, target, private=private)
        if created and space is not None:
            spaces.apply_duplicate_settings(db, bk, repo, space)
        url = repo_url(bk.settings.public_endpoint, repo.type, repo.repo_id)
    if not created:
        message = f"You already created this {repo.type} repo"
        return JSONResponse({"error": message, "url": url}, status_code=409,
                            headers={"X-Error-Code": "RepoExists", "X-Error-Message": message})
    return JSONResponse({"url": url})
