"""`cove mirror`: the repos this hub mirrors from its upstream (`COVE_MIRROR_UPSTREAM`) and keeps synced."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cove.cli.admin import _backends, _run

mirror_app = typer.Typer(help="Pull-through mirror of an upstream hub (docs/mirror.md).", no_args_is_help=True)
PATTERN = Annotated[str, typer.Argument(help="ns/name, datasets/ns/name or spaces/ns/name; fnmatch wildcards "
                                             "allowed (ns/* lists the namespace upstream)")]


@mirror_app.command("add")
def add(pattern: PATTERN, sync_now: Annotated[bool, typer.Option(
        "--sync/--no-sync", help="Mirror what it names now (else at the next scheduled sync).")] = True) -> None:
    """Mirror the repos a pattern names and keep them synced on a schedule (COVE_MIRROR_SYNC_INTERVAL)."""
    from cove.services import mirror

    added = _run(lambda db, bk: mirror.add_pattern(db, pattern))
    typer.echo(f"{'Added' if added else 'Already mirrored:'} {pattern}", err=True)
    if sync_now:
        _sync(pattern)


@mirror_app.command("remove")
def remove(pattern: PATTERN) -> None:
    """Stop keeping a pattern's repos synced (the mirrored repos stay; delete them as any repo)."""
    from cove.services import mirror

    if not _run(lambda db, bk: mirror.remove_pattern(db, pattern)):
        typer.echo(f"Error: {pattern} is not a mirror pattern", err=True)
        raise typer.Exit(1)
    typer.echo(f"Removed {pattern}", err=True)


@mirror_app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False) -> None:
    """The patterns kept synced, and the repos mirrored (with when each was last synced)."""
    from sqlalchemy import select

    from cove.db.tables import MirroredRepo, MirrorPattern, Repo
    from cove.services import mirror

    def run(db, bk):  # noqa: ANN001, ANN202
        pats = [p.pattern for p in db.scalars(select(MirrorPattern).order_by(MirrorPattern.pattern))]
        rows = db.execute(select(Repo, MirroredRepo).join(MirroredRepo, MirroredRepo.repo_pk == Repo.id)
                          .order_by(Repo.namespace, Repo.name)).all()
        repos = [{"repo": mirror.qualified(r.type, r.repo_id), "sha": r.sha, "upstream": m.upstream,
                  "synced_at": m.synced_at.isoformat() if m.synced_at else None} for r, m in rows]
        return {"upstream": bk.settings.mirror_upstream, "patterns": pats, "repos": repos}

    out = _run(run)
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    typer.echo(f"upstream: {out['upstream'] or '(none: set COVE_MIRROR_UPSTREAM)'}")
    for p in out["patterns"]:
        typer.echo(f"pattern  {p}")
    for r in out["repos"]:
        typer.echo(f"repo     {r['repo']}  {r['sha'] or '-'}  synced {r['synced_at'] or 'never'}")


@mirror_app.command("sync")
def sync(pattern: Annotated[str | None, typer.Argument(help="Only this pattern (default: all).")] = None) -> None:
    """Mirror and bring up to date now what the patterns name."""
    _sync(pattern)


def _sync(pattern: str | None) -> None:
    from cove.services import mirror

    bk = _backends()
    if not mirror.enabled(bk):
        typer.echo("Error: no upstream: set COVE_MIRROR_UPSTREAM", err=True)
        raise typer.Exit(1)
    mirror.install(bk)
    changed = mirror.sync(bk, pattern)
    for name in changed:
        typer.echo(f"synced {name}")
    if not mirror.available():
        typer.echo(f"Error: {mirror.unreachable_message(bk, 'Sync stopped')}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{len(changed)} repos changed", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(mirror_app, name="mirror")
