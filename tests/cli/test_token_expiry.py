"""An expired token is refused everywhere, the remembered answers of a repeated HEAD /resolve included."""

from __future__ import annotations

import time
import uuid

import httpx

from tests.conftest import ENDPOINT, cove


def test_expired_token_is_refused_by_the_head_cache(api, repo_factory, no_xet) -> None:
    repo_id = repo_factory("expiry")
    api.upload_file(path_or_fileobj=b"x" * 2000, path_in_repo="w.bin", repo_id=repo_id)
    secret = cove("token", "create", "alice", "--expires", "4s", "--name", f"exp-{uuid.uuid4().hex[:6]}").stdout.strip()
    headers = {"Authorization": f"Bearer {secret}"}
    url = f"{ENDPOINT}/{repo_id}/resolve/main/w.bin"
    assert [httpx.head(url, headers=headers).status_code for _ in range(3)] == [200] * 3
    time.sleep(4.5)
    assert httpx.head(url, headers=headers).status_code == 401
    assert httpx.get(f"{ENDPOINT}/api/whoami-v2", headers=headers).status_code == 401
