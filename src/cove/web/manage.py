"""Repo settings beyond visibility and delete: gating, rename or transfer, and the access requests review.

Each form calls the API's handler (`cove.api.repos`, `cove.api.gating`): the same rules (admins change the
gating and move a repo; writers review requests), the same webhooks.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from cove.api import gating as gating_api
from cove.api import repos as repos_api
from cove.api.shapes import iso
from cove.backends import Backends
from cove.errors import BadRequest, Forbidden
from cove.services import gating
from cove.services.gating import STATUSES
from cove.web.render import PLURALS, page, repo_path
from cove.web.repo import open_repo
from cove.web.sessions import check_csrf

REQUESTS_PAGE = 50


def gating_update(repo_type: str, request: Request, ns: str, name: str, csrf_token: Annotated[str, Form()] = "",
                  gated: Annotated[str, Form()] = "") -> Response:
    """`gated`: `auto`, `manual` or `false` (not gated)."""
    v = check_csrf(request, csrf_token)
    _, view = open_repo(request, repo_type, ns, name)
    if gated not in ("auto", "manual", "false"):
        raise BadRequest("Gating is 'auto', 'manual' or 'false'")
    repos_api.update_settings(PLURALS[repo_type], ns, name, {"gated": False if gated == "false" else gated},
                              request.app.state.backends, v.actor)
    return RedirectResponse(f"{view.base}/settings?saved=gating", status_code=303)


def move(repo_type: str, request: Request, ns: str, name: str, csrf_token: Annotated[str, Form()] = "",
         to: Annotated[str, Form()] = "") -> Response:
    """Rename or transfer to another namespace (one the user may create repos in)."""
    v = check_csrf(request, csrf_token)
    _, view = open_repo(request, repo_type, ns, name)
    target = to.strip()
    repos_api.move_repo({"fromRepo": view.repo_id, "toRepo": target, "type": repo_type},
                        request.app.state.backends, v.actor)
    return RedirectResponse(f"{repo_path(repo_type, target)}/settings?saved=moved", status_code=303)


def access_requests_page(repo_type: str, request: Request, ns: str, name: str) -> Response:
    """`/{repo}/settings/access-requests?status=pending`: the gate's requests, with the requester's answers."""
    v, view = open_repo(request, repo_type, ns, name)
    if not view.can_write:
        raise Forbidden(f"You don't have the rights to review access requests to {view.repo_id}")
    status = request.query_params.get("status", "pending")
    status = status if status in STATUSES else "pending"
    try:
        p = max(0, min(int(request.query_params.get("p", "0")), 1_000_000))
    except ValueError:
        p = 0
    bk: Backends = request.app.state.backends
    rows, total = [], 0
    if view.repo.gated:
        with bk.db.session() as db:
            found = gating.list_requests(db, v.actor, db.merge(view.repo), status)
            total = len(found)
            rows = [{"user": {"user": r.user.name, "fullname": r.user.fullname}, "fields": r.fields,
                     "timestamp": iso(r.created_at)} for r in found[p * REQUESTS_PAGE:(p + 1) * REQUESTS_PAGE]]
    return page(request, "access_requests.html", title=f"Access requests · {view.repo_id}", view=view,
                tab="settings", rows=rows, status_filter=status, statuses=STATUSES, p=p, total=total,
                more=(p + 1) * REQUESTS_PAGE < total)


def access_request_handle(repo_type: str, request: Request, ns: str, name: str,
                          csrf_token: Annotated[str, Form()] = "", user: Annotated[str, Form()] = "",
                          status: Annotated[str, Form()] = "", back: Annotated[str, Form()] = "pending") -> Response:
    v = check_csrf(request, csrf_token)
    _, view = open_repo(request, repo_type, ns, name)
    gating_api.handle(PLURALS[repo_type], ns, name, request.app.state.backends, v.actor,
                      {"user": user, "status": status})
    back = back if back in STATUSES else "pending"
    return RedirectResponse(f"{view.base}/settings/access-requests?status={back}", status_code=303)
