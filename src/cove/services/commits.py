"""Commits: preupload classification and atomic, compare-and-swap commits from API operations."""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from cove.backends import Backends
from cove.db.tables import Discussion, LfsObject, Repo
from cove.errors import (
    BadRequest,
    Conflict,
    EntryNotFound,
    Forbidden,
    PayloadTooLarge,
    PreconditionFailed,
    RevisionNotFound,
)
from cove.observability import COMMIT_RETRIES
from cove.services import access, card_meta, repos, uploads, webhooks
from cove.services.accounts import Actor
from cove.services.commit_payload import ContentSpool, InlineContent
from cove.services.discussions import MAX_TITLE, open_discussion
from cove.services.paths import clean_path
from cove.settings import Settings
from cove.storage.git_repos import ZERO, FileOp, RefConflict, lfs_pointer, parse_lfs_pointer

if TYPE_CHECKING:  # imported where used (preupload's pattern checks): off `cove serve`'s start-up
    import pathspec
    import regex

LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
_PARENT_RE = re.compile(r"^[0-9a-fA-F]{5,40}$")
_MAX_RETRIES = 20
#: The Hub's words for a stale `parentCommit`; clients (e.g. OpenDAL) match on them to retry.
STALE_PARENT = "The branch was updated since you opened this page. Please refresh and try again."
_OP_FIELDS = {"file": ("path", "content", "encoding"), "lfsFile": ("path", "algo", "oid", "size"),
              "deletedFile": ("path",), "deletedFolder": ("path",)}
_MAX_FIELD = 128
#: What preupload reads of a repo's `.gitignore`: its first MB, its first patterns, each of bounded length; and
#: how long matching paths against them may take (a pattern like `*a*a*a*a*b` backtracks exponentially).
_GITIGNORE_MAX_BYTES = 1_000_000
_GITIGNORE_MAX_PATTERNS = 1000
_GITIGNORE_MAX_LINE = 1024
_GITIGNORE_BUDGET_S = 1.0


@dataclass(frozen=True)
class CommitResult:
    oid: str
    pr_num: int | None = None


# -- preupload ------------------------------------------------------------------------------


def _lfs_spec(bk: Backends, repo: Repo, sha: str) -> pathspec.PathSpec:
    import pathspec

    e = bk.repos.entry(repo.storage_key, sha, ".gitattributes")
    patterns: list[str] = []
    if e and e.type == "file" and not e.is_lfs:
        for line in bk.repos.read_blob(repo.storage_key, e.oid).decode("utf-8", "replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and "filter=lfs" in parts[1:]:
                patterns.append(parts[0])
    return pathspec.PathSpec.from_lines("gitwildmatch", patterns)


def _ignore_rules(bk: Backends, repo: Repo, sha: str, git_ignore: str | None) -> list[tuple[regex.Pattern, bool]]:
    """The repo's `.gitignore` at `sha` (bounded) followed by the client's `gitIgnore`, as (regex, include)
    rules: the last rule that matches a path decides, as in git."""
    import pathspec
    import regex

    lines: list[str] = []
    e = bk.repos.entry(repo.storage_key, sha, ".gitignore")
    if e and e.type == "file" and not e.is_lfs:
        data = bk.repos.read_blob(repo.storage_key, e.oid)[:_GITIGNORE_MAX_BYTES]
        text = data.decode("utf-8", "replace")
        kept = (ln for ln in text.splitlines() if ln.strip() and len(ln) <= _GITIGNORE_MAX_LINE)
        lines = [ln for _, ln in zip(range(_GITIGNORE_MAX_PATTERNS), kept, strict=False)]
    rules: list[tuple[regex.Pattern, bool]] = []
    for source, src_lines in (("repo", lines), ("client", git_ignore.splitlines() if git_ignore else [])):
        try:
            patterns = pathspec.GitIgnoreSpec.from_lines(src_lines).patterns
        except (ValueError, TypeError) as exc:  # GitWildMatchPatternError is a ValueError
            if source == "client":
                raise BadRequest(f"Invalid 'gitIgnore': {exc}") from exc
            patterns = []  # a repo's own broken .gitignore ignores nothing, it does not block uploads
        for pat in patterns:
            if pat.include is not None and pat.regex is not None:
                rules.append((regex.compile(pat.regex.pattern), bool(pat.include)))
    return rules


def _is_ignored(rules: list[tuple[regex.Pattern, bool]], path: str, deadline: float) -> bool:
    """Whether `path` is ignored; matching is time-boxed (`regex`'s timeout), past it nothing more is ignored."""
    ignored = False
    for rx, include in rules:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            if rx.match(path, timeout=left):
                ignored = include
        except TimeoutError:
            logging.getLogger("cove").warning("preupload: .gitignore matching ran out of time at %s", path)
            return False
    return ignored


def preupload(
    db: Session, bk: Backends, actor: Actor, repo: Repo, *, revision: str, files: list[dict], git_ignore: str | None
) -> list[dict]:
    """Classify each file as `regular` or `lfs` (Hub rules) and report the current remote oid. Asked before
    any upload, pull requests included: whoever may open one may ask (it tells only what they can read)."""
    access.require_contribute(db, actor, repo)
    sha = bk.repos.resolve(repo.storage_key, revision) or bk.repos.resolve(repo.storage_key, "main")
    if sha is None:
        raise RevisionNotFound(f"Invalid rev id: {revision}")
    spec = _lfs_spec(bk, repo, sha)
    if git_ignore is not None and not isinstance(git_ignore, str):
        raise BadRequest("'gitIgnore' must be a string")
    rules = _ignore_rules(bk, repo, sha, git_ignore)
    deadline = time.monotonic() + _GITIGNORE_BUDGET_S
    out = []
    for f in files:
        if not isinstance(f, dict) or not isinstance(f.get("path"), str):
            raise BadRequest("Each file needs a 'path'")
        path = clean_path(f["path"])
        size = f.get("size") or 0
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"File {path}: 'size' must be a non-negative integer")
        try:
            sample = base64.b64decode(f.get("sample") or "", validate=False)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(f"Invalid base64 sample for {path}") from exc
        lfs = spec.match_file(path) or size >= LFS_SIZE_THRESHOLD or b"\x00" in sample
        entry = bk.repos.entry(repo.storage_key, sha, path)
        oid = None
        if entry is not None and entry.type == "file":
            oid = entry.lfs_oid or entry.oid
        out.append({
            "path": f["path"],
            "uploadMode": "lfs" if lfs and size > 0 else "regular",
            "shouldIgnore": bool(rules) and _is_ignored(rules, path, deadline),
            "oid": oid,
        })
    return out


# -- commit ---------------------------------------------------------------------------------


def parse_operations(lines: Iterable[dict], spool: ContentSpool, settings: Settings) -> tuple[dict, list[dict]]:
    """Split NDJSON items into the header and the operations, checking their shape and the limits; each
    inline file is decoded into ``spool`` as it comes (its op's ``content`` becomes an `InlineContent`)."""
    header: dict | None = None
    ops: list[dict] = []
    for item in lines:
        if not isinstance(item, dict) or "key" not in item or not isinstance(item.get("value"), dict):
            raise BadRequest("Each NDJSON line must be an object with 'key' and 'value'")
        key, value = item["key"], item["value"]
        if key == "header":
            header = value
        elif key in _OP_FIELDS:
            if not isinstance(value.get("path"), str):
                raise BadRequest(f"'{key}' operation needs a 'path'")
            if len(ops) >= settings.max_commit_operations:
                raise PayloadTooLarge(f"A commit holds at most {settings.max_commit_operations} operations: "
                                      "split it into several commits")
            # Only the fields an operation has are kept until the commit is built, each small: a clean path,
            # short strings or numbers (an inline file's content goes to the spool).
            op = {"key": key, **{f: value[f] for f in _OP_FIELDS[key] if f in value}, "path": clean_path(value["path"])}
            for field, v in op.items():
                if field not in ("path", "content") and not (
                        isinstance(v, int | float | bool | None) or (isinstance(v, str) and len(v) <= _MAX_FIELD)):
                    raise BadRequest(f"'{key}' operation: '{field}' must be a number or a short string")
            if key == "file":
                op["content"] = _decode_inline(value, spool, settings.max_inline_file)
            ops.append(op)
        else:
            raise BadRequest(f"Unknown operation {key!r}")
    if header is None:
        raise BadRequest("Missing header line in commit payload")
    for field, limit in (("summary", settings.max_commit_summary), ("description", settings.max_commit_description)):
        text = header.get(field)
        if text is not None and not isinstance(text, str):
            raise BadRequest(f"header.{field} must be a string")
        if text and len(text) > limit:
            raise BadRequest(f"header.{field} is longer than {limit} characters")
    return header, ops


def _decode_inline(value: dict, spool: ContentSpool, max_inline: int) -> InlineContent:
    path, content = value["path"], value.get("content", "")
    if value.get("encoding", "base64") != "base64" or not isinstance(content, str):
        raise BadRequest(f"File {path!r}: content must be base64")
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"File {path!r}: content is not valid base64") from exc
    if len(data) > max_inline:
        raise PayloadTooLarge(f"File {path!r} is too large to be committed inline: upload it as LFS")
    return spool.add(data)


def _build_ops(db: Session, bk: Backends, actor: Actor, repo: Repo, ops: list[dict], max_inline: int):
    file_ops: list[FileOp] = []
    lfs_rows: list[tuple[str, int, str | None]] = []
    deletes: list[tuple[str, bool]] = []
    for op in ops:
        key = op["key"]
        if key == "file":
            path = clean_path(op["path"])
            content: InlineContent = op["content"]
            if content.size > max_inline:
                raise PayloadTooLarge(f"File {path} is too large to be committed inline: upload it as LFS")
            # Written now, one at a time, so that no commit holds every inline file in memory (unreachable
            # until the commit lands). README.md keeps its bytes: the card check reads them.
            data = content.read()
            pointer = parse_lfs_pointer(data)
            if pointer is not None:  # read back as an LFS file: it must name an object this repo holds
                held = db.get(LfsObject, (repo.id, pointer[0]))
                if held is None or held.size != pointer[1]:
                    raise BadRequest(f"File {path} is a git-lfs pointer to an object that was never uploaded to "
                                     f"{repo.repo_id}: upload the file itself (as LFS) instead")
            blob = bk.repos.write_blob(repo.storage_key, data)
            file_ops.append(FileOp(path, data if path == "README.md" else None, blob=blob))
        elif key == "lfsFile":
            path = clean_path(op["path"])
            oid = str(op.get("oid", "")).lower()
            if op.get("algo", "sha256") != "sha256" or not _HEX_RE.match(oid):
                raise BadRequest(f"File {path}: lfsFile needs a sha256 'oid'")
            known = uploads.readable_lfs(db, bk, actor, repo, oid)
            if known is None:
                raise BadRequest(f"File {path}: LFS object {oid} was not uploaded. Upload it before committing.")
            size = op.get("size")
            if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
                raise BadRequest(f"File {path}: lfsFile 'size' must be an integer")
            if size is not None and size != known.size:
                raise BadRequest(f"File {path}: size {size} does not match the uploaded object ({known.size})")
            if known.repo_pk != repo.id:  # taken from a repo the caller reads (undone if the commit fails)
                uploads.adopt(db, repo, oid, known.size, known.xet_hash, verified=True)
            file_ops.append(FileOp(path, lfs_pointer(oid, known.size)))
            lfs_rows.append((oid, known.size, known.xet_hash))
        elif key == "deletedFile":
            deletes.append((clean_path(op["path"]), False))
        else:
            deletes.append((clean_path(op["path"]), True))
    return file_ops, lfs_rows, deletes


def _delete_op(bk: Backends, key: str, head: str | None, path: str, folder: bool) -> FileOp:
    """A deletion, checked against the tree it applies to."""
    entry = bk.repos.entry(key, head, path) if head else None
    if entry is None:
        what = "folder" if folder else "file"
        raise EntryNotFound(f"A {what} with this name doesn't exist: {path}")
    # A deletedFile on a folder deletes the folder, as on the Hub (the client sends a path without a trailing
    # slash as deletedFile).
    return FileOp(path, None, folder=entry.type == "directory")


def _refuse_file_under_file(file_ops: list[FileOp]) -> None:
    """A commit may not write both ``d`` and ``d/x`` (one of them would silently be dropped)."""
    written = {op.path for op in file_ops}
    for op in file_ops:
        parts = op.path.split("/")
        for i in range(1, len(parts)):
            if (prefix := "/".join(parts[:i])) in written:
                raise BadRequest(f"Cannot commit both the file {prefix} and {op.path}: {prefix} cannot be a file "
                                 "and a folder")


def require_may_commit(db: Session, actor: Actor, repo: Repo, *, revision: str, create_pr: bool) -> None:
    """A commit to a branch needs `write`. Opening a pull request needs only `access.can_contribute` (any
    reader of the files with a write token, as on the Hub), as does a commit to `refs/pr/N` by the one who
    opened it; anyone else's pull request needs `write`."""
    if not create_pr and not revision.startswith("refs/pr/"):
        access.require_write(db, actor, repo)
        return
    access.require_contribute(db, actor, repo)
    if create_pr or access.can_write(db, actor, repo):
        return
    num = revision.removeprefix("refs/pr/")
    pr = None
    if num.isdigit() and 0 < int(num) < 2**63:
        pr = db.scalar(select(Discussion).where(Discussion.repo_pk == repo.id, Discussion.num == int(num),
                                                Discussion.is_pull_request.is_(True)))
    if pr is None or pr.author != actor.name:
        raise Forbidden(f"Only the author of a pull request, or who can write to {repo.repo_id}, can push to it")


def _pr_title(summary: str) -> str:
    return summary if len(summary) <= MAX_TITLE else summary[:MAX_TITLE - 1] + "…"


def _commit_loop(db: Session, bk: Backends, repo: Repo, key: str, ref: str, parent_req: str | None,
                 file_ops: list[FileOp], deletes: list, author: str, message: str, summary: str,
                 description: str, create_pr: bool) -> tuple[str, str | None, str, int | None]:
    """Write the commit on the branch's head and move the branch by compare-and-swap: (new, head, ref, pr)."""
    for _ in range(1 if create_pr else _MAX_RETRIES):
        head = bk.repos.resolve(key, ref)
        if parent_req and not (head or "").startswith(parent_req.lower()):
            raise PreconditionFailed(STALE_PARENT)
        all_ops = list(file_ops) + [_delete_op(bk, key, head, path, folder) for path, folder in deletes]
        new = bk.repos.write_commit(key, parent=head, ops=all_ops, author=author, message=message)
        if create_pr:  # the commit exists: now its number, its row and its new refs/pr/N, together
            pr_num = open_discussion(db, bk, repo, title=_pr_title(summary), description=description,
                                     author=author, pr_head=new).num
            return new, head, f"refs/pr/{pr_num}", pr_num
        try:
            bk.repos.update_ref(key, ref, new, head or ZERO)
        except RefConflict:
            if parent_req:
                raise PreconditionFailed(STALE_PARENT) from None
            COMMIT_RETRIES.inc()
            continue  # a git push moved the branch: rebuild on top of it
        return new, head, ref, None
    raise Conflict("Cannot commit: too many concurrent commits on this branch, retry")


def create_commit(
    db: Session,
    bk: Backends,
    actor: Actor,
    repo: Repo,
    *,
    revision: str,
    header: dict,
    ops: list[dict],
    create_pr: bool = False,
) -> CommitResult:
    """Apply operations on top of `revision` as one commit; the branch moves by compare-and-swap."""
    require_may_commit(db, actor, repo, revision=revision, create_pr=create_pr)
    key = repo.storage_key
    if revision.startswith("refs/pr/"):
        ref = revision
        if bk.repos.resolve(key, ref) is None:
            raise RevisionNotFound(f"Invalid rev id: {revision}")
    elif revision.startswith("refs/"):
        raise BadRequest(f"Cannot commit to {revision}")
    else:
        if revision == "main" and not bk.repos.is_branch(key, revision):
            revision = bk.repos.default_branch(key)  # the clients' "no revision", as `resolve` reads it
        if not bk.repos.is_branch(key, revision):
            raise RevisionNotFound(f"Invalid rev id: {revision}")
        ref = f"refs/heads/{revision}"
    parent_req = header.get("parentCommit")
    if parent_req is not None and (not isinstance(parent_req, str) or not _PARENT_RE.match(parent_req)):
        raise BadRequest("parentCommit must be a commit id")
    file_ops, lfs_rows, deletes = _build_ops(db, bk, actor, repo, ops, bk.settings.max_inline_file)
    _refuse_file_under_file(file_ops)
    for op in file_ops:  # an invalid card is refused before any ref moves, as on the Hub
        if op.path == "README.md" and op.data is not None:
            card_meta.require_valid_readme(op.data)
    summary = (header.get("summary") or "").strip() or "Commit via API"
    description = header.get("description") or ""
    message = summary + (f"\n\n{description}" if description else "")
    author = actor.name or "cove"

    pr_num = None
    # Writers to one branch queue here, one at a time across threads and processes: none rebuilds and retries for
    # another Cove commit; a retry is left only for a `git push` that moved the branch meanwhile.
    with nullcontext() if create_pr else bk.repos.ref_lock(key, ref):
        new, head, ref, pr_num = _commit_loop(db, bk, repo, key, ref, parent_req, file_ops, deletes, author,
                                              message, summary, description, create_pr)

    for oid, size, xet_hash in lfs_rows:
        if db.get(LfsObject, (repo.id, oid)) is None:
            db.add(LfsObject(repo_pk=repo.id, oid=oid, size=size, xet_hash=xet_hash))
    if ref == f"refs/heads/{bk.repos.default_branch(key)}":
        repos.reindex(db, bk, repo, new)
    else:
        repo.last_modified = repos.now()
    webhooks.repo_event(db, repo, "update", "repo.content", refs=[(ref, None if create_pr else head, new)])
    return CommitResult(new, pr_num)
