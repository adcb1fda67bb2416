"""Repos: create (private, exist_ok, spaces), delete, move, settings, info with revision and expand."""

from __future__ import annotations

import httpx
import pytest
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

from tests.conftest import ENDPOINT


@pytest.mark.parametrize("repo_type", ["model", "dataset", "space"])
def test_create_info_delete_each_type(api, repo_type):
    kw = {"space_sdk": "gradio"} if repo_type == "space" else {}
    url = api.create_repo(f"alice/t-{repo_type}", repo_type=repo_type, **kw)
    assert url.repo_id == f"alice/t-{repo_type}"
    info = api.repo_info(f"alice/t-{repo_type}", repo_type=repo_type)
    assert info.id == f"alice/t-{repo_type}" and len(info.sha) == 40
    # As on the Hub, a new Space starts with a README.md holding its sdk.
    assert [s.rfilename for s in info.siblings] == [".gitattributes"] + (["README.md"] if repo_type == "space" else [])
    assert info.created_at.tzinfo is not None
    again = api.create_repo(f"alice/t-{repo_type}", repo_type=repo_type, exist_ok=True, **kw)
    assert again.repo_id == f"alice/t-{repo_type}"
    with pytest.raises(HfHubHTTPError) as e:
        api.create_repo(f"alice/t-{repo_type}", repo_type=repo_type, **kw)
    assert e.value.response.status_code == 409
    assert e.value.response.json()["url"].endswith(f"alice/t-{repo_type}")
    api.delete_repo(f"alice/t-{repo_type}", repo_type=repo_type)
    with pytest.raises(RepositoryNotFoundError):
        api.repo_info(f"alice/t-{repo_type}", repo_type=repo_type)
    api.delete_repo(f"alice/t-{repo_type}", repo_type=repo_type, missing_ok=True)


def test_create_without_namespace_uses_token_user(api):
    url = api.create_repo("no-namespace-repo")
    assert url.repo_id == "alice/no-namespace-repo"
    api.delete_repo("alice/no-namespace-repo")


def test_space_requires_sdk(api):
    r = httpx.post(f"{ENDPOINT}/api/repos/create", json={"name": "s", "organization": "alice", "type": "space"},
                   headers={"authorization": f"Bearer {api.token}"})
    assert r.status_code == 400 and "sdk" in r.json()["error"]


def test_private_repo_looks_missing_to_others(api, bob_api, anon_api, repo_factory):
    repo_id = repo_factory("secret", private=True)
    api.upload_file(path_or_fileobj=b"s3cret", path_in_repo="a.txt", repo_id=repo_id)
    assert api.model_info(repo_id).private is True
    missing = httpx.get(f"{ENDPOINT}/api/models/alice/does-not-exist-at-all",
                        headers={"authorization": f"Bearer {bob_api.token}"})
    hidden = httpx.get(f"{ENDPOINT}/api/models/{repo_id}", headers={"authorization": f"Bearer {bob_api.token}"})
    assert hidden.status_code == missing.status_code == 404
    assert hidden.headers["x-error-code"] == missing.headers["x-error-code"] == "RepoNotFound"
    assert hidden.json() == missing.json()
    for client in (bob_api, anon_api):
        with pytest.raises(RepositoryNotFoundError):
            client.model_info(repo_id)
    r = httpx.get(f"{ENDPOINT}/{repo_id}/resolve/main/a.txt")
    assert r.status_code == 404 and r.headers["x-error-code"] == "RepoNotFound"
    assert repo_id not in [m.id for m in anon_api.list_models(author="alice")]
    assert repo_id in [m.id for m in api.list_models(author="alice")]


def test_update_settings_visibility_and_gated(api, anon_api, repo_factory):
    repo_id = repo_factory("vis")
    api.update_repo_settings(repo_id, private=True)
    with pytest.raises(RepositoryNotFoundError):
        anon_api.model_info(repo_id)
    api.update_repo_settings(repo_id, private=False, gated="manual")
    info = anon_api.model_info(repo_id)
    assert info.private is False and info.gated == "manual"


def test_move_repo(api, repo_factory):
    repo_id = repo_factory("mv")
    api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
    api.move_repo(repo_id, "alice/moved-here")
    assert api.file_exists("alice/moved-here", "x.txt")
    assert api.model_info(repo_id).id == "alice/moved-here"  # the old id redirects, as on the Hub
    api.delete_repo("alice/moved-here")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(repo_id)


def test_org_members_write_org_repos(api, bob_api, acme):
    api.create_repo("acme/org-model", exist_ok=True)
    api.upload_file(path_or_fileobj=b"1", path_in_repo="one.txt", repo_id="acme/org-model")
    with pytest.raises(HfHubHTTPError) as e:
        bob_api.upload_file(path_or_fileobj=b"2", path_in_repo="two.txt", repo_id="acme/org-model")
    assert e.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError):
        bob_api.create_repo("acme/bobs")
    api.delete_repo("acme/org-model")


def test_info_revision_and_expand(api, repo_factory):
    repo_id = repo_factory("rev")
    first = api.upload_file(path_or_fileobj=b"v1", path_in_repo="f.txt", repo_id=repo_id).oid
    api.upload_file(path_or_fileobj=b"v2", path_in_repo="g.txt", repo_id=repo_id)
    old = api.model_info(repo_id, revision=first)
    assert old.sha == first and sorted(s.rfilename for s in old.siblings) == [".gitattributes", "f.txt"]
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo_id, revision="nope")
    partial = api.model_info(repo_id, expand=["downloads", "likes"])
    assert partial.downloads == 0 and partial.likes == 0 and partial.siblings is None
    r = httpx.get(f"{ENDPOINT}/api/models/{repo_id}", params=[("expand", "sha"), ("expand", "tags")])
    assert set(r.json()) == {"id", "_id", "sha", "tags"}
    blobs = api.model_info(repo_id, files_metadata=True)
    assert {s.rfilename: s.size for s in blobs.siblings}["f.txt"] == 2


def test_bad_repo_ids_are_400(api):
    for name in ("a..b", "-lead", "x--y", "ends.git"):
        r = httpx.post(f"{ENDPOINT}/api/repos/create", json={"name": name, "organization": "alice"},
                       headers={"authorization": f"Bearer {api.token}"})
        assert r.status_code == 400, name
        assert r.headers["x-error-message"]


def test_malformed_json_body_is_400(api):
    r = httpx.post(f"{ENDPOINT}/api/repos/create", content=b"{not json",
                   headers={"authorization": f"Bearer {api.token}", "content-type": "application/json"})
    assert r.status_code == 400 and "error" in r.json()
