"""The admin commands an operator reaches for, through the real CLI against the session server's hub."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

from tests.conftest import ENDPOINT, cove


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_list_commands_answer_json(server, alice, acme, repo_factory) -> None:
    users = json.loads(cove("user", "list", "--json").stdout)
    assert {"name": "alice", "admin": False}.items() <= next(u for u in users if u["name"] == "alice").items()
    orgs = json.loads(cove("org", "list", "--json").stdout)
    assert "acme" in [o["name"] for o in orgs]
    members = json.loads(cove("org", "member", "list", "acme", "--json").stdout)
    assert {"user": "alice", "role": "admin"} in members
    assert "alice\tadmin" in cove("org", "member", "list", "acme").stdout
    tokens = json.loads(cove("token", "list", "alice", "--json").stdout)
    assert {"tests-write", "tests-read"} <= {t["name"] for t in tokens}
    assert alice.token not in json.dumps(tokens)
    repo_id = repo_factory("listed", private=True)
    repos = json.loads(cove("repo", "list", "--json", "--namespace", "alice").stdout)
    assert {"type": "model", "id": repo_id, "private": True, "gated": False}.items() <= next(
        r for r in repos if r["id"] == repo_id).items()
    assert f"model\t{repo_id}\tprivate" in cove("repo", "list").stdout


def test_repo_create_visibility_move_delete(server, alice, bob, acme) -> None:
    api, bob_api = HfApi(endpoint=ENDPOINT, token=alice.token), HfApi(endpoint=ENDPOINT, token=bob.token)
    repo_id = f"acme/{_uid('cli')}"
    r = cove("repo", "create", f"datasets/{repo_id}", "--private")
    assert f"Created private dataset {repo_id}" in r.stderr
    assert api.repo_info(repo_id, repo_type="dataset").private is True
    with pytest.raises(RepositoryNotFoundError):
        bob_api.repo_info(repo_id, repo_type="dataset")
    assert cove("repo", "create", f"datasets/{repo_id}", check=False).returncode == 1  # exists already

    assert "is now public" in cove("repo", "visibility", f"datasets/{repo_id}", "public").stderr
    assert bob_api.repo_info(repo_id, repo_type="dataset").private is False

    moved = f"alice/{_uid('moved')}"
    assert f"to {moved}" in cove("repo", "move", f"datasets/{repo_id}", moved).stderr
    assert api.repo_info(moved, repo_type="dataset").id == moved
    assert api.repo_info(repo_id, repo_type="dataset").id == moved  # the old id redirects, as on the Hub

    assert "Deleted" in cove("repo", "delete", f"datasets/{moved}", "--yes").stderr
    with pytest.raises(RepositoryNotFoundError):
        api.repo_info(moved, repo_type="dataset")
    assert cove("repo", "delete", f"datasets/{moved}", "--yes", check=False).returncode == 1


def test_gate_and_review_access_requests(server, alice, bob, repo_factory, tmp_path) -> None:
    api = HfApi(endpoint=ENDPOINT, token=alice.token)
    repo_id = repo_factory("gated")
    api.upload_file(path_or_fileobj=b"weights", path_in_repo="w.bin", repo_id=repo_id)
    assert "gated (manual)" in cove("repo", "gate", repo_id, "manual").stderr

    def bob_reads() -> bool:
        try:
            hf_hub_download(repo_id, "w.bin", token=bob.token, cache_dir=tmp_path / uuid.uuid4().hex)
        except GatedRepoError:
            return False
        return True

    assert not bob_reads()
    r = httpx.post(f"{ENDPOINT}/api/models/{repo_id}/ask-access", headers={"authorization": f"Bearer {bob.token}"})
    assert r.status_code == 200 and r.json()["status"] == "pending"
    pending = json.loads(cove("access", "list", repo_id, "--json").stdout)
    assert [p["user"] for p in pending] == ["bob"]
    assert "accepted" in cove("access", "approve", repo_id, "bob").stderr
    assert bob_reads()
    assert cove("access", "list", repo_id).stdout.strip() == ""
    assert "rejected" in cove("access", "reject", repo_id, "bob").stderr
    assert not bob_reads()
    assert "bob" in cove("access", "list", repo_id, "--status", "rejected").stdout
    assert "no longer gated" in cove("repo", "gate", repo_id, "off").stderr
    assert bob_reads()


def test_expired_token_is_refused_by_the_server(server, alice) -> None:
    short = cove("token", "create", "alice", "--expires", "3s", "--name", _uid("short"))
    token = short.stdout.strip()
    assert "expires" in short.stderr
    lasting = cove("token", "create", "alice", "--expires", "30d").stdout.strip()
    assert HfApi(endpoint=ENDPOINT, token=token).whoami()["name"] == "alice"
    listing = json.loads(cove("token", "list", "alice", "--json").stdout)
    assert all(t["expires_at"] for t in listing if t["prefix"] in (token[:9], lasting[:9]))
    time.sleep(3.5)
    with pytest.raises(HfHubHTTPError) as exc:
        HfApi(endpoint=ENDPOINT, token=token).whoami()
    assert exc.value.response.status_code == 401
    assert HfApi(endpoint=ENDPOINT, token=lasting).whoami()["name"] == "alice"
    assert cove("token", "create", "alice", "--expires", "2001-01-01", check=False).returncode == 1
    assert cove("token", "create", "alice", "--expires", "soon", check=False).returncode == 2


def test_success_says_what_happened(server) -> None:
    name = _uid("gus")
    r = cove("user", "add", name)
    assert f"Created user {name}" in r.stderr and f"cove user password {name}" in r.stderr
    org = _uid("org")
    assert f"Created org {org} with {name} as admin" in cove("org", "add", org, "--owner", name).stderr
    other = _uid("hal")
    cove("user", "add", other, "--password", "x-password-1")
    assert f"{other} is now read in {org}" in cove("org", "member", "add", org, other, "--role", "read").stderr
    assert f"Removed {other} from {org}" in cove("org", "member", "remove", org, other).stderr
    cove("token", "create", name, "--name", "laptop")
    assert "Revoked" in cove("token", "revoke", name, "laptop").stderr
