"""Git reads for the history pages: streamed (never a full topological sort), bounded, and cached.

A commit id names immutable content, so what is computed for (repo storage key, commit id, path) never goes
stale: the results are kept in a small in-process LRU. Walks use commit-time order, which libgit2 streams,
so a page reads only as far back as it shows.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pygit2

from cove.backends import Backends

#: Blame looks this many first-parent commits back; older lines are attributed to the last one looked at.
BLAME_DEPTH = 1000
#: A file's history page walks at most this many commits, then offers to go on from where it stopped.
PATH_SCAN = 3000
_TIME = pygit2.enums.SortMode.TIME
_cache: OrderedDict[tuple, Any] = OrderedDict()
_lock = threading.Lock()
_CACHE_SIZE = 512


def cached(key: tuple, compute: Callable[[], Any]) -> Any:
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    value = compute()
    with _lock:
        _cache[key] = value
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return value


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
        for scanned, c in enumerate(git.walk(sha, _TIME)):
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
        walker = git.walk(sha, _TIME)
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
