"""The `cove` admin CLI: users, orgs, members, tokens (shown once, stored hashed), revoke."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from tests.conftest import DATA, ENDPOINT, cove


def test_help_lists_commands():
    out = cove("--help").stdout
    for cmd in ("serve", "user", "org", "token", "revert"):
        assert cmd in out


def test_user_token_lifecycle(server):
    cove("user", "add", "carol")
    assert "carol" in cove("user", "list").stdout
    token = cove("token", "create", "carol", "--role", "write", "--name", "laptop").stdout.strip()
    assert token.startswith("cove_") and "\n" not in token
    listing = cove("token", "list", "carol").stdout
    assert "laptop" in listing and token not in listing
    with sqlite3.connect(DATA / "cove.db") as db:
        stored = [r[0] for r in db.execute("select token_hash from tokens")]
    assert token not in stored and all(len(h) == 64 for h in stored)
    assert HfApi(endpoint=ENDPOINT, token=token).whoami()["name"] == "carol"
    cove("token", "revoke", "carol", "laptop")
    r = httpx.get(f"{ENDPOINT}/api/whoami-v2", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert cove("user", "add", "carol", check=False).returncode == 1
    cove("user", "remove", "carol")
    assert "carol" not in cove("user", "list").stdout


def test_org_membership_grants_write(server, bob):
    cove("org", "add", "lab")
    bob_api = HfApi(endpoint=ENDPOINT, token=bob.token)
    with pytest.raises(HfHubHTTPError):
        bob_api.create_repo("lab/x")
    cove("org", "member", "add", "lab", "bob")
    bob_api.create_repo("lab/x")
    assert "lab" in [o["name"] for o in bob_api.whoami()["orgs"]]
    cove("org", "member", "remove", "lab", "bob")
    with pytest.raises(HfHubHTTPError):
        bob_api.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id="lab/x")
