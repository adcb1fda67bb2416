"""Answers the stock client reads the way it reads the Hub's: missing repos without a namespace, commit listings,
ref errors, and the messages clients and users match on (issue 12, items 2, 8, 11 and 15)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from huggingface_hub import CommitOperationAdd
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

# --- item 2: a repo id without a namespace is a missing repo, not a missing route ---------------------------


def test_namespace_less_ids_are_missing_repos(api, server, repo_factory) -> None:
    name = f"no-such-repo-{uuid.uuid4().hex[:8]}"
    assert api.repo_exists(name) is False
    assert api.repo_exists(name, repo_type="dataset") is False
    assert api.file_exists(name, "config.json") is False
    assert api.revision_exists(name, "main") is False
    h = {"authorization": f"Bearer {api.token}"}
    for method, path in (("GET", f"/api/models/{name}"), ("GET", f"/api/models/{name}/commits/main"),
                         ("GET", f"/{name}/resolve/main/x"), ("HEAD", f"/datasets/{name}/resolve/main/x"),
                         ("GET", f"/api/models/{name}/revision/main"), ("GET", f"/api/models/{name}/refs"),
                         ("DELETE", f"/api/models/{name}/like"), ("POST", f"/api/models/{name}/like")):
        r = httpx.request(method, server.endpoint + path, headers=h)
        assert (r.status_code, r.headers.get("x-error-code")) == (404, "RepoNotFound"), (method, path)
    with pytest.raises(RepositoryNotFoundError):
        api.unlike(name)
    # an unknown route under a real repo is still a missing route
    r = httpx.get(f"{server.endpoint}/api/models/{repo_factory('route')}/no-such-route/x")
    assert (r.status_code, r.headers.get("x-error-code")) == (404, "NotFound")


# --- item 8: `formatted` only on request --------------------------------------------------------------------


def test_list_repo_commits_formatted_only_on_request(api, repo_factory, server) -> None:
    repo_id = repo_factory("fmt")
    api.upload_file(path_or_fileobj=b"x", path_in_repo="a.txt", repo_id=repo_id, commit_message="add <a>")
    plain = api.list_repo_commits(repo_id)
    assert all(c.formatted_title is None and c.formatted_message is None for c in plain)
    raw = httpx.get(f"{server.endpoint}/api/models/{repo_id}/commits/main").json()
    assert all("formatted" not in c for c in raw)
    fancy = api.list_repo_commits(repo_id, formatted=True)
    assert fancy[0].title == "add <a>"
    assert fancy[0].formatted_title is not None and "<a>" not in fancy[0].formatted_title
    raw = httpx.get(f"{server.endpoint}/api/models/{repo_id}/commits/main", params={"formatted": "true"}).json()
    assert all("formatted" in c for c in raw)


# --- item 11: a missing revision is reported before a bad tag name ------------------------------------------


def test_create_tag_on_missing_revision(api, repo_factory) -> None:
    repo_id = repo_factory("tag")
    with pytest.raises(RevisionNotFoundError):
        api.create_tag(repo_id, tag="invalid tag", revision="missing")
    with pytest.raises(HfHubHTTPError) as err:
        api.create_tag(repo_id, tag="invalid tag")
    assert err.value.response.status_code == 400


# --- item 15: the Hub's messages ----------------------------------------------------------------------------


def test_stale_parent_commit_message(api, repo_factory) -> None:
    repo_id = repo_factory("stale")
    parent = api.model_info(repo_id).sha
    api.upload_file(path_or_fileobj=b"1", path_in_repo="a.txt", repo_id=repo_id)
    with pytest.raises(HfHubHTTPError) as err:
        api.create_commit(repo_id, operations=[CommitOperationAdd("b.txt", b"2")], commit_message="late",
                          parent_commit=parent)
    assert err.value.response.status_code == 412
    assert "The branch was updated since you opened this page. Please refresh and try again." in str(err.value)


def test_ref_messages(api, repo_factory) -> None:
    repo_id = repo_factory("refs")
    api.create_branch(repo_id, branch="cool-branch")
    with pytest.raises(HfHubHTTPError, match=r"Reference refs/heads/cool-branch already exists") as err:
        api.create_branch(repo_id, branch="cool-branch")
    assert err.value.response.status_code == 409
    with pytest.raises(HfHubHTTPError, match=r"Reference refs/heads/main already exists"):
        api.create_branch(repo_id, branch="main")
    api.create_branch(repo_id, branch="cool-branch", exist_ok=True)
    api.create_tag(repo_id, tag="v1")
    with pytest.raises(HfHubHTTPError, match=r"Reference refs/tags/v1 already exists") as err:
        api.create_tag(repo_id, tag="v1")
    assert err.value.response.status_code == 409
    api.create_tag(repo_id, tag="v1", exist_ok=True)
    with pytest.raises(HfHubHTTPError, match="Cannot delete refs/heads/main") as err:
        api.delete_branch(repo_id, branch="main")
    assert err.value.response.status_code == 403


def test_move_onto_an_existing_repo_message(api, repo_factory) -> None:
    a, b = repo_factory("mv"), repo_factory("mv")
    with pytest.raises(HfHubHTTPError, match=r"A model repository called .* already exists") as err:
        api.move_repo(from_id=a, to_id=b)
    assert err.value.response.status_code == 409
    # create_repo of one's own existing repo keeps the Hub's own answer, which exist_ok relies on
    with pytest.raises(HfHubHTTPError, match="You already created this model repo"):
        api.create_repo(a)
    assert api.create_repo(a, exist_ok=True).repo_id == a
