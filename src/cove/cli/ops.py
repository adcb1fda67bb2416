"""Operator commands: `cove fsck`, `cove backup`, `cove restore`, `cove gc` (see docs/operations.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from cove.cli.exits import errors_exit


def _hub():  # noqa: ANN202 - Backends of the hub the admin commands find (never creates one)
    from cove.cli.admin import _backends

    return _backends()


def fsck(
    repair: Annotated[bool, typer.Option("--repair", help="Fix what can be fixed (stale index rows, temp files).")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Verify every git repo, every stored blob's hash and size, and every index row against git.

    Exit status 1 when a problem remains (after repairs, with --repair)."""
    from cove.services.fsck import check

    report = check(_hub(), repair=repair)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for p in report.problems:
            typer.echo(f"{p.kind}\t{p.subject}\t{p.detail}{'  [repaired]' if p.repaired else ''}")
        checked = ", ".join(f"{n} {what}" for what, n in report.checked.items()) or "nothing"
        left = len(report.unrepaired)
        typer.echo(f"checked {checked}: {len(report.problems)} problem(s), {left} left", err=True)
    if report.unrepaired:
        raise typer.Exit(1)


def backup(dest: Annotated[Path, typer.Argument(help="A new or empty folder for the snapshot.")]) -> None:
    """Take a consistent snapshot (git repos, database, the blobs it names) while the server keeps serving."""
    from cove.services.backup import backup as run_backup

    with errors_exit():
        manifest = run_backup(_hub(), dest, echo=lambda line: typer.echo(line, err=True))
    typer.echo(f"Backed up {manifest['repos']} repos and {manifest['blobs']} blobs into {dest.resolve()}", err=True)
    if manifest["missing_blobs"]:
        typer.echo(f"Warning: {len(manifest['missing_blobs'])} blobs named by the database were missing "
                   "(run `cove fsck`)", err=True)
        raise typer.Exit(1)


def restore(
    src: Annotated[Path, typer.Argument(help="A folder written by `cove backup`.")],
    data: Annotated[Path, typer.Option("--data", help="The new hub's data folder (must be empty or absent).")],
) -> None:
    """Bring a backup back into a new, empty data folder (then `cove serve --data` it)."""
    os.environ["COVE_DATA"] = str(data)
    from cove.backends import build_backends
    from cove.services.backup import restore as run_restore
    from cove.settings import Settings

    s = Settings()
    if not (src / "manifest.json").is_file():
        typer.echo(f"Error: {src} is not a complete Cove backup (no manifest.json)", err=True)
        raise typer.Exit(1)
    if data.exists() and (not data.is_dir() or any(data.iterdir())):
        typer.echo(f"Error: {data} is not empty; restore into a new folder", err=True)
        raise typer.Exit(1)
    with errors_exit():
        run_restore(src, build_backends(s), echo=lambda line: typer.echo(line, err=True))
    typer.echo(f"Restored {src} into {data.resolve()}; start it with `cove serve --data {data}`", err=True)


def gc(
    grace_hours: Annotated[float, typer.Option(help="Keep anything younger than this (uploads in flight).")] = 24,
    delete: Annotated[bool, typer.Option("--delete", help="Delete; without it, only report (dry run).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Remove LFS objects no repo references and unused Xet data, older than the grace period (dry run by default)."""
    from cove.services.xet_maintenance import collect_garbage, collect_lfs_garbage

    bk = _hub()
    grace = int(grace_hours * 3600)
    lfs = collect_lfs_garbage(bk, grace_seconds=grace, dry_run=not delete)
    xet = collect_garbage(bk, grace_seconds=grace, dry_run=not delete)
    verb = "removed" if delete else "would remove"
    if as_json:
        typer.echo(json.dumps({"deleted": delete, "lfs_objects": lfs.oids, "lfs_bytes": lfs.bytes_freed,
                               "lfs_supported": lfs.supported, "xet_files": xet.files_removed,
                               "xorbs": xet.xorbs_removed, "staged_uploads": xet.staged_removed,
                               "xet_bytes": xet.bytes_freed}, indent=2))
        return
    for oid in lfs.oids:
        typer.echo(f"lfs/{oid}")
    if not lfs.supported:
        typer.echo("LFS objects: skipped (the S3 blob store is not listed)", err=True)
    typer.echo(f"{verb} {len(lfs.oids)} LFS objects ({lfs.bytes_freed / 2**20:.1f} MiB); {xet.files_removed} Xet "
               f"files, {xet.xorbs_removed} xorbs, {xet.staged_removed} staged uploads "
               f"({xet.bytes_freed / 2**20:.1f} MiB)" + ("" if delete else "; --delete to remove them"), err=True)


def register(app: typer.Typer) -> None:
    app.command()(fsck)
    app.command()(backup)
    app.command()(restore)
    app.command()(gc)
