"""git-lfs through Cove: push large files, clone them back whichever way they were uploaded."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download

from tests.git.conftest import repo_url


def _pointer_oid(path: Path) -> str:
    text = path.read_text()
    assert text.startswith("version https://git-lfs.github.com/spec/v1\n"), text[:80]
    return text.split("oid sha256:")[1].split()[0]


def test_git_lfs_push_then_clone_and_skip_smudge(git, api, alice, repo_factory, tmp_path):
    repo_id = repo_factory("lfs-push")
    work = tmp_path / "work"
    git("clone", "-q", repo_url(repo_id, user=alice), work)
    data = os.urandom(300_000)
    (work / "model.safetensors").write_bytes(data)
    (work / "config.json").write_text('{"hidden_size": 8}\n')
    sha = git.commit_all(work, "weights")
    push = git("push", "origin", "main", cwd=work)
    # Cove has no locks: git-lfs switches lock verification off for this remote, without advice.
    assert "lock" not in push.stderr.lower() and "lock" not in push.stdout.lower()
    assert git.out("config", "--get-regexp", r"lfs\..*\.locksverify", cwd=work).endswith(" false")
    assert api.model_info(repo_id).sha == sha
    # The Hub API sees an LFS file with the real size and sha256.
    info = api.model_info(repo_id, files_metadata=True)
    sib = {s.rfilename: s for s in info.siblings}["model.safetensors"]
    assert sib.size == len(data) and sib.lfs is not None and sib.lfs.sha256 == hashlib.sha256(data).hexdigest()
    path = hf_hub_download(repo_id, "model.safetensors", cache_dir=tmp_path / "cache")
    assert Path(path).read_bytes() == data
    # A fresh clone smudges the file through the LFS download action ...
    git("clone", "-q", repo_url(repo_id), tmp_path / "c1")
    assert (tmp_path / "c1" / "model.safetensors").read_bytes() == data
    # ... and GIT_LFS_SKIP_SMUDGE=1 leaves the pointer.
    git("clone", "-q", repo_url(repo_id), tmp_path / "c2", env={"GIT_LFS_SKIP_SMUDGE": "1"})
    assert _pointer_oid(tmp_path / "c2" / "model.safetensors") == hashlib.sha256(data).hexdigest()
    git("lfs", "pull", cwd=tmp_path / "c2")
    assert (tmp_path / "c2" / "model.safetensors").read_bytes() == data


def test_clone_fetches_lfs_uploaded_through_the_api(git, api, server, repo_factory, tmp_path, no_xet):
    repo_id = repo_factory("lfs-api")
    data = os.urandom(200_000)
    api.upload_file(path_or_fileobj=data, path_in_repo="weights/model.bin", repo_id=repo_id)
    assert list(server.data.glob(f"blobs/lfs/**/{hashlib.sha256(data).hexdigest()}"))  # a plain LFS blob
    git("clone", "-q", repo_url(repo_id), tmp_path / "c")
    assert (tmp_path / "c" / "weights" / "model.bin").read_bytes() == data


@pytest.mark.xet
@pytest.mark.skipif(importlib.util.find_spec("hf_xet") is None, reason="hf_xet is not installed")
def test_clone_fetches_lfs_uploaded_through_xet(git, api, server, repo_factory, tmp_path):
    repo_id = repo_factory("lfs-xet")
    data = os.urandom(150_000)
    api.upload_file(path_or_fileobj=data, path_in_repo="model.safetensors", repo_id=repo_id)
    (entry,) = api.get_paths_info(repo_id, ["model.safetensors"])
    if getattr(entry, "xet_hash", None) is None:
        pytest.skip("this server did not store the upload in Xet")
    sha = hashlib.sha256(data).hexdigest()
    assert not list(server.data.glob(f"blobs/lfs/**/{sha}"))  # only in Xet: no plain LFS blob to serve
    git("clone", "-q", repo_url(repo_id), tmp_path / "c")
    assert (tmp_path / "c" / "model.safetensors").read_bytes() == data


def test_private_repo_lfs_roundtrip_with_credentials(git, api, alice, bob, repo_factory, tmp_path):
    repo_id = repo_factory("lfs-private", private=True)
    work = tmp_path / "work"
    git("clone", "-q", repo_url(repo_id, user=alice), work)
    data = os.urandom(100_000)
    (work / "data.bin").write_bytes(data)
    git.commit_all(work, "private weights")
    git("push", "-q", "origin", "main", cwd=work)
    git("clone", "-q", repo_url(repo_id, user=alice, token=alice.read_token), tmp_path / "c")
    assert (tmp_path / "c" / "data.bin").read_bytes() == data
    proc = git("clone", repo_url(repo_id, user=bob), tmp_path / "bob", check=False)
    assert proc.returncode != 0 and "not found" in proc.stderr


@pytest.mark.parametrize("repo_type", ["dataset", "space"])
def test_git_lfs_push_to_datasets_and_spaces(git, api, alice, repo_factory, tmp_path, repo_type):
    kw = {"space_sdk": "static"} if repo_type == "space" else {}
    repo_id = repo_factory("lfs-typed", repo_type=repo_type, **kw)
    work = tmp_path / "work"
    git("clone", "-q", repo_url(repo_id, repo_type=repo_type, user=alice, suffix=".git"), work)
    data = os.urandom(50_000)
    (work / "data.parquet").write_bytes(data)
    sha = git.commit_all(work, "data")
    git("push", "-q", "origin", "main", cwd=work)
    assert api.repo_info(repo_id, repo_type=repo_type).sha == sha
    path = hf_hub_download(repo_id, "data.parquet", repo_type=repo_type, cache_dir=tmp_path / "cache")
    assert Path(path).read_bytes() == data


def test_gated_repo_lfs_download_needs_granted_access(api, alice, bob, repo_factory, no_xet):
    import httpx

    from tests.git.conftest import ENDPOINT

    repo_id = repo_factory("lfs-gated")
    data = os.urandom(10_000)
    api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=repo_id)
    api.update_repo_settings(repo_id, gated="manual")
    batch = {"operation": "download", "objects": [{"oid": hashlib.sha256(data).hexdigest(), "size": len(data)}]}
    url = f"{ENDPOINT}/{repo_id}.git/info/lfs/objects/batch"
    anon = httpx.post(url, json=batch)
    assert anon.status_code == 401 and "lfs-authenticate" in anon.headers
    assert httpx.post(url, json=batch, auth=("bob", bob.token)).status_code == 403
    ok = httpx.post(url, json=batch, auth=("alice", alice.read_token))
    assert ok.status_code == 200 and "download" in ok.json()["objects"][0]["actions"]
