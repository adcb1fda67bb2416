"""Organizations managed by their own admins: create one, add or invite members, change roles, remove.

Who may: creating needs a signed-in user with a write token or a password session (`settings.users_create_orgs`,
else server admins only); the creator becomes the org's admin. Members are managed by the org's admins (and
server admins). An org always keeps one admin: the last one cannot be removed or demoted.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cove.db.tables import Membership, Namespace
from cove.errors import BadRequest, Forbidden, Unauthorized
from cove.services import access, accounts
from cove.services.accounts import Actor
from cove.settings import Settings


def create(db: Session, settings: Settings, actor: Actor, name: str, fullname: str = "") -> Namespace:
    if actor.anonymous:
        raise Unauthorized("Sign in to create an organization")
    access.require_write_token(actor, "create an organization")
    if not (settings.users_create_orgs or actor.is_admin):
        raise Forbidden("Only the administrators of this hub can create organizations")
    return accounts.add_org(db, name.strip(), fullname=fullname.strip()[:200], owner=actor.name)


def require_org_admin(db: Session, actor: Actor, org: str) -> Namespace:
    ns = accounts.require_org(db, org)
    access.require_write_token(actor, "manage an organization")
    if access.namespace_role(db, actor, ns.name) != "admin":
        raise Forbidden(f"Only the admins of {ns.name} can manage its members")
    return ns


def _admins(db: Session, org: Namespace) -> int:
    return db.scalar(select(func.count()).select_from(Membership)
                     .where(Membership.org_id == org.id, Membership.role == "admin")) or 0


def _role_of(db: Session, org: Namespace, user: Namespace) -> str | None:
    return accounts.org_role(db, org.id, user.id)


def set_member(db: Session, actor: Actor, org: str, user: str, role: str) -> None:
    """Add `user` with `role`, or change their role."""
    ns = require_org_admin(db, actor, org)
    if role not in access.ROLES:
        raise BadRequest(f"role must be one of {', '.join(access.ROLES)}")
    member = accounts.require_user(db, user.strip())
    if _role_of(db, ns, member) == "admin" and role != "admin" and _admins(db, ns) <= 1:
        raise BadRequest(f"{member.name} is the last admin of {ns.name}: make someone else admin first")
    accounts.add_member(db, ns.name, member.name, role=role)


def remove_member(db: Session, actor: Actor, org: str, user: str) -> None:
    ns = require_org_admin(db, actor, org)
    member = accounts.require_user(db, user.strip())
    if _role_of(db, ns, member) == "admin" and _admins(db, ns) <= 1:
        raise BadRequest(f"{member.name} is the last admin of {ns.name}: make someone else admin first")
    accounts.remove_member(db, ns.name, member.name)
