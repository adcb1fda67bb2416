"""Branches and tags."""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from cove.backends import Backends
from cove.db.tables import Repo
from cove.errors import BadRequest, Conflict, Forbidden, RevisionNotFound
from cove.services import access, webhooks
from cove.services.accounts import Actor
from cove.storage.git_repos import ZERO, RefConflict, lookup_ref

_BAD_REF = re.compile(r"(^[./-]|\.\.|[\x00-\x20~^:?*\[\\]|@\{|/\.|\.lock$|/$|\.$|//)")


def _encodable(name: str) -> bool:
    """False for text that is not valid Unicode (a lone surrogate from a JSON escape)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_ref_name(name: str) -> str:
    if not name or _BAD_REF.search(name) or name.startswith("refs/") or len(name) > 200 or not _encodable(name):
        raise BadRequest(f"Invalid reference name {name!r}")
    return name


def list_refs(bk: Backends, repo: Repo, *, include_prs: bool) -> dict:
    out: dict = {"branches": [], "converts": [], "tags": []}
    if include_prs:
        out["pullRequests"] = []
    for ref, target in sorted(bk.repos.refs(repo.storage_key).items()):
        if ref.startswith("refs/heads/"):
            out["branches"].append({"name": ref[11:], "ref": ref, "targetCommit": target})
        elif ref.startswith("refs/tags/"):
            out["tags"].append({"name": ref[10:], "ref": ref, "targetCommit": target})
        elif ref.startswith("refs/convert/"):
            out["converts"].append({"name": ref[13:], "ref": ref, "targetCommit": target})
        elif ref.startswith("refs/pr/") and include_prs:
            out["pullRequests"].append({"name": ref, "ref": ref, "targetCommit": target})
    return out


def create_branch(db: Session, bk: Backends, actor: Actor, repo: Repo, branch: str, start: str | None) -> None:
    access.require_write(db, actor, repo)
    check_ref_name(branch)
    key = repo.storage_key
    if bk.repos.is_branch(key, branch):
        raise Conflict(f"Reference refs/heads/{branch} already exists")
    sha = bk.repos.resolve(key, start) if start else bk.repos.head(key)
    if sha is None:
        raise RevisionNotFound(f"Invalid rev id: {start}")
    try:
        bk.repos.update_ref(key, f"refs/heads/{branch}", sha, ZERO)
    except RefConflict as exc:
        raise Conflict(f"Cannot create branch {branch}: {exc}") from exc
    webhooks.repo_event(db, repo, "update", "repo.content", refs=[(f"refs/heads/{branch}", None, sha)])


def delete_branch(db: Session, bk: Backends, actor: Actor, repo: Repo, branch: str) -> None:
    access.require_write(db, actor, repo)
    if branch == bk.repos.default_branch(repo.storage_key):
        raise Forbidden(f"Cannot delete refs/heads/{branch}")
    if not bk.repos.is_branch(repo.storage_key, branch):
        raise RevisionNotFound(f"Invalid rev id: {branch}")
    old = bk.repos.resolve(repo.storage_key, f"refs/heads/{branch}")
    bk.repos.update_ref(repo.storage_key, f"refs/heads/{branch}", ZERO, None)
    webhooks.repo_event(db, repo, "update", "repo.content", refs=[(f"refs/heads/{branch}", old, None)])


def create_tag(db: Session, bk: Backends, actor: Actor, repo: Repo, tag: str, revision: str) -> None:
    access.require_write(db, actor, repo)
    key = repo.storage_key
    sha = bk.repos.resolve(key, revision)
    if sha is None:  # before the name's check, as on the Hub
        raise RevisionNotFound(f"Invalid rev id: {revision}")
    check_ref_name(tag)
    try:
        bk.repos.update_ref(key, f"refs/tags/{tag}", sha, ZERO)
    except RefConflict as exc:
        raise Conflict(f"Reference refs/tags/{tag} already exists") from exc
    webhooks.repo_event(db, repo, "update", "repo.content", refs=[(f"refs/tags/{tag}", None, sha)])


def delete_tag(db: Session, bk: Backends, actor: Actor, repo: Repo, tag: str) -> None:
    access.require_write(db, actor, repo)
    if (old := lookup_ref(bk.repos.repo(repo.storage_key), f"refs/tags/{tag}")) is None:
        raise RevisionNotFound(f"Invalid rev id: {tag}")
    bk.repos.update_ref(repo.storage_key, f"refs/tags/{tag}", ZERO, None)
    webhooks.repo_event(db, repo, "update", "repo.content", refs=[(f"refs/tags/{tag}", str(old.target), None)])
