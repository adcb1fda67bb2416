"""Issue 10, findings 10-12 and part of 17: sign-in throttling, org roles, capabilities that outlive access,
read tokens that write."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
import uuid

import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from tests.conftest import ENDPOINT, SERVER_ENV, cove, free_port, start_server, stop_server

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _ip() -> str:
    """A client address of its own (uvicorn takes `X-Forwarded-For` from loopback, as behind a proxy)."""
    b = os.urandom(3)
    return f"10.{b[0]}.{b[1]}.{b[2] or 1}"


def _login(endpoint: str, user: str, password: str, ip: str) -> httpx.Response:
    with httpx.Client(base_url=endpoint, timeout=30, headers={"x-forwarded-for": ip}) as c:
        csrf = _CSRF.search(c.get("/login").text).group(1)  # type: ignore[union-attr]
        return c.post("/login", data={"csrf_token": csrf, "username": user, "password": password})


def _status(exc: pytest.ExceptionInfo) -> int:
    return exc.value.response.status_code


# --- 10: throttling ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """A server of its own with small budgets and short blocks, so waiting one out takes seconds."""
    data = tmp_path_factory.mktemp("strict") / "data"
    env = {"COVE_AUTH_ACCOUNT_FAILURES": "3", "COVE_AUTH_CLIENT_FAILURES": "8", "COVE_AUTH_LOCKOUT": "2",
           "COVE_AUTH_MAX_LOCKOUT": "4"}
    srv = start_server(data, free_port(), **env)

    def cli(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "cove", *args], env={**SERVER_ENV, "COVE_DATA": str(data)},
                              capture_output=True, text=True, check=True).stdout.strip()

    srv.cli = cli  # type: ignore[attr-defined]
    yield srv
    stop_server(srv.proc)


def test_password_guessing_is_throttled_per_account(server):
    """The attack: 200 wrong passwords in 34 s, then the right one accepted. Now the account's sign-in answers
    429 with Retry-After after 5 failures, whichever addresses the guesses come from; tokens still work."""
    user = f"victim-{uuid.uuid4().hex[:8]}"
    cove("user", "add", user, "--password", "right-password")
    token = cove("token", "create", user, "--role", "read").stdout.strip()
    for _ in range(5):
        assert _login(ENDPOINT, user, "wrong", _ip()).status_code == 401
    r = _login(ENDPOINT, user, "right-password", _ip())
    assert r.status_code == 429
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert "Too many failed attempts" in r.text
    # The account's sign-in is throttled, not the account: its tokens keep working.
    assert HfApi(endpoint=ENDPOINT, token=token).whoami()["name"] == user
    # A name that does not exist is throttled the same way (the answer tells nothing about who exists).
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    for _ in range(5):
        assert _login(ENDPOINT, ghost, "x", _ip()).status_code == 401
    assert _login(ENDPOINT, ghost, "x", _ip()).status_code == 429


def test_owner_gets_in_once_the_block_passes(strict):
    user = f"owner-{uuid.uuid4().hex[:8]}"
    strict.cli("user", "add", user, "--password", "right-password")
    for _ in range(3):
        assert _login(strict.endpoint, user, "wrong", _ip()).status_code == 401
    blocked = _login(strict.endpoint, user, "right-password", _ip())
    assert blocked.status_code == 429
    time.sleep(int(blocked.headers["retry-after"]) + 0.5)
    assert _login(strict.endpoint, user, "right-password", _ip()).status_code == 303
    # A success clears the account's count: two more mistakes do not block it.
    for _ in range(2):
        assert _login(strict.endpoint, user, "wrong", _ip()).status_code == 401
    assert _login(strict.endpoint, user, "right-password", _ip()).status_code == 303


def test_repeated_blocks_last_longer(strict):
    user = f"backoff-{uuid.uuid4().hex[:8]}"
    strict.cli("user", "add", user, "--password", "pw")
    waits = []
    for _ in range(2):
        for _ in range(3):
            assert _login(strict.endpoint, user, "wrong", _ip()).status_code == 401
        r = _login(strict.endpoint, user, "wrong", _ip())
        assert r.status_code == 429
        waits.append(int(r.headers["retry-after"]))
        time.sleep(waits[-1] + 0.5)
    assert waits[1] > waits[0]


def test_invalid_tokens_are_throttled_per_client(strict):
    """Token guessing from one address: past its budget every token it sends gets 429 (a right guess too);
    other clients are not affected."""
    user = f"tok-{uuid.uuid4().hex[:8]}"
    strict.cli("user", "add", user)
    token = strict.cli("token", "create", user, "--role", "read")
    ip = _ip()
    url = f"{strict.endpoint}/api/whoami-v2"

    def who(tok: str, addr: str) -> httpx.Response:
        return httpx.get(url, headers={"authorization": f"Bearer {tok}", "x-forwarded-for": addr})

    for _ in range(8):
        assert who(f"cove_{uuid.uuid4().hex}", ip).status_code == 401
    r = who(f"cove_{uuid.uuid4().hex}", ip)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert who(token, ip).status_code == 429  # a right guess gains nothing while blocked
    assert who(token, _ip()).status_code == 200
    # git and the LFS batch API answer the same.
    git = httpx.get(f"{strict.endpoint}/{user}/x.git/info/refs?service=git-upload-pack",
                    auth=(user, token), headers={"x-forwarded-for": ip})
    assert git.status_code == 429
    # Password guesses across many accounts from one address spend the same client budget.
    sprayer = _ip()
    for i in range(8):
        assert _login(strict.endpoint, f"spray{i}-{uuid.uuid4().hex[:6]}", "x", sprayer).status_code == 401
    assert _login(strict.endpoint, user, "x", sprayer).status_code == 429


# --- 11: org roles ----------------------------------------------------------------------------------


@pytest.fixture
def org_repo(api, alice, bob):
    """A public model in a fresh org where alice is admin and bob has `write`."""
    org = f"org-{uuid.uuid4().hex[:8]}"
    cove("org", "add", org, "--owner", "alice")
    cove("org", "member", "add", org, "bob", "--role", "write")
    repo_id = f"{org}/m-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    return org, repo_id


def test_write_member_cannot_move_delete_or_change_visibility(api, bob_api, bob, org_repo):
    org, repo_id = org_repo
    with pytest.raises(HfHubHTTPError) as e:
        bob_api.move_repo(repo_id, f"bob/stolen-{uuid.uuid4().hex[:6]}")
    assert _status(e) == 403
    with pytest.raises(HfHubHTTPError) as e:
        bob_api.move_repo(repo_id, f"{org}/renamed-{uuid.uuid4().hex[:6]}")
    assert _status(e) == 403
    with pytest.raises(HfHubHTTPError) as e:
        bob_api.update_repo_settings(repo_id, private=True)
    assert _status(e) == 403
    with pytest.raises(HfHubHTTPError) as e:
        bob_api.update_repo_settings(repo_id, gated="auto")
    assert _status(e) == 403
    with pytest.raises(HfHubHTTPError) as e:
        bob_api.delete_repo(repo_id)
    assert _status(e) == 403
    info = api.model_info(repo_id)
    assert info.id == repo_id and not info.private and not info.gated
    # Writing is still theirs: push a file, create a repo in the org.
    bob_api.upload_file(path_or_fileobj=b"hi", path_in_repo="bob.txt", repo_id=repo_id)
    bob_api.create_repo(f"{org}/bobs-{uuid.uuid4().hex[:6]}")
    # The web settings page is the admins' too.
    with httpx.Client(base_url=ENDPOINT, cookies={"cove_session": bob.token}) as c:
        assert c.get(f"/{repo_id}/settings").status_code == 403


def test_admin_moves_changes_and_deletes(api, org_repo):
    org, repo_id = org_repo
    api.update_repo_settings(repo_id, private=True, gated="auto")
    new_id = f"{org}/renamed-{uuid.uuid4().hex[:6]}"
    api.move_repo(repo_id, new_id)
    assert api.model_info(new_id).private
    api.delete_repo(new_id)
    assert not api.repo_exists(new_id)


# --- 12: capabilities re-checked --------------------------------------------------------------------


def _lfs_href(repo_id: str, data: bytes, auth: tuple[str, str] | None) -> tuple[str, int]:
    batch = {"operation": "download", "objects": [{"oid": hashlib.sha256(data).hexdigest(), "size": len(data)}]}
    r = httpx.post(f"{ENDPOINT}/{repo_id}.git/info/lfs/objects/batch", json=batch, auth=auth)
    assert r.status_code == 200, r.text
    action = r.json()["objects"][0]["actions"]["download"]
    return action["href"], action["expires_in"]


def test_lfs_download_url_stops_when_access_ends(api, bob, no_xet):
    org = f"org-{uuid.uuid4().hex[:8]}"
    cove("org", "add", org, "--owner", "alice")
    cove("org", "member", "add", org, "bob", "--role", "read")
    repo_id = f"{org}/private-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id, private=True)
    data = os.urandom(20_000)
    api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=repo_id)
    href, ttl = _lfs_href(repo_id, data, ("bob", bob.read_token))
    assert ttl <= 3600
    assert httpx.get(href).content == data
    cove("org", "member", "remove", org, "bob")
    gone = httpx.get(href)
    assert gone.status_code == 404 and gone.headers["x-error-code"] == "RepoNotFound"
    assert gone.json() == {"error": "Repository not found"}

    # Made private: an anonymous URL of the public repo stops too.
    public = f"alice/public-{uuid.uuid4().hex[:6]}"
    api.create_repo(public)
    api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=public)
    href, _ = _lfs_href(public, data, None)
    assert httpx.get(href).status_code == 200
    api.update_repo_settings(public, private=True)
    assert httpx.get(href).status_code == 404
    api.delete_repo(public)


def test_cas_read_token_stops_when_access_ends(api, alice, bob):
    org = f"org-{uuid.uuid4().hex[:8]}"
    cove("org", "add", org, "--owner", "alice")
    cove("org", "member", "add", org, "bob", "--role", "read")
    repo_id = f"{org}/private-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id, private=True)
    api.upload_file(path_or_fileobj=os.urandom(200_000), path_in_repo="w.bin", repo_id=repo_id)
    head = httpx.head(f"{ENDPOINT}/{repo_id}/resolve/main/w.bin", headers={"authorization": f"Bearer {alice.token}"})
    xet_hash = head.headers["x-xet-hash"]
    r = httpx.get(f"{ENDPOINT}/api/models/{repo_id}/xet-read-token/main",
                  headers={"authorization": f"Bearer {bob.read_token}"})
    assert r.status_code == 200
    assert r.json()["exp"] - time.time() <= 900 + 5  # short-lived: hf_xet refreshes it through this route
    cas = {"authorization": f"Bearer {r.json()['accessToken']}"}
    recon = f"{ENDPOINT}/cas/v2/reconstructions/{xet_hash}"
    assert httpx.get(recon, headers=cas).status_code == 200
    cove("org", "member", "remove", org, "bob")
    assert httpx.get(recon, headers=cas).status_code == 401
    assert httpx.head(f"{ENDPOINT}/cas/v1/files/{xet_hash}", headers=cas).status_code == 401


# --- 17 (part): read tokens do not write -----------------------------------------------------------


def test_read_token_cannot_open_discussions_or_like(bob, repo_factory):
    repo_id = repo_factory("talk")
    ro = {"authorization": f"Bearer {bob.read_token}"}
    rw = {"authorization": f"Bearer {bob.token}"}
    discuss = f"{ENDPOINT}/api/models/{repo_id}/discussions"
    like = f"{ENDPOINT}/api/models/{repo_id}/like"
    assert httpx.post(discuss, json={"title": "spam"}, headers=ro).status_code == 403
    assert httpx.post(like, headers=ro).status_code == 403
    assert httpx.delete(like, headers=ro).status_code == 403
    assert httpx.get(discuss, headers=ro).json()["count"] == 0
    assert httpx.post(discuss, json={"title": "hello"}, headers=rw).status_code == 200
    assert httpx.post(like, headers=rw).status_code == 200
    assert HfApi(endpoint=ENDPOINT).model_info(repo_id).likes == 1

