"""`cove`: serve the hub, administer accounts and tokens, revert, import and train."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cove.cli import admin, bundle, git, mirror, ops, xet

app = typer.Typer(help="Cove: a self-hosted Hugging Face Hub.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
admin.register(app)
xet.register(app)
ops.register(app)
mirror.register(app)
bundle.register(app)
git.register(app)


@app.callback()
def _main(data: Annotated[Path | None, typer.Option(
        help="The hub's data folder, for every command (else COVE_DATA, then the config file that `cove serve` "
             "records, then ./cove-data if it is a hub).")] = None) -> None:
    if data is not None:
        os.environ["COVE_DATA"] = str(data)


def _record_hub(s) -> None:  # noqa: ANN001 - Settings
    """Pin the data folder for this process's children (workers) and record it for admin commands run anywhere."""
    from cove.settings import record_data

    os.environ["COVE_DATA"] = str(s.data.resolve())
    try:
        path = record_data(s.data)
    except OSError as exc:
        typer.echo(f"Could not record the data folder in the config file ({exc}); admin commands need "
                   f"--data/COVE_DATA={s.data.resolve()}", err=True)
    else:
        typer.echo(f"Data folder recorded in {path} (admin commands run anywhere use it).", err=True)


@app.command()
def init(data: Annotated[Path | None, typer.Option(help="Data folder (COVE_DATA).")] = None) -> None:
    """Create a hub (data folder and database) without serving it, and record it for admin commands."""
    if data is not None:
        os.environ["COVE_DATA"] = str(data)
    from cove.backends import build_backends
    from cove.db.migrate import upgrade
    from cove.settings import Settings

    s = Settings()
    existed = s.is_hub()
    upgrade(build_backends(s))
    s.signing_secret  # noqa: B018 - generated and kept in the data folder now
    _record_hub(s)
    typer.echo(f"{'Hub already at' if existed else 'Created a Cove hub at'} {s.data.resolve()}; "
               "start it with `cove serve`, add a user with `cove user add NAME`.", err=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (COVE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (COVE_PORT).")] = None,
    data: Annotated[Path | None, typer.Option(help="Data folder (COVE_DATA).")] = None,
    endpoint: Annotated[str | None, typer.Option(help="Public URL clients use (COVE_ENDPOINT).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (COVE_WORKERS).")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the hub (embedded default: SQLite and the local data folder)."""
    import uvicorn

    for env, value in (("COVE_HOST", host), ("COVE_PORT", port), ("COVE_DATA", data),
                       ("COVE_ENDPOINT", endpoint), ("COVE_WORKERS", workers)):
        if value is not None:
            os.environ[env] = str(value)
    from cove.settings import Settings

    s = Settings()
    from cove.cli.ports import refuse_busy_port

    refuse_busy_port(s.host, s.port)  # before the data folder or a migration exists
    if not s.secret and not s.db_url.startswith("sqlite"):
        keep = s.data / "secret"
        typer.echo("error: set COVE_SECRET: processes sharing a database must share the secret (signed URLs and "
                   "web sessions made by one are checked by the others), and a generated one may differ per "
                   "process. Generate one with `openssl rand -hex 32`"
                   + (f", or keep this hub's with COVE_SECRET=$(cat {keep})" if keep.is_file() else "") + ".",
                   err=True)
        raise typer.Exit(1)
    s.data.mkdir(parents=True, exist_ok=True)
    from cove.backends import build_backends
    from cove.cli.exits import errors_exit
    from cove.db.migrate import LockTimeout, upgrade

    bk = build_backends(s)
    with errors_exit(LockTimeout):  # another process's migration held the lock past COVE_STARTUP_LOCK_TIMEOUT_S
        upgrade(bk)
    from cove.services.metric_spaces import ensure_metric_spaces

    ensure_metric_spaces(bk)  # evaluate.load(...) works on every hub; one cheap check when current
    _record_hub(s)
    typer.echo(f"Cove serving on {s.public_endpoint} (data: {s.data.resolve()})", err=True)
    if s.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metrics here; /metrics (any worker) sums them (cove.observability).
        import shutil

        mp = s.data / "metrics-multiproc"
        shutil.rmtree(mp, ignore_errors=True)
        mp.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(mp.resolve())
    # uvicorn's access log stays off: it prints raw paths, and LFS/CAS URLs carry secrets in theirs. Cove's own
    # (COVE_ACCESS_LOG) names route templates.
    from cove.zerocopy import ZeroCopyHttpToolsProtocol

    http = ZeroCopyHttpToolsProtocol if s.zerocopy else "auto"
    uvicorn.run("cove.asgi:app", host=s.host, port=s.port, workers=s.workers, log_level=log_level,
                access_log=False, timeout_keep_alive=30, http=http)


if importlib.util.find_spec("cove.cli.train") is not None:
    from cove.cli import train as _train

    _train.register(app)

if importlib.util.find_spec("cove.cli.demo") is not None:
    from cove.cli import demo as _demo

    _demo.register(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
