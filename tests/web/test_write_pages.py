"""The pages that write (issue 15), over plain HTTP: forms, CSRF, private == missing, the same services as the API."""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from tests.conftest import ENDPOINT
from tests.web.conftest import csrf_of


def _form(client: httpx.Client, path: str) -> str:
    r = client.get(path)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return csrf_of(r.text)


def test_new_repo_with_owner_license_visibility_and_space_sdk(alice_web, api, acme):
    name = f"web-new-{uuid.uuid4().hex[:8]}"
    page = alice_web.get("/new")
    assert page.status_code == 200 and 'value="acme"' in page.text and "apache-2.0" in page.text
    r = alice_web.post("/new", data={"csrf_token": csrf_of(page.text), "owner": "acme", "name": name,
                                     "license": "mit", "visibility": "private"})
    assert r.status_code == 303 and r.headers["location"] == f"/acme/{name}"
    info = api.model_info(f"acme/{name}")
    assert info.private and info.card_data["license"] == "mit"
    # A Space: its sdk, and its README keeps the Space's front matter with the license added.
    token = _form(alice_web, "/new-space")
    r = alice_web.post("/new-space", data={"csrf_token": token, "owner": "alice", "name": name, "sdk": "static",
                                           "license": "apache-2.0", "visibility": "public"})
    assert r.status_code == 303 and r.headers["location"] == f"/spaces/alice/{name}"
    space = api.space_info(f"alice/{name}")
    assert space.sdk == "static" and space.card_data["license"] == "apache-2.0"
    # A name taken, an invalid name: the form again, with the Hub's message, nothing created.
    again = alice_web.post("/new-space", data={"csrf_token": token, "owner": "alice", "name": name, "sdk": "static"})
    assert again.status_code in (400, 409) and "already created" in again.text
    bad = alice_web.post("/new-dataset", data={"csrf_token": token, "owner": "alice", "name": "a--b"})
    assert bad.status_code == 400 and "Invalid repo id" in bad.text
    for repo_id, kind in ((f"acme/{name}", "model"), (f"alice/{name}", "space")):
        api.delete_repo(repo_id, repo_type=kind)


def test_new_repo_refuses_without_csrf_or_session(alice_web, bob_web, anon_web, api):
    name = f"web-csrf-{uuid.uuid4().hex[:8]}"
    r = alice_web.post("/new", data={"owner": "alice", "name": name})
    assert r.status_code == 403
    r = alice_web.post("/new", data={"csrf_token": _form(alice_web, "/new"), "owner": "alice", "name": name},
                       headers={"origin": "https://evil.example"})
    assert r.status_code == 403
    # bob may not create in acme (not a member): the form says so, nothing is made.
    r = bob_web.post("/new", data={"csrf_token": _form(bob_web, "/new"), "owner": "acme", "name": name})
    assert r.status_code == 403
    assert anon_web.get("/new", follow_redirects=False).status_code == 303  # sign in first
    assert not api.repo_exists(f"alice/{name}") and not api.repo_exists(f"acme/{name}")


def test_upload_small_and_large_files_through_the_form(alice_web, api, repo_factory, no_xet):
    repo_id = repo_factory("web-upload")
    token = _form(alice_web, f"/{repo_id}/upload/main")
    big = os.urandom(11 * 1024 * 1024)  # over 10 MB: LFS, as huggingface_hub would
    files = [("files", ("notes.txt", b"hello\n", "text/plain")), ("files", ("weights.bin", big, "application/x"))]
    r = alice_web.post(f"/{repo_id}/upload/main/sub", data={"csrf_token": token, "summary": "Add two files"},
                       files=files)
    assert r.status_code == 303, r.text[:500]
    paths = {f.path: f for f in api.list_repo_tree(repo_id, recursive=True, expand=True) if hasattr(f, "lfs")}
    assert paths["sub/notes.txt"].lfs is None
    assert paths["sub/weights.bin"].lfs.sha256 == hashlib.sha256(big).hexdigest()
    assert api.list_repo_commits(repo_id)[0].title == "Add two files"
    got = hf_hub_download(repo_id, "sub/weights.bin", endpoint=ENDPOINT, token=api.token)
    assert Path(got).read_bytes() == big


def test_edit_create_delete_and_pull_request_from_an_outsider(alice_web, bob_web, api, repo_factory):
    repo_id = repo_factory("web-edit")
    api.upload_file(path_or_fileobj=b"# Card\n", path_in_repo="README.md", repo_id=repo_id)
    page = alice_web.get(f"/{repo_id}/edit/main/README.md")
    assert page.status_code == 200 and "# Card" in page.text
    r = alice_web.post(f"/{repo_id}/edit/main/README.md", data={
        "csrf_token": csrf_of(page.text), "content": "---\nlicense: mit\n---\n# Card v2\n", "summary": "Card v2"})
    assert r.status_code == 303 and r.headers["location"] == f"/{repo_id}/blob/main/README.md"
    assert api.model_info(repo_id).card_data["license"] == "mit"
    # An invalid card is refused with the Hub's message; the file is unchanged.
    page = alice_web.get(f"/{repo_id}/edit/main/README.md")
    bad = alice_web.post(f"/{repo_id}/edit/main/README.md", data={
        "csrf_token": csrf_of(page.text), "content": "---\nlicense: [\n---\n", "parent": ""})
    assert bad.status_code == 400 and "metadata" in bad.text.lower()
    # Create a file, then delete it.
    token = _form(alice_web, f"/{repo_id}/new/main")
    r = alice_web.post(f"/{repo_id}/new/main", data={"csrf_token": token, "filename": "docs/a.md", "content": "A"})
    assert r.status_code == 303 and api.file_exists(repo_id, "docs/a.md")
    token = _form(alice_web, f"/{repo_id}/delete/main/docs/a.md")
    assert alice_web.post(f"/{repo_id}/delete/main/docs/a.md", data={"csrf_token": token}).status_code == 303
    assert not api.file_exists(repo_id, "docs/a.md")
    # bob cannot write: his edit becomes a pull request (the page says so), main is untouched.
    page = bob_web.get(f"/{repo_id}/edit/main/README.md")
    assert page.status_code == 200 and 'id="pr-only"' in page.text
    r = bob_web.post(f"/{repo_id}/edit/main/README.md", data={
        "csrf_token": csrf_of(page.text), "content": "---\nlicense: mit\n---\n# Card by bob\n", "summary": "Fix"})
    assert r.status_code == 303 and r.headers["location"] == f"/{repo_id}/discussions/1"
    assert "Card by bob" not in httpx.get(f"{ENDPOINT}/{repo_id}/resolve/main/README.md").text
    # The community tab lists it; the PR page shows the diff; bob cannot merge, alice comments and merges.
    listing = alice_web.get(f"/{repo_id}/discussions?type=pull_request")
    assert 'data-num="1"' in listing.text and "Fix" in listing.text
    assert 'data-num="1"' not in alice_web.get(f"/{repo_id}/discussions?type=discussion").text
    files_tab = alice_web.get(f"/{repo_id}/discussions/1?tab=files").text
    assert "Card by bob" in files_tab and 'class="add"' in files_tab
    bob_page = bob_web.get(f"/{repo_id}/discussions/1").text
    assert 'id="merge-form"' not in bob_page
    assert bob_web.post(f"/{repo_id}/discussions/1/merge", data={"csrf_token": csrf_of(bob_page)}).status_code == 403
    page = alice_web.get(f"/{repo_id}/discussions/1").text
    token = csrf_of(page)
    assert alice_web.post(f"/{repo_id}/discussions/1/comment", data={
        "csrf_token": token, "comment": "Thanks! <script>alert(1)</script> **bold**"}).status_code == 303
    assert alice_web.post(f"/{repo_id}/discussions/1/merge", data={"csrf_token": token}).status_code == 303
    assert "Card by bob" in httpx.get(f"{ENDPOINT}/{repo_id}/resolve/main/README.md").text
    page = alice_web.get(f"/{repo_id}/discussions/1").text
    assert "<strong>bold</strong>" in page and "<script>alert" not in page
    assert 'id="discussion-status">merged' in page
    details = api.get_discussion_details(repo_id, 1)
    assert details.status == "merged" and [e.type for e in details.events].count("comment") == 2


def test_discussion_title_status_and_csrf(alice_web, bob_web, api, repo_factory):
    repo_id = repo_factory("web-disc")
    token = _form(bob_web, f"/{repo_id}/discussions/new")
    r = bob_web.post(f"/{repo_id}/discussions/new", data={"csrf_token": token, "title": "Question",
                                                          "description": "How?"})
    assert r.status_code == 303 and r.headers["location"] == f"/{repo_id}/discussions/1"
    token = _form(bob_web, f"/{repo_id}/discussions/1")
    assert bob_web.post(f"/{repo_id}/discussions/1/title",
                        data={"csrf_token": token, "title": "Renamed question"}).status_code == 303
    assert bob_web.post(f"/{repo_id}/discussions/1/status", data={"csrf_token": token,
                                                                  "status": "closed"}).status_code == 303
    assert bob_web.post(f"/{repo_id}/discussions/1/comment", data={"comment": "no token"}).status_code == 403
    d = api.get_discussion_details(repo_id, 1)
    assert d.title == "Renamed question" and d.status == "closed"
    assert [e.type for e in d.events] == ["comment", "title-change", "status-change"]
    # bob edits his opening comment; alice (not its author) cannot.
    page = bob_web.get(f"/{repo_id}/discussions/1").text
    assert 'data-action="edit"' in page
    r = bob_web.post(f"/{repo_id}/discussions/1/edit", data={"csrf_token": csrf_of(page), "comment_id": d.events[0].id,
                                                             "comment": "How, *exactly*?"})
    assert r.status_code == 303
    assert "<em>exactly</em>" in bob_web.get(f"/{repo_id}/discussions/1").text
    assert api.get_discussion_details(repo_id, 1).events[0].edited
    alice_page = alice_web.get(f"/{repo_id}/discussions/1").text
    assert 'data-action="edit"' not in alice_page
    assert alice_web.post(f"/{repo_id}/discussions/1/edit", data={
        "csrf_token": csrf_of(alice_page), "comment_id": d.events[0].id, "comment": "x"}).status_code == 403
    page = bob_web.get(f"/{repo_id}/discussions?status=closed").text
    assert "Renamed question" in page
    assert "Renamed question" not in bob_web.get(f"/{repo_id}/discussions").text  # open only, by default


def test_private_repo_write_pages_are_missing(alice_web, bob_web, anon_web, repo_factory):
    repo_id = repo_factory("web-priv", private=True)
    paths = ("upload/main", "new/main", "edit/main/README.md", "delete/main/.gitattributes", "discussions",
             "discussions/new", "discussions/1", "settings/access-requests")
    for client in (bob_web, anon_web):
        for p in paths:
            r = client.get(f"/{repo_id}/{p}", follow_redirects=False)
            missing = client.get(f"/alice/nothing-{uuid.uuid4().hex[:6]}/{p}", follow_redirects=False)
            assert (r.status_code, r.headers.get("location")) == (missing.status_code,
                                                                   missing.headers.get("location")), p
    token = _form(bob_web, "/new")
    for p in ("upload/main", "edit/main/README.md", "discussions/new", "discussions/1/comment", "settings/gating"):
        r = bob_web.post(f"/{repo_id}/{p}", data={"csrf_token": token, "content": "x", "title": "x", "comment": "x",
                                                  "gated": "auto"})
        assert r.status_code == 404, p
    assert alice_web.get(f"/{repo_id}/discussions").status_code == 200


def test_gate_request_and_accept(alice_web, bob_web, api, repo_factory):
    repo_id = repo_factory("web-gate")
    api.upload_file(path_or_fileobj=b"secret", path_in_repo="data.txt", repo_id=repo_id)
    card = b"---\nextra_gated_fields:\n  Company: text\n  I agree: checkbox\n---\n# Gated\n"
    api.upload_file(path_or_fileobj=card, path_in_repo="README.md", repo_id=repo_id)
    token = _form(alice_web, f"/{repo_id}/settings")
    assert alice_web.post(f"/{repo_id}/settings/gating", data={"csrf_token": token,
                                                               "gated": "manual"}).status_code == 303
    assert api.model_info(repo_id).gated == "manual"
    page = bob_web.get(f"/{repo_id}").text
    assert 'data-field="Company"' in page and 'type="checkbox"' in page  # the card's extra_gated_fields
    fields = {"field": ["Company", "I agree"], "csrf_token": csrf_of(page)}
    assert bob_web.post(f"/{repo_id}/ask-access", data={**fields, "answer": ["Bobco"]}).status_code == 400
    r = bob_web.post(f"/{repo_id}/ask-access", data={**fields, "answer": ["Bobco", "yes"]})
    assert r.status_code == 303
    assert 'data-status="pending"' in bob_web.get(f"/{repo_id}").text
    assert bob_web.get(f"/{repo_id}/resolve/main/data.txt").status_code == 403
    review = alice_web.get(f"/{repo_id}/settings/access-requests")
    assert 'data-user="bob"' in review.text and "Bobco" in review.text
    # bob cannot review (not a writer); alice accepts.
    assert bob_web.get(f"/{repo_id}/settings/access-requests").status_code == 403
    r = alice_web.post(f"/{repo_id}/settings/access-requests", data={"csrf_token": csrf_of(review.text),
                                                                     "user": "bob", "status": "accepted"})
    assert r.status_code == 303
    assert 'data-user="bob"' in alice_web.get(f"/{repo_id}/settings/access-requests?status=accepted").text
    assert bob_web.get(f"/{repo_id}/resolve/main/data.txt").text == "secret"
    # The requester sees "accepted" on the card (the owner, who never asked, sees no status).
    assert 'data-status="accepted"' in bob_web.get(f"/{repo_id}").text
    assert 'id="access-status"' not in alice_web.get(f"/{repo_id}").text
    # Rejected later: the requester sees that, and the files are closed again.
    review = alice_web.get(f"/{repo_id}/settings/access-requests?status=accepted")
    assert alice_web.post(f"/{repo_id}/settings/access-requests", data={
        "csrf_token": csrf_of(review.text), "user": "bob", "status": "rejected"}).status_code == 303
    assert 'data-status="rejected"' in bob_web.get(f"/{repo_id}").text
    assert bob_web.get(f"/{repo_id}/resolve/main/data.txt").status_code == 403


def test_rename_from_settings(alice_web, api, repo_factory):
    repo_id = repo_factory("web-move")
    new_id = repo_id + "-renamed"
    token = _form(alice_web, f"/{repo_id}/settings")
    r = alice_web.post(f"/{repo_id}/settings/move", data={"csrf_token": token, "to": new_id})
    assert r.status_code == 303 and r.headers["location"] == f"/{new_id}/settings?saved=moved"
    assert api.repo_exists(new_id)
    api.delete_repo(new_id)


def test_lfs_batch_rides_on_the_browser_session_only_with_its_csrf_token(alice_web, api, repo_factory):
    """What the upload page's script does: LFS batch + PUT, then the NDJSON commit, with the session."""
    repo_id = repo_factory("web-lfs")
    token = _form(alice_web, f"/{repo_id}/upload/main")
    data = os.urandom(2000)
    oid = hashlib.sha256(data).hexdigest()
    body = {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(data)}]}
    lfs = {"content-type": "application/vnd.git-lfs+json"}
    batch = f"/{repo_id}.git/info/lfs/objects/batch"
    assert alice_web.post(batch, json=body, headers=lfs).status_code == 401  # the cookie alone: no
    assert alice_web.post(batch, json=body, headers={**lfs, "x-csrf-token": "wrong"}).status_code == 401
    r = alice_web.post(batch, json=body, headers={**lfs, "x-csrf-token": token})
    assert r.status_code == 200, r.text
    href = r.json()["objects"][0]["actions"]["upload"]["href"]
    assert httpx.put(href, content=data).status_code == 200
    lines = [{"key": "header", "value": {"summary": "From the browser"}},
             {"key": "lfsFile", "value": {"path": "blob.bin", "algo": "sha256", "oid": oid, "size": len(data)}}]
    ndjson = "\n".join(json.dumps(x) for x in lines)
    r = alice_web.post(f"/api/models/{repo_id}/commit/main", content=ndjson,
                       headers={"content-type": "application/x-ndjson", "x-csrf-token": token})
    assert r.status_code == 200, r.text
    [entry] = [f for f in api.list_repo_tree(repo_id) if f.path == "blob.bin"]
    assert entry.lfs.sha256 == oid


def test_readme_metadata_form_writes_valid_front_matter(alice_web, api, repo_factory):
    repo_id = repo_factory("web-meta")
    api.upload_file(path_or_fileobj=b"---\nlicense: mit\nextra: kept\n---\n# Card\n", path_in_repo="README.md",
                    repo_id=repo_id)
    page = alice_web.get(f"/{repo_id}/edit/main/README.md").text
    assert 'id="card-meta"' in page and '<option value="mit" selected>' in page
    text = "---\nlicense: mit\nextra: kept\n---\n# Card\n"
    fields = {"csrf_token": csrf_of(page), "content": text, "meta_form": "1", "meta_license": "apache-2.0",
              "meta_pipeline_tag": "text-classification", "meta_tags": "a, b", "meta_datasets": "alice/reviews",
              "meta_base_model": "", "meta_language": "en", "meta_library_name": "transformers",
              "meta_shown": json.dumps({"license": "mit", "tags": ""})}
    assert alice_web.post(f"/{repo_id}/edit/main/README.md", data=fields).status_code == 303
    info = api.model_info(repo_id)
    assert info.card_data["license"] == "apache-2.0" and info.pipeline_tag == "text-classification"
    assert info.card_data["tags"] == ["a", "b"] and info.card_data["extra"] == "kept"
    assert info.card_data["datasets"] == ["alice/reviews"] and info.card_data["language"] == ["en"]
    # A value the Hub does not know: refused with its message, the form keeps what was typed.
    page = alice_web.get(f"/{repo_id}/edit/main/README.md").text
    bad = alice_web.post(f"/{repo_id}/edit/main/README.md", data={
        "csrf_token": csrf_of(page), "content": text, "meta_form": "1", "meta_license": "not-a-license"})
    assert bad.status_code == 400 and "Invalid metadata in README.md" in bad.text
    assert "must be a license id the Hub knows" in bad.text and 'value="not-a-license" selected' in bad.text
    assert api.model_info(repo_id).card_data["license"] == "apache-2.0"


def test_compare_two_tags_file_history_and_blame(anon_web, hub, alice_web, repo_factory):
    page = anon_web.get(f"/{hub.model}/compare/v1...main")
    assert page.status_code == 200
    assert 'data-path="train.py"' in page.text and 'data-path="model.safetensors"' in page.text
    assert "EPOCHS = 3" in page.text and 'class="status added">added' in page.text
    assert 'data-path="config.json"' not in page.text  # unchanged
    assert anon_web.get(f"/{hub.model}/compare/v1..nope").status_code == 404
    assert anon_web.get(f"/{hub.model}/compare?base=v1&head=main", follow_redirects=False).headers[
        "location"] == f"/{hub.model}/compare/v1...main"
    # The history of one file: only the commits that changed it.
    train = anon_web.get(f"/{hub.model}/commits/main/train.py").text
    assert "Train for 3 epochs" in train and "Add model card" in train and 'id="history-path">train.py' in train
    config = anon_web.get(f"/{hub.model}/commits/main/config.json").text
    assert "Add model card" in config and "Train for 3 epochs" not in config
    assert "Train for 3 epochs" in anon_web.get(f"/{hub.model}/commits/main").text  # the whole history still
    # The file tree's "last commit" column.
    tree = anon_web.get(f"/{hub.model}/tree/main").text
    rows = {m.group(1): m.group(2) for m in re.finditer(
        r'/blob/main/([^"]+)">[^<]*</a>.*?<td class="last-change">(.*?)</td>', tree, re.S)}
    assert "Train for 3 epochs" in rows["train.py"] and "Add model card" in rows["config.json"]
    # Blame: each line with the commit that last changed it.
    blame = anon_web.get(f"/{hub.model}/blame/main/train.py").text
    assert "import torch" in blame and "Train for 3 epochs" in blame and "Add model card" in blame
    # A private repo's compare, history and blame pages are missing to others.
    private = repo_factory("web-cmp", private=True)
    for p in ("compare/main...main", "commits/main/.gitattributes", "blame/main/.gitattributes"):
        assert anon_web.get(f"/{private}/{p}", follow_redirects=False).status_code == \
            anon_web.get(f"/alice/missing-{uuid.uuid4().hex[:6]}/{p}", follow_redirects=False).status_code
        assert alice_web.get(f"/{private}/{p}").status_code == 200, p


def test_org_create_members_roles_and_transfer(alice_web, bob_web, anon_web, api, bob, repo_factory):
    org = f"org{uuid.uuid4().hex[:8]}"
    token = _form(alice_web, "/organizations/new")
    assert alice_web.post("/organizations/new", data={"name": org}).status_code == 403  # no CSRF token
    r = alice_web.post("/organizations/new", data={"csrf_token": token, "name": org, "fullname": "Org Inc"})
    assert r.status_code == 303 and r.headers["location"] == f"/organizations/{org}/settings/members"
    taken = alice_web.post("/organizations/new", data={"csrf_token": token, "name": org})
    assert taken.status_code == 409 and "already taken" in taken.text
    page = alice_web.get(f"/organizations/{org}/settings/members")
    assert 'data-member="alice" data-role="admin"' in page.text
    # Only the org's admins manage it.
    assert bob_web.get(f"/organizations/{org}/settings/members").status_code == 403
    bob_token = _form(bob_web, "/new")
    assert bob_web.post(f"/organizations/{org}/settings/members", data={
        "csrf_token": bob_token, "action": "set", "user": "bob", "role": "admin"}).status_code == 403
    assert anon_web.get(f"/organizations/{org}/settings/members", follow_redirects=False).status_code in (303, 401)
    # alice adds bob as a writer: bob may now create repos there.
    token = csrf_of(page.text)
    assert alice_web.post(f"/organizations/{org}/settings/members", data={
        "csrf_token": token, "action": "set", "user": "bob", "role": "write"}).status_code == 303
    assert f'value="{org}"' in bob_web.get("/new").text
    # The last admin can be neither demoted nor removed.
    last = alice_web.post(f"/organizations/{org}/settings/members", data={
        "csrf_token": token, "action": "set", "user": "alice", "role": "write"})
    assert last.status_code == 400 and "last admin" in last.text
    # Transfer a repo to the org from its settings; bob (write) can commit to it, then is removed and cannot.
    repo_id = repo_factory("web-transfer")
    moved = f"{org}/{repo_id.split('/')[1]}"
    token = _form(alice_web, f"/{repo_id}/settings")
    assert alice_web.post(f"/{repo_id}/settings/move", data={"csrf_token": token, "to": moved}).status_code == 303
    bob_api = HfApi(endpoint=ENDPOINT, token=bob.token)
    bob_api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=moved)
    token = _form(alice_web, f"/organizations/{org}/settings/members")
    assert alice_web.post(f"/organizations/{org}/settings/members", data={
        "csrf_token": token, "action": "remove", "user": "bob"}).status_code == 303
    assert 'data-member="bob"' not in alice_web.get(f"/organizations/{org}/settings/members").text
    with pytest.raises(HfHubHTTPError):
        bob_api.upload_file(path_or_fileobj=b"y", path_in_repo="y.txt", repo_id=moved)
    api.delete_repo(moved)


def test_profile_likes_and_storage(alice_web, bob_web, anon_web, api, repo_factory, acme):
    public = repo_factory("web-liked")
    private = repo_factory("web-liked-priv", private=True)
    api.upload_file(path_or_fileobj=b"x" * 5000, path_in_repo="blob.bin", repo_id=public)
    token = _form(alice_web, "/new")
    for repo_id in (public, private):
        assert alice_web.post(f"/{repo_id}/like", data={"csrf_token": token}).status_code == 303
    try:
        mine = alice_web.get("/alice").text
        assert public in mine and private in mine and 'id="likes"' in mine
        theirs = anon_web.get("/alice").text
        assert public in theirs.split('id="likes"')[1] and private not in theirs
        storage = alice_web.get("/settings/storage")
        assert storage.status_code == 200 and f'data-repo="{public}"' in storage.text
        assert f'data-repo="{private}"' in storage.text
        assert alice_web.get("/organizations/acme/settings/storage").status_code == 200
        assert bob_web.get("/organizations/acme/settings/storage").status_code == 403  # not a member
        assert anon_web.get("/settings/storage", follow_redirects=False).status_code == 302
    finally:
        for repo_id in (public, private):
            alice_web.post(f"/{repo_id}/like", data={"csrf_token": token})


def test_a_liked_repo_made_private_leaves_the_likers_profile(alice_web, bob_web, anon_web, api, repo_factory):
    """Private == missing on a profile's likes (paged in SQL, newest first): a repo bob liked that its owner then made
    private is not listed to bob, nor to the anonymous; its owner, who may read it, still sees it there."""
    first, later = repo_factory("web-liked-a"), repo_factory("web-liked-b")
    token = _form(bob_web, "/new")
    for repo_id in (first, later):
        assert bob_web.post(f"/{repo_id}/like", data={"csrf_token": token}).status_code == 303

    def likes_of(web: httpx.Client) -> str:
        return web.get("/bob").text.split('id="likes"')[1].split("</p>")[0]

    shown = likes_of(bob_web)
    assert later in shown and shown.index(later) < shown.index(first)  # newest first
    api.update_repo_settings(first, private=True)
    for web in (bob_web, anon_web):
        assert first not in likes_of(web) and later in likes_of(web)
    assert first in likes_of(alice_web) and later in likes_of(alice_web)


def test_renamed_files_show_as_renames(anon_web, api, repo_factory):
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    repo_id = repo_factory("web-rename")
    api.upload_file(path_or_fileobj=b"same bytes\n", path_in_repo="old/name.txt", repo_id=repo_id)
    before = api.model_info(repo_id).sha
    api.create_commit(repo_id, commit_message="Move it", operations=[
        CommitOperationAdd("new/name.txt", b"same bytes\n"), CommitOperationDelete("old/name.txt")])
    after = api.model_info(repo_id).sha
    for page in (f"/{repo_id}/commit/{after}", f"/{repo_id}/compare/{before}...{after}"):
        html = anon_web.get(page).text
        assert 'class="status renamed">renamed' in html and "Renamed from old/name.txt" in html, page
        assert 'class="status removed"' not in html and 'class="status added"' not in html, page
