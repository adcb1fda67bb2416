"""whoami-v2, auth-check and the agent registry probe."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from cove.api.shapes import iso
from cove.deps import Bk, CurrentActor, repo_type_of
from cove.errors import Unauthorized
from cove.services import access, accounts, gating

router = APIRouter()


@router.get("/api/whoami-v2")
def whoami(bk: Bk, actor: CurrentActor) -> dict:
    if actor.anonymous:
        raise Unauthorized("Invalid user token. Make sure you are authenticated.")
    with bk.db.session() as db:
        user = accounts.require_user(db, actor.name)  # type: ignore[arg-type]
        orgs = accounts.orgs_of(db, user.id)
        return {
            "type": "user",
            "id": f"{user.id:024x}",
            "name": user.name,
            "fullname": user.fullname,
            "email": user.email,
            "emailVerified": bool(user.email),
            "isPro": False,
            "avatarUrl": f"{bk.settings.public_endpoint}/avatars/{user.name}.svg",
            "canPay": False,
            "orgs": [
                {"type": "org", "id": f"{o.id:024x}", "name": o.name, "fullname": o.fullname, "roleInOrg": role}
                for o, role in orgs
            ],
            "auth": {
                "type": "access_token",
                "accessToken": {"displayName": actor.token_name or "web-session", "role": actor.role,
                                "createdAt": iso(user.created_at)},
            },
        }


@router.get("/api/agent-harnesses")
def agent_harnesses() -> JSONResponse:
    return JSONResponse({"standardEnvVars": [], "harnesses": {}})


@router.get("/api/{plural}/{ns}/{name}/auth-check")
def auth_check(plural: str, ns: str, name: str, bk: Bk, actor: CurrentActor) -> dict:
    """200 when the caller may read the repo's files; `GatedRepo` (401 anonymous, 403 signed in) on a gated
    repo they were not granted; `RepoNotFound` when they may not see it at all."""
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        gating.require_file_access(db, actor, repo, "", bk.settings.public_endpoint)
    return {"success": True}


@router.get("/api/{plural}/{ns}/{name}/auth-check/write")
def auth_check_write(plural: str, ns: str, name: str, bk: Bk, actor: CurrentActor) -> dict:
    with bk.db.session() as db:
        access.writable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
    return {"success": True}
