"""`cove fsck` finds a corrupted LFS blob, a corrupted xorb and a stale index row; `--repair` fixes the row."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
from huggingface_hub import constants

from tests.ops_data.conftest import Hub, cove_at


def _flip_byte(path) -> None:  # noqa: ANN001
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _blob(hub: Hub, ns: str, name: str):  # noqa: ANN202
    return hub.data / "blobs" / ns / name[:2] / name[2:4] / name


def test_fsck_finds_a_corrupt_blob_and_a_stale_index_row(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    api = hub.api()
    repo_id = f"{hub.user}/fsck-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id)
    payload = os.urandom(40_000)
    oid = hashlib.sha256(payload).hexdigest()
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # classic LFS: the blob is lfs/<sha256>
    api.upload_file(path_or_fileobj=payload, path_in_repo="weights.bin", repo_id=repo_id)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    api.upload_file(path_or_fileobj=os.urandom(70_000), path_in_repo="xet.bin", repo_id=repo_id)

    clean = cove_at(hub.data, "fsck", "--json", check=False)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    report = json.loads(clean.stdout)
    assert report["ok"] and report["checked"]["lfs_blobs"] >= 1 and report["checked"]["xorbs"] >= 1

    # A flipped byte in an LFS blob, and in a xorb.
    lfs_path = _blob(hub, "lfs", oid)
    xorbs = [p for p in (hub.data / "blobs" / "xorbs").rglob("*") if p.is_file()]
    assert lfs_path.is_file() and xorbs
    originals = {p: p.read_bytes() for p in (lfs_path, *xorbs)}
    for p in originals:
        _flip_byte(p)
    try:
        bad = cove_at(hub.data, "fsck", check=False)
        assert bad.returncode == 1
        assert f"blob-corrupt\tlfs/{oid}" in bad.stdout
        assert any(f"blob-corrupt\txorbs/{p.name}" in bad.stdout for p in xorbs), bad.stdout
    finally:
        for p, body in originals.items():
            p.write_bytes(body)

    # main moved behind the index's back (as a crash between the ref update and the index would leave it).
    git = hub.storage_path(repo_id)
    first = api.list_repo_commits(repo_id)[-1].commit_id
    subprocess.run(["git", "update-ref", "refs/heads/main", first], cwd=git, check=True)
    stale = cove_at(hub.data, "fsck", "--json", check=False)
    assert stale.returncode == 1
    problems = json.loads(stale.stdout)["problems"]
    assert [p["kind"] for p in problems] == ["index-stale"], problems
    assert first in problems[0]["detail"]

    fixed = cove_at(hub.data, "fsck", "--repair", check=False)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "[repaired]" in fixed.stdout
    assert cove_at(hub.data, "fsck", check=False).returncode == 0
    assert api.repo_info(repo_id).sha == first


def test_fsck_repair_removes_orphan_temp_files_a_running_server_is_not_writing(hub: Hub) -> None:
    import time

    tmp = hub.data / "tmp" / "multipart" / f"1-{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    old, fresh = tmp / "part-1", hub.data / "blobs" / ".tmp" / f"tmp{uuid.uuid4().hex[:8]}"
    old.write_bytes(b"left by a killed server")
    fresh.write_bytes(b"an upload in flight")
    t = time.time() - 30 * 3600  # older than COVE_TMP_MAX_AGE (25 h): the server holds serve.lock
    os.utime(old, (t, t))

    found = cove_at(hub.data, "fsck", "--json", check=False)
    assert found.returncode == 1
    assert [(p["kind"], p["subject"]) for p in json.loads(found.stdout)["problems"]] == [("temp-orphan", str(old))]
    assert old.exists()
    fixed = cove_at(hub.data, "fsck", "--repair", check=False)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert not old.exists() and fresh.exists()
    fresh.unlink()
