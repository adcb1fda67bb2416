"""`git clone` and fetch over smart HTTP: every repo type, with and without `.git`, public and private."""

from __future__ import annotations

import httpx
import pytest

from tests.git.conftest import ENDPOINT, repo_url


@pytest.mark.parametrize("repo_type", ["model", "dataset", "space"])
@pytest.mark.parametrize("suffix", ["", ".git"])
def test_clone_public_anonymously(git, api, repo_factory, tmp_path, repo_type, suffix):
    kw = {"space_sdk": "static"} if repo_type == "space" else {}
    repo_id = repo_factory("clone", repo_type=repo_type, **kw)
    api.upload_file(path_or_fileobj=b"hello\n", path_in_repo="docs/hello.txt", repo_id=repo_id,
                    repo_type=repo_type)
    head = api.repo_info(repo_id, repo_type=repo_type).sha
    git("clone", repo_url(repo_id, repo_type=repo_type, suffix=suffix), tmp_path / "c")
    assert (tmp_path / "c" / "docs" / "hello.txt").read_text() == "hello\n"
    assert git.out("rev-parse", "HEAD", cwd=tmp_path / "c") == head
    assert git.out("branch", "--show-current", cwd=tmp_path / "c") == "main"


def test_private_repo_needs_credentials_and_looks_missing(git, alice, bob, repo_factory, tmp_path):
    repo_id = repo_factory("secret", private=True)
    # Anonymous: a Basic challenge, identical to the answer for a repo that does not exist.
    r_private = httpx.get(f"{ENDPOINT}/{repo_id}.git/info/refs", params={"service": "git-upload-pack"})
    r_missing = httpx.get(f"{ENDPOINT}/alice/no-such-repo.git/info/refs", params={"service": "git-upload-pack"})
    for r in (r_private, r_missing):
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Basic")
    assert r_private.text == r_missing.text
    proc = git("clone", repo_url(repo_id), tmp_path / "anon", check=False)
    assert proc.returncode != 0 and "terminal prompts disabled" in proc.stderr
    # Someone else's token: not found, exactly like a missing repo.
    def answer(repo: str) -> list[str]:
        proc = git("clone", repo_url(repo, user=bob), tmp_path / repo.replace("/", "-"), check=False)
        assert proc.returncode != 0
        lines = [line for line in proc.stderr.splitlines() if line.startswith(("remote:", "fatal:"))]
        return [line.replace(repo, "REPO") for line in lines]

    assert answer(repo_id) == answer("alice/no-such-repo")
    assert answer(repo_id)[0] == "remote: Repository not found"
    # The owner, with any user name and a read token as the password.
    git("clone", repo_url(repo_id, user=alice, token=alice.read_token).replace("alice:", "anything:", 1),
        tmp_path / "ok")
    assert (tmp_path / "ok" / ".gitattributes").exists()


def test_bad_token_is_refused(git, repo_factory, tmp_path):
    repo_id = repo_factory("badtok", private=True)
    url = repo_url(repo_id).replace("http://", "http://alice:hf_not_a_token@")
    proc = git("clone", url, tmp_path / "c", check=False)
    assert proc.returncode != 0 and "Authentication failed" in proc.stderr


def test_dumb_protocol_and_unknown_service_refused(repo_factory):
    repo_id = repo_factory("dumb")
    r = httpx.get(f"{ENDPOINT}/{repo_id}/info/refs")
    assert r.status_code == 403 and "smart HTTP" in r.text
    r = httpx.get(f"{ENDPOINT}/{repo_id}/info/refs", params={"service": "git-upload-archive"})
    assert r.status_code == 403


def test_fetch_old_commit_and_protocol_v2(git, api, repo_factory, tmp_path):
    repo_id = repo_factory("fetch")
    first = api.upload_file(path_or_fileobj=b"1\n", path_in_repo="n.txt", repo_id=repo_id).oid
    api.upload_file(path_or_fileobj=b"2\n", path_in_repo="n.txt", repo_id=repo_id)
    work = tmp_path / "c"
    git("-c", "protocol.version=2", "clone", "--depth", "1", repo_url(repo_id), work)
    assert (work / "n.txt").read_text() == "2\n"
    git("-c", "protocol.version=2", "fetch", "--depth", "1", "origin", first, cwd=work)
    git("checkout", "-q", first, cwd=work)
    assert (work / "n.txt").read_text() == "1\n"
    # A partial clone fetches blobs on demand.
    git("clone", "-q", "--filter=blob:none", repo_url(repo_id), tmp_path / "partial")
    assert (tmp_path / "partial" / "n.txt").read_text() == "2\n"


def test_gated_repo_clone_needs_granted_access(git, api, alice, bob, bob_api, repo_factory, tmp_path):
    repo_id = repo_factory("gated-clone")
    api.update_repo_settings(repo_id, gated="manual")
    proc = git("clone", repo_url(repo_id), tmp_path / "anon", check=False)
    assert proc.returncode != 0 and "terminal prompts disabled" in proc.stderr
    proc = git("clone", repo_url(repo_id, user=bob), tmp_path / "bob", check=False)
    assert proc.returncode != 0 and "remote: Access to model" in proc.stderr and "restricted" in proc.stderr
    git("clone", "-q", repo_url(repo_id, user=alice), tmp_path / "alice")
