"""The Community tab: discussions and pull requests, listed with filters, read, commented, closed, merged.

The pages call the API's own handlers (`cove.api.discussions`): the same checks (who may comment, change the
status or title, merge), the same events, the same webhooks. Comments are rendered with the card's markdown
sanitizer (`cards.render_markdown`); a pull request shows its commits and its diff against its target.
"""

from __future__ import annotations

import functools
import threading
from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from cove.api import discussions as api
from cove.backends import Backends
from cove.errors import BadRequest, Unauthorized
from cove.web import cards, gitviews
from cove.web.files import MAX_DIFF_FILES, _diffs
from cove.web.render import PLURALS, page
from cove.web.repo import open_repo
from cove.web.sessions import check_csrf

STATUSES = ("open", "closed", "merged", "draft", "all")
TYPES = {"all": "All", "discussion": "Discussions", "pull_request": "Pull requests"}


def discussions_page(repo_type: str, request: Request, ns: str, name: str) -> Response:
    """`/{repo}/discussions?status=open&type=pull_request&p=0`."""
    v, view = open_repo(request, repo_type, ns, name)
    bk: Backends = request.app.state.backends
    qp = request.query_params
    status = qp.get("status", "open") if qp.get("status", "open") in STATUSES else "open"
    kind = qp.get("type", "all") if qp.get("type", "all") in TYPES else "all"
    try:
        p = max(0, min(int(qp.get("p", "0")), 1_000_000))
    except ValueError:
        p = 0
    out = api.list_discussions(PLURALS[repo_type], ns, name, bk, v.actor, p=p, type=kind, status=status,
                               author=None)
    return page(request, "discussions.html", title=f"Discussions · {view.repo_id}", view=view, tab="community",
                items=out["discussions"], total=out["count"], status_filter=status, kind=kind, types=TYPES,
                statuses=STATUSES, p=p, more=(p + 1) * 50 < out["count"])


def new_discussion_form(repo_type: str, request: Request, ns: str, name: str) -> Response:
    v, view = open_repo(request, repo_type, ns, name)
    if v.actor.anonymous:
        raise Unauthorized("Sign in to open a discussion")
    return page(request, "discussion_new.html", title=f"New discussion · {view.repo_id}", view=view,
                tab="community")


def new_discussion(repo_type: str, request: Request, ns: str, name: str, csrf_token: Annotated[str, Form()] = "",
                   title: Annotated[str, Form()] = "", description: Annotated[str, Form()] = "") -> Response:
    v = check_csrf(request, csrf_token)
    _, view = open_repo(request, repo_type, ns, name)
    bk: Backends = request.app.state.backends
    d = api.create_discussion(PLURALS[repo_type], ns, name, {"title": title, "description": description}, bk,
                              v.actor)
    return RedirectResponse(f"{view.base}/discussions/{d['num']}", status_code=303)


_local = threading.local()


@functools.lru_cache(maxsize=4096)
def render_comment(raw: str, base: str) -> str:
    """A comment's markdown as sanitized HTML (the card's sanitizer and link rewriting). One Markdown instance
    per thread, reset between comments, and the results cached: a thread of hundreds renders fast."""
    md = getattr(_local, "md", None)
    if md is None:
        import markdown  # on the first comment rendered: off the start-up path

        md = _local.md = markdown.Markdown(extensions=["tables", "fenced_code", "sane_lists"])
    md.reset()
    rewrite, _ = cards._resolver(base, "main")
    return cards.sanitize(md.convert(raw), attribute_filter=rewrite)


def _event_view(ev: dict, base: str, render: bool = True) -> dict:
    out = dict(ev)
    if ev["type"] == "comment":
        latest = ev["data"]["latest"]
        out["html"] = "" if ev["data"]["hidden"] or not render else render_comment(latest["raw"], base)
    return out


def discussion_page(repo_type: str, request: Request, ns: str, name: str, num: int) -> Response:
    """`/{repo}/discussions/{num}`: the thread; for a pull request, its commits, diff and merge state."""
    v, view = open_repo(request, repo_type, ns, name)
    bk: Backends = request.app.state.backends
    d = api.get_discussion(PLURALS[repo_type], ns, name, num, bk, v.actor)
    files_tab = request.query_params.get("tab") == "files"
    events = [_event_view(ev, view.base, render=not files_tab) for ev in d["events"]]
    diffs: list = []
    more_files = 0
    if d["isPullRequest"] and files_tab:
        diffs, more_files = _pr_diff(bk, view, num, d["changes"].get("mergeCommitId"))
    me = v.actor.name
    can_moderate = not v.actor.anonymous and v.actor.can_write and (me == d["author"]["name"] or view.can_write)
    return page(request, "discussion.html", title=f"{d['title']} · {view.repo_id}", view=view, tab="community",
                d=d, events=events, diffs=diffs, more_files=more_files,
                files_tab=files_tab,
                can_moderate=can_moderate, can_merge=view.can_write and d["isPullRequest"] and d["status"] == "open",
                commits=[e for e in events if e["type"] == "commit"])


def _pr_diff(bk: Backends, view, num: int, merged: str | None) -> tuple[list, int]:  # noqa: ANN001
    """The PR's files against the merge base with its target (the default branch, or it before its merge commit)."""
    key = view.repo.storage_key
    head = bk.repos.resolve(key, f"refs/pr/{num}")
    target = bk.repos.resolve(key, view.branch)
    if merged and (info := bk.repos.commit_info(key, merged)).parents:
        target = info.parents[0]
    if head is None or target is None:
        return [], 0
    with gitviews.intact(key):
        mb = bk.repos.repo(key).merge_base(head, target)
    base = str(mb) if mb is not None else None
    if base is None:
        return [], 0
    changed, renames = gitviews.pair_renames(bk, key, base, head, bk.repos.diff_paths(key, base, head))
    changed.sort(key=lambda c: c[1])
    diffs, _ = _diffs(bk, view, key, base, head, changed, renames)
    return diffs, max(0, len(changed) - MAX_DIFF_FILES)


def discussion_action(repo_type: str, request: Request, ns: str, name: str, num: int, action: str,
                      csrf_token: Annotated[str, Form()] = "", comment: Annotated[str, Form()] = "",
                      status: Annotated[str, Form()] = "", title: Annotated[str, Form()] = "",
                      comment_id: Annotated[str, Form()] = "") -> Response:
    """POST `/{repo}/discussions/{num}/{comment|status|title|merge|hide|edit}`: the API's handler, then the page."""
    v = check_csrf(request, csrf_token)
    _, view = open_repo(request, repo_type, ns, name)
    bk: Backends = request.app.state.backends
    plural = PLURALS[repo_type]
    if action == "comment":
        api.comment(plural, ns, name, num, {"comment": comment}, bk, v.actor)
    elif action == "status":
        api.change_status(plural, ns, name, num, {"status": status, "comment": comment or None}, bk, v.actor)
    elif action == "title":
        api.rename(plural, ns, name, num, {"title": title}, bk, v.actor)
    elif action == "merge":
        api.merge(plural, ns, name, num, bk, v.actor, {"comment": comment or None})
    elif action == "hide":
        api.hide_comment(plural, ns, name, num, comment_id, bk, v.actor)
    elif action == "edit":
        api.edit_comment(plural, ns, name, num, comment_id, {"content": comment}, bk, v.actor)
    else:
        raise BadRequest(f"Unknown action {action!r}")
    return RedirectResponse(f"{view.base}/discussions/{num}", status_code=303)
