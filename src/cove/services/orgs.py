"""Organizations as the Hub shows them: overview, members, followers; the org settings (`cove org set`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cove.db.tables import Namespace, OrgSettings, Repo
from cove.errors import NotFound
from cove.services import access
from cove.services.accounts import Actor, get_namespace, members_of


@dataclass(frozen=True)
class Overview:
    org: Namespace
    num_users: int
    counts: dict[str, int]  # repo type -> repos the caller may see


def _org(db: Session, name: str) -> Namespace:
    """The org, or 404 as the Hub answers for an unknown one (a user's name included)."""
    ns = get_namespace(db, name)
    if ns is None or ns.kind != "org":
        raise NotFound(f"Organization {name!r} not found")
    return ns


def overview(db: Session, actor: Actor, name: str) -> Overview:
    """Members and repo counts; private repos count only for callers who may read them (members)."""
    org = _org(db, name)
    q = select(Repo.type, func.count()).where(Repo.namespace == org.name).group_by(Repo.type)
    if access.namespace_role(db, actor, org.name) is None:
        q = q.where(Repo.private.is_(False))
    counts = {t: n for t, n in db.execute(q)}
    return Overview(org, len(members_of(db, org.id)), counts)


def members(db: Session, name: str) -> list[Namespace]:
    """Everyone in the org (the Hub lists members publicly; roles stay out of it)."""
    return [user for user, _role in members_of(db, _org(db, name).id)]


def followers(db: Session, name: str) -> list[Namespace]:
    """Cove has no follows: an existing org has none."""
    _org(db, name)
    return []


def private_by_default(db: Session, namespace: str) -> bool:
    """Whether a repo created in `namespace` without a stated visibility is private."""
    row = db.scalar(select(OrgSettings).join(Namespace, Namespace.id == OrgSettings.org_id)
                    .where(Namespace.name == namespace))
    return bool(row and row.private_by_default)


def set_private_by_default(db: Session, name: str, value: bool) -> None:
    org = _org(db, name)
    row = db.get(OrgSettings, org.id)
    if row is None:
        db.add(OrgSettings(org_id=org.id, private_by_default=value))
    else:
        row.private_by_default = value
    db.flush()


def settings_of(db: Session, names: list[str]) -> dict[str, bool]:
    """org name -> private_by_default, for listings."""
    if not names:
        return {}
    rows = db.execute(select(Namespace.name, OrgSettings.private_by_default)
                      .join(OrgSettings, OrgSettings.org_id == Namespace.id)
                      .where(Namespace.name.in_(names)))
    return {n: bool(v) for n, v in rows}
