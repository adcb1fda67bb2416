"""Who may read and write which repo. A repo you may not read is reported exactly as a missing one."""

from __future__ import annotations

from types import ModuleType

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cove.db.tables import Namespace, Repo, RepoRedirect
from cove.errors import Forbidden, GatedRepo, RepoMoved, RepoNotFound, Unauthorized
from cove.services.accounts import ANONYMOUS, Actor, get_namespace, org_role

REPO_TYPES = ("model", "dataset", "space")
#: Org roles, as on the Hub. `read`: read the org's private repos. `contributor`: the same as `read` in Cove
#: (the Hub's contributor may also create repos and write to those it created; Cove keeps no repo creator,
#: so the role is accepted, for parity of names, and grants nothing more). `write`: also push, commit,
#: create repos, manage tags, branches and gated-access requests. `admin`: also delete, move or rename,
#: change visibility and gating. A user is the admin of their own namespace; server admins of all.
#: Pull requests need no role, as on the Hub: any signed-in caller with a write token who may read a repo's
#: files (visibility, then gating: a granted user on a gated repo) may open one (a commit with ``create_pr``,
#: the uploads for it) and commit to the `refs/pr/N` they opened (`can_contribute`). A PR is isolated in its
#: own ref and only a writer merges it, so this grants no branch, tag or other person's PR; uploads land
#: nowhere until a commit, and an outsider's Xet uploads are scoped to them (`cove.services.xet.scope_of`).
#: Members are managed by the server's administrator (`cove org member add ORG USER --role ROLE`).
ROLES = ("read", "contributor", "write", "admin")
PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space"}


def namespace_role(db: Session, actor: Actor, namespace: str) -> str | None:
    """The caller's standing in a namespace: one of `ROLES`, or None."""
    if actor.anonymous:
        return None
    if actor.is_admin or (actor.name or "").lower() == namespace.lower():  # names are case-insensitive
        return "admin"
    ns = get_namespace(db, namespace)
    if ns is None or ns.kind != "org":
        return None
    return org_role(db, ns.id, actor.user_id)  # type: ignore[arg-type]


def can_read(db: Session, actor: Actor, repo: Repo) -> bool:
    if not repo.private:
        return True
    return namespace_role(db, actor, repo.namespace) is not None


def can_write(db: Session, actor: Actor, repo: Repo) -> bool:
    return (actor.can_write and namespace_role(db, actor, repo.namespace) in ("admin", "write")
            and _mirror().mirrored(db, repo) is None)  # a mirror is read-only here (fork it to change it)


def can_contribute(db: Session, actor: Actor, repo: Repo) -> bool:
    """Open pull requests and upload the files they add, as on the Hub: whoever may read the repo's files
    (`may_still_read`: visibility, then gating), with a write token. Merging one needs `can_write`."""
    return actor.can_write and may_still_read(db, actor, repo) and _mirror().mirrored(db, repo) is None


def can_admin(db: Session, actor: Actor, repo: Repo) -> bool:
    """Delete, move or rename, change visibility or gating: the namespace's admins (its owner for a user)."""
    return actor.can_write and namespace_role(db, actor, repo.namespace) == "admin"


def holder(db: Session, *, user_id: int | None = None, name: str | None = None, role: str = "read") -> Actor | None:
    """The actor a capability issued earlier (a signed URL, a CAS token) stands for now: anonymous when it
    names no one, None when its user is gone. Its rights are then checked afresh, as for a request."""
    if user_id is None and name is None:
        return ANONYMOUS
    q = select(Namespace).where((Namespace.id == user_id) if user_id is not None else (Namespace.name == name))
    user = db.scalar(q)
    if user is None or user.kind != "user":
        return None
    return Actor(user.id, user.name, role, None, user.is_admin)


def may_still_read(db: Session, actor: Actor | None, repo: Repo) -> bool:
    """`holder`'s actor may read the repo's files now (membership, visibility, gating)."""
    from cove.services import gating

    return actor is not None and can_read(db, actor, repo) and gating.has_access(db, actor, repo)


def find_repo_query(repo_type: str, repo_id: str) -> Select:
    """The one lookup of a repo by id: case-insensitive, as on the Hub (`ux_repos_type_lower_id`)."""
    ns, _, name = repo_id.partition("/")
    return select(Repo).where(Repo.type == repo_type, func.lower(Repo.namespace) == ns.lower(),
                              func.lower(Repo.name) == name.lower())


def find_repo(db: Session, repo_type: str, repo_id: str) -> Repo | None:
    """The repo `repo_id` names in any casing (its row carries the canonical one), or None."""
    return db.scalar(find_repo_query(repo_type, repo_id))


def redirect_filter(repo_type: str, repo_id: str) -> tuple:
    """`RepoRedirect` rows for an old id, in any casing (`ux_repo_redirects_type_lower_id`)."""
    ns, _, name = repo_id.partition("/")
    return (RepoRedirect.type == repo_type, func.lower(RepoRedirect.namespace) == ns.lower(),
            func.lower(RepoRedirect.name) == name.lower())


def moved_repo(db: Session, repo_type: str, repo_id: str) -> Repo | None:
    """The repo an old id now names after a move (moves chain: the redirect holds the row, not a name)."""
    return db.scalar(select(Repo).join(RepoRedirect, RepoRedirect.repo_pk == Repo.id)
                     .where(*redirect_filter(repo_type, repo_id)))


def raise_if_moved(db: Session, actor: Actor, repo_type: str, repo_id: str) -> None:
    """`RepoMoved` when `repo_id` is an old id of a repo the caller may read (else it stays a missing repo)."""
    moved = moved_repo(db, repo_type, repo_id)
    if moved is not None and can_read(db, actor, moved):
        raise RepoMoved(repo_id, moved.repo_id, _not_found_message(actor))


def readable_repo(db: Session, actor: Actor, repo_type: str, repo_id: str) -> Repo:
    """The repo, if the caller may read it; else `RepoNotFound`, or `RepoMoved` (a `RepoNotFound` that the app
    answers with a redirect where the URL names the old id) for the old id of a repo the caller may read."""
    repo = find_repo(db, repo_type, repo_id)
    if repo is None:
        raise_if_moved(db, actor, repo_type, repo_id)
        repo = _mirror().pull_through(db, repo_type, repo_id)  # a public repo of the upstream hub, if one is set
    if repo is None or not can_read(db, actor, repo):
        raise RepoNotFound(_not_found_message(actor))
    return repo


def writable_repo(db: Session, actor: Actor, repo_type: str, repo_id: str) -> Repo:
    repo = readable_repo(db, actor, repo_type, repo_id)
    require_write(db, actor, repo)
    return repo


def contributable_repo(db: Session, actor: Actor, repo_type: str, repo_id: str) -> Repo:
    """`writable_repo` for what any reader with a write token may do: open a pull request, upload for one."""
    repo = readable_repo(db, actor, repo_type, repo_id)
    require_contribute(db, actor, repo)
    return repo


def require_write(db: Session, actor: Actor, repo: Repo) -> None:
    if can_write(db, actor, repo):
        return
    if actor.anonymous:
        raise Unauthorized("You must be authenticated to write to this repo")
    if (row := _mirror().mirrored(db, repo)) is not None:
        raise Forbidden(f"{repo.repo_id} is a read-only mirror of {row.upstream}: duplicate it to change it")
    if not actor.can_write and namespace_role(db, actor, repo.namespace) in ("admin", "write"):
        raise Forbidden("This token has read-only access: use a token with the 'write' role")
    raise Forbidden(f"You don't have the rights to write to {repo.repo_id}")


def require_contribute(db: Session, actor: Actor, repo: Repo) -> None:
    """401/403 unless the caller may open pull requests on the repo (`can_contribute`); the repo is readable."""
    if can_contribute(db, actor, repo):
        return
    if actor.anonymous:
        raise Unauthorized("You must be authenticated to contribute to this repo")
    if (row := _mirror().mirrored(db, repo)) is not None:
        raise Forbidden(f"{repo.repo_id} is a read-only mirror of {row.upstream}: duplicate it to change it")
    if not may_still_read(db, actor, repo):
        raise GatedRepo(f"Access to {repo.type} {repo.repo_id} is restricted and you are not in the authorized "
                        "list: ask for access before opening pull requests")
    raise Forbidden("This token has read-only access: use a token with the 'write' role")


def require_admin(db: Session, actor: Actor, repo: Repo) -> None:
    """403 unless the caller administers the repo's namespace (401/403 as `require_write` first)."""
    if can_admin(db, actor, repo):
        return
    require_write(db, actor, repo)
    raise Forbidden(f"Only admins of {repo.namespace!r} can do this to {repo.repo_id}")


def require_write_token(actor: Actor, what: str) -> None:
    """A signed-in caller with a write token (or a password session): likes and discussions are writes."""
    if actor.anonymous:
        raise Unauthorized(f"You must be authenticated to {what}")
    if not actor.can_write:
        raise Forbidden("This token has read-only access: use a token with the 'write' role")


def require_namespace_write(db: Session, actor: Actor, namespace: str) -> None:
    if actor.anonymous:
        raise Unauthorized("You must be authenticated to do this")
    role = namespace_role(db, actor, namespace)
    if role not in ("admin", "write"):
        raise Forbidden(f"You don't have the rights to create repos in {namespace!r}")
    if not actor.can_write:
        raise Forbidden("This token has read-only access: use a token with the 'write' role")


def _not_found_message(actor: Actor) -> str:
    if actor.anonymous:
        return "Repository not found. If the repo is private, make sure you are authenticated."
    return "Repository not found"


def _mirror() -> ModuleType:
    """`cove.services.mirror`, imported on first use: it loads git and an HTTP client, which the account
    commands of the CLI (that import this module) have no use for."""
    from cove.services import mirror

    return mirror
