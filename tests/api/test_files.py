"""Files: tree, paths-info, file_exists, resolve headers and ranges, snapshot_download by revision."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfFileSystem, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

from tests.conftest import ENDPOINT


@pytest.fixture
def filled(api, repo_factory, no_xet, tmp_path):
    repo_id = repo_factory("files")
    folder = tmp_path / "up"
    (folder / "sub" / "deep").mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "bert"}')
    (folder / "sub" / "a.txt").write_text("alpha")
    (folder / "sub" / "deep" / "b.md").write_text("# beta")
    (folder / "weights.safetensors").write_bytes(os.urandom(300_000))
    api.upload_folder(folder_path=folder, repo_id=repo_id)
    return repo_id, folder


def test_tree_recursive_and_paths_info(api, filled):
    repo_id, _ = filled
    top = {e.path: e for e in api.list_repo_tree(repo_id)}
    assert set(top) == {".gitattributes", "config.json", "sub", "weights.safetensors"}
    assert top["weights.safetensors"].lfs.size == 300_000 and len(top["weights.safetensors"].lfs.sha256) == 64
    deep = sorted(e.path for e in api.list_repo_tree(repo_id, recursive=True))
    assert "sub/deep/b.md" in deep and "sub/deep" in deep
    sub = [e.path for e in api.list_repo_tree(repo_id, path_in_repo="sub")]
    assert sorted(sub) == ["sub/a.txt", "sub/deep"]
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree(repo_id, path_in_repo="missing"))
    info = api.get_paths_info(repo_id, ["config.json", "sub", "nope"])
    assert sorted(i.path for i in info) == ["config.json", "sub"]
    assert api.file_exists(repo_id, "sub/a.txt") and not api.file_exists(repo_id, "sub/zzz.txt")


def test_tree_pagination_follows_absolute_link(api, filled):
    repo_id, _ = filled
    r = httpx.get(f"{ENDPOINT}/api/models/{repo_id}/tree/main", params={"recursive": "true", "limit": 2})
    assert r.status_code == 200 and len(r.json()) == 2
    nxt = r.headers["link"].split(";")[0].strip("<>")
    assert nxt.startswith("http://")
    seen = [e["path"] for e in r.json()]
    while nxt:
        r = httpx.get(nxt)
        seen += [e["path"] for e in r.json()]
        nxt = r.headers.get("link", "").split(";")[0].strip("<>") or None
    assert len(seen) == len(set(seen)) == 7


def test_resolve_headers_regular_and_lfs(api, filled):
    repo_id, folder = filled
    sha = api.model_info(repo_id).sha
    r = httpx.head(f"{ENDPOINT}/{repo_id}/resolve/main/config.json")
    assert r.status_code == 200
    assert r.headers["x-repo-commit"] == sha
    assert r.headers["content-length"] == str(len('{"model_type": "bert"}'))
    assert r.headers["accept-ranges"] == "bytes"
    assert len(r.headers["etag"].strip('"')) == 40
    r = httpx.head(f"{ENDPOINT}/{repo_id}/resolve/main/weights.safetensors")
    assert r.headers["x-linked-size"] == "300000" and r.headers["content-length"] == "300000"
    assert len(r.headers["x-linked-etag"].strip('"')) == 64
    assert "x-xet-hash" not in r.headers
    r = httpx.head(f"{ENDPOINT}/{repo_id}/resolve/main/nope.bin")
    assert r.status_code == 404 and r.headers["x-error-code"] == "EntryNotFound" and r.headers["x-repo-commit"] == sha
    r = httpx.head(f"{ENDPOINT}/{repo_id}/resolve/nobranch/config.json")
    assert r.headers["x-error-code"] == "RevisionNotFound"


def test_byte_ranges(api, filled):
    repo_id, folder = filled
    data = (folder / "weights.safetensors").read_bytes()
    for path, body in (("weights.safetensors", data), ("sub/a.txt", b"alpha")):
        r = httpx.get(f"{ENDPOINT}/{repo_id}/resolve/main/{path}", headers={"range": "bytes=1-3"})
        assert r.status_code == 206 and r.content == body[1:4]
        assert r.headers["content-range"] == f"bytes 1-3/{len(body)}"
        r = httpx.get(f"{ENDPOINT}/{repo_id}/resolve/main/{path}", headers={"range": "bytes=2-"})
        assert r.status_code == 206 and r.content == body[2:]
        r = httpx.get(f"{ENDPOINT}/{repo_id}/resolve/main/{path}", headers={"range": f"bytes={len(body) + 5}-"})
        assert r.status_code == 416


def test_hf_hub_download_and_snapshot_revisions(api, filled, cache_dir):
    repo_id, folder = filled
    first = api.model_info(repo_id).sha
    api.create_tag(repo_id, tag="v1")
    api.create_branch(repo_id, branch="feat/slash")
    api.upload_file(path_or_fileobj=b"changed", path_in_repo="sub/a.txt", repo_id=repo_id)
    p = hf_hub_download(repo_id, "weights.safetensors", cache_dir=cache_dir)
    assert Path(p).read_bytes() == (folder / "weights.safetensors").read_bytes()
    for rev in ("v1", "feat/slash", first, first[:7]):
        p = hf_hub_download(repo_id, "sub/a.txt", revision=rev, cache_dir=cache_dir)
        assert Path(p).read_text() == "alpha", rev
    assert Path(hf_hub_download(repo_id, "sub/a.txt", cache_dir=cache_dir)).read_text() == "changed"
    snap = snapshot_download(repo_id, revision="v1", allow_patterns=["sub/*", "*.json"], cache_dir=cache_dir)
    got = sorted(os.path.relpath(os.path.join(d, f), snap) for d, _, fs in os.walk(snap) for f in fs)
    assert got == ["config.json", "sub/a.txt", "sub/deep/b.md"]
    snap = snapshot_download(repo_id, ignore_patterns=["*.safetensors", "sub/deep/*"], cache_dir=cache_dir / "2")
    assert Path(os.path.join(snap, "sub/a.txt")).read_text() == "changed"
    assert not os.path.exists(os.path.join(snap, "weights.safetensors"))
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo_id, "config.json", revision="no-such-branch", cache_dir=cache_dir)


def test_hf_file_system(api, filled):
    repo_id, folder = filled
    fs = HfFileSystem(endpoint=ENDPOINT, token=api.token)
    assert sorted(fs.glob(f"{repo_id}/sub/**/*.md")) == [f"{repo_id}/sub/deep/b.md"]
    with fs.open(f"{repo_id}/weights.safetensors", "rb") as fh:
        fh.seek(1000)
        assert fh.read(50) == (folder / "weights.safetensors").read_bytes()[1000:1050]
    assert fs.read_text(f"{repo_id}/sub/a.txt") == "alpha"
    assert fs.info(f"{repo_id}/config.json")["size"] == len('{"model_type": "bert"}')


def test_downloads_are_counted(api, repo_factory, cache_dir):
    repo_id = repo_factory("dl")
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=repo_id)
    for i in range(3):
        hf_hub_download(repo_id, "config.json", cache_dir=cache_dir / str(i))
    hf_hub_download(repo_id, "config.json", cache_dir=cache_dir / "0")  # cached, but still a HEAD
    assert api.model_info(repo_id).downloads == 4
