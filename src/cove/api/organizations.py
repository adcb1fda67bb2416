"""Organizations: overview, members, followers (`get_organization_overview`, `list_organization_members`...)."""

from __future__ import annotations

from fastapi import APIRouter

from cove.db.tables import Namespace
from cove.deps import Bk, CurrentActor
from cove.services import orgs

router = APIRouter()


def _avatar(bk, name: str) -> str:  # noqa: ANN001
    return f"{bk.settings.public_endpoint}/avatars/{name}.svg"


def user_json(bk, user: Namespace) -> dict:  # noqa: ANN001
    """A user in a list, as the Hub sends it (`huggingface_hub.User`)."""
    return {"user": user.name, "fullname": user.fullname, "avatarUrl": _avatar(bk, user.name), "type": "user",
            "isPro": False, "isFollowing": False}


@router.get("/api/organizations/{name}/overview")
def overview(name: str, bk: Bk, actor: CurrentActor) -> dict:
    with bk.db.session() as db:
        o = orgs.overview(db, actor, name)
        return {
            "_id": f"{o.org.id:024x}", "id": f"{o.org.id:024x}", "name": o.org.name, "fullname": o.org.fullname,
            "avatarUrl": _avatar(bk, o.org.name), "type": "org", "isVerified": False, "isFollowing": False,
            "numUsers": o.num_users, "numModels": o.counts.get("model", 0),
            "numDatasets": o.counts.get("dataset", 0), "numSpaces": o.counts.get("space", 0),
            "numFollowers": 0, "numPapers": 0,
        }


@router.get("/api/organizations/{name}/members")
def members(name: str, bk: Bk, actor: CurrentActor) -> list[dict]:
    with bk.db.session() as db:
        return [user_json(bk, u) for u in orgs.members(db, name)]


@router.get("/api/organizations/{name}/followers")
def followers(name: str, bk: Bk, actor: CurrentActor) -> list[dict]:
    with bk.db.session() as db:
        return [user_json(bk, u) for u in orgs.followers(db, name)]
