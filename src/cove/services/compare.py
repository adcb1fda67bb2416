"""Compare two revisions of a repo: which files were added, modified or removed, and how small text changed."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from cove.backends import Backends
from cove.db.tables import Repo
from cove.errors import BadRequest
from cove.services import files
from cove.storage.git_repos import Entry

#: Text diffs are computed for files up to this size on both sides.
MAX_TEXT_DIFF = 256 * 1024
#: Beyond this many changed files, the rest are listed without diffs.
MAX_DIFFED_FILES = 200


@dataclass(frozen=True)
class Side:
    oid: str  # git blob id
    size: int  # real size (the LFS object's size for LFS files)
    lfs_oid: str | None  # sha256 of the LFS object, if the file is stored with LFS


@dataclass(frozen=True)
class FileChange:
    path: str
    status: str  # "added" | "modified" | "removed"
    old: Side | None
    new: Side | None
    kind: str  # "text" | "binary" | "lfs" | "gated" (the caller may not read this file's contents)
    diff: str | None  # unified diff, for text files small enough

    def to_json(self) -> dict:
        def side(s: Side | None) -> dict | None:
            return None if s is None else {"oid": s.oid, "size": s.size,
                                           "lfs": {"oid": s.lfs_oid} if s.lfs_oid else None}

        return {"path": self.path, "status": self.status, "type": self.kind, "old": side(self.old),
                "new": side(self.new), "diff": self.diff}


@dataclass(frozen=True)
class Comparison:
    base: str
    head: str
    files: list[FileChange]

    def to_json(self) -> dict:
        stats = {k: sum(1 for f in self.files if f.status == k) for k in ("added", "modified", "removed")}
        return {"base": self.base, "head": self.head, "stats": stats, "files": [f.to_json() for f in self.files]}

    def patch(self) -> str:
        """All text diffs, one after another (binary and LFS files get a one-line note)."""
        out = []
        for f in self.files:
            if f.diff is not None:
                out.append(f.diff)
            elif f.kind == "gated":
                out.append(f"File {f.path} {f.status} (gated: ask for access to see the changes)\n")
            elif f.kind == "text":
                out.append(f"Text file {f.path} {f.status} (too large to diff here)\n")
            else:
                out.append(f"Binary files a/{f.path} and b/{f.path} differ ({f.status}, {f.kind})\n")
        return "".join(out)


def parse_range(spec: str) -> tuple[str, str]:
    """``a...b`` (or ``a..b``) → (a, b). Git refs cannot contain ``..``, so the split is unambiguous."""
    for sep in ("...", ".."):
        a, found, b = spec.partition(sep)
        if found and a and b:
            return a, b
    raise BadRequest(f"Expected a range 'base...head', got {spec!r}")


def compare(bk: Backends, repo: Repo, base: str, head: str,
            readable: Callable[[str], bool] = lambda path: True) -> Comparison:
    """What changed from ``base`` to ``head`` (any branch, tag or commit id). Files for which ``readable``
    says no (a gated repo's, to a caller without access) are listed without anything read from them."""
    key = repo.storage_key
    a = files.resolve_revision(bk, repo, base)
    b = files.resolve_revision(bk, repo, head)
    changes: list[FileChange] = []
    for i, (status, path) in enumerate(sorted(bk.repos.diff_paths(key, a, b), key=lambda x: x[1])):
        old = bk.repos.entry(key, a, path) if status != "added" else None
        new = bk.repos.entry(key, b, path) if status != "removed" else None
        if not readable(path):
            changes.append(FileChange(path, status, _side(old), _side(new), "gated", None))
            continue
        changes.append(_change(bk, key, path, status, old, new, with_diff=i < MAX_DIFFED_FILES))
    return Comparison(a, b, changes)


def _side(e: Entry | None) -> Side | None:
    return None if e is None or e.type != "file" else Side(e.oid, e.size, e.lfs_oid)


def _change(bk: Backends, key: str, path: str, status: str, old: Entry | None, new: Entry | None,
            *, with_diff: bool) -> FileChange:
    o, n = _side(old), _side(new)
    if (o and o.lfs_oid) or (n and n.lfs_oid):
        return FileChange(path, status, o, n, "lfs", None)
    texts = []
    for s in (o, n):
        data = bk.repos.read_blob(key, s.oid) if s is not None else b""
        if b"\x00" in data[:8000]:
            return FileChange(path, status, o, n, "binary", None)
        try:
            texts.append(data.decode("utf-8"))
        except UnicodeDecodeError:
            return FileChange(path, status, o, n, "binary", None)
    if not with_diff or max(len(t) for t in texts) > MAX_TEXT_DIFF:
        return FileChange(path, status, o, n, "text", None)
    lines = difflib.unified_diff(
        texts[0].splitlines(keepends=True), texts[1].splitlines(keepends=True),
        fromfile="/dev/null" if o is None else f"a/{path}", tofile="/dev/null" if n is None else f"b/{path}")
    diff = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
    return FileChange(path, status, o, n, "text", diff)
