"""Repo-relative path and revision validation.

One rule for every name written into a repo, by the commit API (`clean_path`) and by `git push`
(`git_name_problem`, in the pre-receive hook): no empty, `.` or `..` segment, no control character, valid
UTF-8 (no lone surrogate), at most `MAX_PATH_BYTES` bytes, and no segment that git, Windows (NTFS) or macOS
(HFS+) would take for `.git`: `.GIT`, `.git.`, `.git `, `git~1`, `.git::$INDEX_ALLOCATION`, `.g\u200cit`, ...

A backslash is an ordinary character of a name, as in git and on the Hub, whose client neither refuses nor
rewrites it in `path_in_repo` and guards its downloads against it (`_validate_relative_filename`):
`a\\b.txt` is one file at the top of the repo. Since Windows reads it as a folder separator, a name is refused
when, read that way, it would climb out or be anchored: an empty, `.` or `..` part between backslashes (so no
leading or trailing backslash), a drive (`C:\\`), or a `.git` part.
"""

from __future__ import annotations

import re

from cove.errors import BadRequest

MAX_PATH_BYTES = 1000
# Code points HFS+ ignores in names (git's `is_hfs_dotgit` skips the same ones).
_HFS_IGNORED = re.compile("[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]")
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")


def _is_dotgit(segment: str) -> bool:
    """True for any name that git, NTFS or HFS+ resolves to `.git` (see git's `is_ntfs_dotgit`)."""
    name = _HFS_IGNORED.sub("", segment).split(":", 1)[0].rstrip(". ").casefold()
    return name in (".git", "git~1")


def segment_problem(segment: str) -> str | None:
    """Why one path segment may not be written, or None."""
    if segment in ("", ".", ".."):
        return "no empty, '.' or '..' segments"
    if _FORBIDDEN.search(segment):
        return "no control characters"
    try:
        segment.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8"
    parts = segment.split("\\")
    if _is_dotgit(segment) or any(_is_dotgit(p) for p in parts):
        return "nothing may be written under .git/ (or a name read as .git)"
    if len(parts) > 1 and (any(p in ("", ".", "..") for p in parts) or _DRIVE.match(segment)):
        return "no empty, '.' or '..' part between backslashes, nor a drive, which Windows would follow"
    return None


def git_name_problem(name: bytes) -> str | None:
    """`segment_problem` for a raw git tree entry name."""
    try:
        return segment_problem(name.decode("utf-8"))
    except UnicodeDecodeError:
        return "not valid UTF-8"


def clean_path(path: str, *, allow_root: bool = False) -> str:
    """Normalise a repo path; refuse anything that could escape the tree or touch `.git`."""
    if not isinstance(path, str):
        raise BadRequest("path must be a string")
    p = path.strip()
    if p.startswith("./"):
        p = p[2:]
    if p.startswith("/") or "\x00" in p:
        raise BadRequest(f"Invalid path {path!r}: paths are relative, with '/' separators")
    p = p.strip("/")
    if not p:
        if allow_root:
            return ""
        raise BadRequest("Empty path")
    for part in p.split("/"):
        problem = segment_problem(part)
        if problem:
            raise BadRequest(f"Invalid path {path!r}: {problem}")
    if len(p.encode()) > MAX_PATH_BYTES:
        raise BadRequest(f"Invalid path: longer than {MAX_PATH_BYTES} bytes")
    return p


def split_rev_path(rev: str, path: str) -> tuple[str, str]:
    """Accept unencoded `refs/pr/N/...` and `refs/convert/parquet/...` as pasted by users."""
    if rev == "refs":
        parts = path.split("/")
        if len(parts) >= 2 and parts[0] == "pr" and parts[1].isdigit():
            return f"refs/pr/{parts[1]}", "/".join(parts[2:])
        if len(parts) >= 2 and parts[0] == "convert":
            return f"refs/convert/{parts[1]}", "/".join(parts[2:])
    return rev, path
