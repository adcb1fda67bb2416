"""How a command ends on a refusal: ``Error: <message>`` on stderr, exit status 1, no traceback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer

from cove.errors import HubError


@contextlib.contextmanager
def errors_exit(*also: type[Exception]) -> Iterator[None]:
    """A `HubError` (and any of ``also``, e.g. `OSError`) raised inside ends the command with exit status 1."""
    try:
        yield
    except HubError as exc:
        typer.echo(f"Error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except also as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None
