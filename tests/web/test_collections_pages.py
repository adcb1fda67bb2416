"""Collection pages (issue 15, item 7): create, add from a repo page, notes, reorder, remove, delete; CSRF;
private == missing; what the pages did is what the stock client's `get_collection` reads."""

from __future__ import annotations

import re
import uuid

import httpx
from huggingface_hub.errors import HfHubHTTPError

from tests.web.conftest import csrf_of


def _token(client: httpx.Client, path: str) -> str:
    r = client.get(path)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return csrf_of(r.text)


def _create(client: httpx.Client, owner: str, title: str, private: bool = False) -> str:
    """Create through the form; the collection's page path."""
    data = {"csrf_token": _token(client, f"/collections/{owner}"), "title": title, "description": "picked by hand"}
    if private:
        data["private"] = "1"
    r = client.post(f"/collections/{owner}", data=data)
    assert r.status_code == 303, r.text[:500]
    loc = r.headers["location"]
    assert re.fullmatch(rf"/collections/{owner}/[a-z0-9-]+-[0-9a-f]{{24}}", loc), loc
    return loc


def _ids(page: str) -> list[str]:
    return re.findall(r'data-item="([0-9a-f]{24})" data-label="([^"]+)"', page)


def test_create_add_note_reorder_remove_round_trip(alice_web, api, repo_factory):
    repos = [repo_factory("col-web") for _ in range(3)]
    dataset = repo_factory("col-web-ds", repo_type="dataset")
    title = f"Reading list {uuid.uuid4().hex[:6]}"
    path = _create(alice_web, "alice", title)
    slug = path.removeprefix("/collections/")
    listing = alice_web.get("/collections/alice")
    assert title in listing.text and path in listing.text
    # Add each repo from its page ("Add to collection"): the form lists alice's collections.
    for repo_id, base in [(r, f"/{r}") for r in repos] + [(dataset, f"/datasets/{dataset}")]:
        page = alice_web.get(base)
        assert page.status_code == 200 and 'id="add-to-collection-form"' in page.text and slug in page.text
        r = alice_web.post(f"{base}/add-to-collection", data={"csrf_token": csrf_of(page.text), "collection": slug,
                                                              "note": "first" if repo_id == repos[0] else ""})
        assert r.status_code == 303 and r.headers["location"].startswith(path), r.text[:300]
    again = alice_web.post(f"/{repos[0]}/add-to-collection", data={"csrf_token": _token(alice_web, path),
                                                                  "collection": slug})
    assert again.status_code == 409  # already in it; nothing added twice
    page = alice_web.get(path)
    items = _ids(page.text)
    assert [label for _, label in items] == [*repos, dataset]
    assert "first" in page.text and "picked by hand" in page.text
    token = csrf_of(page.text)
    ids = {label: oid for oid, label in items}
    # A note, a move up (the third item before the second), a move down (the first after its neighbour), a removal.
    assert alice_web.post(f"{path}/items/{ids[repos[1]]}", data={"csrf_token": token, "action": "note",
                                                                  "note": "the <b>best</b> one"}).status_code == 303
    assert alice_web.post(f"{path}/items/{ids[repos[2]]}", data={"csrf_token": token,
                                                                  "action": "up"}).status_code == 303
    assert alice_web.post(f"{path}/items/{ids[repos[0]]}", data={"csrf_token": token,
                                                                  "action": "down"}).status_code == 303
    assert alice_web.post(f"{path}/items/{ids[dataset]}", data={"csrf_token": token,
                                                                 "action": "delete"}).status_code == 303
    page = alice_web.get(path)
    assert [label for _, label in _ids(page.text)] == [repos[2], repos[0], repos[1]]
    assert "the &lt;b&gt;best&lt;/b&gt; one" in page.text  # escaped, never markup
    # The stock client reads the same collection.
    got = api.get_collection(slug)
    assert got.title == title and got.description == "picked by hand"
    assert [i.item_id for i in got.items] == [repos[2], repos[0], repos[1]]
    notes = {i.item_id: i.note for i in got.items}
    assert notes[repos[0]] == "first" and notes[repos[1]] == "the <b>best</b> one" and notes[repos[2]] is None
    # Delete it: gone for the client too.
    assert alice_web.post(f"{path}/delete", data={"csrf_token": token}).status_code == 303
    try:
        api.get_collection(slug)
        raise AssertionError("the collection should be gone")
    except HfHubHTTPError as exc:
        assert exc.response.status_code == 404


def test_forms_refuse_without_csrf_or_rights(alice_web, bob_web, anon_web, api, repo_factory):
    repo_id = repo_factory("col-csrf")
    title = f"Guarded {uuid.uuid4().hex[:6]}"
    assert alice_web.post("/collections/alice", data={"title": title}).status_code == 403
    token = _token(alice_web, "/collections/alice")
    evil = alice_web.post("/collections/alice", data={"csrf_token": token, "title": title},
                          headers={"origin": "https://evil.example"})
    assert evil.status_code == 403
    assert not any(c.title == title for c in api.list_collections(owner="alice", limit=100))
    path = _create(alice_web, "alice", title)
    slug = path.removeprefix("/collections/")
    # The same title again: the form with the Hub's message and what was typed; the list still shown.
    dup = alice_web.post("/collections/alice", data={"csrf_token": token, "title": title, "description": "again"})
    assert dup.status_code == 409 and "already exists" in dup.text and 'value="again"' in dup.text
    assert path in dup.text
    assert 'href="/collections/alice"' in alice_web.get("/alice").text  # linked from the profile
    r = alice_web.post(f"/{repo_id}/add-to-collection", data={"collection": slug})
    assert r.status_code == 403
    # bob may read the public collection but not change it, nor create in alice's namespace.
    bob_token = _token(bob_web, path)
    assert 'id="delete-collection-form"' not in bob_web.get(path).text
    assert bob_web.post(f"/{repo_id}/add-to-collection", data={"csrf_token": bob_token,
                                                               "collection": slug}).status_code == 403
    assert bob_web.post(f"{path}/delete", data={"csrf_token": bob_token}).status_code == 403
    assert bob_web.post("/collections/alice", data={"csrf_token": bob_token, "title": "x"}).status_code == 403
    assert 'id="new-collection-form"' not in bob_web.get("/collections/alice").text
    assert api.get_collection(slug).items == []
    api.delete_collection(slug)


def test_private_collection_answers_as_missing(alice_web, bob_web, anon_web, api, acme):
    title = f"Secret {uuid.uuid4().hex[:6]}"
    path = _create(alice_web, "acme", title, private=True)
    assert alice_web.get(path).status_code == 200 and 'id="collection-private-badge"' in alice_web.get(path).text
    missing = path[:-24] + "0" * 24
    for client, form in ((bob_web, "/collections/bob"), (anon_web, "/login")):
        hidden, absent = client.get(path), client.get(missing)
        assert hidden.status_code == absent.status_code == 404
        assert title not in hidden.text and title not in client.get("/collections/acme").text
        # Writing to it answers as for a missing one too.
        token = _token(client, form)
        assert client.post(f"{path}/delete", data={"csrf_token": token}).status_code == 404
    assert title in alice_web.get("/collections/acme").text
    assert anon_web.get(f"/collections/nobody-{uuid.uuid4().hex[:6]}").status_code == 404
    api.delete_collection(path.removeprefix("/collections/"))


def test_private_repo_in_a_public_collection_is_not_shown(alice_web, bob_web, api, repo_factory):
    hidden, shown = repo_factory("col-hidden", private=True), repo_factory("col-shown")
    path = _create(alice_web, "alice", f"Mixed {uuid.uuid4().hex[:6]}")
    for repo_id in (hidden, shown):
        page = alice_web.get(f"/{repo_id}")
        r = alice_web.post(f"/{repo_id}/add-to-collection", data={"csrf_token": csrf_of(page.text),
                                                                  "collection": path.removeprefix("/collections/")})
        assert r.status_code == 303
    assert [label for _, label in _ids(alice_web.get(path).text)] == [hidden, shown]
    page = bob_web.get(path)
    assert page.status_code == 200 and hidden not in page.text
    assert [label for _, label in _ids(page.text)] == [shown]
    api.delete_collection(path.removeprefix("/collections/"))


def test_edit_title_description_and_visibility(alice_web, bob_web, api):
    title = f"Edit me {uuid.uuid4().hex[:6]}"
    path = _create(alice_web, "alice", title)
    slug = path.removeprefix("/collections/")
    other = _create(alice_web, "alice", f"Taken {uuid.uuid4().hex[:6]}")
    taken = api.get_collection(other.removeprefix("/collections/")).title
    page = alice_web.get(path).text
    assert 'id="collection-settings-form"' in page and 'id="collection-settings-form"' not in bob_web.get(path).text
    token = csrf_of(page)
    # No CSRF token, or not a writer of the namespace: refused, nothing changes.
    assert alice_web.post(f"{path}/settings", data={"title": "x"}).status_code == 403
    bob_token = csrf_of(bob_web.get(path).text)
    assert bob_web.post(f"{path}/settings", data={"csrf_token": bob_token, "title": "x"}).status_code == 403
    # A title another collection has: the form again with the Hub's message and what was typed; nothing changes.
    r = alice_web.post(f"{path}/settings", data={"csrf_token": token, "title": taken, "description": "typed"})
    assert r.status_code == 409 and 'id="collection-error"' in r.text and ">typed</textarea>" in r.text
    assert api.get_collection(slug).title == title
    # Title, description and private at once: the URL follows the title, the old one redirects.
    new_title = f"Renamed {uuid.uuid4().hex[:6]}"
    r = alice_web.post(f"{path}/settings", data={"csrf_token": token, "title": new_title,
                                                 "description": "a better description", "private": "1"})
    assert r.status_code == 303 and r.headers["location"].endswith("?saved=settings")
    new_path = r.headers["location"].split("?")[0]
    got = api.get_collection(new_path.removeprefix("/collections/"))
    assert (got.title, got.description, got.private) == (new_title, "a better description", True)
    assert alice_web.get(path, follow_redirects=False).headers["location"] == new_path
    # Private now: bob sees it as a missing one.
    assert bob_web.get(new_path).status_code == 404
    r = alice_web.post(f"{new_path}/settings", data={"csrf_token": token, "title": new_title, "description": ""})
    assert r.status_code == 303 and not api.get_collection(new_path.removeprefix("/collections/")).private
    assert bob_web.get(new_path).status_code == 200
