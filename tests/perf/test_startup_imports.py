"""`cove serve` imports only what its first answer needs (issue 16 item 2): the libraries that a few routes use
(the dataset viewer's pyarrow and numpy, Xet's numpy, the pages' jinja2 and markdown, preupload's pathspec and
regex) load on their first use, and Alembic only when a migration runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import SERVER_ENV, free_port

#: Imported by `cove serve` only once a route that needs them runs (or a migration, for alembic).
LAZY = ("numpy", "pyarrow", "jinja2", "markdown", "pathspec", "regex", "alembic", "pandas", "huggingface_hub",
        "datasets", "transformers", "torch")

#: `cove serve` as the CLI runs it, up to its first answer: uvicorn.run replaced by loading the same app
#: string, running its lifespan and one listing request; then the top-level modules present.
SERVE = """
import json, sys
import uvicorn
from uvicorn.importer import import_from_string

def run(app, **_kw):
    from fastapi.testclient import TestClient

    with TestClient(import_from_string(app)) as client:
        assert client.get("/api/models", params={"limit": 1}).status_code == 200
        print("MODULES " + json.dumps(sorted({m.split(".")[0] for m in sys.modules})), flush=True)

uvicorn.run = run
sys.argv = ["cove", "serve"]
from cove.cli import main
main()
"""


def _modules_after_first_answer(data: Path) -> set[str]:
    env = {**SERVER_ENV, "COVE_DATA": str(data), "COVE_PORT": str(free_port()), "COVE_SCAN_INTERVAL": "0",
           "COVE_CONFIG": str(data.parent / "cove-config.toml")}
    done = subprocess.run([sys.executable, "-c", SERVE], env=env, capture_output=True, text=True, timeout=120)
    line = next((x for x in done.stdout.splitlines() if x.startswith("MODULES ")), None)
    assert line is not None, done.stdout[-2000:] + done.stderr[-4000:]
    return set(json.loads(line.removeprefix("MODULES ")))


def test_serve_answers_without_importing_what_only_some_routes_use(tmp_path: Path) -> None:
    data = tmp_path / "data"
    subprocess.run([sys.executable, "-m", "cove", "init"], check=True, capture_output=True,
                   env={**SERVER_ENV, "COVE_DATA": str(data), "COVE_CONFIG": str(tmp_path / "cove-config.toml")})
    loaded = _modules_after_first_answer(data)  # a hub at its head revision: no migration runs
    assert {"fastapi", "sqlalchemy", "uvicorn"} <= loaded  # the check itself saw the serving process
    assert sorted(loaded.intersection(LAZY)) == []
