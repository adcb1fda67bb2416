"""The stock clients through the balancer of a real fleet (issue 17): classic LFS and Xet with their steps on
different processes, a big multipart LFS upload whose `complete` dies with its process and is retried by the
client, git clone/push, a web session minted by one process and honoured by the other."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, hf_hub_download

from tests.fleet.stack import Fleet

pytestmark = pytest.mark.postgres


def _repo(fleet: Fleet, token: str, prefix: str, **kw) -> str:  # noqa: ANN003
    repo_id = f"erin/{prefix}-{uuid.uuid4().hex[:8]}"
    fleet.api(token).create_repo(repo_id, **kw)
    return repo_id


def _processes(fleet: Fleet, hits) -> set[int]:  # noqa: ANN001
    return {fleet.port_of(h) for h in hits}


@pytest.mark.no_xet
def test_classic_lfs_steps_on_different_processes(fleet: Fleet, erin, no_xet, tmp_path: Path) -> None:  # noqa: ANN001
    api = fleet.api(erin.token)
    repo_id = _repo(fleet, erin.token, "lfs")
    blobs = {f"w{i}.bin": os.urandom(3_000_000 + i) for i in range(3)}
    mark = fleet.mark()
    api.create_commit(repo_id, operations=[CommitOperationAdd(k, v) for k, v in blobs.items()], commit_message="w")
    hits = fleet.hits(mark)
    steps = {h.uri.rsplit("/", 1)[-1] if "/lfs/" in h.uri else h.uri: fleet.port_of(h) for h in hits}
    assert any("preupload" in u for u in steps) and any("/commit/" in u for u in steps)
    assert len(_processes(fleet, hits)) == 2, hits  # batch, object PUTs, verify and commit: both processes
    assert all(h.status < 400 for h in hits), [h for h in hits if h.status >= 400]
    # Downloads: a 302 from a Cove process to SeaweedFS (presigned, SigV4), then the bytes from the store.
    mark = fleet.mark()
    for name, data in blobs.items():
        path = hf_hub_download(repo_id, name, endpoint=fleet.endpoint, token=erin.read_token, cache_dir=tmp_path)
        assert Path(path).read_bytes() == data
    hits = fleet.hits(mark)
    assert sum(h.sent for h in hits) < 100_000  # no file bytes through the balancer
    assert len(_processes(fleet, hits)) == 2
    r = httpx.head(f"{fleet.endpoint}/{repo_id}/resolve/main/w0.bin", headers={"authorization": f"Bearer {erin.token}"})
    assert r.status_code == 302 and r.headers["location"].startswith(fleet.s3.endpoint + "/")
    assert "X-Amz-Signature=" in r.headers["location"]


@pytest.mark.xet
def test_xet_steps_on_different_processes(fleet: Fleet, erin, tmp_path: Path) -> None:  # noqa: ANN001
    api = fleet.api(erin.token)
    repo_id = _repo(fleet, erin.token, "xet")
    data = os.urandom(6_000_000)
    mark = fleet.mark()
    api.upload_file(path_or_fileobj=data, path_in_repo="model.safetensors", repo_id=repo_id)
    hits = fleet.hits(mark)
    cas = [h for h in hits if h.uri.startswith("/cas/")]
    assert cas, "the upload did not use Xet"
    assert len(_processes(fleet, hits)) == 2
    # 404 is the dedup query's "no such chunk yet"; nothing else fails.
    assert all(h.status < 400 or (h.status == 404 and "/chunks/" in h.uri) for h in hits), hits
    info = api.get_paths_info(repo_id, ["model.safetensors"])[0]
    assert info.xet_hash
    path = hf_hub_download(repo_id, "model.safetensors", endpoint=fleet.endpoint, token=erin.read_token,
                           cache_dir=tmp_path)
    assert Path(path).read_bytes() == data
    # A client without Xet still gets the bytes with a plain GET.
    r = httpx.get(f"{fleet.endpoint}/{repo_id}/resolve/main/model.safetensors", follow_redirects=True,
                  headers={"authorization": f"Bearer {erin.read_token}"}, timeout=60)
    assert r.status_code == 200 and r.content == data


# -- a big multipart LFS upload, the process completing it killed ---------------------------------

BIG = int(os.environ.get("COVE_FLEET_BIG_MB", "300")) * 1_000_000


def _in_flight(fleet: Fleet, i: int) -> float:
    """Requests process i is serving (its /metrics gauge; the scrape itself counts 1)."""
    try:
        text = httpx.get(fleet.direct(i) + "/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0
    m = re.search(r"^cove_http_requests_in_progress(?:\{[^}]*\})? ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0


@pytest.mark.no_xet
@pytest.mark.slow
def test_big_multipart_upload_survives_killing_the_process_completing_it(fleet: Fleet, erin, no_xet, tmp_path,
                                                                         monkeypatch) -> None:  # noqa: ANN001
    """The client's completion POST lands on one process, which is SIGKILLed while it completes; nginx answers
    502, huggingface_hub retries, the retry lands on the other process and must finish the same upload."""
    from huggingface_hub import lfs

    api = fleet.api(erin.token)
    repo_id = _repo(fleet, erin.token, "big")
    src = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with open(src, "wb") as fh:
        for _ in range(BIG // 10_000_000):
            block = os.urandom(10_000_000)
            digest.update(block)
            fh.write(block)
    killed: list[int] = []
    completions: list[str] = []
    original = lfs.http_backoff

    def watch_and_kill() -> None:  # the process serving the completion: the one with a request in flight
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            for i in range(len(fleet.ports)):
                if _in_flight(fleet, i) >= 2:
                    fleet.kill(i)
                    killed.append(i)
                    return
            time.sleep(0.02)

    def observed(method: str, url: str, **kw):  # noqa: ANN003, ANN202 - the client's own call, only watched
        if method == "POST" and not completions and "preupload" not in url and "batch" not in url:
            completions.append(url)
            threading.Thread(target=watch_and_kill, daemon=True).start()
        return original(method, url, **kw)

    monkeypatch.setattr(lfs, "http_backoff", observed)
    mark = fleet.mark()
    api.upload_file(path_or_fileobj=str(src), path_in_repo="big.bin", repo_id=repo_id)
    assert completions and killed, "the completion was not seen in flight on a process"
    posts = [h for h in fleet.hits(mark) if h.method == "POST" and h.uri.endswith("/complete")]
    assert [h.status for h in posts][-1] == 200 and any(h.status >= 500 for h in posts), posts
    assert fleet.port_of(posts[-1]) != fleet.ports[killed[0]]
    info = api.get_paths_info(repo_id, ["big.bin"])[0]
    assert info.lfs is not None and info.lfs.sha256 == digest.hexdigest() and info.size == BIG
    auth = {"authorization": f"Bearer {erin.token}"}
    r = httpx.head(f"{fleet.endpoint}/{repo_id}/resolve/main/big.bin", headers=auth)
    with httpx.stream("GET", r.headers["location"], timeout=120) as body:
        got = hashlib.sha256()
        for block in body.iter_bytes(1 << 20):
            got.update(block)
    assert got.hexdigest() == digest.hexdigest()
    # Nothing of the upload is left staged: not in the bucket, not on the shared volume.
    assert not [k for k in fleet.s3.keys(fleet.bucket) if "staging" in k]
    tmp = fleet.data / "tmp"
    assert sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file()) < 1_000_000 if tmp.exists() else True


@pytest.mark.no_xet
@pytest.mark.slow
def test_multipart_complete_timed_out_by_the_balancer_is_retried(fleet: Fleet, erin, no_xet, tmp_path) -> None:  # noqa: ANN001
    """Issue 17 item 1: the balancer gives up on a long `complete` (504 after 200 ms here, for a 100 MB object)
    while the process keeps working; the client's retry reaches the other process and must succeed (it got 400
    "Missing parts" before)."""
    api = fleet.api(erin.token)
    repo_id = _repo(fleet, erin.token, "timeout")
    size = BIG // 3
    data = os.urandom(size)
    fleet.set_complete_timeout(200)
    try:
        mark = fleet.mark()
        api.upload_file(path_or_fileobj=data, path_in_repo="big.bin", repo_id=repo_id)
    finally:
        fleet.set_complete_timeout(None)
    posts = [h for h in fleet.hits(mark) if h.method == "POST" and h.uri.endswith("/complete")]
    assert posts[-1].status == 200 and any(h.status == 504 for h in posts), posts
    info = api.get_paths_info(repo_id, ["big.bin"])[0]
    assert info.lfs.sha256 == hashlib.sha256(data).hexdigest() and info.size == size


# -- git ------------------------------------------------------------------------------------------


def _git(env: dict[str, str], *args: str | Path, cwd: Path | None = None) -> str:
    proc = subprocess.run(["git", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"git {args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout.strip()


@pytest.mark.skipif(shutil.which("git-lfs") is None, reason="git-lfs is needed")
def test_git_clone_and_push_through_the_balancer(fleet: Fleet, erin, tmp_path: Path) -> None:  # noqa: ANN001
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), GIT_TERMINAL_PROMPT="0",
               GIT_CONFIG_NOSYSTEM="1", LC_ALL="C", GIT_AUTHOR_NAME="e", GIT_AUTHOR_EMAIL="e@x",
               GIT_COMMITTER_NAME="e", GIT_COMMITTER_EMAIL="e@x")
    home.mkdir()
    _git(env, "lfs", "install")
    repo_id = _repo(fleet, erin.token, "git")
    url = fleet.endpoint.replace("http://", f"http://erin:{erin.token}@") + f"/{repo_id}"
    work = tmp_path / "w"
    _git(env, "clone", url, work)
    _git(env, "lfs", "track", "*.bin", cwd=work)
    heads = []
    for i in range(2):  # two pushes, each info/refs + receive-pack (and LFS batch + PUT) through round robin
        (work / f"f{i}.txt").write_text(f"text {i}\n")
        (work / f"w{i}.bin").write_bytes(os.urandom(200_000 + i))
        _git(env, "add", "-A", cwd=work)
        _git(env, "commit", "-q", "-m", f"c{i}", cwd=work)
        mark = fleet.mark()
        _git(env, "push", "-q", "origin", "HEAD:main", cwd=work)
        heads.append(_git(env, "rev-parse", "HEAD", cwd=work))
        assert any(h.uri.endswith("/git-receive-pack") and h.status == 200 for h in fleet.hits(mark))
    git_hits = [h for h in fleet.hits(0) if repo_id in h.uri and ("/info/" in h.uri or "/git-" in h.uri)]
    assert len(_processes(fleet, git_hits)) == 2, git_hits
    assert [c.commit_id for c in fleet.api(erin.token).list_repo_commits(repo_id)][:2] == heads[::-1]
    again = tmp_path / "again"
    _git(env, "clone", url, again)
    for i in range(2):
        assert (again / f"w{i}.bin").read_bytes() == (work / f"w{i}.bin").read_bytes()


def test_web_session_minted_by_one_process_works_on_the_other(fleet: Fleet, erin) -> None:  # noqa: ANN001
    with httpx.Client(base_url=fleet.direct(0), timeout=30) as c0:
        page = c0.get("/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        r = c0.post("/login", data={"csrf_token": csrf, "username": "erin", "password": "erin-password"})
        assert r.status_code == 303
        cookies = c0.cookies
    with httpx.Client(base_url=fleet.direct(1), timeout=30, cookies=cookies) as c1:
        r = c1.get("/settings/tokens")
        assert r.status_code == 200 and "erin" in r.text
        # A form write (CSRF token minted on process 1, posted through the balancer to either).
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
    with httpx.Client(base_url=fleet.endpoint, timeout=30, cookies=cookies) as lb:
        for _ in range(2):
            r = lb.get("/settings/tokens")
            assert r.status_code == 200 and 'name="csrf_token"' in r.text
        r = lb.post("/settings/tokens", data={"csrf_token": csrf, "name": "from-web", "role": "read"})
        assert r.status_code in (200, 303), r.text[:300]
    assert "from-web" in httpx.get(fleet.direct(0) + "/settings/tokens", cookies=cookies).text
