"""Collections, driven by the stock huggingface_hub client: create, read, update, delete, items, listing,
visibility (a private collection, or an item pointing at a private repo, is not there for who can't read it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from tests.conftest import ENDPOINT, cove

SLUG = re.compile(r"(?P<ns>[^/]+)/(?P<title>[a-z0-9-]+)-(?P<id>[0-9a-f]{24})")


def title(prefix: str = "Coll") -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def status(exc: pytest.ExceptionInfo) -> int:
    return exc.value.response.status_code


@pytest.fixture
def collections(api):
    """Create collections as alice (or with another client); delete them afterwards."""
    made: list[tuple[HfApi, str]] = []

    def make(name: str | None = None, *, client: HfApi | None = None, **kw):
        c = (client or api).create_collection(name or title(), **kw)
        made.append((client or api, c.slug))
        return c

    yield make
    for client, slug in made:
        client.delete_collection(slug, missing_ok=True)


def test_collection_round_trip(api, alice, collections, repo_factory):
    model = repo_factory("cm")
    dataset = repo_factory("cd", repo_type="dataset")
    space = repo_factory("cs", repo_type="space", space_sdk="static")
    name = title("ICCV 2023")
    c = collections(name, description="Models I presented")
    m = SLUG.fullmatch(c.slug)
    assert m and m["ns"] == alice.name and m["title"] == f"iccv-2023-{name.split()[-1]}"
    assert (c.title, c.description, c.items, c.private, c.upvotes) == (name, "Models I presented", [], False, 0)
    assert c.owner["name"] == alice.name and c.owner["type"] == "user"
    assert c.theme and c.last_updated and c.url == f"{ENDPOINT}/collections/{c.slug}"

    api.add_collection_item(c.slug, model, "model", note="The best one")
    api.add_collection_item(c.slug, dataset, "dataset")
    api.add_collection_item(c.slug, space, "space")
    c = api.add_collection_item(c.slug, "2311.12983", "paper", note="Read it")
    got = api.get_collection(c.slug)
    assert [(i.item_id, i.item_type, i.position, i.note) for i in got.items] == [
        (model, "model", 0, "The best one"), (dataset, "dataset", 1, None), (space, "space", 2, None),
        ("2311.12983", "paper", 3, "Read it")]
    assert all(re.fullmatch(r"[0-9a-f]{24}", i.item_object_id) for i in got.items)
    assert got.last_updated >= c.last_updated

    # A duplicate item answers 409; exists_ok gives the collection back unchanged.
    with pytest.raises(HfHubHTTPError) as err:
        api.add_collection_item(c.slug, model, "model")
    assert status(err) == 409
    again = api.add_collection_item(c.slug, model, "model", exists_ok=True)
    assert len(again.items) == 4

    # Notes and positions: moving an item renumbers the others.
    paper = got.items[3]
    api.update_collection_item(c.slug, paper.item_object_id, note="Changed", position=0)
    got = api.get_collection(c.slug)
    assert [(i.item_id, i.position) for i in got.items] == [("2311.12983", 0), (model, 1), (dataset, 2), (space, 3)]
    assert got.items[0].note == "Changed"
    api.delete_collection_item(c.slug, got.items[2].item_object_id)
    got = api.get_collection(c.slug)
    assert [(i.item_id, i.position) for i in got.items] == [("2311.12983", 0), (model, 1), (space, 2)]
    with pytest.raises(HfHubHTTPError) as err:
        api.delete_collection_item(c.slug, "0" * 24)
    assert status(err) == 404
    api.delete_collection_item(c.slug, "0" * 24, missing_ok=True)

    api.delete_collection(c.slug)
    with pytest.raises(HfHubHTTPError) as err:
        api.get_collection(c.slug)
    assert status(err) == 404
    api.delete_collection(c.slug, missing_ok=True)
    with pytest.raises(HfHubHTTPError) as err:
        api.delete_collection(c.slug)
    assert status(err) == 404


def test_create_twice_is_409_and_exists_ok_returns_it(api, collections):
    c = collections(title("Twice"))
    with pytest.raises(HfHubHTTPError) as err:
        api.create_collection(c.title)
    assert status(err) == 409
    assert api.create_collection(c.title, exists_ok=True).slug == c.slug


def test_update_metadata_changes_the_slug_not_the_id(api, collections):
    c = collections(title("Before"))
    new_title = title("After Title")
    u = api.update_collection_metadata(c.slug, title=new_title, description="Now described", theme="green",
                                       private=True)
    assert (u.title, u.description, u.theme, u.private) == (new_title, "Now described", "green", True)
    assert SLUG.fullmatch(u.slug)["id"] == SLUG.fullmatch(c.slug)["id"] and u.slug != c.slug
    assert api.get_collection(c.slug).slug == u.slug  # an old link still finds it
    for bad in ({"theme": "no-such-colour"}, {"description": "x" * 151}, {"title": " "}):
        with pytest.raises(HfHubHTTPError) as err:
            api.update_collection_metadata(u.slug, **bad)
        assert status(err) == 400
    assert api.get_collection(u.slug).theme == "green"  # bad input changes nothing


def test_private_collection_is_missing_for_others(api, bob_api, anon_api, acme, collections, repo_factory):
    c = collections(title("Secret"), private=True)
    assert c.private and api.get_collection(c.slug).private
    missing = re.sub(r"[0-9a-f]{24}$", "0" * 24, c.slug)
    for client in (bob_api, anon_api):
        answers = []
        for slug in (c.slug, missing):
            r = httpx.get(f"{ENDPOINT}/api/collections/{slug}", headers=client._build_hf_headers())
            answers.append((r.status_code, r.headers.get("x-error-code"), r.json()))
        assert answers[0] == answers[1] and answers[0][0] == 404
        assert c.slug not in [x.slug for x in client.list_collections(owner="alice", limit=1000)]
    with pytest.raises(HfHubHTTPError) as err:
        bob_api.add_collection_item(c.slug, repo_factory("x"), "model")
    assert status(err) == 404
    with pytest.raises(HfHubHTTPError) as err:
        bob_api.delete_collection(c.slug)
    assert status(err) == 404
    with pytest.raises(HfHubHTTPError) as err:
        bob_api.update_collection_metadata(c.slug, title="x")
    assert status(err) == 404
    assert api.get_collection(c.slug).title == c.title
    # A member of the owning org reads its private collections; a stranger does not.
    org_c = collections(title("Org secret"), namespace=acme, private=True)
    assert api.get_collection(org_c.slug).owner["type"] == "org"
    with pytest.raises(HfHubHTTPError) as err:
        bob_api.get_collection(org_c.slug)
    assert status(err) == 404


def test_items_follow_what_the_reader_may_see(api, bob_api, anon_api, collections, repo_factory):
    public = repo_factory("pub")
    private = repo_factory("priv", private=True)
    c = collections(title("Mixed"))
    api.add_collection_item(c.slug, private, "model", note="hidden")
    api.add_collection_item(c.slug, public, "model")
    assert [i.item_id for i in api.get_collection(c.slug).items] == [private, public]
    for client in (bob_api, anon_api):
        got = client.get_collection(c.slug)
        assert [(i.item_id, i.position) for i in got.items] == [(public, 0)]
        assert private not in str([x.items for x in client.list_collections(owner="alice", limit=1000)])
        assert list(client.list_collections(item=f"models/{private}")) == []
    assert c.slug in [x.slug for x in api.list_collections(item=f"models/{private}")]
    # Bob can't point his own collection at a repo he can't read: answered as a missing repo.
    mine = collections(title("Bobs"), client=bob_api)
    with pytest.raises(RepositoryNotFoundError):
        bob_api.add_collection_item(mine.slug, private, "model")
    with pytest.raises(RepositoryNotFoundError):
        bob_api.add_collection_item(mine.slug, f"alice/nothing-{uuid.uuid4().hex[:6]}", "model")


def test_writes_need_write_rights_on_the_namespace(api, bob_api, anon_api, alice, acme, collections,
                                                  repo_factory):
    repo = repo_factory("w")
    c = collections(title("Alices"))
    read_only = HfApi(endpoint=ENDPOINT, token=alice.read_token)
    for client, code in ((bob_api, 403), (read_only, 403), (anon_api, 401)):
        with pytest.raises(HfHubHTTPError) as err:
            client.add_collection_item(c.slug, repo, "model")
        assert status(err) == code
        with pytest.raises(HfHubHTTPError) as err:
            client.update_collection_metadata(c.slug, title="taken over")
        assert status(err) == code
        with pytest.raises(HfHubHTTPError) as err:
            client.delete_collection(c.slug)
        assert status(err) == code
    with pytest.raises(HfHubHTTPError) as err:
        read_only.create_collection(title(), namespace=alice.name)
    assert status(err) == 403
    with pytest.raises(HfHubHTTPError) as err:
        bob_api.create_collection(title(), namespace=acme)
    assert status(err) == 403
    with pytest.raises(HfHubHTTPError) as err:
        bob_api.create_collection(title(), namespace=alice.name)
    assert status(err) == 403
    assert api.get_collection(c.slug).items == []


def test_deleted_repo_leaves_its_collections_and_a_moved_one_stays(api, collections, repo_factory):
    gone = repo_factory("gone")
    moved = repo_factory("mv")
    c = collections(title("Churn"))
    api.add_collection_item(c.slug, gone, "model")
    api.add_collection_item(c.slug, moved, "model")
    api.delete_repo(gone)
    new_id = f"{moved}-renamed"
    api.move_repo(moved, new_id)
    try:
        assert [(i.item_id, i.position) for i in api.get_collection(c.slug).items] == [(new_id, 0)]
        api.create_repo(gone)  # a new repo under the old name is not the one that was collected
        assert [i.item_id for i in api.get_collection(c.slug).items] == [new_id]
    finally:
        api.delete_repo(new_id, missing_ok=True)
        api.delete_repo(gone, missing_ok=True)


def test_collection_items_and_deleting_the_collected_one(api, bob_api, collections):
    inner = collections(title("Inner"))
    secret = collections(title("Inner secret"), private=True)
    outer = collections(title("Outer"))
    api.add_collection_item(outer.slug, inner.slug, "collection", note="see also")
    api.add_collection_item(outer.slug, secret.slug, "collection")
    items = api.get_collection(outer.slug).items
    assert [(i.item_id, i.item_type, i.note) for i in items] == [
        (inner.slug, "collection", "see also"), (secret.slug, "collection", None)]
    assert [i.item_id for i in bob_api.get_collection(outer.slug).items] == [inner.slug]
    with pytest.raises(HfHubHTTPError) as err:
        api.add_collection_item(outer.slug, outer.slug, "collection")
    assert status(err) == 400
    api.delete_collection(inner.slug)
    assert [i.item_id for i in api.get_collection(outer.slug).items] == [secret.slug]


def test_unknown_items_are_refused(api, collections):
    c = collections(title("Refusals"))
    with pytest.raises(HfHubHTTPError) as err:
        api.add_collection_item(c.slug, "not-a-paper", "paper")
    assert status(err) == 404
    with pytest.raises(HfHubHTTPError) as err:
        api.add_collection_item(c.slug, "alice/x", "bucket")
    assert status(err) == 400
    with pytest.raises(HfHubHTTPError) as err:
        api.add_collection_item(c.slug, "2311.12983", "paper", note="n" * 501)
    assert status(err) == 400
    assert api.get_collection(c.slug).items == []


def test_list_collections_filters_sorts_and_pages(api, anon_api, alice, collections, repo_factory):
    repo = repo_factory("listed")
    tag = uuid.uuid4().hex[:8]
    made = [collections(f"Listed {tag} {i}") for i in range(3)]
    for i in range(6):
        api.add_collection_item(made[0].slug, f"2311.{12980 + i}", "paper")
    api.add_collection_item(made[1].slug, repo, "model")
    listed = list(anon_api.list_collections(owner=alice.name, limit=1000))
    assert {c.slug for c in made} <= {c.slug for c in listed}
    first = next(c for c in listed if c.slug == made[0].slug)
    assert len(first.items) == 4  # listings preview four items, as the Hub's do
    assert [c.slug for c in anon_api.list_collections(item=f"models/{repo}")] == [made[1].slug]
    assert [c.slug for c in anon_api.list_collections(item="papers/2311.12985")] == [made[0].slug]
    # Most recently updated first; `limit` stops the client, pages follow `Link`.
    recent = list(anon_api.list_collections(owner=alice.name, sort="lastModified", limit=2))
    assert [c.slug for c in recent] == [made[1].slug, made[0].slug]
    r = httpx.get(f"{ENDPOINT}/api/collections", params={"q": f"listed {tag}", "limit": 2})
    assert r.status_code == 200 and len(r.json()) == 2 and 'rel="next"' in r.headers["link"]
    nxt = httpx.get(r.headers["link"].split(";")[0].strip("<>"))
    assert {c["slug"] for c in r.json() + nxt.json()} == {c.slug for c in made}
    with pytest.raises(HfHubHTTPError) as err:
        list(anon_api.list_collections(sort="nonsense"))
    assert status(err) == 400


def test_positions_order_the_owners_collections(api, alice):
    org = f"ord-{uuid.uuid4().hex[:8]}"
    cove("org", "add", org, "--owner", alice.name)
    made = [api.create_collection(f"Ordered {i}", namespace=org) for i in range(3)]
    assert [c.position for c in made] == [0, 1, 2]
    api.update_collection_metadata(made[2].slug, position=0)
    assert [c.slug for c in api.list_collections(owner=org)] == [made[2].slug, made[0].slug, made[1].slug]
    assert api.get_collection(made[0].slug).position == 1


def test_hf_collections_cli(api, alice, server, repo_factory, tmp_path):
    """`hf collections` create, add-item, update-item, info, ls and delete, as a user types them."""
    repo = repo_factory("cli")
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    env.update(HF_ENDPOINT=server.endpoint, HF_HOME=str(tmp_path / "hf"), HF_TOKEN=alice.token)
    hf = str(Path(sys.executable).with_name("hf"))

    def run(*args: str) -> str:
        done = subprocess.run([hf, "collections", *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout

    name = title("From the CLI")
    run("create", name, "--description", "typed")
    slug = next(c.slug for c in api.list_collections(owner=alice.name, limit=1000) if c.title == name)
    run("add-item", slug, repo, "model", "--note", "first")
    item = api.get_collection(slug).items[0]
    run("update-item", slug, item.item_object_id, "--note", "edited")
    info = json.loads(run("info", slug, "--format", "json"))
    assert info["title"] == name and info["items"][0]["note"] == "edited"
    listed = json.loads(run("ls", "--owner", alice.name, "--limit", "1000", "--format", "json"))
    assert slug in [c["slug"] for c in listed]
    run("delete", slug)
    assert name not in [c.title for c in api.list_collections(owner=alice.name, limit=1000)]


def test_text_a_database_would_refuse_is_400(api, alice, collections):
    c = collections(title("Texts"))
    auth = {"authorization": f"Bearer {alice.token}"}
    for body in ({"title": "a\x00b", "namespace": alice.name}, {"title": "x\ud800", "namespace": alice.name},
                 {"title": "ok", "namespace": "al\x00ice"}):
        r = httpx.post(f"{ENDPOINT}/api/collections", content=json.dumps(body),  # \ud800 travels escaped
                       headers={**auth, "content-type": "application/json"})
        assert r.status_code in (400, 403), (body, r.status_code, r.text)
    r = httpx.post(f"{ENDPOINT}/api/collections/{c.slug}/items", headers=auth,
                   json={"item": {"id": "2311.12983", "type": "paper"}, "note": "n\x00"})
    assert r.status_code == 400
    r = httpx.get(f"{ENDPOINT}/api/collections", params={"q": "a\x00"})
    assert r.status_code == 400
    assert api.get_collection(c.slug).items == []
