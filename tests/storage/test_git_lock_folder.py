"""The `cove-locks` folder beside each bare repo is made once, not on every ref update (review mend)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pygit2
import pytest

from cove.storage.git_repos import GitRepoStore


def _child(store: GitRepoStore, key: str, parent: str) -> str:
    repo = store.repo(key)
    sig = pygit2.Signature("t", "t@example.com")
    return str(repo.create_commit(None, sig, sig, "next", repo[parent].tree.id, [pygit2.Oid(hex=parent)]))


def test_ref_updates_make_no_lock_folder_once_it_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = GitRepoStore(tmp_path / "repos")
    head = store.create("k1", author="t")
    made: list[str] = []
    real = os.mkdir

    def counting(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if os.path.basename(os.fspath(path)) == "cove-locks":
            made.append(os.fspath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", counting)
    new = _child(store, "k1", head)
    with store.ref_lock("k1", "refs/heads/main"):
        store.update_ref("k1", "refs/heads/main", new, head)
    assert store.resolve("k1", "main") == new
    assert made == []

    shutil.rmtree(store.path("k1") / "cove-locks")  # a repo restored without it: made again, once
    newer = _child(store, "k1", new)
    with store.ref_lock("k1", "refs/heads/main"):
        store.update_ref("k1", "refs/heads/main", newer, new)
    assert store.resolve("k1", "main") == newer
    assert len(made) == 1
    assert not [n for n in os.listdir(store.path("k1") / "cove-locks") if n.startswith(("owner-", "ref-"))]
