"""Commits, repo creation and names as the Hub answers them, driven by the stock huggingface_hub client."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError

from tests.conftest import cove


def test_delete_file_on_a_folder_path_deletes_the_folder(api, repo_factory, tmp_path: Path):
    repo_id = repo_factory("delfolder")
    src = tmp_path / "src"
    (src / "sub" / "deep").mkdir(parents=True)
    (src / "sub" / "a.txt").write_text("a")
    (src / "sub" / "deep" / "b.txt").write_text("b")
    (src / "keep.txt").write_text("k")
    api.upload_folder(repo_id=repo_id, folder_path=src)
    api.delete_file("sub", repo_id=repo_id)  # no trailing slash: sent as deletedFile, as the Hub accepts
    files = set(api.list_repo_files(repo_id))
    assert "keep.txt" in files and not any(f.startswith("sub/") for f in files)
    with pytest.raises(EntryNotFoundError):
        api.delete_file("no-such-path", repo_id=repo_id)


def test_preupload_honours_the_repos_gitignore(api, repo_factory, tmp_path: Path):
    repo_id = repo_factory("gitignore")
    api.upload_file(path_or_fileobj=b"*.log\nbuild/\n", path_in_repo=".gitignore", repo_id=repo_id)
    src = tmp_path / "src"
    (src / "build").mkdir(parents=True)
    (src / "kept.txt").write_text("kept")
    (src / "debug.log").write_text("ignored")
    (src / "build" / "out.bin").write_bytes(b"ignored")
    api.upload_folder(repo_id=repo_id, folder_path=src)
    files = set(api.list_repo_files(repo_id))
    assert "kept.txt" in files
    assert "debug.log" not in files and "build/out.bin" not in files
    # A .gitignore that backtracks exponentially (`*a*a...*b` against a long name) costs a bounded time.
    api.upload_file(path_or_fileobj=("*a" * 30 + "b\n").encode(), path_in_repo=".gitignore", repo_id=repo_id)
    start = time.monotonic()
    api.upload_file(path_or_fileobj=b"x", path_in_repo="a" * 120 + ".txt", repo_id=repo_id)
    assert time.monotonic() - start < 15
    assert "a" * 120 + ".txt" in api.list_repo_files(repo_id)


def test_a_new_space_has_a_readme_with_its_sdk(api, repo_factory, cache_dir: Path):
    repo_id = repo_factory("space", repo_type="space", space_sdk="gradio")
    path = hf_hub_download(repo_id, "README.md", repo_type="space", cache_dir=cache_dir, token=api.token)
    text = Path(path).read_text()
    assert text.startswith("---\n") and "\nsdk: gradio\n" in text and f"title: {repo_id.split('/')[1]}" in text
    assert api.space_info(repo_id).cardData["sdk"] == "gradio"


def test_names_may_start_and_end_with_underscore(server, api, repo_factory):
    repo_id = repo_factory("_under")  # alice/_under-xxxxxxxx
    repo_id2 = f"alice/_{uuid.uuid4().hex[:8]}_"
    api.create_repo(repo_id2)
    try:
        assert api.repo_info(repo_id2).id == repo_id2
        assert api.repo_info(repo_id).id == repo_id
    finally:
        api.delete_repo(repo_id2, missing_ok=True)
    user = f"__dummy_{uuid.uuid4().hex[:6]}__"
    cove("user", "add", user, "--password", "pw-pw-pw-pw")
    # ... but not the web UI's assets path, which is served before any login check.
    assert cove("user", "add", "_static", "--password", "pw-pw-pw-pw", check=False).returncode != 0
    # A refused name says the real rule (the client's own message words it the same way).
    r = httpx.post(f"{server.endpoint}/api/repos/create", headers={"authorization": f"Bearer {api.token}"},
                   json={"name": "-bad", "type": "model"})
    assert r.status_code == 400
    msg = r.headers.get("x-error-message", "")
    assert "'_'" in msg and "cannot start or end with '-' or '.'" in msg
