"""Org roles as on the Hub (issue 10, finding 11): `read`, `contributor`, `write`, `admin`.

A `contributor` reads the org's repos and opens discussions and pull requests (the stock client's
``create_pr=True`` uploads, small, LFS and Xet), and pushes to the `refs/pr/N` they opened; never to a branch,
nor makes branches, tags or repos in the org. Since issue 12, as on the Hub, pull requests need no role: a
`read` member (any reader with a write token) opens them too; `write` still pushes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from cove.xet import hashes, shard, xorb
from tests.conftest import ENDPOINT, PORT, User, cove


def _status(e: pytest.ExceptionInfo) -> int:
    return e.value.response.status_code


def _user(prefix: str) -> User:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cove("user", "add", name, "--password", f"{name}-password")
    write = cove("token", "create", name, "--role", "write", "--name", "roles-write").stdout.strip()
    read = cove("token", "create", name, "--role", "read", "--name", "roles-read").stdout.strip()
    return User(name, write, read)


def _api(user: User, *, read_only: bool = False) -> HfApi:
    return HfApi(endpoint=ENDPOINT, token=user.read_token if read_only else user.token)


@pytest.fixture
def org(api, alice) -> dict:
    """A fresh org (alice admin) with a contributor, a read and a write member, and a private model in it."""
    name = f"roles-{uuid.uuid4().hex[:8]}"
    cove("org", "add", name, "--owner", "alice")
    members = {role: _user(role[:5]) for role in ("contributor", "read", "write")}
    for role, user in members.items():
        cove("org", "member", "add", name, user.name, "--role", role)
    repo_id = f"{name}/private-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id, private=True)
    api.upload_file(path_or_fileobj=b"v1\n", path_in_repo="README.txt", repo_id=repo_id)
    return {"org": name, "repo_id": repo_id, **members}


def _pr_file(api: HfApi, repo_id: str, pr_url: str, path: str) -> bytes:
    num = pr_url.rstrip("/").rsplit("/", 1)[1]
    return Path(hf_hub_download(repo_id, path, revision=f"refs/pr/{num}", token=api.token,
                                cache_dir=Path(os.environ["HF_HOME"]) / f"roles-{uuid.uuid4().hex[:6]}")).read_bytes()


def test_contributor_role_is_accepted_and_reads(org):
    c = org["contributor"]
    roles = {o["name"]: o["roleInOrg"] for o in _api(c).whoami()["orgs"]}
    assert roles[org["org"]] == "contributor"
    assert _api(c).model_info(org["repo_id"]).private
    path = hf_hub_download(org["repo_id"], "README.txt", token=c.read_token,
                           cache_dir=Path(os.environ["HF_HOME"]) / f"roles-{uuid.uuid4().hex[:6]}")
    assert Path(path).read_bytes() == b"v1\n"
    bad = cove("org", "member", "add", org["org"], c.name, "--role", "owner", check=False)
    assert bad.returncode != 0


def test_contributor_opens_pull_requests_small_file(api, org):
    c, repo_id = _api(org["contributor"]), org["repo_id"]
    main = api.model_info(repo_id).sha
    info = c.upload_file(path_or_fileobj=b"from a contributor\n", path_in_repo="notes.txt", repo_id=repo_id,
                         create_pr=True)
    assert info.pr_url
    assert _pr_file(api, repo_id, info.pr_url, "notes.txt") == b"from a contributor\n"
    assert api.model_info(repo_id).sha == main
    pr = api.get_discussion_details(repo_id, info.pr_num)
    assert pr.is_pull_request and pr.author == org["contributor"].name
    # A discussion, and a pull request opened through the discussions API.
    assert c.create_discussion(repo_id, title="a question").num > 0
    assert c.create_pull_request(repo_id, title="an empty PR").is_pull_request


def test_contributor_opens_pull_request_over_lfs(api, org, no_xet):
    c, repo_id = _api(org["contributor"]), org["repo_id"]
    data = b"\x00" + os.urandom(300_000)
    info = c.upload_file(path_or_fileobj=data, path_in_repo="weights.bin", repo_id=repo_id, create_pr=True)
    assert _pr_file(api, repo_id, info.pr_url, "weights.bin") == data
    sib = {s.rfilename: s for s in api.model_info(repo_id, revision=f"refs/pr/{info.pr_num}",
                                                   files_metadata=True).siblings}["weights.bin"]
    assert sib.lfs is not None and sib.lfs.size == len(data)


def test_contributor_opens_pull_request_over_xet(api, alice, org, tmp_path):
    c, repo_id = _api(org["contributor"]), org["repo_id"]
    data = b"\x00" + os.urandom(300_000)
    src = tmp_path / "w.bin"
    src.write_bytes(data)  # a path, not bytes in memory: the stock client takes the Xet route
    info = c.upload_file(path_or_fileobj=src, path_in_repo="xet.bin", repo_id=repo_id, create_pr=True)
    head = httpx.head(f"{ENDPOINT}/{repo_id}/resolve/refs%2Fpr%2F{info.pr_num}/xet.bin",
                      headers={"authorization": f"Bearer {alice.token}"})
    assert head.headers.get("x-xet-hash"), head.headers
    assert _pr_file(api, repo_id, info.pr_url, "xet.bin") == data


def _claim(token: str, repo_id: str, data: bytes, claimed_sha256: str) -> int:
    """As a PR's Xet upload: `data` as a xorb, and a shard naming it the file whose sha256 is `claimed_sha256`."""
    auth = {"authorization": f"Bearer {token}"}
    r = httpx.get(f"{ENDPOINT}/api/models/{repo_id}/xet-write-token/main", params={"create_pr": "1"}, headers=auth)
    assert r.status_code == 200, r.text
    base, cas = r.json()["casUrl"], {"authorization": f"Bearer {r.json()['accessToken']}"}
    chunks = [data[i:i + 50_000] for i in range(0, len(data), 50_000)]
    digest, body = xorb.serialize_xorb(chunks)
    assert httpx.post(f"{base}/v1/xorbs/default/{hashes.hash_to_hex(digest)}", content=body, headers=cas).is_success
    leaves = [(hashes.chunk_hash(c), len(c)) for c in chunks]
    f = shard.FileEntry(hashes.file_hash(leaves), [shard.FileTerm(digest, len(data), 0, len(leaves))],
                        [hashes.verification_hash([h for h, _ in leaves])], hashes.sha256_to_raw(claimed_sha256))
    return httpx.post(f"{base}/v1/shards", content=shard.serialize_shard([f], [], full=False),
                      headers=cas).status_code


@pytest.mark.parametrize("route", ["lfs", "xet"])
def test_contributor_upload_cannot_prime_what_main_serves(api, alice, org, route, request, tmp_path):
    """A contributor's uploads land nowhere until a commit: a false sha256 claim in their Xet shard must not
    become the bytes a write member's later upload of that sha256 serves on main."""
    if route == "lfs":
        request.getfixturevalue("no_xet")
    repo_id = org["repo_id"]
    real = b"\x00" + os.urandom(150_000)
    oid = hashlib.sha256(real).hexdigest()
    claimed = _claim(org["contributor"].token, repo_id, os.urandom(len(real)), oid)
    src = tmp_path / "real.bin"
    src.write_bytes(real)
    api.upload_file(path_or_fileobj=src, path_in_repo="model.bin", repo_id=repo_id)
    got = httpx.get(f"{ENDPOINT}/{repo_id}/resolve/main/model.bin", headers={"authorization": f"Bearer {alice.token}"})
    assert got.content == real, "main serves the contributor's bytes under the real sha256"
    assert claimed == 400  # the server hashed the contributor's file: not the sha256 they claimed
    # A write member's own upload (their claim is theirs to make, as before) is unchanged: a true claim works.
    assert _claim(org["contributor"].token, repo_id, real, oid) == 200


def test_contributor_pushes_only_to_their_own_pull_request(api, org):
    c, repo_id = _api(org["contributor"]), org["repo_id"]
    mine = c.upload_file(path_or_fileobj=b"1", path_in_repo="a.txt", repo_id=repo_id, create_pr=True)
    c.upload_file(path_or_fileobj=b"2", path_in_repo="a.txt", repo_id=repo_id, revision=f"refs/pr/{mine.pr_num}")
    assert _pr_file(api, repo_id, mine.pr_url, "a.txt") == b"2"
    theirs = api.upload_file(path_or_fileobj=b"alice", path_in_repo="b.txt", repo_id=repo_id, create_pr=True)
    with pytest.raises(HfHubHTTPError) as e:
        c.upload_file(path_or_fileobj=b"hijack", path_in_repo="b.txt", repo_id=repo_id,
                      revision=f"refs/pr/{theirs.pr_num}")
    assert _status(e) == 403
    assert _pr_file(api, repo_id, theirs.pr_url, "b.txt") == b"alice"
    # A write member may push to anyone's pull request, as before.
    _api(org["write"]).upload_file(path_or_fileobj=b"fixed", path_in_repo="b.txt", repo_id=repo_id,
                                   revision=f"refs/pr/{theirs.pr_num}")
    assert _pr_file(api, repo_id, theirs.pr_url, "b.txt") == b"fixed"


def test_contributor_cannot_push_branch_tag_or_create_repos(api, org, no_xet):
    c, repo_id = _api(org["contributor"]), org["repo_id"]
    main = api.model_info(repo_id).sha
    attempts = [
        lambda: c.upload_file(path_or_fileobj=b"x", path_in_repo="main.txt", repo_id=repo_id),
        lambda: c.upload_file(path_or_fileobj=b"\x00" + os.urandom(2000), path_in_repo="main.bin", repo_id=repo_id),
        lambda: c.delete_file("README.txt", repo_id=repo_id),
        lambda: c.create_branch(repo_id, branch="contrib"),
        lambda: c.create_tag(repo_id, tag="v-contrib"),
        lambda: c.super_squash_history(repo_id),
        lambda: c.create_repo(f"{org['org']}/new-{uuid.uuid4().hex[:6]}"),
        lambda: c.update_repo_settings(repo_id, private=False),
        lambda: c.delete_repo(repo_id),
    ]
    for attempt in attempts:
        with pytest.raises(HfHubHTTPError) as e:
            attempt()
        assert _status(e) == 403, e.value
    assert api.model_info(repo_id).sha == main
    refs = api.list_repo_refs(repo_id)
    assert [b.name for b in refs.branches] == ["main"] and refs.tags == []
    # A read token of a contributor opens no pull request either.
    with pytest.raises(HfHubHTTPError) as e:
        _api(org["contributor"], read_only=True).upload_file(path_or_fileobj=b"x", path_in_repo="ro.txt",
                                                             repo_id=repo_id, create_pr=True)
    assert _status(e) == 403


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_contributor_git_pushes_only_to_their_own_pull_request(api, org, tmp_path):
    c, repo_id = org["contributor"], org["repo_id"]
    env = {**os.environ, "HOME": str(tmp_path), "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_LFS_SKIP_SMUDGE": "1"}
    url = f"http://{c.name}:{c.token}@127.0.0.1:{PORT}/{repo_id}"
    work = tmp_path / "work"

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-c", "user.name=c", "-c", "user.email=c@x", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    assert git("clone", "-q", url, str(work)).returncode == 0  # a contributor reads
    (work / "pushed.txt").write_text("pushed\n")
    assert git("-C", str(work), "add", "pushed.txt").returncode == 0
    assert git("-C", str(work), "commit", "-qm", "push").returncode == 0
    main = api.model_info(repo_id).sha
    theirs = api.create_pull_request(repo_id, title="alice's")
    for ref, why in (("HEAD:main", "You don't have the rights to write to"),
                     ("HEAD:refs/heads/contrib", "You don't have the rights to write to"),
                     (f"HEAD:refs/pr/{theirs.num}", "only the author of pull request"),
                     ("HEAD:refs/pr/99", "opened through the API")):
        push = git("-C", str(work), "push", "origin", ref)
        assert push.returncode != 0 and why in push.stderr, push.stderr
    assert api.model_info(repo_id).sha == main
    mine = _api(c).create_pull_request(repo_id, title="mine")
    assert git("-C", str(work), "fetch", "-q", "origin", f"refs/pr/{mine.num}").returncode == 0
    assert git("-C", str(work), "merge", "-q", "--allow-unrelated-histories", "FETCH_HEAD").returncode == 0
    push = git("-C", str(work), "push", "origin", f"HEAD:refs/pr/{mine.num}")
    assert push.returncode == 0, push.stderr
    assert _pr_file(api, repo_id, f"x/{mine.num}", "pushed.txt") == b"pushed\n"
    # A read token is refused before anything is sent.
    r = httpx.get(f"{ENDPOINT}/{repo_id}.git/info/refs", params={"service": "git-receive-pack"},
                  auth=(c.name, c.read_token))
    assert r.status_code == 403


def test_read_member_opens_pull_requests(api, org, no_xet):
    """Hub parity (issue 12): a `read` member with a write token opens pull requests, as any reader may."""
    r, repo_id = _api(org["read"]), org["repo_id"]
    main = api.model_info(repo_id).sha
    small = r.upload_file(path_or_fileobj=b"x", path_in_repo="r.txt", repo_id=repo_id, create_pr=True)
    data = b"\x00" + os.urandom(2000)
    big = r.upload_file(path_or_fileobj=data, path_in_repo="r.bin", repo_id=repo_id, create_pr=True)
    assert _pr_file(api, repo_id, small.pr_url, "r.txt") == b"x"
    assert _pr_file(api, repo_id, big.pr_url, "r.bin") == data
    assert r.create_pull_request(repo_id, title="from a reader").is_pull_request
    assert api.model_info(repo_id).sha == main
    token = httpx.get(f"{ENDPOINT}/api/models/{repo_id}/xet-write-token/main", params={"create_pr": "1"},
                      headers={"authorization": f"Bearer {org['read'].token}"})
    assert token.status_code == 200
    with pytest.raises(HfHubHTTPError) as e:  # main stays a writer's
        r.upload_file(path_or_fileobj=b"x", path_in_repo="r.txt", repo_id=repo_id)
    assert _status(e) == 403
    with pytest.raises(HfHubHTTPError) as e:  # a read token opens nothing
        _api(org["read"], read_only=True).upload_file(path_or_fileobj=b"x", path_in_repo="ro.txt", repo_id=repo_id,
                                                      create_pr=True)
    assert _status(e) == 403


def test_write_member_still_pushes(api, org):
    w, repo_id = _api(org["write"]), org["repo_id"]
    w.upload_file(path_or_fileobj=b"w", path_in_repo="w.txt", repo_id=repo_id)
    w.create_branch(repo_id, branch="w-branch")
    w.create_tag(repo_id, tag="w-tag")
    assert w.upload_file(path_or_fileobj=b"pr", path_in_repo="pr.txt", repo_id=repo_id, create_pr=True).pr_url
    w.create_repo(f"{org['org']}/w-{uuid.uuid4().hex[:6]}")
    assert api.hf_hub_download(repo_id, "w.txt", cache_dir=Path(os.environ["HF_HOME"]) / uuid.uuid4().hex[:6])
