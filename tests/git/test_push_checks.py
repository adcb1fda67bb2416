"""The pre-receive checks of `cove.services.git_push`, on a local repository (no server)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cove.services.git_push import ZERO, RefUpdate, check_push, hooks_dir, parse_updates
from cove.storage.git_repos import lfs_pointer

OID = "cd" * 32


def _git(cwd: Path, *args: str) -> str:
    env = {"GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd), "PATH": "/usr/bin:/bin", "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repo with one commit on main; the checks run in it, as the hook runs in the pushed repo."""
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "a.txt").write_text("a\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "first")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _commit_unreferenced(repo: Path, files: dict[str, bytes]) -> tuple[str, str]:
    """A commit on top of main that no ref points at yet (as in the push quarantine)."""
    old = _git(repo, "rev-parse", "main")
    for name, data in files.items():
        (repo / name).write_bytes(data)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "new")
    new = _git(repo, "rev-parse", "HEAD")
    _git(repo, "update-ref", "refs/heads/main", old)
    return old, new


PRS = {1: ("alice", "open"), 2: ("bob", "open"), 3: ("bob", "closed"), 4: ("bob", "merged"), 5: ("bob", "draft")}


def _check(updates, known=None, max_file=1000, *, user="alice", writer=True):
    return check_push(updates, lookup_lfs=lambda oids: {o: s for o, s in (known or {}).items() if o in oids},
                      max_file=max_file, repo_id="alice/x", lookup_pr=PRS.get, user=user, writer=writer)


def test_parse_updates():
    assert parse_updates([f"{ZERO} {'1' * 40} refs/heads/dev", "", "junk"]) == [
        RefUpdate(ZERO, "1" * 40, "refs/heads/dev")]


def test_known_lfs_pointer_accepted_unknown_refused(repo):
    old, new = _commit_unreferenced(repo, {"w.bin": lfs_pointer(OID, 5000)})
    update = [RefUpdate(old, new, "refs/heads/main")]
    assert _check(update, known={OID: 5000}) == []
    errors = _check(update)
    assert "never uploaded to alice/x" in errors[0] and f"w.bin (sha256:{OID}, 5000 bytes)" in errors[1]
    assert _check(update, known={OID: 4999})  # the size must match too


def test_pointer_already_in_history_is_not_checked_again(repo):
    old, new = _commit_unreferenced(repo, {"w.bin": lfs_pointer(OID, 5000)})
    _git(repo, "update-ref", "refs/heads/main", new)
    # A new branch at an existing commit brings no new objects.
    assert _check([RefUpdate(ZERO, new, "refs/heads/copy")]) == []


def test_large_blob_outside_lfs_refused(repo):
    old, new = _commit_unreferenced(repo, {"big.txt": b"x" * 1001, "ok.txt": b"y" * 1000})
    errors = _check([RefUpdate(old, new, "refs/heads/main")])
    assert errors[1:] == ["  big.txt (1001 bytes)"]


def test_refs_outside_heads_and_tags_refused(repo):
    head = _git(repo, "rev-parse", "main")
    assert _check([RefUpdate(ZERO, head, "refs/tags/v1"), RefUpdate(head, ZERO, "refs/heads/old")]) == []
    assert _check([RefUpdate(head, head, "refs/pr/1")]) == []  # existing PR refs may move
    for ref in ("refs/notes/commits", "refs/pr/2", "refs/convert/parquet"):
        old = ZERO if ref != "refs/convert/parquet" else head
        assert ref in _check([RefUpdate(old, head, ref)])[0]


def test_pull_request_refs_by_author_and_status(repo):
    """Readers push only to an open pull request they opened; writers to any open one; none creates,
    deletes, or pushes to a closed or merged one."""
    head = _git(repo, "rev-parse", "main")
    bob = {"user": "bob", "writer": False}
    assert _check([RefUpdate(head, head, "refs/pr/2")], **bob) == []
    assert _check([RefUpdate(head, head, "refs/pr/5")], **bob) == []  # a draft is open too
    assert "only the author of pull request #1 (alice)" in _check([RefUpdate(head, head, "refs/pr/1")], **bob)[0]
    assert _check([RefUpdate(head, head, "refs/pr/2")]) == []  # a writer pushes to anyone's
    for num, status in ((3, "closed"), (4, "merged")):
        for who in (bob, {}):
            assert f"pull request #{num} is {status}" in _check([RefUpdate(head, head, f"refs/pr/{num}")], **who)[0]
    assert "opened through the API" in _check([RefUpdate(ZERO, head, "refs/pr/9")], **bob)[0]
    assert "cannot be deleted" in _check([RefUpdate(head, ZERO, "refs/pr/2")], **bob)[0]
    assert "no pull request #7" in _check([RefUpdate(head, head, "refs/pr/7")])[0]
    for ref in ("refs/heads/main", "refs/heads/new", "refs/tags/v9"):
        assert "You don't have the rights to write to alice/x" in _check([RefUpdate(head, head, ref)], **bob)[0]
    # one refused ref refuses the whole push
    assert _check([RefUpdate(head, head, "refs/pr/2"), RefUpdate(head, head, "refs/heads/main")], **bob)


def test_hooks_dir_is_written_once(tmp_path):
    folder = hooks_dir(tmp_path)
    script = folder / "pre-receive"
    assert script.stat().st_mode & 0o111
    assert "cove.services.git_push pre-receive" in script.read_text()
    mtime = script.stat().st_mtime_ns
    assert hooks_dir(tmp_path) == folder and script.stat().st_mtime_ns == mtime
