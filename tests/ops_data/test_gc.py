"""`cove gc`: a dry run by default; `--delete` removes LFS objects no repo references once past the grace period,
and never one a repo references."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path

import pytest
from huggingface_hub import constants

from tests.ops_data.conftest import Hub, cove_at


def _blob_path(hub: Hub, oid: str):  # noqa: ANN202
    return hub.data / "blobs" / "lfs" / oid[:2] / oid[2:4] / oid


def _age(path, hours: float) -> None:  # noqa: ANN001
    t = time.time() - hours * 3600
    os.utime(path, (t, t))


def test_gc_removes_unreferenced_lfs_objects_after_the_grace_period(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    api = hub.api()
    repo_id = f"{hub.user}/gc-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    kept_body = os.urandom(5000)
    api.upload_file(path_or_fileobj=kept_body, path_in_repo="kept.bin", repo_id=repo_id)
    kept = _blob_path(hub, hashlib.sha256(kept_body).hexdigest())
    assert kept.is_file()
    _age(kept, 48)

    # Blobs no row names (what a deleted repo leaves): one past the grace period, one still inside it.
    old_body, young_body = os.urandom(3000), os.urandom(3000)
    old_oid, young_oid = hashlib.sha256(old_body).hexdigest(), hashlib.sha256(young_body).hexdigest()
    for oid, body in ((old_oid, old_body), (young_oid, young_body)):
        _blob_path(hub, oid).parent.mkdir(parents=True, exist_ok=True)
        _blob_path(hub, oid).write_bytes(body)
    _age(_blob_path(hub, old_oid), 48)

    dry = cove_at(hub.data, "gc", "--grace-hours", "24", "--json")
    report = json.loads(dry.stdout)
    assert report["deleted"] is False
    assert old_oid in report["lfs_objects"]
    assert young_oid not in report["lfs_objects"] and kept.name not in report["lfs_objects"]
    assert _blob_path(hub, old_oid).is_file(), "a dry run deleted a blob"

    cove_at(hub.data, "gc", "--grace-hours", "24", "--delete")
    assert not _blob_path(hub, old_oid).exists()
    assert _blob_path(hub, young_oid).is_file() and kept.is_file()
    got = api.hf_hub_download(repo_id, "kept.bin", cache_dir=str(hub.data.parent / "cache"))
    assert Path(got).read_bytes() == kept_body
    assert cove_at(hub.data, "fsck", check=False).returncode == 0
