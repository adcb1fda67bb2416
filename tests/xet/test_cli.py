"""`cove xet convert` and `cove xet gc` against a live server, checked with the stock clients."""

from __future__ import annotations

import os
import random
import re

import httpx
import pytest
from live import download_in_fresh_client, stats, upload_in_fresh_client
from tests.conftest import cove

pytestmark = pytest.mark.xet


def _head(server, token: str, repo: str, name: str) -> httpx.Response:
    return httpx.head(f"{server.endpoint}/{repo}/resolve/main/{name}", headers={"authorization": f"Bearer {token}"})


def _gc_counts(*args: str) -> tuple[int, int]:
    """(files, xorbs) that `cove xet gc` removed or would remove."""
    out = cove("xet", "gc", *args).stdout
    found = re.match(r"(?:would remove|removed) (\d+) files, (\d+) xorbs", out)
    assert found, out
    return int(found[1]), int(found[2])


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
    # the session server may hold leftovers of other tests' deleted repos: compare counts around the deletion
    before = _gc_counts("--grace-hours", "0", "--dry-run")
    api.delete_repo(repo)
    assert _gc_counts("--dry-run") == (0, 0)  # everything is inside the grace period
    assert _gc_counts("--grace-hours", "0", "--dry-run") == (before[0] + 1, before[1] + 1)
    assert _gc_counts("--grace-hours", "0") == (before[0] + 1, before[1] + 1)
    assert _gc_counts("--grace-hours", "0") == (0, 0)
    assert download_in_fresh_client(alice.token, keep, "keep.bin") == other


def test_convert_unknown_repo(server) -> None:
    out = cove("xet", "convert", "nobody/" + os.urandom(4).hex(), check=False)
    assert out.returncode == 1 and "Error:" in out.stderr
