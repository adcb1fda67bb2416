"""`cove git maintain` and `cove git stats`: git maintenance now, and what the hub's repos hold (docs/scale-out.md)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

git_app = typer.Typer(help="Git storage: maintenance (repack/gc) and statistics.", no_args_is_help=True)


def _hub():  # noqa: ANN202
    from cove.cli.admin import _backends

    return _backends()


@git_app.command("maintain")
def maintain(
    force: Annotated[bool, typer.Option("--all", help="Every repo, not only those with loose objects/packs.")]
    = False,
) -> None:
    """Run a git maintenance pass now (`git gc` per repo), unless a serving process is running one; prints its
    report (loose objects, packs and dangling commits before and after) as JSON."""
    from cove.services import git_maintenance

    report = git_maintenance.run_once(_hub(), due=False, force=force, duty=0)  # no requests to yield to
    if report is None:
        typer.echo("Error: another process is running a git maintenance pass; try again later.", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(asdict(report), indent=2))


@git_app.command("stats")
def stats(
    dangling: Annotated[bool, typer.Option("--dangling", help="Also count dangling commits (a git fsck per repo).")]
    = False,
) -> None:
    """How many repos, refs, objects and packs the hub's git storage holds (percentiles per repo), as JSON."""
    from cove.services import git_maintenance

    typer.echo(json.dumps(git_maintenance.survey(_hub(), dangling=dangling), indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(git_app, name="git")
