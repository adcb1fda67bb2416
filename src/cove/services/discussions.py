"""Discussion and pull request numbers: allocated atomically, each PR's `refs/pr/N` made with its row.

A number is taken by inserting the row (the unique constraint on ``(repo_pk, num)`` decides between
concurrent requests, on SQLite and PostgreSQL alike) in a savepoint; for a pull request, ``refs/pr/N`` is
then created (it must not exist yet). Either failure rolls the savepoint back and the next number is tried,
so a ref left without its row (by a crash, or by older versions) costs a number, never an error.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pygit2
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cove.api.shapes import iso
from cove.backends import Backends
from cove.db.tables import Discussion, DiscussionEvent, Repo
from cove.errors import Conflict
from cove.services import webhooks
from cove.storage.git_repos import ZERO, RefConflict

MAX_TITLE = 300  # the column's length
_ATTEMPTS = 50
_PR_REF = re.compile(r"^refs/pr/(\d+)$")


def _next_num(db: Session, bk: Backends, repo: Repo) -> int:
    in_db = db.scalar(select(func.max(Discussion.num)).where(Discussion.repo_pk == repo.id)) or 0
    in_git = max((int(m.group(1)) for ref in bk.repos.refs(repo.storage_key) if (m := _PR_REF.match(ref))),
                 default=0)
    return max(in_db, in_git) + 1


def open_discussion(db: Session, bk: Backends, repo: Repo, *, title: str, description: str, author: str,
                    pr_head: str | None = None) -> Discussion:
    """Number and insert a discussion; with ``pr_head``, a pull request whose ``refs/pr/N`` points there."""
    for _ in range(_ATTEMPTS):
        num = _next_num(db, bk, repo)
        row = Discussion(repo_pk=repo.id, num=num, title=title, description=description, author=author,
                         is_pull_request=pr_head is not None)
        try:
            with db.begin_nested():
                db.add(row)
                db.flush()
                if pr_head is not None:
                    bk.repos.update_ref(repo.storage_key, f"refs/pr/{num}", pr_head, ZERO)
        except (IntegrityError, RefConflict):
            continue  # taken meanwhile (by a row or a ref): the next number
        webhooks.discussion_event(db, row, "create")
        return row
    raise Conflict("Cannot open a discussion: too many concurrent ones on this repo, retry")


# -- events: the Hub's shapes (the client's `huggingface_hub.community.deserialize_event` reads them) --------------


def _author(name: str) -> dict:
    return {"name": name or "deleted", "type": "user"}


HIDDEN_TEXT = "This comment has been hidden"


def comment_json(event_id: str, author: str, data: dict, at: datetime) -> dict:
    """A comment event. ``data`` holds ``raw`` and, once edited or hidden, ``history`` (the earlier versions,
    newest first, each ``{raw, updatedAt, author}``), ``hidden``, ``updatedAt`` and ``editor``."""
    stamp = iso(at)
    history = list(data.get("history", []))
    hidden = bool(data.get("hidden"))
    raw = HIDDEN_TEXT if hidden else data.get("raw", "")
    editor = data.get("editor") or author
    editors = list(dict.fromkeys([editor, *(h.get("author", {}).get("name", "") for h in history), author]))
    return {"id": event_id, "type": "comment", "createdAt": stamp, "author": _author(author),
            "data": {"edited": bool(history), "hidden": hidden, "numEdits": len(history),
                     "editors": [e for e in editors if e], "reactions": [],
                     "identifiedLanguage": {"language": "en", "probability": 1.0}, "history": history,
                     "latest": {"raw": raw, "html": f"<p>{html.escape(raw)}</p>" if raw else "",
                                "updatedAt": data.get("updatedAt") or stamp, "author": _author(editor)}}}


def opening_json(d: Discussion, meta: DiscussionEvent | None) -> dict:
    """The opening comment (the description); its edits live in an ``opening`` event, if any."""
    return comment_json(f"d{d.id:023x}", d.author, meta.data if meta else {"raw": d.description}, d.created_at)


def event_json(ev: DiscussionEvent) -> dict:
    """A stored event in the Hub's shape; its id is ``e`` + 23 hex digits (the opening comment's starts ``d``)."""
    eid = f"e{ev.id:023x}"
    if ev.type == "comment":
        return comment_json(eid, ev.author, ev.data, ev.created_at)
    return {"id": eid, "type": ev.type, "createdAt": iso(ev.created_at), "author": _author(ev.author),
            "data": dict(ev.data)}


def find_comment(db: Session, d: Discussion, comment_id: str) -> tuple[DiscussionEvent, bool] | None:
    """The stored comment ``comment_id`` names, and whether it is the opening one (then its ``opening`` event,
    made on first use)."""
    if len(comment_id) != 24 or comment_id[0] not in "de":
        return None
    try:
        pk = int(comment_id[1:], 16)
    except ValueError:
        return None
    if comment_id[0] == "d":
        if pk != d.id:
            return None
        meta = db.scalar(select(DiscussionEvent).where(DiscussionEvent.discussion_pk == d.id,
                                                       DiscussionEvent.type == "opening"))
        if meta is None:
            meta = add_event(db, d, "opening", d.author, {"raw": d.description})
        return meta, True
    ev = db.get(DiscussionEvent, pk) if pk < 2**63 else None
    if ev is None or ev.discussion_pk != d.id or ev.type != "comment":
        return None
    return ev, False


def edit_comment(ev: DiscussionEvent, editor: str, raw: str) -> None:
    data = dict(ev.data)
    previous = {"raw": data.get("raw", ""), "updatedAt": data.get("updatedAt") or iso(ev.created_at),
                "author": _author(data.get("editor") or ev.author)}
    data.update(raw=raw, history=[previous, *data.get("history", [])], updatedAt=iso(datetime.now(UTC)),
                editor=editor)
    ev.data = data  # a new dict: the JSON column sees the change
    webhooks.comment_changed(ev)


def hide_comment(ev: DiscussionEvent) -> None:
    """Irreversible, as on the Hub: the text and every earlier version are dropped."""
    history = [{**h, "raw": ""} for h in ev.data.get("history", [])]
    ev.data = {**ev.data, "hidden": True, "raw": "", "history": history}
    webhooks.comment_changed(ev)


def add_event(db: Session, d: Discussion, kind: str, author: str, data: dict) -> DiscussionEvent:
    ev = DiscussionEvent(discussion_pk=d.id, type=kind, author=author, data=data)
    db.add(ev)
    db.flush()
    if kind in ("comment", "status-change", "title-change"):
        webhooks.discussion_event(db, d, "create" if kind == "comment" else "update", ev if kind == "comment" else None)
    return ev


def stored_events(db: Session, d: Discussion) -> list[DiscussionEvent]:
    return list(db.scalars(select(DiscussionEvent).where(DiscussionEvent.discussion_pk == d.id)
                           .order_by(DiscussionEvent.id)).all())  # the ``opening`` one included


def pr_commits(bk: Backends, repo: Repo, num: int, base: str | None = None, limit: int = 250) -> list[dict]:
    """The PR's commits (those of ``refs/pr/N`` not on its base, the default branch unless named), oldest first,
    as commit events."""
    base = base or bk.repos.default_branch(repo.storage_key)
    git = bk.repos.repo(repo.storage_key)
    head, target = bk.repos.resolve(repo.storage_key, f"refs/pr/{num}"), bk.repos.resolve(repo.storage_key, base)
    if head is None:
        return []
    walker = git.walk(head, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.TIME)
    if target is not None:
        walker.hide(target)
    out = []
    for c in walker:
        if len(out) >= limit:
            break
        at = datetime.fromtimestamp(c.commit_time, UTC)
        out.append({"id": str(c.id)[:24], "type": "commit", "createdAt": iso(at), "author": _author(c.author.name),
                    "data": {"subject": (c.message or "").partition("\n")[0].strip(), "oid": str(c.id)}})
    return out[::-1]


def pr_diff_and_conflicts(bk: Backends, repo: Repo, num: int, base: str | None = None) -> tuple[str, list[str]]:
    """The unified diff of ``refs/pr/N`` against its merge base with ``base`` (the default branch unless named),
    and the files a merge would conflict on."""
    base = base or bk.repos.default_branch(repo.storage_key)
    git = bk.repos.repo(repo.storage_key)
    head, target = bk.repos.resolve(repo.storage_key, f"refs/pr/{num}"), bk.repos.resolve(repo.storage_key, base)
    if head is None or target is None:
        return "", []
    mb = git.merge_base(head, target)
    diff = git.diff(git[mb], git[head]).patch or "" if mb is not None else ""
    conflicts: list[str] = []
    if mb is not None and str(mb) not in (head, target):
        index = git.merge_commits(target, head)
        if index.conflicts is not None:
            conflicts = sorted({(o or t or a).path for a, o, t in index.conflicts})
    return diff, conflicts


def merge_pr(db: Session, bk: Backends, repo: Repo, d: Discussion, *, author: str, base: str | None = None) -> str:
    """Merge ``refs/pr/N`` into ``base`` (the default branch unless named) as a merge commit; the branch moves
    by compare-and-swap (a branch moved meanwhile is merged against again). Conflicting files are a 409
    naming them, and nothing moves."""
    from cove.services import repos  # repos → … → discussions: imported when used

    base = base or bk.repos.default_branch(repo.storage_key)
    key, ref = repo.storage_key, f"refs/heads/{base}"
    git = bk.repos.repo(key)
    head = bk.repos.resolve(key, f"refs/pr/{d.num}")
    if head is None:
        raise Conflict(f"refs/pr/{d.num} is missing: this pull request cannot be merged")
    for _ in range(_ATTEMPTS):
        target = bk.repos.resolve(key, ref)
        if target is None:
            raise Conflict(f"The target branch {base} is missing")
        index = git.merge_commits(target, head)
        if index.conflicts is not None:
            files = sorted({(o or t or a).path for a, o, t in index.conflicts})
            raise Conflict(f"Merge conflict on files: {', '.join(files)}")
        tree = str(index.write_tree(git))
        new = bk.repos.commit_with_tree(key, tree_of=tree, parents=[target, head], author=author,
                                        message=f"Merge refs/pr/{d.num}: {d.title}")
        try:
            bk.repos.update_ref(key, ref, new, target)
        except RefConflict:
            continue  # the branch moved: merge onto its new head
        repos.reindex(db, bk, repo, new)
        webhooks.repo_event(db, repo, "update", "repo.content", refs=[(ref, target, new)])
        return new
    raise Conflict("Cannot merge: too many concurrent commits on the target branch, retry")
