"""Sessions, CSRF, tokens and repo settings through the pages; private repos stay invisible."""

from __future__ import annotations

import re
import sqlite3

import httpx
from huggingface_hub import HfApi

from tests.conftest import ENDPOINT, cove
from tests.web.conftest import csrf_of


def test_session_cookie_is_random_hashed_httponly_lax(server, alice):
    c = httpx.Client(base_url=ENDPOINT)
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"csrf_token": token, "username": "alice", "password": "alice-password"})
    assert r.status_code == 303
    cookie = next(
        v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("cove_session=")
    )
    raw = cookie.split(";")[0].split("=", 1)[1]
    flags = cookie.lower()
    assert (
        "httponly" in flags and "samesite=lax" in flags and "secure" not in flags
    )  # the test endpoint is http
    assert len(raw) >= 40
    with sqlite3.connect(server.data / "cove.db") as db:
        ids = [row[0] for row in db.execute("select id from web_sessions")]
    assert raw not in ids
    import hashlib

    assert hashlib.sha256(raw.encode()).hexdigest() in ids
    assert c.get("/api/whoami-v2").json()["name"] == "alice"
    # Sign out: the session row goes, the cookie no longer works.
    c.post("/logout", data={"csrf_token": csrf_of(c.get("/").text)})
    assert c.get("/api/whoami-v2").status_code == 401
    c.cookies.set("cove_session", raw)
    assert c.get("/api/whoami-v2").status_code == 401


def test_login_failures(server, alice):
    c = httpx.Client(base_url=ENDPOINT)
    token = csrf_of(c.get("/login").text)
    bad = c.post("/login", data={"csrf_token": token, "username": "alice", "password": "nope"})
    assert bad.status_code == 401 and "Wrong username or password" in bad.text
    assert "cove_session" not in c.cookies
    nobody = c.post("/login", data={"csrf_token": token, "username": "nobody-here", "password": "x"})
    assert nobody.status_code == 401
    no_csrf = c.post("/login", data={"username": "alice", "password": "alice-password"})
    assert no_csrf.status_code == 403
    fresh = httpx.post(
        f"{ENDPOINT}/login", data={"csrf_token": token, "username": "alice", "password": "alice-password"}
    )
    assert fresh.status_code == 403  # no matching CSRF cookie
    other_site = c.post(
        "/login",
        data={"csrf_token": token, "username": "alice", "password": "alice-password"},
        headers={"origin": "https://evil.example"},
    )
    assert other_site.status_code == 403


def test_sign_in_with_a_token_and_open_redirects(server, alice):
    c = httpx.Client(base_url=ENDPOINT)
    token = csrf_of(c.get("/login").text)
    assert c.post("/login", data={"csrf_token": token, "token": "cove_nope"}).status_code == 401
    ok = c.post("/login", data={"csrf_token": token, "token": alice.token, "next": "//evil.example/x"})
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    assert c.get("/api/whoami-v2").json()["name"] == "alice"
    # A token session cannot mint tokens that would outlive it.
    assert c.get("/settings/tokens").status_code == 403


def test_a_token_session_has_the_token_role_and_ends_with_it(api, repo_factory, alice):
    repo_id = repo_factory("web-token-session")
    c = httpx.Client(base_url=ENDPOINT)
    read = cove("token", "create", "alice", "--role", "read", "--name", "web-ro-session").stdout.strip()
    c.post("/login", data={"csrf_token": csrf_of(c.get("/login").text), "token": read})
    assert c.get("/api/whoami-v2").json()["auth"]["accessToken"]["role"] == "read"
    csrf = csrf_of(c.get(f"/{repo_id}").text)
    r = c.post(
        f"/{repo_id}/settings", data={"csrf_token": csrf, "action": "visibility", "visibility": "private"}
    )
    assert r.status_code == 403 and not api.model_info(repo_id).private  # read role: no settings
    assert "settings-tab" not in c.get(f"/{repo_id}").text
    cove("token", "revoke", "alice", "web-ro-session")
    assert c.get("/api/whoami-v2").status_code == 401  # revoking the token ended the session
    assert 'id="signin-link"' in c.get("/").text
    assert HfApi(endpoint=ENDPOINT, token=alice.token).whoami()["name"] == "alice"


def test_api_calls_ride_on_the_session_only_with_the_csrf_header(alice_web):
    assert alice_web.get("/api/whoami-v2").json()["name"] == "alice"
    r = alice_web.post("/api/repos/create", json={"name": "web-csrf-probe"})
    assert r.status_code == 401
    token = csrf_of(alice_web.get("/").text)
    r = alice_web.post("/api/repos/create", json={"name": "web-csrf-probe"}, headers={"x-csrf-token": token})
    assert r.status_code == 200
    r = alice_web.request(
        "DELETE",
        "/api/repos/delete",
        json={"name": "web-csrf-probe", "organization": "alice"},
        headers={"x-csrf-token": token},
    )
    assert r.status_code == 200


def test_create_and_revoke_a_token(alice_web):
    page = alice_web.get("/settings/tokens")
    assert page.status_code == 200 and "tests-write" in page.text
    token = csrf_of(page.text)
    assert alice_web.post("/settings/tokens", data={"name": "x", "role": "read"}).status_code == 403
    made = alice_web.post("/settings/tokens", data={"csrf_token": token, "name": "web-made", "role": "write"})
    assert made.status_code == 200
    secret = re.search(r'id="new-token-value">([^<]+)<', made.text).group(1)
    assert HfApi(endpoint=ENDPOINT, token=secret).whoami()["name"] == "alice"
    token_id = re.search(
        r'<tr data-token="web-made">.*?name="token_id" value="(\d+)"', made.text, re.S
    ).group(1)
    revoked = alice_web.post("/settings/tokens/revoke", data={"csrf_token": token, "token_id": token_id})
    assert revoked.status_code == 303
    assert "web-made" not in alice_web.get("/settings/tokens").text
    assert (
        httpx.get(f"{ENDPOINT}/api/whoami-v2", headers={"authorization": f"Bearer {secret}"}).status_code
        == 401
    )


def test_cannot_revoke_someone_elses_token(alice_web, bob_web, bob):
    bob_page = bob_web.get("/settings/tokens").text
    bob_id = re.search(r'<tr data-token="tests-read">.*?name="token_id" value="(\d+)"', bob_page, re.S).group(
        1
    )
    token = csrf_of(alice_web.get("/settings/tokens").text)
    r = alice_web.post("/settings/tokens/revoke", data={"csrf_token": token, "token_id": bob_id})
    assert r.status_code == 404
    assert HfApi(endpoint=ENDPOINT, token=bob.read_token).whoami()["name"] == "bob"


def test_tokens_page_needs_a_session(anon_web):
    r = anon_web.get("/settings/tokens", follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"].startswith("/login")


def test_private_repo_is_invisible_to_visitors(api, repo_factory, alice_web, bob_web, anon_web):
    repo_id = repo_factory("web-secret")
    term = repo_id.split("-")[-1]
    secret_library = f"lib-{term}"  # licenses and tasks must be the Hub's ids; a library name may be anything
    api.upload_file(
        path_or_fileobj=f"---\nlicense: mit\nlibrary_name: {secret_library}\n---\n".encode(),
        path_in_repo="README.md",
        repo_id=repo_id,
    )
    token = csrf_of(alice_web.get(f"/{repo_id}/settings").text)
    r = alice_web.post(
        f"/{repo_id}/settings", data={"csrf_token": token, "action": "visibility", "visibility": "private"}
    )
    assert r.status_code == 303 and api.model_info(repo_id).private
    assert alice_web.get(f"/{repo_id}").status_code == 200
    for client in (anon_web, bob_web):
        assert client.get(f"/{repo_id}").status_code == 404
        assert client.get(f"/{repo_id}/tree/main").status_code == 404
        assert client.get(f"/{repo_id}/settings").status_code == 404
        listing = client.get("/models", params={"search": term}).text
        assert repo_id not in listing and 'id="total">0<' in listing
        home = client.get("/", params={"q": term}).text
        assert repo_id not in home and '<span class="count">0</span>' in home
        assert repo_id not in client.get("/alice").text
        facets = client.get("/models").text  # the sidebar counts only what this visitor may see
        assert secret_library not in facets
    mine = alice_web.get("/models", params={"search": term}).text
    assert repo_id in mine and 'id="total">1<' in mine
    assert secret_library in alice_web.get("/models").text


def test_settings_need_write_access_and_csrf(api, repo_factory, alice_web, bob_web):
    repo_id = repo_factory("web-settings")
    assert bob_web.get(f"/{repo_id}/settings").status_code == 403
    bob_token = csrf_of(bob_web.get("/").text)
    r = bob_web.post(
        f"/{repo_id}/settings",
        data={"csrf_token": bob_token, "action": "visibility", "visibility": "private"},
    )
    assert r.status_code == 403
    r = alice_web.post(f"/{repo_id}/settings", data={"action": "visibility", "visibility": "private"})
    assert r.status_code == 403 and not api.model_info(repo_id).private


def test_delete_a_repo_from_its_settings(api, repo_factory, alice_web):
    repo_id = repo_factory("web-delete")
    token = csrf_of(alice_web.get(f"/{repo_id}/settings").text)
    wrong = alice_web.post(
        f"/{repo_id}/settings", data={"csrf_token": token, "action": "delete", "confirm": "x"}
    )
    assert wrong.status_code == 400 and api.repo_exists(repo_id)
    r = alice_web.post(
        f"/{repo_id}/settings", data={"csrf_token": token, "action": "delete", "confirm": repo_id}
    )
    assert r.status_code == 303 and r.headers["location"] == "/alice"
    assert not api.repo_exists(repo_id)


def test_like_and_unlike(hub, alice_web):
    token = csrf_of(alice_web.get(f"/{hub.model}").text)
    assert alice_web.post(f"/{hub.model}/like", data={"csrf_token": token}).status_code == 303
    assert "♥ Liked · 1" in alice_web.get(f"/{hub.model}").text
    alice_web.post(f"/{hub.model}/like", data={"csrf_token": token})
    assert "♥ Like · 0" in alice_web.get(f"/{hub.model}").text


def test_hostile_card_cannot_run_script(api, repo_factory, anon_web):
    repo_id = repo_factory("web-hostile")
    card = (
        "---\nlicense: mit\ntags: ['<script>alert(1)</script>']\n---\n# Hi\n<script>alert(1)</script>\n"
        "<img src=x onerror=alert(1)>\n[x](javascript:alert(1))\n<iframe src=https://evil.example></iframe>\n"
    )
    api.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=repo_id)
    html = anon_web.get(f"/{repo_id}").text.lower()
    assert "<script>alert" not in html and "onerror" not in html and "javascript:" not in html
    assert "<iframe" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the tag chip, escaped


def test_gated_repo_hides_contents_until_access_is_granted(api, repo_factory, bob_web, anon_web):
    repo_id = repo_factory("web-gated")
    api.upload_file(path_or_fileobj=b"SECRET = 42\n", path_in_repo="weights.py", repo_id=repo_id)
    api.update_repo_settings(repo_id, gated="auto")
    card = anon_web.get(f"/{repo_id}").text
    assert 'id="gate"' in card and "Sign in to ask for access" in card
    for client in (anon_web, bob_web):
        assert "weights.py" in client.get(f"/{repo_id}/tree/main").text  # the file list stays visible
        blob = client.get(f"/{repo_id}/blob/main/weights.py").text
        assert "SECRET" not in blob and "gated" in blob
        history = client.get(f"/{repo_id}/commits/main").text
        sha = re.search(rf"/{repo_id}/commit/([0-9a-f]{{40}})", history).group(1)
        assert "SECRET" not in client.get(f"/{repo_id}/commit/{sha}").text
    token = csrf_of(bob_web.get(f"/{repo_id}").text)
    assert bob_web.post(f"/{repo_id}/ask-access", data={"csrf_token": token}).status_code == 303
    assert 'id="gate"' not in bob_web.get(f"/{repo_id}").text
    assert "SECRET" in bob_web.get(f"/{repo_id}/blob/main/weights.py").text
