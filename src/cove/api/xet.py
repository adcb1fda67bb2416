"""Hub-side Xet routes: CAS access tokens for a repo revision."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from cove.deps import Bk, CurrentActor, repo_type_of
from cove.errors import NotFound
from cove.services import xet

router = APIRouter()


@router.get("/api/{plural}/{ns}/{name}/xet-{scope}-token/{revision:path}")
def xet_token(
    plural: str,
    ns: str,
    name: str,
    scope: str,
    revision: str,
    bk: Bk,
    actor: CurrentActor,
    create_pr: str = "",
) -> JSONResponse:
    if scope not in ("read", "write"):
        raise NotFound(f"Unknown token scope {scope!r}")
    with bk.db.session() as db:
        issued = xet.issue_token(
            db,
            bk,
            actor,
            repo_type=repo_type_of(plural),
            repo_id=f"{ns}/{name}",
            revision=revision,
            scope=scope,
            create_pr=create_pr.lower() in ("1", "true"),
        )
    body = {"accessToken": issued.access_token, "exp": issued.exp, "casUrl": issued.cas_url}
    headers = {
        "X-Xet-Cas-Url": issued.cas_url,
        "X-Xet-Access-Token": issued.access_token,
        "X-Xet-Token-Expiration": str(issued.exp),
        "Cache-Control": "no-store",
        "Access-Control-Expose-Headers": "X-Xet-Cas-Url,X-Xet-Access-Token,X-Xet-Token-Expiration",
    }
    return JSONResponse(body, headers=headers)
