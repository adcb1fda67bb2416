"""Helpers for Xet tests against the live `cove serve` of tests/conftest.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

_UPLOAD = """
import json, os, sys
from huggingface_hub import HfApi
api = HfApi(endpoint=os.environ["HF_ENDPOINT"], token=os.environ["COVE_TEST_TOKEN"])
info = api.upload_file(path_or_fileobj=sys.argv[1], path_in_repo=sys.argv[2], repo_id=sys.argv[3],
                       repo_type=sys.argv[4])
print(json.dumps({"oid": info.oid}))
"""

_DOWNLOAD = """
import os, sys
from huggingface_hub import hf_hub_download
print(hf_hub_download(sys.argv[1], sys.argv[2], repo_type=sys.argv[3], token=os.environ["COVE_TEST_TOKEN"]))
"""


def fresh_client_env(token: str, **extra: str) -> dict[str, str]:
    """Environment for a client process with empty HF/Xet caches (so no local dedup hides the server)."""
    home = tempfile.mkdtemp(prefix="hf-home-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_XET")}
    env.update(
        HF_HOME=home,
        HF_XET_CACHE=str(Path(home) / "xet"),
        HF_XET_TELEMETRY_ENABLED="0",
        COVE_TEST_TOKEN=token,
        **extra,
    )
    return env


def upload_in_fresh_client(
    token: str, path: Path, path_in_repo: str, repo_id: str, repo_type: str = "model", **env: str
) -> None:
    subprocess.run(
        [sys.executable, "-c", _UPLOAD, str(path), path_in_repo, repo_id, repo_type],
        env=fresh_client_env(token, **env),
        check=True,
        capture_output=True,
        timeout=300,
    )


def download_in_fresh_client(token: str, repo_id: str, filename: str, repo_type: str = "model", **env: str) -> bytes:
    out = subprocess.run(
        [sys.executable, "-c", _DOWNLOAD, repo_id, filename, repo_type],
        env=fresh_client_env(token, **env),
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return Path(out.stdout.strip().splitlines()[-1]).read_bytes()


def stats(endpoint: str, token: str, repo_id: str, repo_type: str = "model") -> dict[str, int]:
    """Transfer counters of one repo (the token must be able to read it)."""
    r = httpx.get(
        f"{endpoint}/cas/_stats",
        params={"repo": f"{repo_type}/{repo_id}"},
        headers={"authorization": f"Bearer {token}"},
    )
    r.raise_for_status()
    return r.json()


def xet_token(
    endpoint: str, token: str | None, repo_id: str, scope: str, rev: str = "main", plural: str = "models"
) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{endpoint}/api/{plural}/{repo_id}/xet-{scope}-token/{rev}", headers=headers)


def cas(token_json: dict) -> tuple[str, dict[str, str]]:
    return token_json["casUrl"], {"authorization": f"Bearer {token_json['accessToken']}"}


def dumps(obj: object) -> str:
    return json.dumps(obj)
