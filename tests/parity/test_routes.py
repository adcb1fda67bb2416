"""The remaining Hub routes the stock client calls: tasks, organizations, org settings, LFS file listing and
deletion, repo duplication and the storage listing — each through `huggingface_hub` against `cove serve`."""

from __future__ import annotations

import uuid

import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from tests.conftest import ENDPOINT, cove


def _card(tag: str) -> bytes:
    return f"---\npipeline_tag: {tag}\nlicense: mit\n---\n# model\n".encode()


# --- a. GET /api/tasks -----------------------------------------------------------------------------------


def test_tasks_list_names_public_models_per_task(api, repo_factory) -> None:
    from huggingface_hub.inference._providers import hf_inference

    public = repo_factory("graph")
    api.upload_file(path_or_fileobj=_card("graph-ml"), path_in_repo="README.md", repo_id=public)
    secret = repo_factory("secret-graph", private=True)
    api.upload_file(path_or_fileobj=_card("graph-ml"), path_in_repo="README.md", repo_id=secret)

    hf_inference._fetch_recommended_models.cache_clear()
    recommended = hf_inference._fetch_recommended_models()  # the inference client's own call
    assert recommended["graph-ml"] == public
    assert "text-generation" in recommended and "fill-mask" in recommended

    tasks = httpx.get(f"{ENDPOINT}/api/tasks").json()
    assert tasks["graph-ml"]["id"] == "graph-ml"
    assert tasks["graph-ml"]["label"] == "Graph Machine Learning"
    assert secret not in tasks["graph-ml"]["widgetModels"]  # private models are never named


# --- e. organizations ------------------------------------------------------------------------------------


def test_organization_overview_members_followers(api, anon_api, bob_api, acme, alice, repo_factory) -> None:
    private = repo_factory("org-private", owner=acme, private=True)
    assert private
    mine = api.get_organization_overview(acme)
    theirs = anon_api.get_organization_overview(acme)
    assert mine.name == acme and mine.avatar_url and mine.num_users >= 1
    assert mine.num_followers == 0
    hidden = sum(1 for m in api.list_models(author=acme) if m.private)
    assert hidden >= 1 and mine.num_models - theirs.num_models == hidden  # private ones count for members only

    members = [u.username for u in anon_api.list_organization_members(acme)]
    assert alice.name in members
    assert list(bob_api.list_organization_followers(acme)) == []

    for missing in (f"no-such-org-{uuid.uuid4().hex[:6]}", alice.name):  # a user is not an org
        with pytest.raises(HfHubHTTPError) as exc:
            anon_api.get_organization_overview(missing)
        assert exc.value.response.status_code == 404
        with pytest.raises(HfHubHTTPError) as exc:
            list(anon_api.list_organization_members(missing))
        assert exc.value.response.status_code == 404


# --- f. org setting: private by default ------------------------------------------------------------------


def test_org_private_by_default(api, alice) -> None:
    org = f"priv-{uuid.uuid4().hex[:8]}"
    cove("org", "add", org, "--owner", alice.name)
    assert cove("org", "set", org, "--private-by-default", "maybe", check=False).returncode != 0

    before = api.create_repo(f"{org}/before")
    assert api.model_info(before.repo_id).private is False

    cove("org", "set", org, "--private-by-default", "true")
    unstated = api.create_repo(f"{org}/unstated")
    assert api.model_info(unstated.repo_id).private is True
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=ENDPOINT, token=False).model_info(unstated.repo_id)
    public = api.create_repo(f"{org}/stated", private=False)  # a stated visibility wins
    assert api.model_info(public.repo_id).private is False
    ds = api.create_repo(f"{org}/data", repo_type="dataset")
    assert api.dataset_info(ds.repo_id).private is True
    own = api.create_repo(f"{alice.name}/own-{uuid.uuid4().hex[:6]}")  # other namespaces keep theirs
    assert api.model_info(own.repo_id).private is False

    cove("org", "set", org, "--private-by-default", "false")
    after = api.create_repo(f"{org}/after")
    assert api.model_info(after.repo_id).private is False
