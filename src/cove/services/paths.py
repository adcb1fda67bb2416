"""Repo-relative path and revision validation."""

from __future__ import annotations

from cove.errors import BadRequest


def clean_path(path: str, *, allow_root: bool = False) -> str:
    """Normalise a repo path; refuse anything that could escape the tree or touch `.git`."""
    if not isinstance(path, str):
        raise BadRequest("path must be a string")
    p = path.strip()
    if p.startswith("./"):
        p = p[2:]
    if p.startswith("/") or "\\" in p or "\x00" in p:
        raise BadRequest(f"Invalid path {path!r}: paths are relative, with '/' separators")
    p = p.strip("/")
    if not p:
        if allow_root:
            return ""
        raise BadRequest("Empty path")
    parts = p.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise BadRequest(f"Invalid path {path!r}: no empty, '.' or '..' segments")
        if part == ".git":
            raise BadRequest(f"Invalid path {path!r}: nothing may be written under .git/")
    if len(p.encode()) > 1000:
        raise BadRequest("Path too long")
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
