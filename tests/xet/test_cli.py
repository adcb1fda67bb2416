"""`cove xet convert` and `cove xet gc` against a live server, checked with the stock clients."""

from __future__ import annotations

import os
import random

import httpx
import pytest
from live import download_in_fresh_client, stats, upload_in_fresh_client
from tests.conftest import cove

pytestmark = pytest.mark.xet


def _head(server, token: str, repo: str, name: str) -> httpx.Response:
    return httpx.head(f"{server.endpoint}/{repo}/resolve/main/{name}", headers={"authorization": f"Bearer {token}"})


def test_convert_then_gc(server, alice, api, repo_factory, tmp_path) -> None:
    repo = repo_factory("convert")
    data = random.Random(31).randbytes(3_000_000)
    path = tmp_path / "old.bin"
    path.write_bytes(data)
    upload_in_fresh_client(alice.token, path, "old.bin", repo, HF_HUB_DISABLE_XET="1")  # classic LFS
    assert "x-xet-hash" not in _head(server, alice.token, repo, "old.bin").headers

    out = cove("xet", "convert", repo)
    assert "converted 1 LFS objects" in out.stderr
    xet_hash = _head(server, alice.token, repo, "old.bin").headers["x-xet-hash"]
    assert xet_hash in out.stdout
    before = stats(server.endpoint, alice.token, repo).get("reconstructions", 0)
    assert download_in_fresh_client(alice.token, repo, "old.bin") == data  # now over Xet
    assert stats(server.endpoint, alice.token, repo).get("reconstructions", 0) > before
    assert "converted 0 LFS objects" in cove("xet", "convert", repo).stderr  # idempotent

    # a second repo holds another Xet file; deleting the first repo leaves its xorbs unused
    keep = repo_factory("keep")
    other = random.Random(32).randbytes(2_000_000)
    (tmp_path / "keep.bin").write_bytes(other)
    upload_in_fresh_client(alice.token, tmp_path / "keep.bin", "keep.bin", keep)
    api.delete_repo(repo)
    assert "would remove 0 files, 0 xorbs" in cove("xet", "gc", "--dry-run").stdout  # all inside the grace period
    dry = cove("xet", "gc", "--grace-hours", "0", "--dry-run").stdout
    assert dry.startswith("would remove 1 files, 1 xorbs"), dry
    assert cove("xet", "gc", "--grace-hours", "0").stdout.startswith("removed 1 files, 1 xorbs")
    assert cove("xet", "gc", "--grace-hours", "0").stdout.startswith("removed 0 files, 0 xorbs")
    assert download_in_fresh_client(alice.token, keep, "keep.bin") == other


def test_convert_unknown_repo(server) -> None:
    out = cove("xet", "convert", "nobody/" + os.urandom(4).hex(), check=False)
    assert out.returncode == 1 and "Error:" in out.stderr
