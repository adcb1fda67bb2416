"""`cove xet`: upkeep of the Xet store (garbage collection, LFS → Xet conversion)."""

from __future__ import annotations

from typing import Annotated

import typer

from cove.cli.admin import _run, admin_actor, split_repo

xet_app = typer.Typer(help="Xet storage upkeep.", no_args_is_help=True)


@xet_app.command("gc")
def gc(
    grace_hours: Annotated[float, typer.Option(help="Keep anything younger than this (uploads in flight).")] = 24,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would go; delete nothing.")] = False,
) -> None:
    """Delete Xet files no repo links to, the xorbs no file uses, and stale grant uploads."""
    from cove.services.xet_maintenance import collect_garbage

    report = _run(lambda db, bk: collect_garbage(bk, grace_seconds=int(grace_hours * 3600), dry_run=dry_run))
    verb = "would remove" if dry_run else "removed"
    typer.echo(
        f"{verb} {report.files_removed} files, {report.xorbs_removed} xorbs, {report.staged_removed} staged uploads"
        f" ({report.bytes_freed / 2**20:.1f} MiB)"
    )


@xet_app.command("convert")
def convert(repo: Annotated[str, typer.Argument(help="ns/name, or datasets/ns/name, spaces/ns/name")]) -> None:
    """Store a repo's classic LFS files in Xet too, so clients download them over Xet (blobs stay in place)."""
    from sqlalchemy import select

    from cove.db.tables import LfsObject
    from cove.services import access
    from cove.services.xet_maintenance import convert_lfs_object

    repo_type, repo_id = split_repo(repo)

    def run(db, bk):  # noqa: ANN001, ANN202
        r = access.readable_repo(db, admin_actor(), repo_type, repo_id)
        oids = db.scalars(
            select(LfsObject.oid).where(LfsObject.repo_pk == r.id, LfsObject.xet_hash.is_(None), LfsObject.size > 0)
        ).all()
        for oid in oids:
            typer.echo(f"{oid} -> {convert_lfs_object(bk, repo_pk=r.id, oid=oid)}")
        return len(oids)

    typer.echo(f"converted {_run(run)} LFS objects of {repo}", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(xet_app, name="xet")
