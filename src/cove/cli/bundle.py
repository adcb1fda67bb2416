"""`cove bundle keygen|export|import`: signed bundles that carry repos across an air gap (docs/bundles.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cove.cli.exits import errors_exit

bundle_app = typer.Typer(help="Carry repos to another hub in one signed file, with the same commit ids.",
                         no_args_is_help=True)


def _default_key() -> Path:
    from cove.cli.admin import hub_settings

    return hub_settings().data / "bundle-keys" / "cove-bundle.key"


@bundle_app.command("keygen")
def keygen(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Private key file (default: "
                                             "<data>/bundle-keys/cove-bundle.key); the public key goes to OUT.pub.")]
    = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key pair.")] = False,
) -> None:
    """Make an Ed25519 key pair: the private key (mode 0600) signs exports, the public key verifies imports."""
    from cove.services.bundle_keys import keygen as make

    with errors_exit():
        private, public = make(out or _default_key(), force=force)
    typer.echo(f"Private key (keep it on this side, mode 0600): {private}", err=True)
    typer.echo(f"Public key (give it to the importing side): {public}", err=True)
    typer.echo(public.read_text().strip())


@bundle_app.command("export")
def export(
    repos: Annotated[list[str], typer.Argument(help="REPO[@REV] ...: ns/name (datasets/…, spaces/…); REV a branch, a "
                                                    "tag, or a commit (carried as `main`); no REV: every branch "
                                                    "and tag.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The bundle file to write.")],
    since: Annotated[str | None, typer.Option(help="Incremental: leave out what this revision already holds "
                                                   "(the other side imported it before).")] = None,
    key: Annotated[Path | None, typer.Option(help="Private key (default: the one `cove bundle keygen` made).")]
    = None,
) -> None:
    """Write the repos' git history, every LFS/Xet file it points at, their metadata and a signed manifest."""
    from cove.cli.ops import _hub
    from cove.services import bundle_keys, bundles

    start = time.monotonic()
    with errors_exit(OSError):
        private = bundle_keys.load_private(key or _default_key())
        report = bundles.export(_hub(), [bundles.parse_spec(r) for r in repos], out, private, since=since,
                                echo=lambda line: typer.echo(line, err=True))
    for r in report.repos:
        typer.echo(f"{r['type']} {r['id']}: {r['commits']} commits, {r['lfs']} LFS files, refs "
                   + ", ".join(f"{ref}={sha[:12]}" for ref, sha in r["refs"].items()))
    took = time.monotonic() - start
    typer.echo(f"Wrote {out} ({report.size / 2**20:.1f} MiB: {len(report.repos)} repos, {report.lfs_files} LFS files "
               f"of {report.lfs_bytes / 2**20:.1f} MiB) in {took:.1f}s", err=True)


@bundle_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A file written by `cove bundle export`.")],
    key: Annotated[Path, typer.Option(help="The exporting side's public key (its OUT.pub).")],
) -> None:
    """Verify the signature and every hash, then make the repos appear here with the same commit ids.

    Importing again, or a bundle that overlaps what is here, changes nothing that is already in place; refs
    only fast-forward (a diverged branch refuses the whole bundle)."""
    from cove.cli.admin import admin_actor
    from cove.cli.ops import _hub
    from cove.services import bundle_keys, bundles

    start = time.monotonic()
    with errors_exit(OSError):
        public = bundle_keys.load_public(key)
        lines = bundles.import_bundle(_hub(), file, public, admin_actor(),
                                      echo=lambda line: typer.echo(line, err=True))
    for line in lines:
        typer.echo(line)
    typer.echo(f"Imported {file} in {time.monotonic() - start:.1f}s", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(bundle_app, name="bundle")
