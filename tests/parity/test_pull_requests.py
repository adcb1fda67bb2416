"""Pull requests by anyone who can read (issue 12, item 4), with the stock client, and `git push` to refs/pr/N.

On the Hub any signed-in reader with a write token opens a pull request (``create_pr=True``: preupload, LFS
batch or Xet uploads, the commit) and commits to the one they opened; merging, branches and tags need write.
A repo the caller can't read stays exactly a missing one; a gated repo needs granted access.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from cove.xet import hashes, shard, xorb
from tests.conftest import ENDPOINT, User, cove


def _status(e: pytest.ExceptionInfo) -> int:
    return e.value.response.status_code


def _read(repo_id: str, path: str, revision: str, token: str) -> bytes:
    cache = Path(os.environ["HF_HOME"]) / f"prs-{uuid.uuid4().hex[:6]}"
    return Path(hf_hub_download(repo_id, path, revision=revision, token=token, cache_dir=cache)).read_bytes()


def _user(prefix: str) -> User:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cove("user", "add", name, "--password", f"{name}-password")
    write = cove("token", "create", name, "--role", "write", "--name", "prs-write").stdout.strip()
    read = cove("token", "create", name, "--role", "read", "--name", "prs-read").stdout.strip()
    return User(name, write, read)


@pytest.fixture
def public_repo(api, repo_factory) -> str:
    repo_id = repo_factory("prs")
    api.upload_file(path_or_fileobj=b"v1\n", path_in_repo="README.txt", repo_id=repo_id)
    return repo_id


def test_outsider_opens_pull_requests_on_a_public_repo(api, bob_api, bob, public_repo, tmp_path, no_xet):
    main = api.model_info(public_repo).sha
    small = bob_api.upload_file(path_or_fileobj=b"from bob\n", path_in_repo="bob.txt", repo_id=public_repo,
                                create_pr=True, commit_message="Add bob.txt")
    assert small.pr_url and small.pr_num
    pr = api.get_discussion_details(public_repo, small.pr_num)
    assert pr.is_pull_request and pr.author == bob.name and pr.status == "open"
    assert _read(public_repo, "bob.txt", pr.git_reference, bob.token) == b"from bob\n"
    lfs = b"\x00" + os.urandom(200_000)  # binary: an LFS upload (batch, then the object)
    big = bob_api.upload_file(path_or_fileobj=lfs, path_in_repo="weights.bin", repo_id=public_repo, create_pr=True)
    assert _read(public_repo, "weights.bin", f"refs/pr/{big.pr_num}", api.token) == lfs
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_bytes(b"a")
    (folder / "b.bin").write_bytes(b"\x00" + os.urandom(5000))
    up = bob_api.upload_folder(folder_path=folder, repo_id=public_repo, create_pr=True)
    assert _read(public_repo, "sub/a.txt", f"refs/pr/{up.pr_num}", bob.token) == b"a"
    info = bob_api.create_commit(public_repo, [CommitOperationAdd("c.txt", b"c")], commit_message="c",
                                 create_pr=True)
    assert info.pr_num and info.pr_num not in (small.pr_num, big.pr_num, up.pr_num)
    # bob adds commits to the PR he opened; main never moved
    bob_api.upload_file(path_or_fileobj=b"v2\n", path_in_repo="bob.txt", repo_id=public_repo,
                        revision=f"refs/pr/{small.pr_num}")
    assert _read(public_repo, "bob.txt", f"refs/pr/{small.pr_num}", bob.token) == b"v2\n"
    assert api.model_info(public_repo).sha == main
    # the owner merges it
    api.merge_pull_request(public_repo, small.pr_num)
    assert _read(public_repo, "bob.txt", "main", api.token) == b"v2\n"

    # a signed-in caller with a write token: the anonymous get 401, a read token 403
    with pytest.raises(HfHubHTTPError) as e:
        HfApi(endpoint=ENDPOINT, token=False).upload_file(path_or_fileobj=b"x", path_in_repo="x.txt",
                                                          repo_id=public_repo, create_pr=True)
    assert _status(e) == 401
    ro = HfApi(endpoint=ENDPOINT, token=bob.read_token)
    for attempt in (lambda: ro.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=public_repo,
                                           create_pr=True),
                    lambda: ro.create_pull_request(public_repo, title="read token")):
        with pytest.raises(HfHubHTTPError) as e:
            attempt()
        assert _status(e) == 403
    r = httpx.get(f"{ENDPOINT}/api/models/{public_repo}/xet-write-token/main", params={"create_pr": "1"},
                  headers={"authorization": f"Bearer {bob.read_token}"})
    assert r.status_code == 403


def test_outsider_opens_pull_request_over_xet(api, bob_api, bob, public_repo, tmp_path):
    data = b"\x00" + os.urandom(300_000)
    src = tmp_path / "w.bin"
    src.write_bytes(data)  # a path: the stock client takes the Xet route
    info = bob_api.upload_file(path_or_fileobj=src, path_in_repo="xet.bin", repo_id=public_repo, create_pr=True)
    head = httpx.head(f"{ENDPOINT}/{public_repo}/resolve/refs%2Fpr%2F{info.pr_num}/xet.bin")
    assert head.headers.get("x-xet-hash"), head.headers
    assert _read(public_repo, "xet.bin", f"refs/pr/{info.pr_num}", bob.token) == data
    # the same bytes again (another PR of his): still right
    again = bob_api.upload_file(path_or_fileobj=src, path_in_repo="again.bin", repo_id=public_repo, create_pr=True)
    assert _read(public_repo, "again.bin", f"refs/pr/{again.pr_num}", api.token) == data


def test_outsider_cannot_write_branches_tags_or_others_prs(api, bob_api, bob, public_repo, repo_factory,
                                                             no_xet):
    main = api.model_info(public_repo).sha
    alices = api.upload_file(path_or_fileobj=b"alice", path_in_repo="a.txt", repo_id=public_repo, create_pr=True)
    mine = bob_api.create_pull_request(public_repo, title="bob's")
    attempts = [
        lambda: bob_api.upload_file(path_or_fileobj=b"x", path_in_repo="main.txt", repo_id=public_repo),
        lambda: bob_api.upload_file(path_or_fileobj=b"\x00" + os.urandom(2000), path_in_repo="m.bin",
                                    repo_id=public_repo),
        lambda: bob_api.upload_file(path_or_fileobj=b"hijack", path_in_repo="a.txt", repo_id=public_repo,
                                    revision=f"refs/pr/{alices.pr_num}"),
        lambda: bob_api.create_branch(public_repo, branch="bob"),
        lambda: bob_api.create_tag(public_repo, tag="v-bob"),
        lambda: bob_api.merge_pull_request(public_repo, mine.num),
        lambda: bob_api.merge_pull_request(public_repo, alices.pr_num),
        lambda: bob_api.update_repo_settings(public_repo, private=True),
    ]
    for attempt in attempts:
        with pytest.raises(HfHubHTTPError) as e:
            attempt()
        assert _status(e) == 403, e.value
    assert api.model_info(public_repo).sha == main
    assert _read(public_repo, "a.txt", f"refs/pr/{alices.pr_num}", api.token) == b"alice"
    refs = api.list_repo_refs(public_repo)
    assert [b.name for b in refs.branches] == ["main"] and refs.tags == []
    # a repo bob can't read stays exactly a missing one
    private = repo_factory("prs-private", private=True)
    missing = f"alice/never-{uuid.uuid4().hex[:8]}"
    answers = []
    for repo_id in (private, missing):
        with pytest.raises(RepositoryNotFoundError) as e:
            bob_api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id, create_pr=True)
        r = e.value.response
        answers.append((r.status_code, r.headers.get("x-error-code"),
                        r.headers.get("x-error-message", "").replace(repo_id, "<repo>")))
    assert answers[0] == answers[1] and answers[0][0] == 404


def test_org_read_member_opens_pull_requests_on_a_private_repo(api, alice, no_xet):
    org = f"prs-{uuid.uuid4().hex[:8]}"
    cove("org", "add", org, "--owner", alice.name)
    reader = _user("reader")
    cove("org", "member", "add", org, reader.name, "--role", "read")
    repo_id = f"{org}/private-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id, private=True)
    r = HfApi(endpoint=ENDPOINT, token=reader.token)
    info = r.upload_file(path_or_fileobj=b"\x00" + b"r" * 3000, path_in_repo="r.bin", repo_id=repo_id,
                         create_pr=True)
    assert api.get_discussion_details(repo_id, info.pr_num).author == reader.name
    with pytest.raises(HfHubHTTPError) as e:
        r.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
    assert _status(e) == 403


def test_gated_repo_needs_granted_access(api, bob_api, bob, public_repo, no_xet):
    api.update_repo_settings(public_repo, gated="manual")
    with pytest.raises(HfHubHTTPError) as e:
        bob_api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=public_repo, create_pr=True)
    assert _status(e) == 403 and e.value.response.headers.get("x-error-code") == "GatedRepo"
    api.grant_access(public_repo, bob.name)
    info = bob_api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=public_repo, create_pr=True)
    assert _read(public_repo, "x.txt", f"refs/pr/{info.pr_num}", api.token) == b"x"


def _cas(token: str, repo_id: str, *, create_pr: bool) -> tuple[str, dict]:
    r = httpx.get(f"{ENDPOINT}/api/models/{repo_id}/xet-write-token/main",
                  params={"create_pr": "1"} if create_pr else None, headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.json()["casUrl"], {"authorization": f"Bearer {r.json()['accessToken']}"}


def test_outsider_xet_uploads_reveal_nothing_of_private_repos(alice, bob, repo_factory, public_repo):
    """An outsider's CAS write token (for a PR on a public repo) must not answer, through dedup or
    "already stored", which bytes the owner's private repos hold (issue 10's Xet promise)."""
    private = repo_factory("prs-secret", private=True)
    secret = os.urandom(120_000)
    chunks = [secret[i:i + 40_000] for i in range(0, len(secret), 40_000)]
    digest, body = xorb.serialize_xorb(chunks)
    name = hashes.hash_to_hex(digest)
    base, cas = _cas(alice.token, private, create_pr=False)
    assert httpx.post(f"{base}/v1/xorbs/default/{name}", content=body, headers=cas).is_success
    leaves = [(hashes.chunk_hash(c), len(c)) for c in chunks]
    f = shard.FileEntry(hashes.file_hash(leaves), [shard.FileTerm(digest, len(secret), 0, len(leaves))],
                        [hashes.verification_hash([h for h, _ in leaves])], None)
    assert httpx.post(f"{base}/v1/shards", content=shard.serialize_shard([f], [], full=False), headers=cas).is_success
    first = hashes.hash_to_hex(leaves[0][0])
    # alice's own token for her public repo sees her namespace's dedup
    base_a, cas_a = _cas(alice.token, public_repo, create_pr=False)
    assert httpx.get(f"{base_a}/v1/chunks/default-merkledb/{first}", headers=cas_a).status_code == 200
    # bob's, for a pull request on that public repo, sees nothing of it
    base_b, cas_b = _cas(bob.token, public_repo, create_pr=True)
    assert httpx.get(f"{base_b}/v1/chunks/default-merkledb/{first}", headers=cas_b).status_code == 404
    assert httpx.head(f"{base_b}/v1/xorbs/default/{name}", headers=cas_b).status_code == 404
    # an upload of those bytes is taken (bob holds them), answered as new: nothing told
    up = httpx.post(f"{base_b}/v1/xorbs/default/{name}", content=body, headers=cas_b)
    assert up.is_success and up.json()["was_inserted"] is True
    # and now they are in bob's own scope: his next upload may skip them
    assert httpx.head(f"{base_b}/v1/xorbs/default/{name}", headers=cas_b).status_code == 200


# -- git push to refs/pr/N ---------------------------------------------------------------------------------------

needs_git = pytest.mark.skipif(shutil.which("git") is None or shutil.which("git-lfs") is None,
                               reason="needs git and git-lfs")


@pytest.fixture
def git(tmp_path):
    """Real git (git-lfs installed in a private HOME, no prompts); ``git(*args, cwd=...) -> CompletedProcess``."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), GIT_TERMINAL_PROMPT="0",
               GIT_CONFIG_NOSYSTEM="1", LC_ALL="C")

    def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)

    for args in (("config", "--global", "user.name", "Bob Pusher"), ("config", "--global", "user.email", "b@x"),
                 ("config", "--global", "init.defaultBranch", "main"), ("lfs", "install")):
        assert run(*args).returncode == 0
    return run


def _url(repo_id: str, user: User, token: str | None = None) -> str:
    return f"http://{user.name}:{token or user.token}@127.0.0.1:{ENDPOINT.rsplit(':', 1)[1]}/{repo_id}"


def _pr_checkout(git, repo_id: str, user: User, num: int, work: Path) -> None:
    assert git("clone", "-q", _url(repo_id, user), work).returncode == 0
    fetched = git("fetch", "-q", "origin", f"refs/pr/{num}:pr-{num}", cwd=work)
    assert fetched.returncode == 0, fetched.stderr
    assert git("checkout", "-q", f"pr-{num}", cwd=work).returncode == 0


def _commit(git, work: Path, files: dict[str, bytes], message: str) -> str:
    for path, data in files.items():
        (work / path).write_bytes(data)
    assert git("add", "-A", cwd=work).returncode == 0
    assert git("commit", "-q", "-m", message, cwd=work).returncode == 0
    return git("rev-parse", "HEAD", cwd=work).stdout.strip()


@needs_git
def test_author_pushes_to_their_pull_request_with_git(api, bob_api, bob, public_repo, git, tmp_path):
    main = api.model_info(public_repo).sha
    pr = bob_api.create_pull_request(public_repo, title="bob's change")
    work = tmp_path / "work"
    _pr_checkout(git, public_repo, bob, pr.num, work)
    assert git("lfs", "track", "*.bin", cwd=work).returncode == 0
    weights = b"\x00" + os.urandom(150_000)
    sha = _commit(git, work, {"bob.txt": b"pushed\n", "w.bin": weights}, "Push bob.txt and w.bin")
    push = git("push", "origin", f"HEAD:refs/pr/{pr.num}", cwd=work)
    assert push.returncode == 0, push.stderr
    assert api.list_repo_refs(public_repo, include_pull_requests=True).pull_requests[0].target_commit == sha
    assert _read(public_repo, "bob.txt", f"refs/pr/{pr.num}", bob.token) == b"pushed\n"
    assert _read(public_repo, "w.bin", f"refs/pr/{pr.num}", api.token) == weights
    details = api.get_discussion_details(public_repo, pr.num)
    commits = [e for e in details.events if e.type == "commit"]
    assert [(c.summary, c.oid) for c in commits] == [("Push bob.txt and w.bin", sha)]
    assert "bob.txt" in (details.diff or "")
    assert api.model_info(public_repo).sha == main
    # a second push by the author moves it again; the owner merges what was pushed
    sha2 = _commit(git, work, {"bob.txt": b"pushed twice\n"}, "Second push")
    assert git("push", "origin", f"HEAD:refs/pr/{pr.num}", cwd=work).returncode == 0
    assert [e.oid for e in api.get_discussion_details(public_repo, pr.num).events if e.type == "commit"][-1] == sha2
    api.merge_pull_request(public_repo, pr.num)
    assert _read(public_repo, "bob.txt", "main", api.token) == b"pushed twice\n"


@needs_git
def test_git_push_refusals_for_pull_requests(api, alice, bob_api, bob, public_repo, git, tmp_path):
    main = api.model_info(public_repo).sha
    alices = api.create_pull_request(public_repo, title="alice's")
    mine = bob_api.create_pull_request(public_repo, title="bob's")
    work = tmp_path / "work"
    _pr_checkout(git, public_repo, bob, mine.num, work)
    _commit(git, work, {"x.txt": b"x\n"}, "x")
    refs = api.list_repo_refs(public_repo, include_pull_requests=True)
    before = {r.ref: r.target_commit for r in refs.pull_requests}

    def refused(ref: str, message: str, token: str | None = None) -> None:
        push = git("push", _url(public_repo, bob, token), f"HEAD:{ref}", cwd=work)
        assert push.returncode != 0 and message in push.stderr, push.stderr

    refused("main", f"remote: You don't have the rights to write to {public_repo}")
    refused("refs/heads/bob", f"remote: You don't have the rights to write to {public_repo}")
    refused("refs/tags/v-bob", f"remote: You don't have the rights to write to {public_repo}")
    refused(f"refs/pr/{alices.num}", f"only the author of pull request #{alices.num} ({alice.name})")
    refused("refs/pr/999", "pull requests are opened through the API")
    refused(f"refs/pr/{mine.num}", "read-only access", token=bob.read_token)
    after = api.list_repo_refs(public_repo, include_pull_requests=True)
    assert {r.ref: r.target_commit for r in after.pull_requests} == before
    assert [b.name for b in after.branches] == ["main"] and after.tags == []
    assert api.model_info(public_repo).sha == main
    # a writer may push to anyone's open pull request
    owner = tmp_path / "owner"
    _pr_checkout(git, public_repo, alice, mine.num, owner)
    _commit(git, owner, {"fix.txt": b"fix\n"}, "fix from the owner")
    assert git("push", "origin", f"HEAD:refs/pr/{mine.num}", cwd=owner).returncode == 0
    # ... but nobody to a closed or merged one
    api.change_discussion_status(public_repo, mine.num, "closed")
    assert git("fetch", "-q", "origin", f"refs/pr/{mine.num}", cwd=work).returncode == 0
    assert git("merge", "-q", "FETCH_HEAD", cwd=work).returncode == 0
    refused(f"refs/pr/{mine.num}", f"pull request #{mine.num} is closed")
    _commit(git, owner, {"fix.txt": b"fix 2\n"}, "after closing")
    push = git("push", "origin", f"HEAD:refs/pr/{mine.num}", cwd=owner)
    assert push.returncode != 0 and f"pull request #{mine.num} is closed" in push.stderr
    api.upload_file(path_or_fileobj=b"a", path_in_repo="a.txt", repo_id=public_repo, revision=f"refs/pr/{alices.num}")
    api.merge_pull_request(public_repo, alices.num)
    assert git("fetch", "-q", "origin", f"refs/pr/{alices.num}", cwd=owner).returncode == 0
    assert git("checkout", "-q", "FETCH_HEAD", cwd=owner).returncode == 0
    _commit(git, owner, {"late.txt": b"late\n"}, "too late")
    push = git("push", "origin", f"HEAD:refs/pr/{alices.num}", cwd=owner)
    assert push.returncode != 0 and f"pull request #{alices.num} is merged" in push.stderr
