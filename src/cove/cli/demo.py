"""`cove demo`: serve Cove seeded with a real model, a real dataset and the metric Spaces."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Annotated

import typer


def demo(
    seed_only: Annotated[bool, typer.Option("--seed-only", help="Seed, then stop (don't keep serving).")] = False,
    port: Annotated[int | None, typer.Option(help="Port (COVE_PORT).")] = None,
) -> None:
    """Start `cove serve`, seed the demo content through the stock client, and keep serving."""
    import urllib.request

    if port is not None:
        os.environ["COVE_PORT"] = str(port)
    from cove.backends import build_backends
    from cove.db.migrate import upgrade
    from cove.demo import ensure_accounts, seed
    from cove.settings import Settings

    settings = Settings()
    bk = build_backends(settings)
    upgrade(bk)
    token = ensure_accounts(bk)
    proc = subprocess.Popen([sys.executable, "-m", "cove", "serve"], env=os.environ.copy())
    try:
        endpoint = settings.public_endpoint
        for _ in range(150):
            try:
                with urllib.request.urlopen(f"{endpoint}/api/agent-harnesses", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:  # not listening yet (URLError is an OSError)
                pass
            if proc.poll() is not None:
                raise typer.Exit(proc.returncode or 1)
            time.sleep(0.2)
        from huggingface_hub import HfApi

        result = seed(HfApi(endpoint=endpoint, token=token))
        typer.echo("\nCove demo is ready.", err=True)
        typer.echo(f"  Web UI:    {endpoint}   (sign in as 'demo', password 'demo')", err=True)
        typer.echo(f"  Seeded:    {', '.join(result.repos)}", err=True)
        for s in result.skipped:
            typer.echo(f"  Skipped:   {s}", err=True)
        typer.echo(f"  Try:       export HF_ENDPOINT={endpoint} HF_TOKEN={token}", err=True)
        typer.echo("             python -c \"from datasets import load_dataset; "
                   "print(load_dataset('zeroshot/twitter-financial-news-sentiment'))\"\n", err=True)
        if seed_only:
            return
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


def register(app: typer.Typer) -> None:
    app.command()(demo)
