"""Discussions and pull requests (`refs/pr/N`): list, open, read, comment, close/reopen, rename."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cove.api.shapes import iso
from cove.backends import Backends
from cove.db.tables import Discussion, DiscussionEvent, Repo
from cove.deps import Bk, CurrentActor, repo_type_of
from cove.errors import BadRequest, Forbidden, NotFound
from cove.services import access, discussions, mirror
from cove.services.accounts import Actor

router = APIRouter()


def _json(d: Discussion, repo_id: str, repo_type: str) -> dict:
    return {"num": d.num, "title": d.title, "status": d.status, "createdAt": iso(d.created_at),
            "author": {"name": d.author, "type": "user"}, "isPullRequest": d.is_pull_request,
            "repo": {"name": repo_id, "type": repo_type}, "numComments": 0, "pinned": False}


_TYPES = {"discussion": False, "pull_request": True}
_STATUSES = ("open", "closed", "merged", "draft")


@router.get("/api/{plural}/{ns}/{name}/discussions")
def list_discussions(plural: str, ns: str, name: str, bk: Bk, actor: CurrentActor,
                     p: Annotated[int, Query(ge=0, le=2**40)] = 0,
                     type: Annotated[str, Query()] = "all",  # noqa: A002 - the Hub's parameter name
                     status: Annotated[str, Query()] = "all",
                     author: Annotated[str | None, Query(max_length=96)] = None) -> dict:
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        if mirror.discussions_read(bk, repo, db):
            db.commit()  # copied just now in another session: read it
        where = [Discussion.repo_pk == repo.id]
        if type != "all":
            if type not in _TYPES:
                raise BadRequest("'type' must be one of all, discussion, pull_request")
            where.append(Discussion.is_pull_request.is_(_TYPES[type]))
        if status != "all":
            if status not in _STATUSES:
                raise BadRequest("'status' must be one of all, open, closed, merged, draft")
            where.append(Discussion.status == status)
        if author:
            where.append(Discussion.author == author)
        rows = db.scalars(select(Discussion).where(*where)
                          .order_by(Discussion.num.desc()).offset(p * 50).limit(50)).all()
        total = db.scalar(select(func.count()).select_from(Discussion).where(*where))
        closed = db.scalar(select(func.count()).select_from(Discussion).where(
            Discussion.repo_pk == repo.id, Discussion.status == "closed"))
        comments = dict(db.execute(
            select(DiscussionEvent.discussion_pk, func.count()).where(
                DiscussionEvent.discussion_pk.in_([d.id for d in rows]), DiscussionEvent.type == "comment")
            .group_by(DiscussionEvent.discussion_pk)).all()) if rows else {}
        out = []
        for d in rows:
            item = _json(d, repo.repo_id, repo.type)
            item["numComments"] = 1 + comments.get(d.id, 0)
            out.append(item)
        return {"discussions": out, "count": total, "start": p * 50, "numClosedDiscussions": closed}


@router.post("/api/{plural}/{ns}/{name}/discussions")
def create_discussion(plural: str, ns: str, name: str, body: Annotated[dict[str, Any], Body()], bk: Bk,
                      actor: CurrentActor) -> dict:
    title = body.get("title")
    if not isinstance(title, str) or not title.strip():
        raise BadRequest("'title' is required")
    if len(title.strip()) > discussions.MAX_TITLE:
        raise BadRequest(f"'title' is longer than {discussions.MAX_TITLE} characters")
    description = body.get("description") or ""
    if not isinstance(description, str) or len(description) > bk.settings.max_commit_description:
        raise BadRequest(f"'description' must be a string of at most {bk.settings.max_commit_description} characters")
    is_pr = bool(body.get("pullRequest"))
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        mirror.refuse_write(db, repo, "open discussions")  # its discussions are the upstream's, copied
        if is_pr:
            access.require_contribute(db, actor, repo)
        else:  # a discussion is a write too: not with a read token
            access.require_write_token(actor, "open a discussion")
        head = bk.repos.head(repo.storage_key) if is_pr else None
        d = discussions.open_discussion(db, bk, repo, title=title.strip(), description=description,
                                        author=actor.name or "", pr_head=head)
        return {**_json(d, repo.repo_id, repo.type), "url": f"{bk.settings.public_endpoint}/{repo.repo_id}"}


@router.get("/api/{plural}/{ns}/{name}/discussions/{num}")
def get_discussion(plural: str, ns: str, name: str, num: int, bk: Bk, actor: CurrentActor,
                   diff: Annotated[bool, Query()] = False) -> dict:
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        if mirror.discussions_read(bk, repo, db):
            db.commit()  # copied just now in another session: read it
        d = _discussion(db, repo, num)
        return _details(bk, db, repo, d, with_diff=diff)


def _details(bk: Backends, db: Session, repo: Repo, d: Discussion, *, with_diff: bool = False) -> dict:
    """The Hub's discussion details: the opening comment, stored events and (for a PR) its commits, by time."""
    out = _json(d, repo.repo_id, repo.type)
    stored = discussions.stored_events(db, d)
    opening = next((ev for ev in stored if ev.type == "opening"), None)
    events = [discussions.opening_json(d, opening)]
    events += [discussions.event_json(ev) for ev in stored if ev.type != "opening"]
    if d.is_pull_request:
        merged = next((ev.data.get("oid") for ev in stored
                       if ev.type == "status-change" and ev.data.get("status") == "merged"), None)
        default = bk.repos.default_branch(repo.storage_key)
        base = default  # once merged, the PR is what it brought onto its base: the base before its merge commit
        if merged and (info := bk.repos.commit_info(repo.storage_key, merged)).parents:
            base = info.parents[0]
        events += discussions.pr_commits(bk, repo, d.num, base)
        events.sort(key=lambda e: e["createdAt"])  # stable: the opening comment stays first
        patch, conflicts = discussions.pr_diff_and_conflicts(bk, repo, d.num, base)
        if merged:
            conflicts = []
        out["changes"] = {"base": f"refs/heads/{default}", "mergeCommitId": merged}
        out["filesWithConflicts"] = conflicts
        out["conflictingFiles"] = conflicts
        if with_diff:
            out["diff"] = patch
    out["events"] = events
    out["numComments"] = sum(1 for e in events if e["type"] == "comment")
    return out


def _discussion(db: Session, repo: Repo, num: int) -> Discussion:
    d = None
    if 0 < num < 2**63:  # what the database's integers hold; beyond, there is no such discussion
        d = db.scalar(select(Discussion).where(Discussion.repo_pk == repo.id, Discussion.num == num))
    if d is None:
        raise NotFound(f"Discussion {num} not found")
    return d


def _text(body: dict, key: str, limit: int) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"'{key}' is required")
    if len(value) > limit:
        raise BadRequest(f"'{key}' is longer than {limit} characters")
    return value


def _may_moderate(db: Session, actor: Actor, repo: Repo, d: Discussion, what: str) -> None:
    """Change status or title: the discussion's author or a writer of the repo, with a write token."""
    mirror.refuse_write(db, repo, what)
    access.require_write_token(actor, what)
    if actor.name != d.author and not access.can_write(db, actor, repo):
        raise Forbidden(f"Only the author or a writer of {repo.repo_id} can {what}")


@router.post("/api/{plural}/{ns}/{name}/discussions/{num}/comment")
def comment(plural: str, ns: str, name: str, num: int, body: Annotated[dict[str, Any], Body()], bk: Bk,
            actor: CurrentActor) -> dict:
    text = _text(body, "comment", bk.settings.max_commit_description)
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        d = _discussion(db, repo, num)
        mirror.refuse_write(db, repo, "comment")
        access.require_write_token(actor, "comment")  # as on the Hub: anyone who can read the repo
        ev = discussions.add_event(db, d, "comment", actor.name or "", {"raw": text})
        return {"newMessage": discussions.event_json(ev)}


@router.post("/api/{plural}/{ns}/{name}/discussions/{num}/status")
def change_status(plural: str, ns: str, name: str, num: int, body: Annotated[dict[str, Any], Body()], bk: Bk,
                  actor: CurrentActor) -> dict:
    status = body.get("status")
    if status not in ("open", "closed"):
        raise BadRequest("'status' must be 'open' or 'closed'")
    note = body.get("comment")
    if note is not None and (not isinstance(note, str) or len(note) > bk.settings.max_commit_description):
        raise BadRequest(f"'comment' must be a string of at most {bk.settings.max_commit_description} characters")
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        d = _discussion(db, repo, num)
        _may_moderate(db, actor, repo, d, "change the status of this discussion")
        if d.status == "merged":
            raise BadRequest("This pull request is merged: its status cannot change")
        if d.status == status:
            raise BadRequest(f"This discussion is already {status}")
        if note and note.strip():
            discussions.add_event(db, d, "comment", actor.name or "", {"raw": note.strip()})
        d.status = status
        ev = discussions.add_event(db, d, "status-change", actor.name or "", {"status": status})
        return {"newStatus": discussions.event_json(ev)}


@router.post("/api/{plural}/{ns}/{name}/discussions/{num}/title")
def rename(plural: str, ns: str, name: str, num: int, body: Annotated[dict[str, Any], Body()], bk: Bk,
           actor: CurrentActor) -> dict:
    title = _text(body, "title", discussions.MAX_TITLE).strip()
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        d = _discussion(db, repo, num)
        _may_moderate(db, actor, repo, d, "rename this discussion")
        old, d.title = d.title, title
        ev = discussions.add_event(db, d, "title-change", actor.name or "", {"from": old, "to": title})
        return {"newTitle": discussions.event_json(ev)}


def _comment(db: Session, d: Discussion, comment_id: str) -> tuple[DiscussionEvent, bool]:
    found = discussions.find_comment(db, d, comment_id.lower())
    if found is None:
        raise NotFound(f"Comment {comment_id} not found")
    return found


def _comment_out(d: Discussion, ev: DiscussionEvent, opening: bool) -> dict:
    return {"updatedComment": discussions.opening_json(d, ev) if opening else discussions.event_json(ev)}


@router.post("/api/{plural}/{ns}/{name}/discussions/{num}/comment/{comment_id}/edit")
def edit_comment(plural: str, ns: str, name: str, num: int, comment_id: str,
                 body: Annotated[dict[str, Any], Body()], bk: Bk, actor: CurrentActor) -> dict:
    text = _text(body, "content", bk.settings.max_commit_description)
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        d = _discussion(db, repo, num)
        mirror.refuse_write(db, repo, "edit comments")
        access.require_write_token(actor, "edit a comment")
        ev, opening = _comment(db, d, comment_id)
        if actor.name != ev.author:
            raise Forbidden("Only the author of a comment can edit it")
        if ev.data.get("hidden"):
            raise Forbidden("This comment is hidden: it cannot be edited")
        discussions.edit_comment(ev, actor.name or "", text)
        if opening:
            d.description = text
        db.flush()
        return _comment_out(d, ev, opening)


@router.post("/api/{plural}/{ns}/{name}/discussions/{num}/comment/{comment_id}/hide")
def hide_comment(plural: str, ns: str, name: str, num: int, comment_id: str, bk: Bk, actor: CurrentActor) -> dict:
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        d = _discussion(db, repo, num)
        access.require_write(db, actor, repo)  # moderation: the repo's writers
        ev, opening = _comment(db, d, comment_id)
        discussions.hide_comment(ev)
        db.flush()
        return _comment_out(d, ev, opening)


@router.post("/api/{plural}/{ns}/{name}/discussions/{num}/merge")
def merge(plural: str, ns: str, name: str, num: int, bk: Bk, actor: CurrentActor,
          body: Annotated[dict[str, Any] | None, Body()] = None) -> dict:
    note = (body or {}).get("comment")
    if note is not None and (not isinstance(note, str) or len(note) > bk.settings.max_commit_description):
        raise BadRequest(f"'comment' must be a string of at most {bk.settings.max_commit_description} characters")
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        d = _discussion(db, repo, num)
        access.require_write(db, actor, repo)  # merging is a write to the target branch
        if not d.is_pull_request:
            raise BadRequest("This is a discussion, not a pull request: nothing to merge")
        if d.status != "open":
            raise BadRequest(f"This pull request is {d.status}: only an open one can be merged")
        oid = discussions.merge_pr(db, bk, repo, d, author=actor.name or "cove")
        if note and note.strip():
            discussions.add_event(db, d, "comment", actor.name or "", {"raw": note.strip()})
        d.status = "merged"
        ev = discussions.add_event(db, d, "status-change", actor.name or "", {"status": "merged", "oid": oid})
        return {"newStatus": discussions.event_json(ev)}
