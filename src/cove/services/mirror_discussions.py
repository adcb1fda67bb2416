"""A mirrored repo's discussions and pull requests, copied from the upstream (docs/mirror.md).

The upstream's discussion list (``GET /api/{type}s/{id}/discussions``, every page) is compared with the local
copy; a discussion whose title, status or comment count changed (or that is new) is read in full and stored
as ordinary `Discussion`/`DiscussionEvent` rows with the upstream's number, authors (names), texts and times:
the ordinary discussion API and pages answer from them, also offline. A pull request's commits and diff come
from its ``refs/pr/N``, mirrored with the git history. Local writes to a mirror's discussions are refused
(read-only, as the repo): the next sync would overwrite them, and a local number could clash with the
upstream's.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cove.backends import Backends
from cove.db.tables import Discussion, DiscussionEvent, Repo
from cove.services import mirror

log = logging.getLogger("cove.mirror")
_STATUSES = ("open", "closed", "merged", "draft")
_PAGES = 200  # 50 a page: at most 10,000 discussions per repo are mirrored
_MARK = "mirror"  # in the opening event's data: the upstream's [title, status, numComments] when copied


def _text(value: object) -> str:
    """`value` as text a database can hold: no NUL (PostgreSQL refuses it), no lone surrogate (a JSON escape
    such as ``\\ud800``, which no encoder takes): one bad comment upstream must not stop every later copy."""
    return str(value).replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _clean(value: object) -> object:
    """A JSON value (an event's data) with every string in it made `_text`."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_text(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _when(value: object) -> datetime:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC).replace(tzinfo=None)
    except ValueError:
        return datetime.now(UTC).replace(tzinfo=None)


def _name(event: dict) -> str:
    author = event.get("author")
    return _text((author or {}).get("name") or "deleted")[:96] if isinstance(author, dict) else "deleted"


def _raw(event: dict) -> tuple[str, bool]:
    """A comment event's text (its latest version) and whether it is hidden."""
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    latest = data.get("latest") if isinstance(data.get("latest"), dict) else {}
    return _text(latest.get("raw") or data.get("raw") or ""), bool(data.get("hidden"))


def _fingerprint(item: dict) -> list:
    count = item.get("numComments")
    return [_text(item.get("title") or ""), _text(item.get("status") or ""), count if isinstance(count, int) else None]


def sync(db: Session, bk: Backends, repo: Repo) -> int:
    """Copy what changed in the upstream's discussions of `repo` (a mirror); returns how many were (re)stored.
    `mirror.Unreachable` when the upstream does not answer; an upstream without discussions changes nothing."""
    base = f"{mirror.upstream(bk)}/api/{mirror.PLURAL[repo.type]}/{repo.repo_id}/discussions"
    listed: list[dict] = []
    for page in range(_PAGES):
        r = mirror.get(bk, base, params={"p": page})
        if r.status_code != 200:
            return 0
        body = r.json()
        items = [i for i in (body.get("discussions") or []) if isinstance(i, dict) and isinstance(i.get("num"), int)]
        listed += items
        if not items or len(listed) >= int(body.get("count") or 0):
            break
    have = {d.num: d for d in db.scalars(select(Discussion).where(Discussion.repo_pk == repo.id))}
    marks = {ev.discussion_pk: ev.data.get(_MARK) for ev in db.scalars(select(DiscussionEvent).where(
        DiscussionEvent.discussion_pk.in_([d.id for d in have.values()]), DiscussionEvent.type == "opening"))}
    db.commit()  # no connection held across the upstream requests below
    changed = 0
    for item in listed:
        d = have.get(item["num"])
        if d is not None and marks.get(d.id) == _fingerprint(item):
            continue
        r = mirror.get(bk, f"{base}/{item['num']}")
        if r.status_code != 200:
            continue
        _store(db, repo, d, item, r.json())
        db.commit()  # one discussion at a time: no write lock held across upstream requests; a cut copy resumes
        changed += 1
    if changed:
        log.info("mirror: %d discussions of %s %s copied from the upstream", changed, repo.type, repo.repo_id)
    return changed


def _store(db: Session, repo: Repo, d: Discussion | None, item: dict, details: dict) -> None:
    events = [e for e in details.get("events") or [] if isinstance(e, dict)]
    comments = [e for e in events if e.get("type") == "comment"]
    opening = comments[0] if comments else None
    description, hidden = _raw(opening) if opening else ("", False)
    if d is None:
        d = Discussion(repo_pk=repo.id, num=item["num"])
        db.add(d)
    else:
        db.execute(delete(DiscussionEvent).where(DiscussionEvent.discussion_pk == d.id))
    status = str(details.get("status") or "open")
    d.title = _text(details.get("title") or "")[:300]
    d.status = status if status in _STATUSES else "open"
    d.author = _name(details)
    d.is_pull_request = bool(details.get("isPullRequest"))
    d.created_at = _when(details.get("createdAt"))
    d.description = description
    db.flush()
    db.add(DiscussionEvent(discussion_pk=d.id, type="opening", author=d.author, created_at=d.created_at,
                           data={"raw": description, "hidden": hidden, _MARK: _fingerprint(item)}))
    for e in events:
        kind = e.get("type")
        if e is opening or kind not in ("comment", "status-change", "title-change"):
            continue  # commit events come from refs/pr/N here too
        if kind == "comment":
            raw, hide = _raw(e)
            data: dict = {"raw": raw, "hidden": hide}
        else:
            data = _clean(e.get("data")) if isinstance(e.get("data"), dict) else {}  # type: ignore[assignment]
        db.add(DiscussionEvent(discussion_pk=d.id, type=kind, author=_name(e), data=data,
                               created_at=_when(e.get("createdAt"))))
    db.flush()
