"""Auth: whoami-v2, login, read vs write tokens, anonymous reads, invalid tokens."""

from __future__ import annotations

import httpx
import pytest
from huggingface_hub import HfApi, login
from huggingface_hub.errors import HfHubHTTPError

from tests.conftest import ENDPOINT


def test_whoami_lists_user_and_orgs(api, acme):
    me = api.whoami()
    assert me["name"] == "alice"
    assert me["type"] == "user"
    assert "acme" in [o["name"] for o in me["orgs"]]
    assert me["auth"]["accessToken"]["role"] == "write"
    assert me["auth"]["accessToken"]["displayName"] == "tests-write"


def test_login_stores_token(alice, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "token"))
    monkeypatch.setattr("huggingface_hub.constants.HF_STORED_TOKENS_PATH", str(tmp_path / "stored_tokens"))
    login(token=alice.token)
    assert (tmp_path / "token").read_text().strip() == alice.token


def test_invalid_token_is_401_with_hub_message(server):
    r = httpx.get(f"{ENDPOINT}/api/whoami-v2", headers={"authorization": "Bearer cove_nope"})
    assert r.status_code == 401
    assert r.headers["x-error-message"] == "Invalid credentials in Authorization header"
    with pytest.raises(HfHubHTTPError) as e:
        HfApi(endpoint=ENDPOINT, token="cove_nope").whoami()
    assert e.value.response.status_code == 401


def test_read_token_cannot_create_or_commit(alice, repo_factory):
    repo_id = repo_factory("ro")
    ro = HfApi(endpoint=ENDPOINT, token=alice.read_token)
    assert ro.whoami()["auth"]["accessToken"]["role"] == "read"
    with pytest.raises(HfHubHTTPError) as e:
        ro.create_repo("alice/should-not-exist")
    assert e.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as e:
        ro.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
    assert e.value.response.status_code == 403
    assert ro.list_repo_files(repo_id) == [".gitattributes"]


def test_anonymous_reads_public_repo(anon_api, api, repo_factory):
    repo_id = repo_factory("pub")
    api.upload_file(path_or_fileobj=b"hello", path_in_repo="hello.txt", repo_id=repo_id)
    assert anon_api.model_info(repo_id).id == repo_id
    r = httpx.get(f"{ENDPOINT}/{repo_id}/resolve/main/hello.txt")
    assert r.status_code == 200 and r.content == b"hello"


def test_anonymous_read_can_be_switched_off(tmp_path, alice):
    from tests.conftest import free_port, start_server, stop_server

    srv = start_server(tmp_path / "data", free_port(), COVE_ANONYMOUS_READ="false")
    try:
        r = httpx.get(f"{srv.endpoint}/api/models")
        assert r.status_code == 401
        r = httpx.head(f"{srv.endpoint}/someone/some-model/resolve/main/config.json")
        assert r.status_code == 401
        assert httpx.get(f"{srv.endpoint}/api/agent-harnesses").status_code == 200
    finally:
        stop_server(srv.proc)
