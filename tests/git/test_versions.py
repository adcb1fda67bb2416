"""Versions through the API: old revisions, the compare endpoint, revert (API and `cove revert`)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, hf_hub_download

from tests.conftest import ENDPOINT, cove


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def two_versions(api, repo_factory, no_xet):
    """A repo with a first and a second version touching text, LFS and removed files."""
    repo_id = repo_factory("versions")
    first = api.create_commit(repo_id, commit_message="v1", operations=[
        CommitOperationAdd("config.json", b'{\n  "hidden_size": 32,\n  "num_layers": 2\n}\n'),
        CommitOperationAdd("notes.txt", b"old notes\n"),
        CommitOperationAdd("model.bin", os.urandom(2000)),
    ]).oid
    second = api.create_commit(repo_id, commit_message="v2", operations=[
        CommitOperationAdd("config.json", b'{\n  "hidden_size": 64,\n  "num_layers": 2\n}\n'),
        CommitOperationDelete("notes.txt"),
        CommitOperationAdd("new.txt", b"fresh"),
        CommitOperationAdd("model.bin", os.urandom(2000)),
    ]).oid
    return repo_id, first, second


def test_download_at_old_revision(two_versions, tmp_path):
    repo_id, first, second = two_versions
    old = hf_hub_download(repo_id, "config.json", revision=first, cache_dir=tmp_path)
    new = hf_hub_download(repo_id, "config.json", revision=second, cache_dir=tmp_path)
    assert '"hidden_size": 32' in Path(old).read_text()
    assert '"hidden_size": 64' in Path(new).read_text()


def test_compare(two_versions, alice):
    repo_id, first, second = two_versions
    r = httpx.get(f"{ENDPOINT}/api/models/{repo_id}/compare/{first}...{second}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["base"] == first and body["head"] == second
    assert body["stats"] == {"added": 1, "modified": 2, "removed": 1}
    files = {f["path"]: f for f in body["files"]}
    assert [f["path"] for f in body["files"]] == sorted(files)
    cfg = files["config.json"]
    assert cfg["status"] == "modified" and cfg["type"] == "text"
    assert cfg["diff"].startswith("--- a/config.json\n+++ b/config.json\n@@")
    assert '-  "hidden_size": 32,\n+  "hidden_size": 64,\n' in cfg["diff"]
    assert files["notes.txt"]["status"] == "removed" and files["notes.txt"]["new"] is None
    assert files["notes.txt"]["diff"] == "--- a/notes.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-old notes\n"
    assert files["new.txt"]["status"] == "added"
    assert files["new.txt"]["diff"].endswith("+fresh\n\\ No newline at end of file\n")
    weights = files["model.bin"]
    assert weights["type"] == "lfs" and weights["diff"] is None
    assert weights["old"]["size"] == 2000 and len(weights["new"]["lfs"]["oid"]) == 64
    # Branch names and `..` work too; the reverse range swaps added and removed.
    back = httpx.get(f"{ENDPOINT}/api/models/{repo_id}/compare/main..{first[:12]}").json()
    assert back["stats"] == {"added": 1, "modified": 2, "removed": 1}
    assert {f["path"]: f["status"] for f in back["files"]}["notes.txt"] == "added"
    # The same as one text patch.
    patch = httpx.get(f"{ENDPOINT}/api/models/{repo_id}/compare/{first}...{second}", params={"format": "diff"})
    assert patch.headers["content-type"].startswith("text/plain")
    assert '+  "hidden_size": 64,' in patch.text and "Binary files a/model.bin and b/model.bin differ" in patch.text


def test_compare_errors(two_versions, repo_factory):
    repo_id, first, _ = two_versions
    assert httpx.get(f"{ENDPOINT}/api/models/{repo_id}/compare/{first}").status_code == 400
    r = httpx.get(f"{ENDPOINT}/api/models/{repo_id}/compare/{first}...nope")
    assert r.status_code == 404 and r.headers["x-error-code"] == "RevisionNotFound"
    private = repo_factory("private-compare", private=True)
    r = httpx.get(f"{ENDPOINT}/api/models/{private}/compare/main...main")
    assert r.status_code == 404 and r.headers["x-error-code"] == "RepoNotFound"


def test_revert_api(two_versions, api, alice, bob, tmp_path):
    repo_id, first, second = two_versions
    url = f"{ENDPOINT}/api/models/{repo_id}/revert/main"
    assert httpx.post(url, json={"commit": first}).status_code == 401
    assert httpx.post(url, json={"commit": first}, headers=_auth(alice.read_token)).status_code == 403
    assert httpx.post(url, json={"commit": first}, headers=_auth(bob.token)).status_code == 403
    r = httpx.post(url, json={"commit": "0" * 40}, headers=_auth(alice.token))
    assert r.status_code == 404 and r.headers["x-error-code"] == "RevisionNotFound"
    r = httpx.post(url, json={"commit": first, "message": "Roll back to v1"}, headers=_auth(alice.token))
    assert r.status_code == 200, r.text
    new = r.json()["commitOid"]
    assert r.json()["commitUrl"].endswith(f"/{repo_id}/commit/{new}")
    # A new commit on top; history intact; files are v1's again; the index follows.
    commits = api.list_repo_commits(repo_id)
    assert [c.commit_id for c in commits[:3]] == [new, second, first]
    assert commits[0].title == "Roll back to v1"
    info = api.model_info(repo_id)
    assert info.sha == new and "notes.txt" in {s.rfilename for s in info.siblings}
    diff = httpx.get(f"{ENDPOINT}/api/models/{repo_id}/compare/{first}...{new}").json()
    assert diff["files"] == []
    # Reverting to what the branch already holds is refused.
    again = httpx.post(url, json={"commit": first}, headers=_auth(alice.token))
    assert again.status_code == 400 and "already has the content" in again.json()["error"]


def test_revert_cli(api, repo_factory):
    repo_id = repo_factory("cli-revert", repo_type="dataset")
    first = api.upload_file(path_or_fileobj=b"a,b\n1,2\n", path_in_repo="data.csv", repo_id=repo_id,
                            repo_type="dataset").oid
    api.upload_file(path_or_fileobj=b"a,b\n3,4\n", path_in_repo="data.csv", repo_id=repo_id, repo_type="dataset")
    proc = cove("revert", f"datasets/{repo_id}", first[:10])
    new = proc.stdout.strip()
    assert len(new) == 40
    info = api.dataset_info(repo_id)
    assert info.sha == new
    assert api.list_repo_commits(repo_id, repo_type="dataset")[0].title == f"Revert to {first[:12]}"
    path = hf_hub_download(repo_id, "data.csv", repo_type="dataset", revision=new)
    assert Path(path).read_text() == "a,b\n1,2\n"
