"""Organization invitations (issue 15 item 6): an org admin invites, the invitee accepts or declines on a page."""

from __future__ import annotations

import uuid

import httpx

from tests.web.conftest import csrf_of


def _members(client: httpx.Client, org: str, data: dict) -> httpx.Response:
    page = client.get(f"/organizations/{org}/settings/members")
    return client.post(f"/organizations/{org}/settings/members", data={"csrf_token": csrf_of(page.text), **data})


def _answer(client: httpx.Client, org: str, answer: str, *, csrf: bool = True) -> httpx.Response:
    page = client.get("/settings/invitations")
    data = {"org": org, "answer": answer}
    if csrf:
        data["csrf_token"] = csrf_of(page.text)
    return client.post("/settings/invitations", data=data)


def test_invite_then_decline_then_accept(alice_web, bob_web, anon_web, api, bob):
    org = f"inv{uuid.uuid4().hex[:8]}"
    token = csrf_of(alice_web.get("/organizations/new").text)
    assert alice_web.post("/organizations/new", data={"csrf_token": token, "name": org}).status_code == 303

    # Nothing pending: bob may not accept, and bob (not an admin) may not invite himself.
    assert _answer(bob_web, org, "accept").status_code == 404
    bob_token = csrf_of(bob_web.get("/settings/invitations").text)
    assert bob_web.post(f"/organizations/{org}/settings/members", data={
        "csrf_token": bob_token, "action": "invite", "user": "bob", "role": "admin"}).status_code == 403

    # alice invites bob as a reader: listed as pending for her, on bob's invitations page; bob is no member yet.
    assert _members(alice_web, org, {"action": "invite", "user": "bob", "role": "read"}).status_code == 303
    members = alice_web.get(f"/organizations/{org}/settings/members").text
    assert 'data-invited="bob"' in members and 'data-member="bob"' not in members
    mine = bob_web.get("/settings/invitations").text
    assert f'data-org="{org}"' in mine and "read" in mine
    assert f'data-org="{org}"' not in alice_web.get("/settings/invitations").text
    assert anon_web.get("/settings/invitations", follow_redirects=False).status_code == 302
    assert org not in [o["name"] for o in api.whoami(token=bob.token)["orgs"]]

    # Without a CSRF token: refused. Declined: gone, and bob did not join.
    assert _answer(bob_web, org, "decline", csrf=False).status_code == 403
    r = _answer(bob_web, org, "decline")
    assert r.status_code == 303 and r.headers["location"] == "/settings/invitations?saved=declined"
    assert 'data-invited="bob"' not in alice_web.get(f"/organizations/{org}/settings/members").text
    assert org not in [o["name"] for o in api.whoami(token=bob.token)["orgs"]]

    # Invited again (as a writer this time), accepted: bob joins with that role and may create repos there.
    assert _members(alice_web, org, {"action": "invite", "user": "bob", "role": "write"}).status_code == 303
    r = _answer(bob_web, org, "accept")
    assert r.status_code == 303 and r.headers["location"] == f"/{org}"
    members = alice_web.get(f"/organizations/{org}/settings/members").text
    assert 'data-member="bob" data-role="write"' in members and 'data-invited="bob"' not in members
    assert f'value="{org}"' in bob_web.get("/new").text
    # A member cannot be invited again; an admin may cancel an invitation before it is answered.
    again = _members(alice_web, org, {"action": "invite", "user": "bob", "role": "admin"})
    assert again.status_code == 409 and "already a member" in again.text
    assert _members(alice_web, org, {"action": "remove", "user": "bob"}).status_code == 303
    assert _members(alice_web, org, {"action": "invite", "user": "bob", "role": "read"}).status_code == 303
    assert _members(alice_web, org, {"action": "cancel-invite", "user": "bob"}).status_code == 303
    assert f'data-org="{org}"' not in bob_web.get("/settings/invitations").text
    assert _answer(bob_web, org, "accept").status_code == 404
