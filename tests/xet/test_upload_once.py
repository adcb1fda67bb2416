"""Xet uploads write each byte once (issue 16 item 5): a xorb body spooled into the blob store's temp folder
becomes its staged upload, then its xorb, by renames (it was spooled, staged and copied: three writes)."""

from __future__ import annotations

import random

import psutil
import pytest

pytestmark = pytest.mark.xet

MB = 1_000_000


def test_xet_upload_writes_each_byte_once(server, alice, api, repo_factory, tmp_path) -> None:
    repo = repo_factory("xonce")
    data = random.Random(77).randbytes(24 * MB)  # random: no compression, no dedup
    path = tmp_path / "w.bin"
    path.write_bytes(data)
    proc = psutil.Process(server.proc.pid)
    before = proc.io_counters().write_chars
    api.upload_file(path_or_fileobj=str(path), path_in_repo="w.bin", repo_id=repo)
    written = proc.io_counters().write_chars - before
    assert written < 1.3 * len(data), f"server wrote {written / len(data):.2f}x the upload"
    assert not [p for p in (server.data / "blobs" / ".tmp").iterdir()]  # no spooled body left behind
    assert (server.data / "blobs" / "xorbs").is_dir()
    url = f"{server.endpoint}/{repo}/resolve/main/w.bin"
    import httpx

    assert httpx.get(url, headers={"authorization": f"Bearer {alice.token}"}).content == data
