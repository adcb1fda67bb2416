"""Versions through the API: compare two revisions, and revert a branch to an earlier revision's files."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from cove.api.shapes import PREFIX
from cove.deps import Bk, CurrentActor, repo_type_of
from cove.errors import BadRequest
from cove.services import access, gating, history
from cove.services import compare as compare_service

router = APIRouter()


@router.get("/api/{plural}/{ns}/{name}/compare/{spec:path}")
def compare(plural: str, ns: str, name: str, spec: str, bk: Bk, actor: CurrentActor,
            format: str = "json") -> Response:
    """What changed from ``base`` to ``head`` (``spec`` is ``base...head``). ``?format=diff`` gives the
    text diffs as one ``text/plain`` patch. On a gated repo, a caller without access gets the list of
    changed files but no contents."""
    base, head = compare_service.parse_range(spec)
    if format not in ("json", "diff"):
        raise BadRequest("format must be 'json' or 'diff'")
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        # A gated repo's file contents (diffs included) need granted access, as on /resolve.
        allowed = gating.has_access(db, actor, repo)
        result = compare_service.compare(bk, repo, base, head,
                                         lambda path: allowed or path in gating.UNGATED_FILES)
    if format == "diff":
        return PlainTextResponse(result.patch())
    return JSONResponse(result.to_json())


@router.post("/api/{plural}/{ns}/{name}/revert/{branch:path}")
def revert(plural: str, ns: str, name: str, branch: str, bk: Bk, actor: CurrentActor,
           body: Annotated[dict[str, Any], Body()]) -> JSONResponse:
    """New commit on ``branch`` whose files are those of ``body.commit``; history stays intact."""
    target = body.get("commit")
    message = body.get("message")
    if not isinstance(target, str) or not target:
        raise BadRequest("Body needs 'commit': the revision to restore")
    if message is not None and not isinstance(message, str):
        raise BadRequest("'message' must be a string")
    repo_type = repo_type_of(plural)
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type, f"{ns}/{name}")
        sha = history.revert(db, bk, actor, repo, target=target, branch=branch, message=message)
        base = f"{bk.settings.public_endpoint}/{PREFIX[repo_type]}{repo.repo_id}"
    return JSONResponse({"commitOid": sha, "commitUrl": f"{base}/commit/{sha}"})
