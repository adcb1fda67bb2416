"""Admin commands: users, orgs, tokens, revert, reindex."""

from __future__ import annotations

from typing import Annotated

import typer

from cove.errors import HubError

user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
org_app = typer.Typer(help="Manage organizations.", no_args_is_help=True)
member_app = typer.Typer(help="Manage organization members.", no_args_is_help=True)
token_app = typer.Typer(help="Manage access tokens.", no_args_is_help=True)
org_app.add_typer(member_app, name="member")


def _backends():  # noqa: ANN202
    from cove.backends import build_backends
    from cove.db.migrate import upgrade
    from cove.settings import Settings

    bk = build_backends(Settings())
    upgrade(bk)
    return bk


def _run(fn):  # noqa: ANN001, ANN202
    bk = _backends()
    try:
        with bk.db.session() as db:
            return fn(db, bk)
    except HubError as exc:
        typer.echo(f"Error: {exc.message}", err=True)
        raise typer.Exit(1) from None


@user_app.command("add")
def user_add(name: str, fullname: str = "", email: str | None = None,
             password: Annotated[str | None, typer.Option(help="Password for the web UI.")] = None,
             admin: bool = False) -> None:
    """Create a user."""
    from cove.services import accounts

    _run(lambda db, bk: accounts.add_user(db, name, fullname=fullname, email=email, password=password, admin=admin))
    typer.echo(f"Created user {name}", err=True)


@user_app.command("list")
def user_list() -> None:
    """List users."""
    from cove.services import accounts

    for u in _run(lambda db, bk: accounts.list_users(db)):
        typer.echo(f"{u.name}\t{u.fullname}\t{'admin' if u.is_admin else ''}".rstrip())


@user_app.command("remove")
def user_remove(name: str) -> None:
    """Delete a user (their tokens go with them)."""
    from cove.services import accounts

    _run(lambda db, bk: accounts.remove_namespace(db, name))
    typer.echo(f"Removed {name}", err=True)


@user_app.command("password")
def user_password(name: str, password: Annotated[str, typer.Option(prompt=True, hide_input=True)]) -> None:
    """Set a user's web password."""
    from cove.services import accounts

    _run(lambda db, bk: accounts.set_password(db, name, password))


@org_app.command("add")
def org_add(name: str, owner: Annotated[str | None, typer.Option(help="First admin member.")] = None,
            fullname: str = "") -> None:
    """Create an organization."""
    from cove.services import accounts

    _run(lambda db, bk: accounts.add_org(db, name, fullname=fullname, owner=owner))
    typer.echo(f"Created org {name}", err=True)


@org_app.command("list")
def org_list() -> None:
    """List organizations."""
    from cove.services import accounts

    for o in _run(lambda db, bk: accounts.list_orgs(db)):
        typer.echo(o.name)


@member_app.command("add")
def member_add(org: str, user: str,
               role: Annotated[str, typer.Option(help="read, contributor, write or admin")] = "write") -> None:
    """Add a user to an organization (or change their role). read: see private repos; contributor: also open
    discussions and pull requests (never push to a branch); write: also push, make branches and tags, and
    create repos; admin: also delete, move, and change visibility and gating."""
    from cove.services import accounts

    _run(lambda db, bk: accounts.add_member(db, org, user, role=role))


@member_app.command("remove")
def member_remove(org: str, user: str) -> None:
    """Remove a user from an organization."""
    from cove.services import accounts

    _run(lambda db, bk: accounts.remove_member(db, org, user))


@token_app.command("create")
def token_create(user: str, role: Annotated[str, typer.Option(help="read or write")] = "read",
                 name: Annotated[str | None, typer.Option(help="A name to recognise it by.")] = None) -> None:
    """Create a token and print it (shown once; only its hash is stored)."""
    from cove.services import accounts

    secret = _run(lambda db, bk: accounts.create_token(db, user, role=role, name=name)[1])
    typer.echo(secret)


@token_app.command("list")
def token_list(user: str) -> None:
    """List a user's tokens (names and roles, never the secrets)."""
    from cove.services import accounts

    for t in _run(lambda db, bk: accounts.list_tokens(db, user)):
        typer.echo(f"{t.id}\t{t.name}\t{t.role}\t{t.prefix}…\t{t.created_at:%Y-%m-%d}")


@token_app.command("revoke")
def token_revoke(user: str, token: Annotated[str, typer.Argument(help="Token name or id.")]) -> None:
    """Revoke a token."""
    from cove.services import accounts

    _run(lambda db, bk: accounts.revoke_token(db, user, token))
    typer.echo("Revoked", err=True)


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


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")
    app.add_typer(org_app, name="org")
    app.add_typer(token_app, name="token")
    app.command("revert")(revert)
    app.command("reindex")(reindex)
