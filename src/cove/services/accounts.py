"""Users, organizations, memberships and hashed access tokens."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cove.db.tables import Membership, Namespace, Token, utcnow
from cove.errors import BadRequest, Conflict, NotFound

TOKEN_PREFIX = "cove_"
# The Hub's rule (huggingface_hub's validate_repo_id): 1-96 of letters, digits, '-', '_', '.', starting and ending
# with a letter, a digit or '_' (`__DUMMY_HUB_USER__` is a real Hub user); '--' and '..' are refused elsewhere.
_NAME_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?$")
NAME_RULE = ("names use letters, digits, '-', '_' or '.' (at most 96), cannot start or end with '-' or '.', "
             "and cannot contain '--' or '..'")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_hex(16)
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1).hex()
    return f"scrypt${salt}${digest}"


def check_password(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, salt, digest = stored.split("$")
    calc = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1).hex()
    return secrets.compare_digest(calc, digest)


@dataclass(frozen=True)
class Actor:
    """Who is calling: a user (via a token or a web session), or anonymous."""

    user_id: int | None
    name: str | None
    role: str  # "read" | "write" | "none"
    token_name: str | None = None
    is_admin: bool = False

    @property
    def anonymous(self) -> bool:
        return self.user_id is None

    @property
    def can_write(self) -> bool:
        return self.role == "write"


ANONYMOUS = Actor(None, None, "none")


#: Names taken by the hub's own pages and routes.
RESERVED_NAMES = frozenset({
    "api", "models", "datasets", "spaces", "login", "logout", "settings", "organizations", "new", "docs",
    "new-dataset", "new-space",  # the web UI's create pages
    "collections",  # the web UI's collection pages (`/collections/{ns}`)
    "lfs", "cas", "static", "avatars", "join", "search", "blog", "pricing", "admin",
    "_static",  # the web UI's assets, served before any login check
})


def validate_name(name: str) -> str:
    if not _NAME_RE.match(name) or "--" in name or ".." in name:
        raise BadRequest(f"Invalid name {name!r}: {NAME_RULE}")
    if name.lower() in RESERVED_NAMES:
        raise BadRequest(f"The name {name!r} is reserved")
    return name


def namespace_query(name: str) -> Select:
    """A user or org by name, in any casing, as on the Hub (`ux_namespaces_lower_name`)."""
    return select(Namespace).where(func.lower(Namespace.name) == name.lower())


def get_namespace(db: Session, name: str) -> Namespace | None:
    """The user or org `name` names in any casing (its row carries the canonical one), or None."""
    return db.scalar(namespace_query(name))


def add_user(db: Session, name: str, *, fullname: str = "", email: str | None = None,
             password: str | None = None, admin: bool = False) -> Namespace:
    validate_name(name)
    if get_namespace(db, name):
        raise Conflict(f"The name {name!r} is already taken")
    user = Namespace(name=name, kind="user", fullname=fullname or name, email=email, is_admin=admin,
                     password_hash=hash_password(password) if password else None)
    db.add(user)
    db.flush()
    return user


def set_password(db: Session, name: str, password: str) -> None:
    """Set a web password; every existing web session of the user ends."""
    from sqlalchemy import delete

    from cove.db.tables import WebSession

    user = require_user(db, name)
    user.password_hash = hash_password(password)
    db.execute(delete(WebSession).where(WebSession.user_id == user.id))


def add_org(db: Session, name: str, *, fullname: str = "", owner: str | None = None) -> Namespace:
    validate_name(name)
    if get_namespace(db, name):
        raise Conflict(f"The name {name!r} is already taken")
    org = Namespace(name=name, kind="org", fullname=fullname or name)
    db.add(org)
    db.flush()
    if owner:
        add_member(db, name, owner, role="admin")
    return org


def require_user(db: Session, name: str) -> Namespace:
    user = get_namespace(db, name)
    if user is None or user.kind != "user":
        raise NotFound(f"User {name!r} not found")
    return user


def require_org(db: Session, name: str) -> Namespace:
    org = get_namespace(db, name)
    if org is None or org.kind != "org":
        raise NotFound(f"Organization {name!r} not found")
    return org


def remove_namespace(db: Session, name: str) -> None:
    ns = get_namespace(db, name)
    if ns is None:
        raise NotFound(f"{name!r} not found")
    db.delete(ns)


def list_users(db: Session) -> list[Namespace]:
    return list(db.scalars(select(Namespace).where(Namespace.kind == "user").order_by(Namespace.name)))


def list_orgs(db: Session) -> list[Namespace]:
    return list(db.scalars(select(Namespace).where(Namespace.kind == "org").order_by(Namespace.name)))


def add_member(db: Session, org: str, user: str, *, role: str = "write") -> None:
    if role not in ("read", "contributor", "write", "admin"):  # `cove.services.access.ROLES`
        raise BadRequest("role must be read, contributor, write or admin")
    o, u = require_org(db, org), require_user(db, user)
    m = db.scalar(select(Membership).where(Membership.org_id == o.id, Membership.user_id == u.id))
    if m:
        m.role = role
    else:
        db.add(Membership(org_id=o.id, user_id=u.id, role=role))


def remove_member(db: Session, org: str, user: str) -> None:
    o, u = require_org(db, org), require_user(db, user)
    m = db.scalar(select(Membership).where(Membership.org_id == o.id, Membership.user_id == u.id))
    if m is None:
        raise NotFound(f"{user!r} is not a member of {org!r}")
    db.delete(m)


def orgs_of(db: Session, user_id: int) -> list[tuple[Namespace, str]]:
    rows = db.execute(
        select(Namespace, Membership.role).join(Membership, Membership.org_id == Namespace.id)
        .where(Membership.user_id == user_id).order_by(Namespace.name)
    )
    return [(ns, role) for ns, role in rows]


def members_of(db: Session, org_id: int) -> list[tuple[Namespace, str]]:
    rows = db.execute(
        select(Namespace, Membership.role).join(Membership, Membership.user_id == Namespace.id)
        .where(Membership.org_id == org_id).order_by(Namespace.name)
    )
    return [(ns, role) for ns, role in rows]


def org_role(db: Session, org_id: int, user_id: int) -> str | None:
    return db.scalar(select(Membership.role).where(Membership.org_id == org_id, Membership.user_id == user_id))


def create_token(db: Session, user: str, *, role: str = "read", name: str | None = None,
                 expires_at: datetime | None = None) -> tuple[Token, str]:
    """Create a token (expiring at `expires_at`, naive UTC, if given); returns the row and the secret, which
    is shown once and never stored."""
    if role not in ("read", "write"):
        raise BadRequest("role must be 'read' or 'write'")
    if expires_at is not None and expires_at <= utcnow():
        raise BadRequest("A token's expiry must lie in the future")
    u = require_user(db, user)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(30)
    row = Token(user_id=u.id, name=name or f"{role}-token", role=role, token_hash=hash_token(secret),
                prefix=secret[:9], expires_at=expires_at)
    db.add(row)
    db.flush()
    return row, secret


def list_tokens(db: Session, user: str) -> list[Token]:
    u = require_user(db, user)
    return list(db.scalars(select(Token).where(Token.user_id == u.id).order_by(Token.id)))


def revoke_token(db: Session, user: str, name_or_id: str) -> None:
    u = require_user(db, user)
    q = select(Token).where(Token.user_id == u.id)
    tokens = list(db.scalars(q))
    rows = [t for t in tokens if t.name == name_or_id] or [t for t in tokens if str(t.id) == name_or_id]
    if not rows:
        raise NotFound(f"No token {name_or_id!r} for {user!r}")
    for t in rows:
        db.delete(t)


def actor_for_token(db: Session, secret: str) -> Actor | None:
    return actor_for_token_hash(db, hash_token(secret))


def actor_for_token_hash(db: Session, token_hash: str) -> Actor | None:
    """`actor_for_token` by the token's hash (what a browser session signed in with a token is known by)."""
    row = db.scalar(select(Token).where(Token.token_hash == token_hash))
    now = utcnow()
    if row is None or (row.expires_at is not None and row.expires_at <= now):
        return None  # an expired token is refused exactly as an unknown one
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        row.last_used_at = now
    return Actor(row.user.id, row.user.name, row.role, row.name, row.user.is_admin)


def actor_for_user(db: Session, user: Namespace) -> Actor:
    return Actor(user.id, user.name, "write", None, user.is_admin)
