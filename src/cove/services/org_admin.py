"""Organizations managed by their own admins: create one, add or invite members, change roles, remove.

Who may: creating needs a signed-in user with a write token or a password session (`settings.users_create_orgs`,
else server admins only); the creator becomes the org's admin. Members are managed by the org's admins (and
server admins). An org always keeps one admin: the last one cannot be removed or demoted.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cove.db.tables import Membership, Namespace, OrgInvitation
from cove.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
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
    if (inv := db.get(OrgInvitation, (ns.id, member.id))) is not None:
        db.delete(inv)  # added directly: the invitation is answered


def remove_member(db: Session, actor: Actor, org: str, user: str) -> None:
    ns = require_org_admin(db, actor, org)
    member = accounts.require_user(db, user.strip())
    if _role_of(db, ns, member) == "admin" and _admins(db, ns) <= 1:
        raise BadRequest(f"{member.name} is the last admin of {ns.name}: make someone else admin first")
    accounts.remove_member(db, ns.name, member.name)


def invite(db: Session, actor: Actor, org: str, user: str, role: str) -> OrgInvitation:
    """Invite `user` to join with `role` (an invitation already pending gets the new role): they accept or
    decline it on their invitations page; nothing changes in the org until they accept."""
    ns = require_org_admin(db, actor, org)
    if role not in access.ROLES:
        raise BadRequest(f"role must be one of {', '.join(access.ROLES)}")
    member = accounts.require_user(db, user.strip())
    if _role_of(db, ns, member) is not None:
        raise Conflict(f"{member.name} is already a member of {ns.name}")
    inv = db.get(OrgInvitation, (ns.id, member.id))
    if inv is None:
        inv = OrgInvitation(org_id=ns.id, user_id=member.id, role=role, invited_by=actor.name or "")
        db.add(inv)
    else:
        inv.role, inv.invited_by = role, actor.name or ""
    db.flush()
    return inv


def cancel_invitation(db: Session, actor: Actor, org: str, user: str) -> None:
    ns = require_org_admin(db, actor, org)
    member = accounts.require_user(db, user.strip())
    inv = db.get(OrgInvitation, (ns.id, member.id))
    if inv is None:
        raise NotFound(f"No pending invitation of {member.name} to {ns.name}")
    db.delete(inv)


def _invitations(named, where, db: Session) -> list[tuple[str, str, str]]:  # noqa: ANN001
    """(name of the namespace `named` points at, role, invited by) of the invitations `where` selects, by name."""
    rows = db.execute(select(Namespace.name, OrgInvitation.role, OrgInvitation.invited_by)
                      .join(OrgInvitation, named == Namespace.id).where(where).order_by(Namespace.name))
    return [(n, r, b) for n, r, b in rows]


def invitations_of_org(db: Session, org: Namespace) -> list[tuple[str, str, str]]:
    """Pending invitations of an org: (user, role, invited by), by user name."""
    return _invitations(OrgInvitation.user_id, OrgInvitation.org_id == org.id, db)


def invitations_for(db: Session, actor: Actor) -> list[tuple[str, str, str]]:
    """The signed-in user's pending invitations: (org, role, invited by), by org name."""
    if actor.anonymous or actor.user_id is None:
        return []
    return _invitations(OrgInvitation.org_id, OrgInvitation.user_id == actor.user_id, db)


def answer_invitation(db: Session, actor: Actor, org: str, *, accept: bool) -> str | None:
    """The invitee accepts (joins with the invitation's role, returned) or declines; either way it is gone.
    An invitation to someone else, or none, is a missing one."""
    if actor.anonymous or actor.user_id is None:
        raise Unauthorized("Sign in to answer an invitation")
    access.require_write_token(actor, "join an organization")
    ns = accounts.require_org(db, org)
    inv = db.get(OrgInvitation, (ns.id, actor.user_id))
    if inv is None:
        raise NotFound(f"No pending invitation to {ns.name}")
    role = inv.role
    db.delete(inv)
    db.flush()
    if not accept:
        return None
    accounts.add_member(db, ns.name, actor.name or "", role=role)
    return role
