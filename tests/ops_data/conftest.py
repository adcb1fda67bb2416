"""A hub of its own for the operator commands (fsck, backup, gc look at every repo of a hub)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import SERVER_ENV, Server, free_port, start_server, stop_server


def cove_at(data: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the `cove` CLI against the hub in `data`."""
    return subprocess.run([sys.executable, "-m", "cove", *args], env={**SERVER_ENV, "COVE_DATA": str(data)},
                          capture_output=True, text=True, check=check)


@dataclass
class Hub:
    server: Server
    user: str
    token: str

    @property
    def data(self) -> Path:
        return self.server.data

    def api(self):  # noqa: ANN201
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.server.endpoint, token=self.token)

    def storage_path(self, repo_id: str) -> Path:
        ns, name = repo_id.split("/")
        with sqlite3.connect(self.data / "cove.db") as conn:
            (key,) = conn.execute("SELECT storage_key FROM repos WHERE namespace=? AND name=?", (ns, name)).fetchone()
        return self.data / "repos" / key[:2] / f"{key}.git"


def make_hub(root: Path) -> Hub:
    srv = start_server(root / "data", free_port())
    user = f"op{uuid.uuid4().hex[:6]}"
    cove_at(srv.data, "user", "add", user)
    token = cove_at(srv.data, "token", "create", user, "--role", "write").stdout.strip()
    return Hub(srv, user, token)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Hub:
    h = make_hub(tmp_path_factory.mktemp("ops-hub"))
    try:
        yield h
    finally:
        stop_server(h.server.proc)
