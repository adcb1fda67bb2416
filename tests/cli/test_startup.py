"""An admin command's start-up stays light: no migration run, no server, client, git or numpy imports."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import SERVER_ENV

#: Modules an account or token command has no use for (each costs tens to hundreds of ms to import).
HEAVY = ("alembic", "numpy", "pygit2", "fastapi", "uvicorn", "starlette", "huggingface_hub", "torch", "transformers",
         "cove.services.xet", "cove.services.repos", "cove.train")


def _imported(*args: str) -> set[str]:
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "cove", *args], env=SERVER_ENV,
                       capture_output=True, text=True, check=True)
    return {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}


def test_account_commands_import_nothing_heavy(server, alice) -> None:
    for args in (("user", "list"), ("token", "list", "alice"), ("org", "list")):
        loaded = _imported(*args)
        heavy = sorted(loaded & set(HEAVY))
        assert heavy == [], f"cove {' '.join(args)} imported {heavy}"
