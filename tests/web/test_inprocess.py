"""The pages in-process (no server): cookie flags behind an https endpoint, route order."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cove.app import create_app
from cove.backends import build_backends
from cove.db.migrate import upgrade
from cove.services import accounts
from cove.settings import Settings
from tests.web.conftest import csrf_of


@pytest.fixture
def https_app(tmp_path):
    settings = Settings(data=tmp_path, endpoint="https://hub.example", secret="s")
    bk = build_backends(settings)
    upgrade(bk)
    with bk.db.session() as db:
        accounts.add_user(db, "carol", password="carol-password")
    return create_app(settings, bk)


def test_cookies_are_secure_behind_https(https_app):
    client = TestClient(https_app, base_url="https://hub.example")
    login = client.get("/login")
    assert "secure" in login.headers["set-cookie"].lower()  # the anonymous CSRF cookie
    r = client.post(
        "/login",
        data={"csrf_token": csrf_of(login.text), "username": "carol", "password": "carol-password"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    session = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and "cove_session=" in v)
    assert all(flag in session.lower() for flag in ("secure", "httponly", "samesite=lax"))
    assert client.get("/api/whoami-v2").json()["name"] == "carol"


def test_fixed_paths_win_over_people_and_repo_pages(https_app):
    client = TestClient(https_app, base_url="https://hub.example")
    assert client.get("/settings/tokens", follow_redirects=False).headers["location"].startswith("/login")
    assert 'id="total"' in client.get("/models").text
    assert (
        client.get("/datasets/carol", follow_redirects=False).headers["location"] == "/datasets?author=carol"
    )
    assert 'id="person-name"' in client.get("/carol").text
    api = client.get("/carol/nope/resolve/main/x.bin", headers={"accept": "text/html"})
    assert api.status_code == 404 and api.headers["x-error-code"] == "RepoNotFound"  # the API's, in JSON
    assert api.json()["error"]
    page = client.get("/carol/nope", headers={"accept": "text/html"})
    assert page.status_code == 404 and "<html" in page.text


def test_pages_answer_head(https_app):
    client = TestClient(https_app, base_url="https://hub.example")
    for path in ("/", "/models", "/carol", "/_static/style.css"):
        assert client.head(path).status_code == 200, path
    assert client.head("/carol/nope").status_code == 404


def test_forms_accept_the_public_origin_behind_a_proxy(https_app):
    client = TestClient(https_app, base_url="https://10.0.0.5:8000")  # Host rewritten by a proxy
    token = csrf_of(client.get("/login").text)
    form = {"csrf_token": token, "username": "carol", "password": "carol-password"}
    evil = client.post(
        "/login", data=form, headers={"origin": "https://evil.example"}, follow_redirects=False
    )
    assert evil.status_code == 403
    ok = client.post("/login", data=form, headers={"origin": "https://hub.example"}, follow_redirects=False)
    assert ok.status_code == 303


def test_no_anonymous_browsing_when_anonymous_read_is_off(tmp_path):
    settings = Settings(data=tmp_path, secret="s", anonymous_read=False)
    bk = build_backends(settings)
    upgrade(bk)
    with bk.db.session() as db:
        accounts.add_user(db, "dave", password="dave-password")
    client = TestClient(create_app(settings, bk))
    for path in ("/", "/models?sort=likes", "/dave"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2F"), path
    login = client.get("/login")
    assert login.status_code == 200
    client.post(
        "/login", data={"csrf_token": csrf_of(login.text), "username": "dave", "password": "dave-password"}
    )
    assert client.get("/models").status_code == 200
