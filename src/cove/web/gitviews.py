"""Git reads for the history pages: streamed (never a sort of the whole history), bounded, and cached.

A commit id names immutable content, so what is computed for (repo storage key, commit id, path) never goes
stale: the results are kept in a small in-process LRU. Walks use libgit2's default order, which streams
(its commit-time and topological orders read the whole history first), so a page reads only as far back as
it shows.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import pygit2

from cove.backends import Backends
from cove.storage import git_repos

#: Blame looks this many first-parent commits back; older lines are attributed to the last one looked at.
BLAME_DEPTH = 1000
#: A file's history page walks at most this many commits, then offers to go on from where it stopped.
PATH_SCAN = 1500
_TIME = pygit2.enums.SortMode.TIME
#: libgit2's default order streams (time order first walks the whole history); `_ordered` fixes ties.
_STREAM = pygit2.enums.SortMode.NONE
_cache: OrderedDict[tuple, Any] = OrderedDict()
_lock = threading.Lock()
_CACHE_SIZE = 512


def intact(key: str) -> AbstractContextManager[None]:
    """Direct pygit2 reads of repo `key`: an object missing or unreadable (pygit2's KeyError, or GitError "Unable
    to read tree") is `GitObjectMissing`, as the storage layer's reads make it (`git_repos.intact`): the page
    then says the repo's storage is damaged (`RepoStorageDamaged`) instead of failing with a traceback."""
    return git_repos.intact(key, (KeyError, pygit2.GitError))


def cached(key: tuple, compute: Callable[[], Any]) -> Any:
    """`compute()`, kept under `key` (its second item: the repo's storage key), its git reads `intact`."""
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    with intact(key[1]):
        value = compute()
    with _lock:
        _cache[key] = value
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return value


def _ordered(git: pygit2.Repository, sha: str, chunk: int = 200) -> Iterator[pygit2.Commit]:
    """The commits reachable from `sha`, newest first, streamed: libgit2's default order (which needs no
    full walk), each chunk reordered so that a child comes before its parents even when they share a
    timestamp (commits made within one second)."""
    walker = git.walk(sha, _STREAM)
    while True:
        batch = list(itertools.islice(walker, chunk))
        if not batch:
            return
        index = {c.id: i for i, c in enumerate(batch)}
        waiting = [0] * len(batch)  # children in the batch not yet emitted
        for c in batch:
            for pid in c.parent_ids:
                if pid in index:
                    waiting[index[pid]] += 1
        ready = [i for i in range(len(batch)) if waiting[i] == 0]
        heapq.heapify(ready)
        while ready:
            i = heapq.heappop(ready)
            yield batch[i]
            for pid in batch[i].parent_ids:
                j = index.get(pid)
                if j is not None:
                    waiting[j] -= 1
                    if waiting[j] == 0:
                        heapq.heappush(ready, j)


def _entry_id(tree: pygit2.Tree, path: str) -> pygit2.Oid | None:
    try:
        return tree[path].id
    except KeyError:
        return None


def path_log(bk: Backends, key: str, sha: str, path: str, *, skip: int, limit: int) -> tuple[list, str | None]:
    """The commits reachable from `sha` that changed `path` (a file or folder), newest first; and, when the
    walk stopped after `PATH_SCAN` commits without filling the page, the commit to continue from."""
    def compute() -> tuple[list[str], str | None]:
        git = bk.repos.repo(key)
        out: list[str] = []
        n = 0
        for scanned, c in enumerate(_ordered(git, sha)):
            if scanned >= PATH_SCAN:
                return out, str(c.id)
            mine = _entry_id(c.tree, path)
            parents = c.parents
            changed = mine is not None if not parents else any(_entry_id(p.tree, path) != mine for p in parents)
            if changed:
                if n >= skip:
                    out.append(str(c.id))
                    if len(out) >= limit:
                        break
                n += 1
        return out, None

    ids, cursor = cached(("path_log", key, sha, path, skip, limit), compute)
    return [bk.repos.commit_info(key, i) for i in ids], cursor


def history(bk: Backends, key: str, sha: str, *, skip: int, limit: int) -> list:
    """A page of the commits reachable from `sha`, newest first, streamed (`_ordered`): the first page of a
    10,000-commit history reads 31 commits, not the whole graph a topological sort needs."""
    def compute() -> list[str]:
        walk = _ordered(bk.repos.repo(key), sha)
        return [str(c.id) for c in itertools.islice(walk, skip, skip + limit)]

    return [bk.repos.commit_info(key, i) for i in cached(("history", key, sha, skip, limit), compute)]


def commits_between(bk: Backends, key: str, base: str, head: str, limit: int = 100) -> list:
    """The commits of `head` that `base` does not have, newest first (at most `limit`)."""
    def compute() -> list[str]:
        walker = bk.repos.repo(key).walk(head, _TIME)
        walker.hide(base)
        return [str(c.id) for _, c in zip(range(limit), walker, strict=False)]

    return [bk.repos.commit_info(key, i) for i in cached(("between", key, base, head, limit), compute)]


@dataclass(frozen=True)
class BlameHunk:
    commit: str
    start: int  # first line number (1-based) in the file at the blamed commit
    lines: int
    boundary: bool = False  # blame stopped at `commit` (BLAME_DEPTH): the lines are from it or older


def blame(bk: Backends, key: str, sha: str, path: str) -> list[BlameHunk]:
    """libgit2's blame of `path` at `sha`, over at most `BLAME_DEPTH` first-parent commits."""
    def compute() -> list[BlameHunk]:
        git = bk.repos.repo(key)
        walker = git.walk(sha, _STREAM)
        walker.simplify_first_parent()
        oldest = None
        for i, c in enumerate(walker):
            oldest = c
            if i >= BLAME_DEPTH:
                break
        else:
            oldest = None  # the whole history fits: no boundary
        kwargs = {"oldest_commit": oldest.id} if oldest is not None else {}
        out = []
        for h in git.blame(path, newest_commit=pygit2.Oid(hex=sha), **kwargs):
            out.append(BlameHunk(str(h.final_commit_id), h.final_start_line_number, h.lines_in_hunk,
                                 oldest is not None and bool(h.boundary)))
        return out

    return cached(("blame", key, sha, path), compute)


#: The file tree's "last commit" column looks this many commits back; older entries show none.
LAST_SCAN = 300


def _subtree(git: pygit2.Repository, tree: pygit2.Tree, folder: str) -> pygit2.Tree | None:
    if not folder:
        return tree
    try:
        obj = tree[folder]
    except KeyError:
        return None
    obj = git[obj.id]
    return obj if isinstance(obj, pygit2.Tree) else None


def last_commits(bk: Backends, key: str, sha: str, folder: str) -> dict[str, str]:
    """{entry name: id of the newest commit that changed it} for the entries of `folder` at `sha`, looking
    at most `LAST_SCAN` commits back; commits that leave the folder's tree as it was are skipped whole, and
    each tree is read once (a commit's tree is its child's parent tree)."""
    def compute() -> dict[str, str]:
        git = bk.repos.repo(key)
        folder_of: dict[pygit2.Oid, pygit2.Tree | None] = {}  # commit id -> the folder's tree in it
        entry: dict[tuple[pygit2.Oid, str], pygit2.Oid | None] = {}  # (folder tree id, name) -> entry id

        def tree_in(commit_id: pygit2.Oid) -> pygit2.Tree | None:
            if commit_id not in folder_of:
                folder_of[commit_id] = _subtree(git, git[commit_id].peel(pygit2.Commit).tree, folder)
            return folder_of[commit_id]

        def entry_id(tree: pygit2.Tree | None, name: str) -> pygit2.Oid | None:
            if tree is None:
                return None
            k = (tree.id, name)
            if k not in entry:
                entry[k] = tree[name].id if name in tree else None
            return entry[k]

        head = tree_in(git[sha].peel(pygit2.Commit).id)
        pending = {e.name for e in head} if head is not None else set()
        out: dict[str, str] = {}
        for i, c in enumerate(_ordered(git, sha)):
            if i >= LAST_SCAN or not pending:
                break
            mine = tree_in(c.id)
            theirs = [tree_in(pid) for pid in c.parent_ids]
            if theirs and all(t is not None and mine is not None and t.id == mine.id for t in theirs):
                continue
            for name in list(pending):
                now = entry_id(mine, name)
                if not theirs or any(entry_id(t, name) != now for t in theirs):
                    out[name] = str(c.id)
                    pending.discard(name)
        return out

    return cached(("last", key, sha, folder), compute)


def pair_renames(bk: Backends, key: str, a: str, b: str,
                 changed: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Split `changed` ((status, path) between commits `a` and `b`) into the changes left and the renames
    (old path, new path): a removed file whose exact content (the same blob, so the same LFS pointer too)
    was added elsewhere. Content edited while moved stays a removal and an addition."""
    removed = {p for s, p in changed if s == "removed"}
    added = [p for s, p in changed if s == "added"]
    if not removed or not added:
        return changed, []
    by_blob: dict[str, list[str]] = {}
    for path in sorted(removed):
        e = bk.repos.entry(key, a, path)
        if e is not None and e.type == "file":
            by_blob.setdefault(e.oid, []).append(path)
    renames = []
    for path in added:
        e = bk.repos.entry(key, b, path)
        olds = by_blob.get(e.oid) if e is not None and e.type == "file" else None
        if olds:
            renames.append((olds.pop(0), path))
    moved = {o for o, _ in renames} | {n for _, n in renames}
    return [(s, p) for s, p in changed if p not in moved], renames
