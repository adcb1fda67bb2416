"""The remaining Hub routes the stock client calls: tasks, organizations, org settings, LFS file listing and
deletion, repo duplication and the storage listing — each through `huggingface_hub` against `cove serve`."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

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
    listed = {o["name"]: o for o in json.loads(cove("org", "list", "--json").stdout)}
    assert listed[org]["private_by_default"] is True
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


# --- b. LFS files: list and delete for good -----------------------------------------------------------


def _blob_files(server, oid: str) -> list:
    return [p for p in server.data.rglob(oid) if p.is_file() and "lfs" in p.parts]


def test_list_and_permanently_delete_lfs_files(server, api, bob_api, alice, no_xet, repo_factory, tmp_path) -> None:
    import hashlib

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    repo, other = repo_factory("lfs-a"), repo_factory("lfs-b")
    own, shared = uuid.uuid4().bytes * 100, uuid.uuid4().bytes * 120
    api.upload_file(path_or_fileobj=own, path_in_repo="weights/own.bin", repo_id=repo)
    api.upload_file(path_or_fileobj=shared, path_in_repo="shared.bin", repo_id=repo)
    api.upload_file(path_or_fileobj=b"plain text", path_in_repo="notes.txt", repo_id=repo)
    api.upload_file(path_or_fileobj=shared, path_in_repo="copy.bin", repo_id=other)
    own_oid, shared_oid = hashlib.sha256(own).hexdigest(), hashlib.sha256(shared).hexdigest()

    files = {f.file_oid: f for f in api.list_lfs_files(repo)}
    assert set(files) == {own_oid, shared_oid}
    assert files[own_oid].filename == "weights/own.bin" and files[own_oid].size == len(own)
    assert files[own_oid].oid == own_oid and files[own_oid].ref == "refs/heads/main"
    assert files[own_oid].pushed_at is not None

    # Pages follow the Link header.
    r = httpx.get(f"{ENDPOINT}/api/models/{repo}/lfs-files", params={"limit": 1},
                  headers={"authorization": f"Bearer {alice.token}"})
    assert len(r.json()) == 1 and 'rel="next"' in r.headers["link"]

    # Not a writer: 403 to list and to delete; a read token may not delete either.
    for call in (lambda: list(bob_api.list_lfs_files(repo)),
                 lambda: bob_api.permanently_delete_lfs_files(repo, list(files.values())),
                 lambda: HfApi(endpoint=ENDPOINT, token=alice.read_token).permanently_delete_lfs_files(
                     repo, list(files.values()))):
        with pytest.raises(HfHubHTTPError) as exc:
            call()
        assert exc.value.response.status_code == 403
    assert _blob_files(server, own_oid)

    commits_before = len(api.list_repo_commits(repo))
    api.permanently_delete_lfs_files(repo, list(files.values()))  # rewrite_history=True by default
    assert list(api.list_lfs_files(repo)) == []
    tree = {f.path for f in api.list_repo_tree(repo, recursive=True)}
    assert "weights/own.bin" not in tree and "shared.bin" not in tree and "notes.txt" in tree
    assert len(api.list_repo_commits(repo)) == commits_before  # history rewritten, not cut
    for commit in api.list_repo_commits(repo):
        assert not any(f.path.endswith(".bin") for f in api.list_repo_tree(repo, revision=commit.commit_id,
                                                                           recursive=True))
    assert not _blob_files(server, own_oid)  # no other repo held it: the bytes are gone
    assert _blob_files(server, shared_oid)  # another repo holds it: its bytes stay
    path = hf_hub_download(other, "copy.bin", cache_dir=tmp_path / "c1")
    assert Path(path).read_bytes() == shared
    assert api.model_info(repo).sha == api.list_repo_commits(repo)[0].commit_id

    # Without the rewrite the pointer stays and the file answers 404 (its bytes are no longer this repo's).
    api.upload_file(path_or_fileobj=own, path_in_repo="again.bin", repo_id=repo)
    api.permanently_delete_lfs_files(repo, list(api.list_lfs_files(repo)), rewrite_history=False)
    assert "again.bin" in {f.path for f in api.list_repo_tree(repo)}
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo, "again.bin", cache_dir=tmp_path / "c2")


def test_lfs_files_private_repo_answers_as_missing(bob_api, repo_factory) -> None:
    repo = repo_factory("lfs-private", private=True)
    with pytest.raises(RepositoryNotFoundError):
        list(bob_api.list_lfs_files(repo))
    r = httpx.post(f"{ENDPOINT}/api/models/{repo}/lfs-files/batch", json={"deletions": {"sha": ["0" * 64]}})
    assert r.status_code == 404 and r.headers["x-error-code"] == "RepoNotFound"


def test_xet_file_listed_with_its_hash_and_deleted(api, repo_factory, tmp_path) -> None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    repo = repo_factory("lfs-xet")
    data = uuid.uuid4().bytes * 5000
    api.upload_file(path_or_fileobj=data, path_in_repo="model.safetensors", repo_id=repo)
    [f] = api.list_lfs_files(repo)
    assert f.filename == "model.safetensors" and f.size == len(data)
    assert getattr(f, "xetHash", None) == api.get_paths_info(repo, ["model.safetensors"])[0].xet_hash
    api.permanently_delete_lfs_files(repo, [f], rewrite_history=False)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo, "model.safetensors", cache_dir=tmp_path)


def test_cross_repo_copy_duplicates_lfs_files_by_reference(api, bob_api, bob, repo_factory, tmp_path) -> None:
    from huggingface_hub import CommitOperationCopy, hf_hub_download

    src = repo_factory("copy-src")
    data = uuid.uuid4().bytes * 4000
    api.upload_file(path_or_fileobj=data, path_in_repo="w.safetensors", repo_id=src)
    dst = f"{bob.name}/copy-dst-{uuid.uuid4().hex[:6]}"
    bob_api.create_repo(dst)
    try:
        op = CommitOperationCopy(src_path_in_repo="w.safetensors", path_in_repo="copied.safetensors",
                                 src_repo_id=src, src_repo_type="model")
        bob_api.create_commit(dst, operations=[op], commit_message="copy from alice")
        path = hf_hub_download(dst, "copied.safetensors", cache_dir=tmp_path, token=bob.token)
        assert Path(path).read_bytes() == data
        assert [f.size for f in bob_api.list_lfs_files(dst)] == [len(data)]

        # A source or a target the caller may not read answers as missing; a read token may not add files.
        private = repo_factory("copy-private", private=True)
        for source, target in ((private, dst), (src, private)):
            r = httpx.post(f"{ENDPOINT}/api/models/{source}/lfs-files/duplicate",
                           json={"target": {"type": "model", "name": target}, "files": []},
                           headers={"authorization": f"Bearer {bob.token}"})
            assert r.status_code == 404 and r.headers["x-error-code"] == "RepoNotFound"
        r = httpx.post(f"{ENDPOINT}/api/models/{src}/lfs-files/duplicate",
                       json={"target": {"type": "model", "name": dst}, "files": []},
                       headers={"authorization": f"Bearer {bob.read_token}"})
        assert r.status_code == 403
    finally:
        bob_api.delete_repo(dst, missing_ok=True)


# --- d. duplicate a repo --------------------------------------------------------------------------------


def test_duplicate_space_copies_history_and_files(api, bob_api, bob, repo_factory, tmp_path) -> None:
    from huggingface_hub import hf_hub_download

    src = repo_factory("dup-space", repo_type="space", space_sdk="gradio")
    data = uuid.uuid4().bytes * 3000
    api.upload_file(path_or_fileobj=b"import gradio\n", path_in_repo="app.py", repo_id=src, repo_type="space")
    api.upload_file(path_or_fileobj=data, path_in_repo="assets/big.bin", repo_id=src, repo_type="space")
    api.create_branch(src, branch="dev", repo_type="space")
    api.create_tag(src, tag="v1", repo_type="space")

    url = bob_api.duplicate_repo(src, repo_type="space", space_hardware="cpu-basic",
                                 space_secrets=[{"key": "K", "value": "v"}])
    copy = f"{bob.name}/{src.split('/')[1]}"
    try:
        assert url.repo_id == copy and url.repo_type == "space"
        info = bob_api.space_info(copy)
        assert info.sdk == "gradio" and info.private is False
        assert [c.commit_id for c in bob_api.list_repo_commits(copy, repo_type="space")] == \
            [c.commit_id for c in api.list_repo_commits(src, repo_type="space")]
        refs = bob_api.list_repo_refs(copy, repo_type="space")
        assert {b.name for b in refs.branches} == {"main", "dev"} and [t.name for t in refs.tags] == ["v1"]
        api.delete_repo(src, repo_type="space")  # the copy shares the bytes, it does not lean on the source
        path = hf_hub_download(copy, "assets/big.bin", repo_type="space", cache_dir=tmp_path, token=bob.token)
        assert Path(path).read_bytes() == data

        with pytest.raises(HfHubHTTPError) as exc:
            bob_api.duplicate_repo(copy, repo_type="space")  # onto itself: exists
        assert exc.value.response.status_code == 409
        again = bob_api.duplicate_repo(copy, to_id=copy, repo_type="space", exist_ok=True)
        assert again.repo_id == copy
    finally:
        bob_api.delete_repo(copy, repo_type="space", missing_ok=True)


def test_duplicate_model_visibility_and_access(api, bob_api, anon_api, repo_factory) -> None:
    src = repo_factory("dup-model")
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=src)
    to = f"{src}-private-copy"
    url = api.duplicate_repo(src, to_id=to, private=True)
    try:
        assert url.repo_id == to and api.model_info(to).private is True
        assert api.model_info(to).sha == api.model_info(src).sha
        with pytest.raises(RepositoryNotFoundError):
            anon_api.model_info(to)
        # A source the caller may not read answers as missing; the target namespace must be theirs.
        with pytest.raises(RepositoryNotFoundError):
            bob_api.duplicate_repo(to)
        with pytest.raises(HfHubHTTPError) as exc:
            bob_api.duplicate_repo(src, to_id=f"{src}-by-bob")  # alice's namespace
        assert exc.value.response.status_code == 403
    finally:
        api.delete_repo(to, missing_ok=True)


# --- c. repos with their storage (list_user_repos) ------------------------------------------------------


def test_list_user_repos_with_storage(api, bob_api, anon_api, alice, acme, repo_factory) -> None:
    mine = repo_factory("usage", private=True)
    data = uuid.uuid4().bytes * 2000
    api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=mine)
    rows = {r.id: r for r in api.list_user_repos()}
    assert all(r.id.startswith(f"{alice.name}/") for r in rows.values())
    assert rows[mine].type == "model" and rows[mine].visibility == "private"
    assert rows[mine].storage >= len(data) and 0 < rows[mine].storage_percent <= 100
    assert rows[mine].updated_at is not None
    assert mine not in {r.id for r in bob_api.list_user_repos()}

    org_repo = repo_factory("usage-org", owner=acme)
    assert org_repo in {r.id for r in api.list_user_repos(namespace=acme)}
    with pytest.raises(HfHubHTTPError) as exc:
        list(bob_api.list_user_repos(namespace=acme))  # not a member
    assert exc.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as exc:
        list(anon_api.list_user_repos())
    assert exc.value.response.status_code == 401


def test_hf_cli_repos_ls_and_duplicate(alice, repo_factory) -> None:
    import os
    import subprocess
    import sys

    src = repo_factory("cli-dup")
    to = f"{src}-copy"
    env = {**os.environ, "HF_TOKEN": alice.token, "HF_ENDPOINT": ENDPOINT}
    hf = [str(Path(sys.executable).parent / "hf")]
    try:
        dup = subprocess.run([*hf, "repos", "duplicate", src, to], env=env, capture_output=True, text=True)
        assert dup.returncode == 0, dup.stderr
        ls = subprocess.run([*hf, "repos", "ls", "--limit", "0"], env=env, capture_output=True, text=True)
        assert ls.returncode == 0, ls.stderr
        assert src in ls.stdout and to in ls.stdout
    finally:
        HfApi(endpoint=ENDPOINT, token=alice.token).delete_repo(to, missing_ok=True)
