"""Gated repos: card and file list visible, contents need access (auto: on request; manual: when granted)."""

from __future__ import annotations

import httpx
import pytest
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import GatedRepoError

from tests.conftest import ENDPOINT


def test_gated_repo_needs_access(api, bob_api, anon_api, repo_factory, cache_dir):
    repo_id = repo_factory("gated")
    api.upload_file(path_or_fileobj=b"---\nlicense: mit\n---\n# Card", path_in_repo="README.md", repo_id=repo_id)
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=repo_id)
    api.update_repo_settings(repo_id, gated="manual")

    assert anon_api.model_info(repo_id).gated == "manual"
    assert "config.json" in anon_api.list_repo_files(repo_id)
    assert httpx.get(f"{ENDPOINT}/{repo_id}/resolve/main/README.md").status_code == 200
    r = httpx.get(f"{ENDPOINT}/{repo_id}/resolve/main/config.json")
    assert r.status_code == 401 and r.headers["x-error-code"] == "GatedRepo"
    with pytest.raises(GatedRepoError):
        hf_hub_download(repo_id, "config.json", cache_dir=cache_dir, token=bob_api.token)
    assert anon_api.repo_exists(repo_id)

    bob_auth = {"authorization": f"Bearer {bob_api.token}"}
    ask = httpx.post(f"{ENDPOINT}/api/models/{repo_id}/ask-access", headers=bob_auth)
    assert ask.json() == {"status": "pending"}
    assert [r.username for r in api.list_pending_access_requests(repo_id)] == ["bob"]
    api.accept_access_request(repo_id, "bob")
    assert hf_hub_download(repo_id, "config.json", cache_dir=cache_dir, token=bob_api.token)
    api.reject_access_request(repo_id, "bob", rejection_reason="no")
    with pytest.raises(GatedRepoError):
        hf_hub_download(repo_id, "config.json", cache_dir=cache_dir / "2", token=bob_api.token)

    api.update_repo_settings(repo_id, gated="auto")
    api.grant_access(repo_id, "bob")
    assert [r.username for r in api.list_accepted_access_requests(repo_id)] == ["bob"]
    assert hf_hub_download(repo_id, "config.json", cache_dir=cache_dir / "3", token=bob_api.token)
