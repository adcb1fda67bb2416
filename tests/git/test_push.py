"""`git push`: new commits, branches and tags; the refusals; the index after a push; pushes vs API commits."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from huggingface_hub import hf_hub_download

from tests.git.conftest import ENDPOINT, repo_url

CARD = """---
license: apache-2.0
tags:
- pushed-by-git
pipeline_tag: text-classification
---
# A model pushed with git
"""


@pytest.fixture
def clone(git, alice, repo_factory, tmp_path):
    """A fresh model repo and a clone of it with alice's write token in the remote URL."""

    def make(prefix: str = "push", **kw):
        repo_id = repo_factory(prefix, **kw)
        work = tmp_path / repo_id.split("/")[1]
        git("clone", "-q", repo_url(repo_id, user=alice), work)
        return repo_id, work

    return make


def test_push_commit_branch_and_tag_shows_everywhere_at_once(git, api, clone, tmp_path):
    repo_id, work = clone()
    (work / "README.md").write_text(CARD)
    (work / "config.json").write_text('{"model_type": "bert", "hidden_size": 32}\n')
    (work / "sub").mkdir()
    (work / "sub" / "notes.txt").write_text("notes\n")
    sha = git.commit_all(work, "Add card and config")
    git("push", "-q", "origin", "main", cwd=work)
    # Everything the API shows reflects the push as soon as `git push` returns.
    info = api.model_info(repo_id)
    assert info.sha == sha
    assert info.card_data["license"] == "apache-2.0"
    assert "pushed-by-git" in info.tags and info.pipeline_tag == "text-classification"
    assert info.config["model_type"] == "bert"
    assert {f.rfilename for f in info.siblings} >= {"README.md", "config.json", "sub/notes.txt"}
    assert {e.path for e in api.list_repo_tree(repo_id, recursive=True)} >= {"sub", "sub/notes.txt"}
    assert [c.commit_id for c in api.list_repo_commits(repo_id)][0] == sha
    assert any(m.id == repo_id for m in api.list_models(filter="pushed-by-git"))
    path = hf_hub_download(repo_id, "sub/notes.txt", cache_dir=tmp_path / "cache")
    assert Path(path).read_text() == "notes\n"
    # A new branch and an annotated tag.
    git("checkout", "-q", "-b", "dev", cwd=work)
    (work / "dev.txt").write_text("dev\n")
    dev = git.commit_all(work, "dev work")
    git("tag", "-a", "v1", "-m", "version 1", sha, cwd=work)
    git("push", "-q", "origin", "dev", "v1", cwd=work)
    refs = api.list_repo_refs(repo_id)
    assert {b.name: b.target_commit for b in refs.branches}["dev"] == dev
    assert {t.name: t.target_commit for t in refs.tags}["v1"] == sha
    assert api.model_info(repo_id).sha == sha  # main did not move
    assert api.model_info(repo_id, revision="v1").sha == sha
    # Deleting a branch; the default branch cannot be deleted.
    git("push", "-q", "origin", ":dev", cwd=work)
    assert "dev" not in {b.name for b in api.list_repo_refs(repo_id).branches}
    proc = git("push", "origin", ":main", cwd=work, check=False)
    assert proc.returncode != 0 and "deletion of the current branch prohibited" in proc.stderr


def test_push_needs_a_write_token(git, alice, bob, clone):
    repo_id, work = clone("perm")
    (work / "a.txt").write_text("a\n")
    git.commit_all(work, "a")
    # Anonymous: git is challenged, and cannot prompt.
    proc = git("push", repo_url(repo_id), "main", cwd=work, check=False)
    assert proc.returncode != 0 and "terminal prompts disabled" in proc.stderr
    # alice's read-only token: refused with the reason.
    proc = git("push", repo_url(repo_id, user=alice, token=alice.read_token), "main", cwd=work, check=False)
    assert proc.returncode != 0
    assert "remote: This token has read-only access" in proc.stderr
    # bob may read the public repo but not write to it.
    proc = git("push", repo_url(repo_id, user=bob), "main", cwd=work, check=False)
    assert proc.returncode != 0 and f"remote: You don't have the rights to write to {repo_id}" in proc.stderr
    r = httpx.get(f"{ENDPOINT}/{repo_id}/info/refs", params={"service": "git-receive-pack"})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")


def test_push_refuses_lfs_pointer_to_object_never_uploaded(git, api, clone):
    repo_id, work = clone("ghost")
    before = api.model_info(repo_id).sha
    oid = "ab" * 32
    (work / "weights.bin").write_text(f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize 1234\n")
    git.commit_all(work, "pointer to nothing")
    # --no-verify skips git-lfs's pre-push upload, as a client without git-lfs would.
    proc = git("push", "--no-verify", "origin", "main", cwd=work, check=False)
    assert proc.returncode != 0
    assert "pre-receive hook declined" in proc.stderr
    assert "remote: These files are git-lfs pointers to objects that were never uploaded" in proc.stderr
    assert f"weights.bin (sha256:{oid}, 1234 bytes)" in proc.stderr
    assert api.model_info(repo_id).sha == before


def test_push_refuses_large_file_outside_lfs(git, api, clone):
    repo_id, work = clone("big")
    (work / "big.txt").write_bytes(b"x" * (10 * 1024 * 1024 + 1))
    git.commit_all(work, "big text file")
    proc = git("push", "origin", "main", cwd=work, check=False)
    assert proc.returncode != 0 and "big.txt (10485761 bytes)" in proc.stderr
    assert "must be stored with git-lfs" in proc.stderr


def test_only_branches_and_tags(git, clone):
    _, work = clone("refs")
    proc = git("push", "origin", "HEAD:refs/notes/x", cwd=work, check=False)
    assert proc.returncode != 0 and "only branches (refs/heads/*) and tags" in proc.stderr


def test_non_fast_forward_refused_unless_forced(git, api, clone):
    repo_id, work = clone("nff")
    api.upload_file(path_or_fileobj=b"from api\n", path_in_repo="api.txt", repo_id=repo_id)
    (work / "local.txt").write_text("local\n")
    local = git.commit_all(work, "local")
    proc = git("push", "origin", "main", cwd=work, check=False)
    assert proc.returncode != 0 and "[rejected]" in proc.stderr
    assert "api.txt" in {f.rfilename for f in api.model_info(repo_id).siblings}
    # The Hub allows force pushes: the branch is rewritten and the index follows.
    git("push", "-q", "--force", "origin", "main", cwd=work)
    info = api.model_info(repo_id)
    assert info.sha == local
    assert {f.rfilename for f in info.siblings} == {".gitattributes", "local.txt"}


def test_pull_sees_api_commits_and_hub_download_sees_pushes(git, api, clone, tmp_path):
    repo_id, work = clone("both")
    api.upload_file(path_or_fileobj=b"v1\n", path_in_repo="api.txt", repo_id=repo_id)
    git("pull", "-q", "--ff-only", cwd=work)
    assert (work / "api.txt").read_text() == "v1\n"
    (work / "api.txt").write_text("v2 from git\n")
    pushed = git.commit_all(work, "edit from git")
    git("push", "-q", "origin", "main", cwd=work)
    path = hf_hub_download(repo_id, "api.txt", cache_dir=tmp_path / "cache")
    assert Path(path).read_text() == "v2 from git\n"
    api.upload_file(path_or_fileobj=b"v3\n", path_in_repo="api.txt", repo_id=repo_id, parent_commit=pushed)
    git("pull", "-q", "--ff-only", cwd=work)
    assert (work / "api.txt").read_text() == "v3\n"


def test_concurrent_pushes_and_api_commits_lose_nothing(git, api, clone):
    repo_id, work = clone("race")
    n = 6
    errors: list[BaseException] = []

    def api_commits():
        try:
            for i in range(n):
                api.upload_file(path_or_fileobj=f"{i}\n".encode(), path_in_repo=f"api/{i}.txt", repo_id=repo_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=api_commits)
    t.start()
    for i in range(n):
        (work / "git").mkdir(exist_ok=True)
        (work / "git" / f"{i}.txt").write_text(f"{i}\n")
        git.commit_all(work, f"git {i}")
        for _ in range(20):  # a rejected push is retried after a rebase, as a user would
            if git("push", "-q", "origin", "main", cwd=work, check=False).returncode == 0:
                break
            git("pull", "-q", "--rebase", "origin", "main", cwd=work)
        else:
            pytest.fail("push never got through")
    t.join()
    assert not errors
    files = {f.rfilename for f in api.model_info(repo_id).siblings}
    assert {f"api/{i}.txt" for i in range(n)} <= files
    assert {f"git/{i}.txt" for i in range(n)} <= files


def _receive_pack_body(git, work: Path, old: str, new: str) -> bytes:
    """What `git push` POSTs: one ref update (old → new on main), a flush, the pack."""
    pack = subprocess.run(["git", "pack-objects", "--stdout", "--revs", "-q"], cwd=work, env=git.env,
                          input=f"{new}\n^{old}\n".encode(), capture_output=True, check=True).stdout
    command = f"{old} {new} refs/heads/main\0 report-status\n".encode()
    return f"{len(command) + 4:04x}".encode() + command + b"0000" + pack


def test_push_from_a_stale_view_is_refused_by_compare_and_swap(git, api, alice, clone):
    """The window git cannot see: the client read the refs, then an API commit moved main, then the pack
    arrives. The ref update compares against the old id the client saw, so nothing is overwritten."""
    repo_id, work = clone("cas")
    old = api.model_info(repo_id).sha
    (work / "git.txt").write_text("from git\n")
    new = git.commit_all(work, "from git")
    body = _receive_pack_body(git, work, old, new)
    api_commit = api.upload_file(path_or_fileobj=b"api\n", path_in_repo="api.txt", repo_id=repo_id).oid
    r = httpx.post(f"{ENDPOINT}/{repo_id}.git/git-receive-pack", content=body, auth=("alice", alice.token),
                   headers={"Content-Type": "application/x-git-receive-pack-request"})
    assert r.status_code == 200
    assert b"ng refs/heads/main" in r.content, r.content[-300:]
    info = api.model_info(repo_id)
    assert info.sha == api_commit and "api.txt" in {s.rfilename for s in info.siblings}
    git("pull", "-q", "--rebase", "origin", "main", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    assert {"api.txt", "git.txt"} <= {s.rfilename for s in api.model_info(repo_id).siblings}


def test_push_cut_off_midway_moves_nothing(git, api, alice, clone, server):
    """A client that dies in the middle of sending its pack leaves the repo, its refs and the index as they
    were, and leaves nothing behind that blocks the next push."""
    import base64
    import os
    import socket

    repo_id, work = clone("cut")
    old = api.model_info(repo_id).sha
    (work / "noise.txt").write_bytes(os.urandom(2_000_000))
    new = git.commit_all(work, "big commit")
    body = _receive_pack_body(git, work, old, new)
    auth = base64.b64encode(f"alice:{alice.token}".encode()).decode()
    host, port = ENDPOINT.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall((f"POST /{repo_id}.git/git-receive-pack HTTP/1.1\r\nHost: {host}\r\n"
                      f"Authorization: Basic {auth}\r\nContent-Type: application/x-git-receive-pack-request\r\n"
                      f"Content-Length: {len(body)}\r\n\r\n").encode() + body[: len(body) // 2])
    time.sleep(1.5)  # the server has seen the request and the disconnect by now
    deadline = time.time() + 10
    while time.time() < deadline and (_git_children(server.proc.pid)
                                      or list(server.data.glob("repos/*/*.git/objects/incoming-*"))):
        time.sleep(0.1)
    assert not _git_children(server.proc.pid)  # git gave up on the truncated pack and exited
    assert not list(server.data.glob("repos/*/*.git/objects/incoming-*"))  # quarantine cleaned up
    assert api.model_info(repo_id).sha == old
    assert git.out("ls-remote", "origin", "refs/heads/main", cwd=work).split()[0] == old
    git("push", "-q", "origin", "main", cwd=work)  # nothing left locked
    assert api.model_info(repo_id).sha == new


def _git_children(pid: int) -> list[str]:
    """Command lines of the server's child processes that run git."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        for child in (task / "children").read_text().split():
            try:
                cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "git" in cmd:
                out.append(cmd)
    return out
