"""HfFileSystem and snapshot_download against a live Cove (issue 2, item 4 as the libraries use it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, HfFileSystem, snapshot_download
from huggingface_hub.errors import RevisionNotFoundError

BLOB = os.urandom(300_000)  # LFS-sized binary content (.bin is LFS by extension)


@pytest.fixture
def files_repo(api, repo_factory, transfer) -> dict:
    """A model repo with text and LFS files in folders, a tag, a branch with a slash and three commits."""
    repo_id = repo_factory("fs")
    ops = [
        CommitOperationAdd("config.json", b'{"model_type": "bert"}'),
        CommitOperationAdd("README.md", b"---\nlicense: mit\n---\n# fs\n"),
        CommitOperationAdd("weights/model.bin", BLOB),
        CommitOperationAdd("weights/extra.bin", BLOB[::-1]),
        CommitOperationAdd("data/a.txt", b"0123456789" * 10),
        CommitOperationAdd("data/sub/b.txt", b"bee"),
        CommitOperationAdd("data/sub/c.csv", b"x,y\n1,2\n"),
    ]
    first = api.create_commit(repo_id, ops, commit_message="first").oid
    api.create_tag(repo_id, tag="v1")
    api.create_branch(repo_id, branch="feat/x")
    api.upload_file(path_or_fileobj=b"only on the branch", path_in_repo="branch.txt", repo_id=repo_id,
                    revision="feat/x")
    second = api.upload_file(path_or_fileobj=b"new", path_in_repo="data/a.txt", repo_id=repo_id).oid
    api.delete_file("data/sub/c.csv", repo_id)
    head = api.model_info(repo_id).sha
    return {"id": repo_id, "first": first, "second": second, "head": head, "transfer": transfer}


def test_hffs_glob_ls_info_open_ranges(files_repo, alice) -> None:
    repo_id, first = files_repo["id"], files_repo["first"]
    fs = HfFileSystem(token=alice.token, skip_instance_cache=True)
    root = f"hf://{repo_id}"
    assert sorted(fs.glob(f"{root}/**/*.txt")) == [f"{repo_id}/data/a.txt", f"{repo_id}/data/sub/b.txt"]
    assert sorted(fs.glob(f"{root}/weights/*.bin")) == [f"{repo_id}/weights/extra.bin",
                                                        f"{repo_id}/weights/model.bin"]
    assert fs.glob(f"{root}/data/sub/*.csv") == []
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(root, detail=False)) == [
        ".gitattributes", "README.md", "config.json", "data", "weights"]
    assert fs.isdir(f"{root}/data/sub") and fs.isfile(f"{root}/config.json")
    assert not fs.exists(f"{root}/nope.txt")
    info = fs.info(f"{root}/weights/model.bin")
    assert info["size"] == len(BLOB) and info["lfs"]["size"] == len(BLOB)
    assert (info["xet_hash"] is not None) == (files_repo["transfer"] == "xet")
    assert fs.info(f"{root}/data")["type"] == "directory"
    assert sorted(fs.find(f"{root}/data")) == [f"{repo_id}/data/a.txt", f"{repo_id}/data/sub/b.txt"]
    detailed = fs.info(f"{root}/data/a.txt", expand_info=True)
    assert detailed["last_commit"].oid == files_repo["second"] and detailed["size"] == 3
    listed = {e["name"]: e for e in fs.ls(f"{root}/data", detail=True, expand_info=True)}
    assert listed[f"{repo_id}/data/a.txt"]["last_commit"].oid == files_repo["second"]
    assert fs.modified(f"{root}/data/a.txt") >= fs.modified(f"{root}/config.json")
    assert fs.du(f"{root}/weights") == 2 * len(BLOB)
    walked = {d: sorted(f) for d, _, f in fs.walk(f"{root}/data")}
    assert walked == {f"{repo_id}/data": ["a.txt"], f"{repo_id}/data/sub": ["b.txt"]}

    assert fs.read_text(f"{root}/data/a.txt") == "new"
    with fs.open(f"{root}/weights/model.bin", "rb", block_size=1024) as fh:
        fh.seek(100_000)
        assert fh.read(10) == BLOB[100_000:100_010]
        fh.seek(-5, 2)
        assert fh.read() == BLOB[-5:]
        fh.seek(0)
        assert fh.read(3) == BLOB[:3]
    assert fs.cat_file(f"{root}/weights/model.bin", start=5, end=25) == BLOB[5:25]
    assert fs.read_bytes(f"{root}/weights/extra.bin") == BLOB[::-1]

    # Revisions: a tag, a sha, a branch with a slash (quoted in the path).
    assert fs.read_text(f"hf://{repo_id}@v1/data/a.txt") == "0123456789" * 10
    assert fs.cat_file(f"hf://{repo_id}@{first}/data/a.txt", start=10, end=14) == b"0123"
    assert fs.exists(f"hf://{repo_id}@{first}/data/sub/c.csv")
    assert fs.read_text(f"hf://{repo_id}@feat%2Fx/branch.txt") == "only on the branch"
    with pytest.raises(FileNotFoundError):
        fs.ls(f"hf://{repo_id}@no-such-branch")
    with pytest.raises(FileNotFoundError):
        fs.ls("hf://alice/no-such-repo-at-all")


def test_hffs_write_and_remove(api, repo_factory, alice, transfer) -> None:
    repo_id = repo_factory("fs-write", repo_type="dataset")
    fs = HfFileSystem(token=alice.token, skip_instance_cache=True)
    root = f"hf://datasets/{repo_id}"
    with fs.open(f"{root}/notes/hello.txt", "w") as fh:
        fh.write("hello cove")
    fs.pipe_file(f"{root}/notes/blob.bin", BLOB[:50_000])
    assert fs.read_text(f"{root}/notes/hello.txt") == "hello cove"
    assert fs.cat_file(f"{root}/notes/blob.bin", start=49_990) == BLOB[49_990:50_000]
    fs.rm(f"{root}/notes/hello.txt")
    fs.invalidate_cache()
    assert not fs.exists(f"{root}/notes/hello.txt") and fs.exists(f"{root}/notes/blob.bin")
    assert set(api.list_repo_files(repo_id, repo_type="dataset")) == {".gitattributes", "notes/blob.bin"}


def _files(folder: str) -> set[str]:
    root = Path(folder)
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_snapshot_download_patterns_and_revisions(files_repo, alice, tmp_path) -> None:
    repo_id, first, head = files_repo["id"], files_repo["first"], files_repo["head"]
    kw = {"token": alice.token}

    full = snapshot_download(repo_id, cache_dir=tmp_path / "c1", **kw)
    assert Path(full).name == head
    assert _files(full) == {".gitattributes", "config.json", "README.md", "weights/model.bin",
                            "weights/extra.bin", "data/a.txt", "data/sub/b.txt"}
    assert (Path(full) / "weights/model.bin").read_bytes() == BLOB

    only = snapshot_download(repo_id, cache_dir=tmp_path / "c2", allow_patterns=["*.json", "data/*"], **kw)
    assert _files(only) == {"config.json", "data/a.txt", "data/sub/b.txt"}
    skip = snapshot_download(repo_id, cache_dir=tmp_path / "c3", ignore_patterns=["weights/*", "*.md"], **kw)
    assert _files(skip) == {".gitattributes", "config.json", "data/a.txt", "data/sub/b.txt"}
    local = snapshot_download(repo_id, local_dir=tmp_path / "local", allow_patterns="weights/*", **kw)
    assert _files(local) - {p for p in _files(local) if p.startswith(".cache/")} == {
        "weights/model.bin", "weights/extra.bin"}

    for rev in ("v1", first, first[:7], first[:12]):
        path = snapshot_download(repo_id, revision=rev, cache_dir=tmp_path / "c4", allow_patterns="data/**",
                                 **kw)
        assert Path(path).name == first, rev
        assert (Path(path) / "data/a.txt").read_text() == "0123456789" * 10
        assert (Path(path) / "data/sub/c.csv").exists()
    branch = snapshot_download(repo_id, revision="feat/x", cache_dir=tmp_path / "c5", **kw)
    assert (Path(branch) / "branch.txt").read_text() == "only on the branch"
    assert (Path(branch) / "data/sub/c.csv").exists()
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(repo_id, revision="no-such-branch", cache_dir=tmp_path / "c6", **kw)

    # Offline re-use of the cache after a download by branch name.
    again = snapshot_download(repo_id, revision="feat/x", cache_dir=tmp_path / "c5", local_files_only=True)
    assert again == branch
