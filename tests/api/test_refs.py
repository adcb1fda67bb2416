"""Refs and history: branches (with slashes), tags, commits listing, super-squash."""

from __future__ import annotations

import pytest
from huggingface_hub.errors import HfHubHTTPError, RevisionNotFoundError


def test_branches_tags_and_history(api, repo_factory):
    repo_id = repo_factory("refs")
    c1 = api.upload_file(path_or_fileobj=b"1", path_in_repo="f.txt", repo_id=repo_id, commit_message="one").oid
    api.create_branch(repo_id, branch="feature/deep/x")
    api.create_branch(repo_id, branch="feature/deep/x", exist_ok=True)
    with pytest.raises(HfHubHTTPError) as e:
        api.create_branch(repo_id, branch="feature/deep/x")
    assert e.value.response.status_code == 409
    api.upload_file(path_or_fileobj=b"2", path_in_repo="f.txt", repo_id=repo_id, revision="feature/deep/x")
    api.create_tag(repo_id, tag="v1.0", revision=c1)
    api.create_tag(repo_id, tag="v1.0", exist_ok=True)
    refs = api.list_repo_refs(repo_id)
    assert {b.name for b in refs.branches} == {"main", "feature/deep/x"}
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.0", c1)]
    assert refs.converts == []
    branch_log = api.list_repo_commits(repo_id, revision="feature/deep/x")
    assert len(branch_log) == 3 and branch_log[1].commit_id == c1
    assert branch_log[0].authors == ["alice"]
    api.delete_tag(repo_id, tag="v1.0")
    api.delete_branch(repo_id, branch="feature/deep/x")
    with pytest.raises(RevisionNotFoundError):
        api.list_repo_commits(repo_id, revision="feature/deep/x")
    with pytest.raises(HfHubHTTPError):
        api.delete_branch(repo_id, branch="main")


def test_super_squash(api, repo_factory):
    repo_id = repo_factory("squash")
    for i in range(3):
        api.upload_file(path_or_fileobj=str(i).encode(), path_in_repo=f"{i}.txt", repo_id=repo_id)
    api.super_squash_history(repo_id, commit_message="squashed")
    log = api.list_repo_commits(repo_id)
    assert [c.title for c in log] == ["squashed"]
    assert sorted(api.list_repo_files(repo_id)) == [".gitattributes", "0.txt", "1.txt", "2.txt"]


def test_commit_list_pagination(api, repo_factory):
    import httpx

    from tests.conftest import ENDPOINT

    repo_id = repo_factory("many")
    for i in range(4):
        api.upload_file(path_or_fileobj=str(i).encode(), path_in_repo="x.txt", repo_id=repo_id)
    r = httpx.get(f"{ENDPOINT}/api/models/{repo_id}/commits/main", params={"limit": 2})
    assert len(r.json()) == 2 and r.headers["link"].startswith("<http://")
    assert len(api.list_repo_commits(repo_id)) == 5
