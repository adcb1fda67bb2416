"""Admin commands: users, orgs, tokens, revert, reindex."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Annotated

import typer

from cove.cli.exits import errors_exit

user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
org_app = typer.Typer(help="Manage organizations.", no_args_is_help=True)
member_app = typer.Typer(help="Manage organization members.", no_args_is_help=True)
token_app = typer.Typer(help="Manage access tokens.", no_args_is_help=True)
repo_app = typer.Typer(help="Manage repositories (as the server's administrator).", no_args_is_help=True)
access_app = typer.Typer(help="Review access requests to gated repos.", no_args_is_help=True)
org_app.add_typer(member_app, name="member")

JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON list instead of text.")]
RepoArg = Annotated[str, typer.Argument(help="ns/name, or datasets/ns/name, spaces/ns/name")]


def _when(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def _emit(rows: list[dict], as_json: bool, columns: list[str]) -> None:
    """Print `rows`: a JSON list, or one tab-separated line per row (the given columns)."""
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        cells = ["" if row[c] is None else str(row[c]) for c in columns]
        typer.echo("\t".join(cells).rstrip())


def hub_settings():  # noqa: ANN201 - Settings, imported late
    """The settings of the hub admin commands act on; exit 2 when there is none (they never create one)."""
    from cove.settings import Settings

    s = Settings()
    if not s.is_hub():
        typer.echo(f"Error: no Cove hub found at {s.data.resolve()}; start one with `cove serve --data …` "
                   "(or `cove init --data …`), or pass --data/COVE_DATA", err=True)
        raise typer.Exit(2)
    return s


def _backends():  # noqa: ANN202
    from cove.backends import build_backends
    from cove.db.migrate import ensure_current

    bk = build_backends(hub_settings())
    ensure_current(bk)
    return bk


def _database():  # noqa: ANN202
    """The hub's database alone, for commands that touch no repo (no git or blob store is opened)."""
    from cove.db.migrate import current_revision, head_revision
    from cove.db.session import Database, engine_options

    settings = hub_settings()
    database = Database(settings.db_url, **engine_options(settings))
    if current_revision(database.engine) != head_revision():
        database.engine.dispose()
        return _backends().db
    return database


def _run(fn, *, db_only: bool = False):  # noqa: ANN001, ANN202
    """Run ``fn(db, bk)`` in one transaction; ``db_only``: accounts and tokens only, ``bk`` is None."""
    bk = None if db_only else _backends()
    database = _database() if db_only else bk.db
    with errors_exit(), database.session() as db:
        return fn(db, bk)


@user_app.command("add")
def user_add(name: str, fullname: str = "", email: str | None = None,
             password: Annotated[str | None, typer.Option(help="Password for the web UI.")] = None,
             admin: bool = False) -> None:
    """Create a user."""
    from cove.services import accounts

    _run(lambda db, bk: accounts.add_user(db, name, fullname=fullname, email=email, password=password, admin=admin),
         db_only=True)
    typer.echo(f"Created {'admin ' if admin else ''}user {name}.", err=True)
    if password is None:
        typer.echo(f"{name} has no password yet: set one with `cove user password {name}` before they sign in "
                   f"to the web UI; `cove token create {name} --role write` makes a token for the clients.", err=True)


@user_app.command("list")
def user_list(as_json: JsonOption = False) -> None:
    """List users."""
    from cove.services import accounts

    rows = [{"name": u.name, "fullname": u.fullname, "email": u.email, "admin": bool(u.is_admin),
             "has_password": u.password_hash is not None, "created_at": _when(u.created_at)}
            for u in _run(lambda db, bk: accounts.list_users(db), db_only=True)]
    if not as_json:
        for row in rows:
            row["admin"] = "admin" if row["admin"] else None
    _emit(rows, as_json, ["name", "fullname", "admin"])


@user_app.command("remove")
def user_remove(name: str) -> None:
    """Delete a user (their tokens go with them)."""
    from cove.services import accounts

    _run(lambda db, bk: accounts.remove_namespace(db, name), db_only=True)
    typer.echo(f"Removed {name}", err=True)


@user_app.command("password")
def user_password(name: str, password: Annotated[str, typer.Option(prompt=True, hide_input=True)]) -> None:
    """Set a user's web password."""
    from cove.services import accounts

    _run(lambda db, bk: accounts.set_password(db, name, password), db_only=True)
    typer.echo(f"Password set for {name} (their web sessions were signed out).", err=True)


@org_app.command("add")
def org_add(name: str, owner: Annotated[str | None, typer.Option(help="First admin member.")] = None,
            fullname: str = "") -> None:
    """Create an organization."""
    from cove.services import accounts

    _run(lambda db, bk: accounts.add_org(db, name, fullname=fullname, owner=owner), db_only=True)
    typer.echo(f"Created org {name}" + (f" with {owner} as admin." if owner else "."), err=True)


@org_app.command("list")
def org_list(as_json: JsonOption = False) -> None:
    """List organizations (with `--json`: their settings too)."""
    from cove.services import accounts, orgs

    def run(db, bk):  # noqa: ANN001, ANN202
        found = accounts.list_orgs(db)
        private = orgs.settings_of(db, [o.name for o in found])
        return [{"name": o.name, "fullname": o.fullname, "created_at": _when(o.created_at),
                 "private_by_default": private.get(o.name, False)} for o in found]

    _emit(_run(run, db_only=True), as_json, ["name"])


def _true_false(value: str) -> bool:
    word = value.strip().lower()
    if word not in ("true", "false"):
        raise typer.BadParameter("true or false")
    return word == "true"


@org_app.command("set")
def org_set(org: str,
            private_by_default: Annotated[str | None, typer.Option(
                "--private-by-default", help="true: repos created in ORG without a stated visibility are private.",
                metavar="true|false")] = None,
            ) -> None:
    """Change an organization's settings."""
    from cove.services import orgs

    if private_by_default is None:
        raise typer.BadParameter("nothing to set: pass --private-by-default true|false")
    value = _true_false(private_by_default)
    _run(lambda db, bk: orgs.set_private_by_default(db, org, value), db_only=True)
    state = "private" if value else "public unless asked otherwise"
    typer.echo(f"New repos in {org} are {state}.", err=True)


@member_app.command("list")
def member_list(org: str, as_json: JsonOption = False) -> None:
    """List an organization's members and their roles."""
    from cove.services import accounts

    def run(db, bk):  # noqa: ANN001, ANN202
        return [{"user": u.name, "role": role} for u, role in accounts.members_of(db, accounts.require_org(db, org).id)]

    _emit(_run(run, db_only=True), as_json, ["user", "role"])


@member_app.command("add")
def member_add(org: str, user: str,
               role: Annotated[str, typer.Option(help="read, contributor, write or admin")] = "write") -> None:
    """Add a user to an organization (or change their role). read: see private repos (any reader may open
    pull requests, as on the Hub); contributor: the same as read; write: also push, make branches and tags,
    and create repos; admin: also delete, move, and change visibility and gating."""
    from cove.services import accounts

    _run(lambda db, bk: accounts.add_member(db, org, user, role=role), db_only=True)
    typer.echo(f"{user} is now {role} in {org}.", err=True)


@member_app.command("remove")
def member_remove(org: str, user: str) -> None:
    """Remove a user from an organization."""
    from cove.services import accounts

    _run(lambda db, bk: accounts.remove_member(db, org, user), db_only=True)
    typer.echo(f"Removed {user} from {org}.", err=True)


_DURATION_RE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_expiry(value: str) -> datetime:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` from now, or an ISO date/time (UTC) → naive UTC datetime."""
    from cove.db.tables import utcnow

    m = _DURATION_RE.match(value.strip().lower())
    if m:
        return utcnow() + timedelta(**{_UNITS[m[2]]: int(m[1])})
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter("use a duration (30d, 12h, 90m, 2w) or an ISO date (2027-01-31)") from None
    if when.tzinfo is not None:
        from datetime import UTC

        when = when.astimezone(UTC).replace(tzinfo=None)
    return when


@token_app.command("create")
def token_create(user: str, role: Annotated[str, typer.Option(help="read or write")] = "read",
                 name: Annotated[str | None, typer.Option(help="A name to recognise it by.")] = None,
                 expires: Annotated[str | None, typer.Option(
                     help="Expire after a duration (30d, 12h, 2w) or at an ISO date (UTC); default: never.")] = None,
                 ) -> None:
    """Create a token and print it (shown once; only its hash is stored)."""
    from cove.services import accounts

    expires_at = parse_expiry(expires) if expires else None
    token, secret = _run(lambda db, bk: accounts.create_token(db, user, role=role, name=name, expires_at=expires_at),
                         db_only=True)
    typer.echo(secret)
    until = f", expires {_when(token.expires_at)}" if token.expires_at else ", never expires"
    typer.echo(f"Created {role} token {token.name!r} for {user}{until}. It is shown once: keep it now.", err=True)


@token_app.command("list")
def token_list(user: str, as_json: JsonOption = False) -> None:
    """List a user's tokens (names and roles, never the secrets)."""
    from cove.services import accounts

    rows = [{"id": t.id, "name": t.name, "role": t.role, "prefix": t.prefix, "created_at": _when(t.created_at),
             "last_used_at": _when(t.last_used_at), "expires_at": _when(t.expires_at)}
            for t in _run(lambda db, bk: accounts.list_tokens(db, user), db_only=True)]
    if not as_json:
        for row in rows:
            row["prefix"] += "…"
            row["created_at"] = row["created_at"][:10]
            row["expires_at"] = f"expires {row['expires_at']}" if row["expires_at"] else None
    _emit(rows, as_json, ["id", "name", "role", "prefix", "created_at", "expires_at"])


@token_app.command("revoke")
def token_revoke(user: str, token: Annotated[str, typer.Argument(help="Token name or id.")]) -> None:
    """Revoke a token."""
    from cove.services import accounts

    _run(lambda db, bk: accounts.revoke_token(db, user, token), db_only=True)
    typer.echo(f"Revoked {user}'s token {token!r}.", err=True)


def admin_actor():  # noqa: ANN201 - Actor, imported late to keep the CLI's start-up light
    """The actor CLI commands act as: the server's administrator, with write rights everywhere."""
    from cove.services.accounts import Actor

    return Actor(0, "cove-admin", "write", None, True)


def split_repo(repo: str) -> tuple[str, str]:
    """``datasets/ns/name`` → ``("dataset", "ns/name")``; a bare ``ns/name`` is a model."""
    for prefix, t in (("datasets/", "dataset"), ("spaces/", "space"), ("models/", "model")):
        if repo.startswith(prefix):
            return t, repo[len(prefix):]
    return "model", repo


def revert(repo: Annotated[str, typer.Argument(help="ns/name, or datasets/ns/name, spaces/ns/name")],
           commit: Annotated[str, typer.Argument(help="Commit (or branch/tag) whose tree to restore.")],
           branch: str = "main", message: str | None = None) -> None:
    """Create a new commit on BRANCH that restores COMMIT's files (history stays intact)."""
    from cove.services import access, history

    repo_type, repo = split_repo(repo)
    actor = admin_actor()

    def run(db, bk):  # noqa: ANN001, ANN202
        r = access.readable_repo(db, actor, repo_type, repo)
        return history.revert(db, bk, actor, r, target=commit, branch=branch, message=message)

    typer.echo(_run(run))


def reindex() -> None:
    """Re-derive the search index of every repo from its git head."""
    from cove.services.repos import reindex_all

    n = _run(lambda db, bk: reindex_all(db, bk))
    typer.echo(f"Reindexed {n} repos", err=True)


def _repo_row(r) -> dict:  # noqa: ANN001 - a cove.db.tables.Repo
    return {"type": r.type, "id": r.repo_id, "private": bool(r.private), "gated": r.gated or False,
            "sha": r.sha, "last_modified": _when(r.last_modified), "created_at": _when(r.created_at)}


def _label(repo_type: str, repo_id: str) -> str:
    return f"{repo_type} {repo_id}"


@repo_app.command("list")
def repo_list(namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Only this user/org's.")] = None,
              repo_type: Annotated[str | None, typer.Option("--type", help="model, dataset or space")] = None,
              as_json: JsonOption = False) -> None:
    """List every repo (private ones included)."""
    from sqlalchemy import func, select

    from cove.db.tables import Repo

    def run(db, bk):  # noqa: ANN001, ANN202
        q = select(Repo).order_by(Repo.type, Repo.namespace, Repo.name)
        if namespace:
            q = q.where(func.lower(Repo.namespace) == namespace.lower())  # names are case-insensitive
        if repo_type:
            q = q.where(Repo.type == repo_type)
        return [_repo_row(r) for r in db.scalars(q)]

    rows = _run(run, db_only=True)
    if not as_json:
        for row in rows:
            row["private"] = "private" if row["private"] else "public"
            row["gated"] = f"gated:{row['gated']}" if row["gated"] else None
    _emit(rows, as_json, ["type", "id", "private", "gated"])


def _repo_target(repo: str, repo_type: str | None) -> tuple[str, str]:
    t, repo_id = split_repo(repo)
    return (repo_type or t), repo_id


@repo_app.command("create")
def repo_create(repo: RepoArg,
                repo_type: Annotated[str | None, typer.Option("--type", help="model, dataset or space")] = None,
                private: Annotated[bool, typer.Option("--private", help="Only its namespace sees it.")] = False,
                sdk: Annotated[str | None, typer.Option(help="A Space's sdk (gradio, streamlit, docker, static).")]
                = None) -> None:
    """Create a repo in any user's or org's namespace."""
    from cove.errors import Conflict
    from cove.services import repos

    repo_type, repo_id = _repo_target(repo, repo_type)
    ns, name = repos.validate_repo_id(repo_id)

    def run(db, bk):  # noqa: ANN001, ANN202
        _, created = repos.create(db, bk, admin_actor(), repo_type=repo_type, namespace=ns, name=name,
                                  private=private, sdk=sdk)
        if not created:
            raise Conflict(f"The {repo_type} repo {repo_id} already exists")

    _run(run)
    typer.echo(f"Created {'private' if private else 'public'} {_label(repo_type, repo_id)}.", err=True)


@repo_app.command("delete")
def repo_delete(repo: RepoArg,
                repo_type: Annotated[str | None, typer.Option("--type", help="model, dataset or space")] = None,
                yes: Annotated[bool, typer.Option("--yes", "-y", help="Don't ask.")] = False) -> None:
    """Delete a repo and its git history (its LFS/Xet data goes at the next `cove gc`)."""
    from cove.services import access, repos

    repo_type, repo_id = _repo_target(repo, repo_type)
    if not yes:
        typer.confirm(f"Delete {_label(repo_type, repo_id)} and all its history?", abort=True)
    actor = admin_actor()
    _run(lambda db, bk: repos.delete_repo(db, bk, actor, access.readable_repo(db, actor, repo_type, repo_id)))
    typer.echo(f"Deleted {_label(repo_type, repo_id)}.", err=True)


@repo_app.command("move")
def repo_move(repo: RepoArg, to: Annotated[str, typer.Argument(help="The new ns/name.")],
              repo_type: Annotated[str | None, typer.Option("--type", help="model, dataset or space")] = None) -> None:
    """Rename a repo or move it to another user or org."""
    from cove.services import access, repos

    repo_type, repo_id = _repo_target(repo, repo_type)
    _, to = split_repo(to)
    actor = admin_actor()
    _run(lambda db, bk: repos.move(db, bk, actor, access.readable_repo(db, actor, repo_type, repo_id), to))
    typer.echo(f"Moved {_label(repo_type, repo_id)} to {to}.", err=True)


@repo_app.command("visibility")
def repo_visibility(repo: RepoArg, visibility: Annotated[str, typer.Argument(help="public or private")],
                    repo_type: Annotated[str | None, typer.Option("--type", help="model, dataset or space")] = None,
                    ) -> None:
    """Make a repo public or private."""
    from cove.services import access, repos

    if visibility not in ("public", "private"):
        raise typer.BadParameter("public or private", param_hint="VISIBILITY")
    repo_type, repo_id = _repo_target(repo, repo_type)
    actor = admin_actor()
    _run(lambda db, bk: repos.update_settings(db, actor, access.readable_repo(db, actor, repo_type, repo_id),
                                              private=visibility == "private", gated=None))
    typer.echo(f"{_label(repo_type, repo_id)} is now {visibility}.", err=True)


@repo_app.command("gate")
def repo_gate(repo: RepoArg, mode: Annotated[str, typer.Argument(help="auto, manual or off")],
              repo_type: Annotated[str | None, typer.Option("--type", help="model, dataset or space")] = None) -> None:
    """Gate a repo's files: `auto` accepts every request, `manual` waits for `cove access approve`; `off`."""
    from cove.services import access, repos

    if mode not in ("auto", "manual", "off"):
        raise typer.BadParameter("auto, manual or off", param_hint="MODE")
    repo_type, repo_id = _repo_target(repo, repo_type)
    actor = admin_actor()
    _run(lambda db, bk: repos.update_settings(db, actor, access.readable_repo(db, actor, repo_type, repo_id),
                                              private=None, gated=False if mode == "off" else mode))
    typer.echo(f"{_label(repo_type, repo_id)} is " + ("no longer gated." if mode == "off" else f"gated ({mode}).")
               , err=True)


@access_app.command("list")
def access_list(repo: RepoArg,
                status: Annotated[str, typer.Option(help="pending, accepted or rejected")] = "pending",
                repo_type: Annotated[str | None, typer.Option("--type", help="model, dataset or space")] = None,
                as_json: JsonOption = False) -> None:
    """List a gated repo's access requests (pending ones by default)."""
    from cove.services import access, gating

    repo_type, repo_id = _repo_target(repo, repo_type)
    actor = admin_actor()

    def run(db, bk):  # noqa: ANN001, ANN202
        r = access.readable_repo(db, actor, repo_type, repo_id)
        return [{"user": q.user.name, "status": q.status, "fields": q.fields, "updated_at": _when(q.created_at)}
                for q in gating.list_requests(db, actor, r, status)]

    rows = _run(run, db_only=True)
    if not as_json:
        for row in rows:
            row["fields"] = json.dumps(row["fields"]) if row["fields"] else None
    _emit(rows, as_json, ["user", "status", "updated_at", "fields"])


def _review(repo: str, user: str, repo_type: str | None, status: str) -> None:
    from cove.services import access, gating

    repo_type, repo_id = _repo_target(repo, repo_type)
    actor = admin_actor()
    _run(lambda db, bk: gating.set_status(db, actor, access.readable_repo(db, actor, repo_type, repo_id),
                                          user=user, request_id=None, status=status), db_only=True)
    typer.echo(f"{user}'s access request to {_label(repo_type, repo_id)} is {status}.", err=True)


@access_app.command("approve")
def access_approve(repo: RepoArg, user: str,
                   repo_type: Annotated[str | None, typer.Option("--type", help="model, dataset or space")] = None,
                   ) -> None:
    """Accept a user's access request."""
    _review(repo, user, repo_type, "accepted")


@access_app.command("reject")
def access_reject(repo: RepoArg, user: str,
                  repo_type: Annotated[str | None, typer.Option("--type", help="model, dataset or space")] = None,
                  ) -> None:
    """Reject a user's access request (or withdraw an accepted one)."""
    _review(repo, user, repo_type, "rejected")


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")
    app.add_typer(org_app, name="org")
    app.add_typer(token_app, name="token")
    app.add_typer(repo_app, name="repo")
    app.add_typer(access_app, name="access")
    app.command("revert")(revert)
    app.command("reindex")(reindex)
