"""Refuse a busy port before `cove serve` or `cove demo` claims anything (migrations, accounts, a child)."""

from __future__ import annotations

import socket

import typer


def port_in_use(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be bound now (the OS error), or None when it can.

    The probe binds as uvicorn does (``SO_REUSEADDR``), so a port in TIME_WAIT counts as free and a listening
    one as busy.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            return err.strerror or str(err)
    return None


def refuse_busy_port(host: str, port: int) -> None:
    """Exit 1 with a clear message when ``host:port`` is taken (often an earlier Cove still running)."""
    reason = port_in_use(host, port)
    if reason is not None:
        typer.echo(f"error: cannot listen on {host}:{port} ({reason}): another process, perhaps an earlier "
                   f"`cove serve` or `cove demo`, holds it. Stop it, or pick another port with --port "
                   f"(COVE_PORT).", err=True)
        raise typer.Exit(1)
