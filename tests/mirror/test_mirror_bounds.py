"""What a mirror keeps bounded (issue 18, review): the lock files names that miss leave behind, how long the first
discussions read waits on the background copy, and how often a failing copy is tried again. Two `cove serve`
processes; the mirror's upstream is a proxy in front of the other that can hold, or garble, the upstream's
discussion requests."""

from __future__ import annotations

import json
import re
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import RepositoryNotFoundError

from tests.conftest import free_port, start_server, stop_server
from tests.mirror.test_pull_through import _Forward, _Proxy, _upstream
from tests.mirror.test_refresh import _until

NAME = f"mb{uuid.uuid4().hex[:6]}"
TTL = 4  # so a failed discussion copy is tried again after min(TTL, 30) = 4 s
SLOTS = 4  # COVE_MIRROR_LOCK_SLOTS of the mirror
WAIT = 1.0  # COVE_MIRROR_DISCUSSIONS_WAIT of the mirror


class _Talk(_Forward):
    """Discussion requests: held while the proxy's `hold` is set, answered with a body that is not JSON while
    its `garble` is true, with a NUL and a lone surrogate put into every title and comment while its `poison` is
    true; everything else forwarded."""

    def _go(self) -> None:
        srv = self.server
        if "/discussions" in self.path:
            hold: threading.Event | None = getattr(srv, "hold", None)
            if hold is not None:
                hold.wait(120)
            if getattr(srv, "garble", False):
                with srv.lock:  # type: ignore[attr-defined]
                    srv.counts[self.path.split("?")[0]] += 1  # type: ignore[attr-defined]
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "8")
                self.end_headers()
                self.wfile.write(b"not json")
                return
            if getattr(srv, "poison", False) and self.command == "GET":
                self._poisoned()
                return
        super()._go()

    def _poisoned(self) -> None:
        srv = self.server
        body = srv.client.get(srv.target + self.path).json()  # type: ignore[attr-defined]
        bad = " \x00\ud800!"
        for d in body.get("discussions", []):
            d["title"] += bad
        if re.search(r"/discussions/\d+$", self.path.split("?")[0]):
            body["title"] += bad
            for e in body.get("events", []):
                if e.get("type") == "comment":
                    e["data"]["latest"]["raw"] += bad
        data = json.dumps(body).encode()  # ASCII: "\u0000", "\ud800"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_HEAD = _go


@pytest.fixture(scope="module")
def hubs():
    root = Path(tempfile.mkdtemp(prefix="cove-mirror-bounds-"))
    up, token = _upstream(root, NAME)
    proxy = _Proxy.running(up.endpoint, _Talk, hold=None, garble=False, poison=False)
    env = {"COVE_MIRROR_UPSTREAM": proxy.url, "COVE_MIRROR_TTL": str(TTL), "COVE_MIRROR_CONNECT_TIMEOUT": "2",
           "COVE_MIRROR_ALLOW": f"{NAME}/*", "COVE_MIRROR_LOCK_SLOTS": str(SLOTS),
           "COVE_MIRROR_DISCUSSIONS_WAIT": str(WAIT), "COVE_MIRROR_SYNC_INTERVAL": "0"}
    mir = start_server(root / "mirror", free_port(), **env)
    try:
        yield {"up": up, "mirror": mir, "proxy": proxy, "api": HfApi(endpoint=up.endpoint, token=token)}
    finally:
        if proxy.hold is not None:
            proxy.hold.set()
        stop_server(mir.proc)
        stop_server(up.proc)
        proxy.shutdown()


def _repo_with_talk(api: HfApi, titles: list[str]) -> str:
    repo_id = f"{NAME}/t-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"a\n", path_in_repo="a.txt", repo_id=repo_id)
    for title in titles:
        api.create_discussion(repo_id, title=title)
    return repo_id


def test_names_that_miss_leave_a_bounded_number_of_lock_files(hubs):
    """30 repo ids the policy allows and the upstream lacks: each misses (404), and the mirror's lock files stay
    within its lock slots. Before, every name left a lock file (and a thread lock) for good."""
    mir = HfApi(endpoint=hubs["mirror"].endpoint, token=False)
    for i in range(30):
        with pytest.raises(RepositoryNotFoundError):
            mir.model_info(f"{NAME}/missing-{i}-{uuid.uuid4().hex[:6]}")
    locks = [p.name for p in (Path(hubs["mirror"].data) / "mirror-locks").iterdir()]
    assert 0 < len(locks) <= SLOTS, locks


def test_the_first_discussions_read_waits_a_bounded_time(hubs):
    """The upstream holds its discussion requests: the first discussions read of a new mirror answers within
    COVE_MIRROR_DISCUSSIONS_WAIT (with what is stored: nothing yet), and the discussions appear once the upstream
    answers, on the API and on the Community page. Before, that read waited for the whole first copy."""
    api, proxy, end = hubs["api"], hubs["proxy"], hubs["mirror"].endpoint
    repo_id = _repo_with_talk(api, ["First question", "Second question"])
    proxy.hold = threading.Event()
    try:
        assert httpx.get(f"{end}/api/models/{repo_id}", timeout=60).status_code == 200  # mirrored now
        began = time.monotonic()
        r = httpx.get(f"{end}/api/models/{repo_id}/discussions", timeout=WAIT + 10)
        took = time.monotonic() - began
        assert r.status_code == 200 and r.json()["discussions"] == []
        assert took < WAIT + 5, took
    finally:
        proxy.hold.set()
        proxy.hold = None
    mir = HfApi(endpoint=end, token=False)
    assert _until(lambda: {d.title for d in mir.get_repo_discussions(repo_id)} == {"First question",
                                                                                   "Second question"})
    page = httpx.get(f"{end}/{repo_id}/discussions", timeout=30)
    assert page.status_code == 200 and "Second question" in page.text


def test_a_failed_discussion_copy_backs_off(hubs):
    """The upstream's discussion list is not JSON: the copy fails, and the reads that follow answer from what is
    stored without asking the upstream again until min(TTL, 30 s) has passed; then a read copies them. Before,
    each read tried the copy again at once (one upstream request per read)."""
    api, proxy, end = hubs["api"], hubs["proxy"], hubs["mirror"].endpoint
    repo_id = _repo_with_talk(api, ["Garbled at first"])
    listing = f"/api/models/{repo_id}/discussions"
    proxy.garble = True
    try:
        assert httpx.get(f"{end}/api/models/{repo_id}", timeout=60).status_code == 200  # the copy is queued
        assert _until(lambda: proxy.counts[listing] >= 1)
        time.sleep(0.5)  # the failure is recorded
        for _ in range(5):
            r = httpx.get(f"{end}{listing}", timeout=30)
            assert r.status_code == 200 and r.json()["discussions"] == []
        assert proxy.counts[listing] <= 2, proxy.counts[listing]
    finally:
        proxy.garble = False
    mir = HfApi(endpoint=end, token=False)
    assert _until(lambda: [d.title for d in mir.get_repo_discussions(repo_id)] == ["Garbled at first"], 30)


def test_upstream_text_a_database_refuses_is_cleaned(hubs):
    """Upstream discussion titles and comments holding a NUL (PostgreSQL refuses it) and a lone surrogate (no
    encoder takes it): copied without them, so one such comment does not stop the copy of every later one.
    Before, storing it raised and the discussions never appeared."""
    api, proxy, end = hubs["api"], hubs["proxy"], hubs["mirror"].endpoint
    repo_id = _repo_with_talk(api, ["Odd text"])
    proxy.poison = True
    try:
        assert httpx.get(f"{end}/api/models/{repo_id}", timeout=60).status_code == 200
        mir = HfApi(endpoint=end, token=False)
        assert _until(lambda: [d.title for d in mir.get_repo_discussions(repo_id)] == ["Odd text ?!"], 20)
        details = mir.get_discussion_details(repo_id, 1)
        assert details.title == "Odd text ?!"
    finally:
        proxy.poison = False
