"""Organization pages: create one (`/organizations/new`), its members page for its admins
(`/organizations/{org}/settings/members`: invite or add, change roles, remove; new repos private by default), and
a user's invitations (`/settings/invitations`: accept or decline)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from cove.backends import Backends
from cove.errors import BadRequest, HubError
from cove.services import access, accounts, org_admin, orgs
from cove.web.render import page
from cove.web.sessions import check_csrf, visitor


def new_org_form(request: Request) -> Response:
    v = visitor(request)
    if v.actor.anonymous:
        return RedirectResponse("/login?next=/organizations/new", status_code=302)
    return page(request, "org_new.html", title="New organization", error=None, values={})


def new_org(request: Request, csrf_token: Annotated[str, Form()] = "", name: Annotated[str, Form()] = "",
            fullname: Annotated[str, Form()] = "") -> Response:
    v = check_csrf(request, csrf_token)
    bk: Backends = request.app.state.backends
    try:
        with bk.db.session() as db:
            org = org_admin.create(db, bk.settings, v.actor, name, fullname)
            target = f"/organizations/{org.name}/settings/members"
    except HubError as exc:
        return page(request, "org_new.html", status=exc.status, title="New organization", error=exc.message,
                    values={"name": name, "fullname": fullname})
    return RedirectResponse(target, status_code=303)


def members_page(request: Request, org: str) -> Response:
    v = visitor(request)
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        ns = org_admin.require_org_admin(db, v.actor, org)
        members = [(u.name, u.fullname, role) for u, role in accounts.members_of(db, ns.id)]
        invited = org_admin.invitations_of_org(db, ns)
        private = orgs.private_by_default(db, ns.name)
        name = ns.name
    return page(request, "org_members.html", title=f"Members · {name}", org=name, members=members,
                invited=invited, roles=access.ROLES, private_by_default=private,
                saved=request.query_params.get("saved"))


def members_update(request: Request, org: str, csrf_token: Annotated[str, Form()] = "",
                   action: Annotated[str, Form()] = "", user: Annotated[str, Form()] = "",
                   role: Annotated[str, Form()] = "write", private: Annotated[str, Form()] = "") -> Response:
    """`action`: `invite`, `cancel-invite`, `set` (add, or change the role), `remove`, or `private-default`."""
    v = check_csrf(request, csrf_token)
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        if action == "set":
            org_admin.set_member(db, v.actor, org, user, role)
        elif action == "remove":
            org_admin.remove_member(db, v.actor, org, user)
        elif action == "invite":
            org_admin.invite(db, v.actor, org, user, role)
        elif action == "cancel-invite":
            org_admin.cancel_invitation(db, v.actor, org, user)
        elif action == "private-default":
            ns = org_admin.require_org_admin(db, v.actor, org)
            orgs.set_private_by_default(db, ns.name, private == "1")
        else:
            raise BadRequest(f"Unknown action {action!r}")
    return RedirectResponse(f"/organizations/{org}/settings/members?saved={action}", status_code=303)


def invitations_page(request: Request) -> Response:
    """`/settings/invitations`: the organizations that invited the signed-in user."""
    v = visitor(request)
    if v.actor.anonymous:
        return RedirectResponse("/login?next=/settings/invitations", status_code=302)
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        invitations = org_admin.invitations_for(db, v.actor)
    return page(request, "invitations.html", title="Invitations", invitations=invitations,
                saved=request.query_params.get("saved"), joined=request.query_params.get("org"))


def invitation_answer(request: Request, csrf_token: Annotated[str, Form()] = "", org: Annotated[str, Form()] = "",
                      answer: Annotated[str, Form()] = "") -> Response:
    """Accept (join with the invitation's role) or decline an invitation."""
    v = check_csrf(request, csrf_token)
    if answer not in ("accept", "decline"):
        raise BadRequest("answer is 'accept' or 'decline'")
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        org_admin.answer_invitation(db, v.actor, org, accept=answer == "accept")
    if answer == "accept":
        return RedirectResponse(f"/{org}", status_code=303)
    return RedirectResponse("/settings/invitations?saved=declined", status_code=303)
