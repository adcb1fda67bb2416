"""Spaces on an origin of their own (COVE_SPACES_DOMAIN), from the default branch, and a factory reboot (issue 13).

One hub with a Spaces domain serves the module: on an app's host only the app answers (Cove's fast caches step
aside), a Space follows its repo's default branch, Streamlit's WebSocket is relayed on the app's own host, and
`restart_space(factory_reboot=True)` builds the environment anew.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import uuid

import httpx
import pytest

from tests.spaces.test_spaces_run import STREAMLIT, Hub, push, readme, until, wait_stage

pytestmark = [
    pytest.mark.spaces,
    pytest.mark.skipif(os.geteuid() != 0, reason="running Spaces needs root (each app runs under its own uid)"),
]
DOMAIN = "spaces.localhost"


class DomainHub(Hub):
    def start(self) -> None:
        self.env["COVE_SPACES_DOMAIN"] = DOMAIN
        super().start()

    def app_host(self, repo_id: str) -> str:
        return f"{repo_id.replace('/', '-').lower()}.{DOMAIN}:{self.port}"

    def on_app(self, repo_id: str, method: str, path: str, **headers: str) -> httpx.Response:
        """A request to the app's host, sent to 127.0.0.1 (this machine's resolver doesn't know *.localhost)."""
        return httpx.request(method, self.endpoint + path, headers={"host": self.app_host(repo_id), **headers},
                             timeout=60)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    h = DomainHub(tmp_path_factory.mktemp("spaces-origin-hub"))
    h.alice = h.user("sally")
    try:
        yield h
    finally:
        h.stop()
        shutil.rmtree(h.spaces, ignore_errors=True)


def test_on_an_app_origin_only_the_app_answers(hub):
    """Paths that look like Cove's routes, answered (and remembered by Cove's fast caches) on Cove's own host, are
    the app's own on its host: HEAD/GET of /{repo}/resolve/... and GET /api/models/{repo}."""
    api = hub.api(hub.alice)
    uid = uuid.uuid4().hex[:6]
    model, space = f"sally/m-{uid}", f"sally/site-{uid}"
    api.create_repo(model)
    api.upload_file(path_or_fileobj=b"from cove\n", path_in_repo="a.txt", repo_id=model)
    api.create_repo(space, repo_type="space", space_sdk="static")
    mine = "the app's own file\n"
    push(api, space, {"index.html": "<h1>app</h1>", f"{model}/resolve/main/a.txt": mine,
                      f"api/models/{model}": "the app's own info"})
    wait_stage(api, space, ("RUNNING",), timeout=60)
    until(lambda: hub.on_app(space, "GET", "/").status_code == 200, timeout=10)
    for _ in range(3):  # Cove's host: its answers, the later ones from HeadCache / InfoCache
        head = httpx.head(f"{hub.endpoint}/{model}/resolve/main/a.txt")
        assert head.status_code == 200 and head.headers["content-length"] == "10"
        assert httpx.get(f"{hub.endpoint}/api/models/{model}").json()["id"] == model
    head = hub.on_app(space, "HEAD", f"/{model}/resolve/main/a.txt")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(mine))
    assert "x-repo-commit" not in head.headers
    assert hub.on_app(space, "GET", f"/{model}/resolve/main/a.txt").text == mine
    assert hub.on_app(space, "GET", f"/api/models/{model}").text == "the app's own info"
    # Cove's host still answers as Cove.
    assert httpx.head(f"{hub.endpoint}/{model}/resolve/main/a.txt").headers["content-length"] == "10"


def test_space_serves_its_default_branch(hub):
    """A Space whose default branch is set to another branch (settings page) serves that branch's app."""
    api = hub.api(hub.alice)
    space = f"sally/branchy-{uuid.uuid4().hex[:6]}"
    api.create_repo(space, repo_type="space", space_sdk="static")
    push(api, space, {"index.html": "<h1>from main</h1>"})
    wait_stage(api, space, ("RUNNING",), timeout=60)
    # (a new Space's host is known within a second: the label map is read again at most once a second)
    until(lambda: hub.on_app(space, "GET", "/").text == "<h1>from main</h1>", timeout=10)
    api.create_branch(space, branch="release", repo_type="space")
    from huggingface_hub import CommitOperationAdd

    release = api.create_commit(space, [CommitOperationAdd("index.html", b"<h1>from release</h1>")],
                                commit_message="release", revision="release", repo_type="space").oid
    web = httpx.Client(base_url=hub.endpoint, timeout=60)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/login").text).group(1)
    assert web.post("/login", data={"csrf_token": csrf, "username": "sally", "password": "sally-password"}
                    ).status_code == 303
    page = web.get(f"/spaces/{space}/settings")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = web.post(f"/spaces/{space}/settings",
                 data={"csrf_token": csrf, "action": "default-branch", "branch": "release"})
    assert r.status_code == 303
    api.restart_space(space)
    wait_stage(api, space, ("RUNNING",), timeout=60, sha=release)
    # (anonymous visitors' app address is remembered for a second: `cove.api.spaces.ANON_TTL`)
    until(lambda: hub.on_app(space, "GET", "/").text == "<h1>from release</h1>", timeout=10)


def _ws_handshake(hub, repo_id: str, path: str) -> tuple[int, dict[str, str]]:  # noqa: ANN001
    """A WebSocket opening handshake on the app's host (raw, as a browser sends it); the status and headers."""
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    with socket.create_connection(("127.0.0.1", hub.port), timeout=60) as s:
        s.sendall((f"GET {path} HTTP/1.1\r\nHost: {hub.app_host(repo_id)}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                   f"Sec-WebSocket-Protocol: streamlit\r\n\r\n").encode())
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = s.recv(4096)
            if not chunk:
                break
            raw += chunk
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in head[1:] if ": " in line)
    return int(head[0].split()[1]), headers


@pytest.fixture(scope="module")
def streamlit_space(hub) -> str:
    api = hub.api(hub.alice)
    repo_id = f"sally/stream-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id, repo_type="space", space_sdk="streamlit")
    push(api, repo_id, {"README.md": readme("streamlit", STREAMLIT),
                        "app.py": "import streamlit as st\nst.write('hello')\n"})
    rt = wait_stage(api, repo_id, ("RUNNING", "BUILD_ERROR", "RUNTIME_ERROR"))
    assert rt.stage == "RUNNING", rt.raw
    return repo_id


def test_streamlit_websocket_on_the_apps_own_origin(hub, streamlit_space):
    status, headers = _ws_handshake(hub, streamlit_space, "/_stcore/stream")
    assert status == 101 and headers.get("sec-websocket-protocol") == "streamlit", (status, headers)
    # A name under the domain that is no Space: refused.
    status, _ = _ws_handshake(hub, "sally/no-such-space", "/_stcore/stream")
    assert status != 101


def test_factory_reboot_builds_the_environment_anew(hub, streamlit_space):
    api = hub.api(hub.alice)
    api.restart_space(streamlit_space)  # a plain restart reuses the environment
    wait_stage(api, streamlit_space, ("RUNNING",), timeout=120)
    assert "Reusing the environment" in "".join(api.fetch_space_logs(streamlit_space, build=True))
    api.restart_space(streamlit_space, factory_reboot=True)
    wait_stage(api, streamlit_space, ("RUNNING",), timeout=240)
    log = "".join(api.fetch_space_logs(streamlit_space, build=True))
    assert "Reusing the environment" not in log and "Environment ready." in log, log[-2000:]
    assert hub.on_app(streamlit_space, "GET", "/").status_code == 200
