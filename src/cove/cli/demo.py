"""`cove demo`: serve Cove seeded with a real model, a real dataset and the metric Spaces."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer


class _Stop(Exception):
    """A signal asked `cove demo` to stop (SIGTERM, SIGHUP); the server child is stopped with it."""


def _raise_stop(signum: int, _frame) -> None:  # noqa: ANN001
    raise _Stop(signum)


def _die_with_parent() -> None:
    """In the child: receive SIGTERM if `cove demo` dies without cleaning up (SIGKILL), Linux only."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _say(msg: str) -> None:
    typer.echo(f"[cove] {msg}", err=True)


def _wait_until_up(endpoint: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Return when the child answers; exit with its status if it dies, with a message if it never answers."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise typer.Exit(proc.returncode or 1)
        try:
            with urllib.request.urlopen(f"{endpoint}/api/agent-harnesses", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:  # not listening yet (URLError is an OSError)
            pass
        time.sleep(0.2)
    typer.echo(f"error: `cove serve` did not answer at {endpoint} within {timeout:.0f} s", err=True)
    raise typer.Exit(1)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def demo(
    seed_only: Annotated[bool, typer.Option("--seed-only", help="Seed, then stop (don't keep serving).")] = False,
    port: Annotated[int | None, typer.Option(help="Port (COVE_PORT).")] = None,
) -> None:
    """Start `cove serve`, seed the demo content through the stock client, and keep serving.

    SIGTERM, SIGINT or SIGHUP stop the server child too; a busy port is refused before anything is created.
    """
    if port is not None:
        os.environ["COVE_PORT"] = str(port)
    from cove.cli.ports import refuse_busy_port
    from cove.settings import Settings

    settings = Settings()
    refuse_busy_port(settings.host, settings.port)  # before the data folder, migrations or a child exist
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_stop)
    from cove.backends import build_backends
    from cove.db.migrate import upgrade
    from cove.demo import SPACE_REPO, ensure_accounts, seed

    _say(f"preparing the hub in {settings.data.resolve()}…")
    settings.data.mkdir(parents=True, exist_ok=True)
    bk = build_backends(settings)
    upgrade(bk)
    token = ensure_accounts(bk)
    endpoint = settings.public_endpoint
    _say(f"starting `cove serve` on {endpoint}…")
    # The demo's terminal shows the progress and the banner, not a line per seeding request (COVE_ACCESS_LOG=text).
    env = {"COVE_ACCESS_LOG": "off", **os.environ}
    proc = subprocess.Popen([sys.executable, "-m", "cove", "serve"], env=env,
                            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    try:
        _wait_until_up(endpoint, proc)
        from huggingface_hub import HfApi

        _say("seeding the demo model, dataset and metric Spaces through huggingface_hub…")
        result = seed(HfApi(endpoint=endpoint, token=token))
        if proc.poll() is not None:  # the server died while seeding: not ready
            raise typer.Exit(proc.returncode or 1)
        typer.echo("\nCove demo is ready.", err=True)
        typer.echo(f"  Web UI:    {endpoint}   (sign in as 'demo', password 'demo')", err=True)
        typer.echo(f"  Data:      {settings.data.resolve()}", err=True)
        typer.echo(f"  Seeded:    {', '.join(result.repos)}", err=True)
        typer.echo(f"  Space:     {endpoint}/spaces/{SPACE_REPO}   (a Gradio app; it builds in the background)",
                   err=True)
        for s in result.skipped:
            typer.echo(f"  Skipped:   {s}", err=True)
        if sys.prefix != sys.base_prefix:  # the commands below need this virtualenv
            typer.echo(f"  Try:       . {Path(sys.prefix) / 'bin' / 'activate'}", err=True)
        typer.echo(f"             export HF_ENDPOINT={endpoint} HF_TOKEN={token}", err=True)
        typer.echo("             python -c \"from datasets import load_dataset; "
                   "print(load_dataset('zeroshot/twitter-financial-news-sentiment'))\"", err=True)
        typer.echo("             hf download zeroshot/twitter-financial-news-sentiment --repo-type dataset", err=True)
        typer.echo("  Stop:      Ctrl-C (or SIGTERM to this process) stops the server too.\n", err=True)
        if seed_only:
            return
        proc.wait()
    except (KeyboardInterrupt, _Stop):
        _say("stopping…")
    finally:
        _stop(proc)


def register(app: typer.Typer) -> None:
    app.command()(demo)
