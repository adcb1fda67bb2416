"""Cove as a pull-through mirror of another Cove (issue 18 items 1-4, 6): two `cove serve` processes, the
mirror's COVE_MIRROR_UPSTREAM pointing at a counting proxy in front of the upstream. Stock clients only talk
to the mirror. The tests run in file order: the last ones stop the upstream."""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

from tests.conftest import SERVER_ENV, free_port, start_server, stop_server

NAME = f"up{uuid.uuid4().hex[:6]}"
BIG = 20 << 20
TTL = 4  # COVE_MIRROR_TTL of the mirror


class _Proxy(http.server.ThreadingHTTPServer):
    """Forwards everything to the upstream and counts GETs per path (what the upstream was asked for)."""

    daemon_threads = True

    def __init__(self, port: int, target: str, handler: type[http.server.BaseHTTPRequestHandler] | None = None) -> None:
        self.target = target
        self.counts: Counter[str] = Counter()
        self.tamper: set[str] = set()  # paths whose body gets its first byte flipped
        self.offsite: str | None = None  # set: /resolve redirects there, LFS batch hrefs point there (a "CDN")
        self.auth: list[tuple[str, str | None]] = []  # (path, Authorization) of every request
        self.lock = threading.Lock()
        self.client = httpx.Client(timeout=120)
        super().__init__(("127.0.0.1", port), handler or _Forward)

    @classmethod
    def running(cls, target: str, handler: type[http.server.BaseHTTPRequestHandler] | None = None,
                **state: object) -> _Proxy:
        """A proxy to `target` on a free port, serving in a daemon thread; `state`: attributes its handler reads."""
        proxy = cls(free_port(), target, handler)
        for name, value in state.items():
            setattr(proxy, name, value)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        return proxy

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _go(self) -> None:
        srv: _Proxy = self.server  # type: ignore[assignment]
        path = self.path.split("?")[0]
        with srv.lock:
            srv.auth.append((path, self.headers.get("authorization")))
            if self.command == "GET":
                srv.counts[path] += 1
        if srv.offsite and self.command == "GET" and "/resolve/" in path:
            self.send_response(302)
            self.send_header("location", srv.offsite + self.path)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        body = self.rfile.read(int(self.headers.get("content-length") or 0)) if self.command == "POST" else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection",
                                                                              "content-length")}
        with srv.client.stream(self.command, srv.target + self.path, headers=headers, content=body) as r:
            data = b"".join(r.iter_raw())
        if data and path in srv.tamper:
            data = bytes([data[0] ^ 1]) + data[1:]
        if srv.offsite and path.endswith("/info/lfs/objects/batch"):
            data = data.replace(srv.target.encode(), srv.offsite.encode())
        self.send_response(r.status_code)
        for k, v in r.headers.multi_items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_HEAD = _go


def _cove(data: Path, *args: str, **env: str) -> str:
    return subprocess.run([sys.executable, "-m", "cove", *args], env={**SERVER_ENV, "COVE_DATA": str(data), **env},
                          capture_output=True, text=True, check=True).stdout.strip()


def _upstream(root: Path, user: str):  # noqa: ANN202 - (the running server, a write token of `user`'s)
    """The upstream hub: `cove serve` in `root/up` with the user `user`."""
    up = start_server(root / "up", free_port())
    _cove(up.data, "user", "add", user)
    return up, _cove(up.data, "token", "create", user, "--role", "write")


@pytest.fixture(scope="module")
def hubs():
    root = Path(tempfile.mkdtemp(prefix="cove-mirror-"))
    up, token = _upstream(root, NAME)
    proxy = _Proxy.running(up.endpoint)
    cdn = _Proxy.running(up.endpoint)  # another origin serving the upstream's bytes
    env = {"COVE_MIRROR_UPSTREAM": proxy.url, "COVE_MIRROR_TTL": str(TTL), "COVE_MIRROR_RETRY_AFTER": "30",
           "COVE_MIRROR_CONNECT_TIMEOUT": "2", "COVE_MIRROR_TOKEN": token,
           "COVE_MIRROR_ALLOW": f"{NAME}/*,datasets/{NAME}/*"}
    mir = start_server(root / "mirror", free_port(), **env)
    state = {"up": up, "mirror": mir, "proxy": proxy, "token": token, "root": root, "env": env, "cdn": cdn,
             "cdn_url": cdn.url}
    try:
        yield state
    finally:
        stop_server(mir.proc)
        stop_server(up.proc)
        proxy.shutdown()
        cdn.shutdown()


@pytest.fixture(scope="module")
def model(hubs):
    """Upstream: a model with a plain file, a classic LFS file, an Xet file, a 20 MB file, a branch and a tag."""
    api = HfApi(endpoint=hubs["up"].endpoint, token=hubs["token"])
    repo_id = f"{NAME}/m-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    files = {"config.json": b'{"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, '
                            b'"num_attention_heads": 2, "intermediate_size": 37, "vocab_size": 99}',
             "notes.txt": b"plain text, stored in git\n",
             "weights.bin": os.urandom(300_000),
             "big.bin": os.urandom(BIG)}
    with pytest.MonkeyPatch.context() as mp:  # the classic LFS path for these (as HF_HUB_DISABLE_XET=1)
        from huggingface_hub import constants

        mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
        for path, data in files.items():
            api.upload_file(path_or_fileobj=data, path_in_repo=path, repo_id=repo_id)
        api.upload_file(path_or_fileobj=os.urandom(1000), path_in_repo="unread.bin", repo_id=repo_id)
        lfs_only = os.urandom(150_000)  # read through the mirror by git-lfs only
        api.upload_file(path_or_fileobj=lfs_only, path_in_repo="lfsonly.bin", repo_id=repo_id)
    files["xet.bin"] = os.urandom(200_000)
    api.upload_file(path_or_fileobj=files["xet.bin"], path_in_repo="xet.bin", repo_id=repo_id)
    main = api.model_info(repo_id).sha
    api.create_tag(repo_id, tag="v1")
    api.create_branch(repo_id, branch="dev")
    files["dev.bin"] = os.urandom(100_000)
    dev = api.upload_file(path_or_fileobj=files["dev.bin"], path_in_repo="dev.bin", repo_id=repo_id,
                          revision="dev").oid
    return {"id": repo_id, "files": files, "main": main, "dev": dev, "api": api, "lfs_only": lfs_only}


def _down(endpoint: str, repo_id: str, name: str, cache: Path, **kw: object) -> bytes:
    return Path(hf_hub_download(repo_id, name, endpoint=endpoint, cache_dir=cache, token=False, **kw)).read_bytes()


def test_info_and_downloads_match_upstream(hubs, model, tmp_path):
    mir = HfApi(endpoint=hubs["mirror"].endpoint, token=False)
    info = mir.model_info(model["id"], files_metadata=True)
    assert info.sha == model["main"]
    assert info.mirror["upstream"].startswith("http://127.0.0.1:")  # marked as a mirror (`mirror` field)
    assert 'class="badge mirror"' in httpx.get(f"{hubs['mirror'].endpoint}/{model['id']}").text  # and its page
    up = model["api"].model_info(model["id"], files_metadata=True)
    assert sorted((s.rfilename, s.blob_id, s.size) for s in info.siblings) == \
        sorted((s.rfilename, s.blob_id, s.size) for s in up.siblings)
    for name in ("notes.txt", "config.json", "weights.bin", "xet.bin"):
        assert _down(hubs["mirror"].endpoint, model["id"], name, tmp_path / "c") == model["files"][name]
    refs = mir.list_repo_refs(model["id"])
    assert {b.name: b.target_commit for b in refs.branches} == {"main": model["main"], "dev": model["dev"]}
    assert {t.name: t.target_commit for t in refs.tags} == {"v1": model["main"]}


def test_snapshot_by_sha_and_tag(hubs, model, tmp_path):
    end = hubs["mirror"].endpoint
    path = Path(snapshot_download(model["id"], revision=model["dev"], endpoint=end, cache_dir=tmp_path / "a",
                                  token=False, ignore_patterns=["unread.bin", "big.bin", "lfsonly.bin"]))
    assert path.name == model["dev"]
    for name, data in model["files"].items():
        assert name == "big.bin" or (path / name).read_bytes() == data
    tagged = Path(snapshot_download(model["id"], revision="v1", endpoint=end, cache_dir=tmp_path / "b",
                                    token=False, allow_patterns=["*.txt", "*.json"]))
    assert tagged.name == model["main"]


def test_git_clone_has_the_same_commits(hubs, model, tmp_path):
    env = {**os.environ, "GIT_LFS_SKIP_SMUDGE": "1", "GIT_TERMINAL_PROMPT": "0"}
    dest = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", f"{hubs['mirror'].endpoint}/{model['id']}", str(dest)], env=env,
                   check=True)
    head = subprocess.run(["git", "-C", str(dest), "rev-parse", "HEAD", "origin/dev"], capture_output=True,
                          text=True, check=True).stdout.split()
    assert head == [model["main"], model["dev"]]
    # git-lfs asks the mirror's LFS batch API for a file never read before: fetched from the upstream by oid
    subprocess.run(["git", "-C", str(dest), "lfs", "pull", "--include", "lfsonly.bin"], env=env, check=True,
                   capture_output=True)
    assert (dest / "lfsonly.bin").read_bytes() == model["lfs_only"]
    assert (dest / "big.bin").stat().st_size < 1000  # still a pointer: nothing else was fetched
    ls = subprocess.run(["git", "ls-remote", f"{hubs['up'].endpoint}/{model['id']}"], capture_output=True,
                        text=True, check=True, env=env).stdout
    mine = subprocess.run(["git", "ls-remote", f"{hubs['mirror'].endpoint}/{model['id']}"], capture_output=True,
                          text=True, check=True, env=env).stdout
    assert sorted(ls.splitlines()) == sorted(mine.splitlines())


def test_from_pretrained_through_the_mirror(hubs, model, tmp_path):
    code = ("from transformers import AutoConfig;"
            f"print(AutoConfig.from_pretrained({model['id']!r}).hidden_size)")
    env = {**os.environ, "HF_ENDPOINT": hubs["mirror"].endpoint, "HF_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("32")


def test_sixteen_first_readers_fetch_once(hubs, model):
    url = f"{hubs['mirror'].endpoint}/{model['id']}/resolve/main/big.bin"
    want = hashlib.sha256(model["files"]["big.bin"]).hexdigest()
    key = f"/{model['id']}/resolve/{model['main']}/big.bin"
    assert hubs["proxy"].counts[key] == 0
    barrier = threading.Barrier(16)

    def read(_: int) -> str:
        barrier.wait()
        with httpx.stream("GET", url, timeout=120) as r:
            assert r.status_code == 200
            return hashlib.sha256(b"".join(r.iter_bytes())).hexdigest()

    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(read, range(16))) == [want] * 16
    assert hubs["proxy"].counts[key] == 1  # the upstream was asked once
    r = httpx.get(url, headers={"Range": "bytes=5-9"})  # now an ordinary stored blob
    assert r.status_code == 206 and r.content == model["files"]["big.bin"][5:10]
    assert hubs["proxy"].counts[key] == 1


def test_first_readers_in_two_worker_processes_fetch_once(hubs, model, tmp_path):
    """A mirror with 2 worker processes: the per-oid file lock makes the other process wait for the blob."""
    data = os.urandom(BIG)
    with pytest.MonkeyPatch.context() as mp:
        from huggingface_hub import constants

        mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
        sha = model["api"].upload_file(path_or_fileobj=data, path_in_repo="big2.bin", repo_id=model["id"],
                                       revision="dev").oid
    model["dev"] = sha
    model["files"]["big2.bin"] = data
    two = start_server(tmp_path / "two", free_port(), COVE_WORKERS="2", **hubs["env"])
    try:
        url = f"{two.endpoint}/{model['id']}/resolve/{sha}/big2.bin"
        barrier = threading.Barrier(16)

        def read(_: int) -> str:
            barrier.wait()
            with httpx.stream("GET", url, timeout=120) as r:
                assert r.status_code == 200
                return hashlib.sha256(b"".join(r.iter_bytes())).hexdigest()

        with ThreadPoolExecutor(16) as pool:
            assert set(pool.map(read, range(16))) == {hashlib.sha256(data).hexdigest()}
        assert hubs["proxy"].counts[f"/{model['id']}/resolve/{sha}/big2.bin"] == 1
    finally:
        stop_server(two.proc)


def test_the_token_stays_server_side_and_mirrors_are_read_only(hubs, model):
    end = hubs["mirror"].endpoint
    for url in (f"{end}/api/models/{model['id']}", f"{end}/{model['id']}/resolve/main/notes.txt",
                f"{end}/api/models/{model['id']}/tree/main"):
        r = httpx.get(url)
        assert r.status_code == 200 and hubs["token"] not in r.text + str(r.headers)
    _cove(hubs["mirror"].data, "user", "add", f"{NAME}")
    token = hubs["mirror_token"] = _cove(hubs["mirror"].data, "token", "create", NAME, "--role", "write")
    mine = HfApi(endpoint=end, token=token)
    with pytest.raises(Exception) as err:
        mine.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=model["id"])
    assert "read-only mirror" in str(err.value)


def test_load_dataset_through_the_mirror(hubs, tmp_path):
    api = HfApi(endpoint=hubs["up"].endpoint, token=hubs["token"])
    ds = f"{NAME}/ds-{uuid.uuid4().hex[:6]}"
    api.create_repo(ds, repo_type="dataset")
    rows = "text,label\n" + "".join(f"row {i},{i % 2}\n" for i in range(50))
    api.upload_file(path_or_fileobj=rows.encode(), path_in_repo="data/train.csv", repo_id=ds, repo_type="dataset")
    code = (f"from datasets import load_dataset; d = load_dataset({ds!r}, split='train'); "
            "print(len(d), d[3]['text'])")
    env = {**os.environ, "HF_ENDPOINT": hubs["mirror"].endpoint, "HF_HOME": str(tmp_path / "home"),
           "HF_DATASETS_CACHE": str(tmp_path / "ds-cache")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "50 row 3"
    info = HfApi(endpoint=hubs["mirror"].endpoint, token=False).dataset_info(ds)
    assert info.sha == api.dataset_info(ds).sha


def test_gated_upstream_repo_is_gated_here_too(hubs, tmp_path):
    """The operator's token (here the upstream owner's) fetches a gated model; local readers ask locally."""
    from huggingface_hub.errors import GatedRepoError

    api = HfApi(endpoint=hubs["up"].endpoint, token=hubs["token"])
    gated = f"{NAME}/gated-{uuid.uuid4().hex[:6]}"
    api.create_repo(gated)
    secret = os.urandom(50_000)
    with pytest.MonkeyPatch.context() as mp:
        from huggingface_hub import constants

        mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
        api.upload_file(path_or_fileobj=secret, path_in_repo="w.bin", repo_id=gated)
    api.update_repo_settings(gated, gated="auto")
    end = hubs["mirror"].endpoint
    assert HfApi(endpoint=end, token=False).model_info(gated).gated == "auto"
    with pytest.raises(GatedRepoError):
        hf_hub_download(gated, "w.bin", endpoint=end, cache_dir=tmp_path / "anon", token=False)
    token = hubs["mirror_token"]
    r = httpx.post(f"{end}/api/models/{gated}/ask-access", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    got = hf_hub_download(gated, "w.bin", endpoint=end, cache_dir=tmp_path / "mine", token=token)
    assert Path(got).read_bytes() == secret
    HfApi(endpoint=end, token=token).update_repo_settings(gated, gated=False)  # gating here is a local setting
    got = hf_hub_download(gated, "w.bin", endpoint=end, cache_dir=tmp_path / "anon2", token=False)
    assert Path(got).read_bytes() == secret
    assert api.model_info(gated).gated == "auto"  # the upstream's is its own


def test_policy_and_local_repos_win(hubs):
    up = HfApi(endpoint=hubs["up"].endpoint, token=hubs["token"])
    end = hubs["mirror"].endpoint
    other = f"x{NAME}"
    _cove(hubs["up"].data, "user", "add", other)
    up_other = HfApi(endpoint=hubs["up"].endpoint, token=_cove(hubs["up"].data, "token", "create", other,
                                                               "--role", "write"))
    outside = f"{other}/m"
    up_other.create_repo(outside)
    r = httpx.get(f"{end}/api/models/{outside}")  # not in COVE_MIRROR_ALLOW: an ordinary miss
    assert r.status_code == 404 and "unreachable" not in r.headers["x-error-message"]
    missing = f"{NAME}/missing-{uuid.uuid4().hex[:6]}"  # allowed, but the upstream has none
    for _ in range(3):
        assert httpx.get(f"{end}/api/models/{missing}").status_code == 404
    assert hubs["proxy"].counts[f"/api/models/{missing}"] == 1  # a miss is remembered for the TTL
    clash = f"{NAME}/clash-{uuid.uuid4().hex[:6]}"
    up.create_repo(clash)
    mine = HfApi(endpoint=end, token=hubs["mirror_token"])
    mine.create_repo(clash, private=True)
    assert httpx.get(f"{end}/api/models/{clash}").status_code == 404  # the local private repo wins
    info = mine.model_info(clash)
    assert info.private and getattr(info, "mirror", None) is None


def test_branch_heads_follow_upstream_after_the_ttl(hubs, model):
    mir = HfApi(endpoint=hubs["mirror"].endpoint, token=False)
    assert mir.model_info(model["id"]).sha == model["main"]  # checked against the upstream now (or just before)
    new = model["api"].upload_file(path_or_fileobj=b"later\n", path_in_repo="later.txt", repo_id=model["id"]).oid
    assert mir.model_info(model["id"]).sha == model["main"]  # within COVE_MIRROR_TTL: the head seen last
    time.sleep(TTL + 0.5)
    assert mir.model_info(model["id"]).sha == new
    # a commit not seen yet, asked for by sha within the TTL: fetched at once
    newer = model["api"].upload_file(path_or_fileobj=b"newer\n", path_in_repo="newer.txt",
                                     repo_id=model["id"]).oid
    time.sleep(1.1)
    r = httpx.get(f"{hubs['mirror'].endpoint}/{model['id']}/resolve/{newer}/newer.txt")
    assert r.status_code == 200 and r.content == b"newer\n" and r.headers["x-repo-commit"] == newer
    model["files"].update({"later.txt": b"later\n", "newer.txt": b"newer\n"})
    model["main"] = newer


def test_cli_add_list_sync(hubs, model):
    api = model["api"]
    other = f"{NAME}/cli-{uuid.uuid4().hex[:6]}"
    api.create_repo(other)
    api.upload_file(path_or_fileobj=b"hello\n", path_in_repo="a.txt", repo_id=other)
    env = hubs["env"]
    _cove(hubs["mirror"].data, "mirror", "add", f"{NAME}/cli-*", **env)
    listed = _cove(hubs["mirror"].data, "mirror", "list", "--json", **env)
    assert f"{NAME}/cli-*" in listed and other in listed
    head = api.upload_file(path_or_fileobj=b"again\n", path_in_repo="b.txt", repo_id=other).oid
    assert other in _cove(hubs["mirror"].data, "mirror", "sync", **env)
    assert head in _cove(hubs["mirror"].data, "mirror", "list", "--json", **env)
    _cove(hubs["mirror"].data, "mirror", "remove", f"{NAME}/cli-*", **env)
    assert f"{NAME}/cli-*" not in _cove(hubs["mirror"].data, "mirror", "list", "--json", **env)


def test_first_readers_never_get_a_whole_body_that_fails_the_hash(hubs):
    api = HfApi(endpoint=hubs["up"].endpoint, token=hubs["token"])
    repo_id = f"{NAME}/bad-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    data = os.urandom(6 << 20)
    with pytest.MonkeyPatch.context() as mp:
        from huggingface_hub import constants

        mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
        sha = api.upload_file(path_or_fileobj=data, path_in_repo="bad.bin", repo_id=repo_id).oid
    key = f"/{repo_id}/resolve/{sha}/bad.bin"
    hubs["proxy"].tamper.add(key)  # the upstream's bytes arrive with one byte changed
    url = f"{hubs['mirror'].endpoint}/{repo_id}/resolve/main/bad.bin"

    def read(_: int) -> bytes | None:
        try:
            with httpx.stream("GET", url, timeout=60) as r:
                return b"".join(r.iter_raw())
        except httpx.HTTPError:
            return None  # the body ended short: the client knows it is incomplete

    try:
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(read, range(4)))
    finally:
        hubs["proxy"].tamper.discard(key)
    assert all(b is None or len(b) < len(data) for b in got)  # never the whole (tampered) body
    assert hubs["proxy"].counts[key] == 1
    assert httpx.get(url, timeout=60).content == data  # nothing was published: fetched again, right this time
    assert hubs["proxy"].counts[key] == 2


def test_the_token_never_goes_to_another_origin(hubs, tmp_path):
    """The upstream serves bytes from another origin (as the Hub's CDN): a /resolve redirect and LFS batch
    hrefs there. The mirror fetches them without the upstream token."""
    api = HfApi(endpoint=hubs["up"].endpoint, token=hubs["token"])
    repo_id = f"{NAME}/cdn-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    a, b = os.urandom(120_000), os.urandom(130_000)
    with pytest.MonkeyPatch.context() as mp:
        from huggingface_hub import constants

        mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
        api.upload_file(path_or_fileobj=a, path_in_repo="a.bin", repo_id=repo_id)
        api.upload_file(path_or_fileobj=b, path_in_repo="b.bin", repo_id=repo_id)
    end = hubs["mirror"].endpoint
    env = {**os.environ, "GIT_LFS_SKIP_SMUDGE": "1", "GIT_TERMINAL_PROMPT": "0"}
    hubs["proxy"].offsite = hubs["cdn_url"]
    try:
        assert httpx.get(f"{end}/{repo_id}/resolve/main/a.bin", timeout=60).content == a  # redirected upstream
        dest = tmp_path / "clone"
        subprocess.run(["git", "clone", "-q", f"{end}/{repo_id}", str(dest)], env=env, check=True)
        subprocess.run(["git", "-C", str(dest), "lfs", "pull", "--include", "b.bin"], env=env, check=True,
                       capture_output=True)  # the mirror asks the upstream's LFS batch: an href to the CDN
        assert (dest / "b.bin").read_bytes() == b
    finally:
        hubs["proxy"].offsite = None
    seen = [(p, auth) for p, auth in hubs["cdn"].auth if p.endswith(("/a.bin", "/b.bin")) or "/lfs/" in p]
    assert any(p.endswith("/a.bin") for p, _ in seen) and len(seen) >= 2, seen
    assert all(hubs["token"] not in (auth or "") for _, auth in seen), seen


def test_discussions_and_pr_refs_are_mirrored(hubs, tmp_path):
    """The upstream's discussions and pull requests (refs/pr/N with the same commits) read through the mirror,
    followed after the TTL; writing to them here is refused (read-only)."""
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=hubs["up"].endpoint, token=hubs["token"])
    repo_id = f"{NAME}/talk-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"v1\n", path_in_repo="a.txt", repo_id=repo_id)
    talk = api.create_discussion(repo_id, title="Is this right?", description="First words")
    api.comment_discussion(repo_id, talk.num, "A reply")
    pr = api.create_commit(repo_id, [CommitOperationAdd("a.txt", b"v2\n")], commit_message="fix",
                           create_pr=True)
    end = hubs["mirror"].endpoint
    mir = HfApi(endpoint=end, token=False)
    listed = {d.num: (d.title, d.is_pull_request, d.status) for d in mir.get_repo_discussions(repo_id)}
    assert listed == {talk.num: ("Is this right?", False, "open"), pr.pr_num: ("fix", True, "open")}
    details = mir.get_discussion_details(repo_id, talk.num)
    assert [c.content for c in details.events if c.type == "comment"] == ["First words", "A reply"]
    assert details.author == NAME
    up_refs = api.list_repo_refs(repo_id, include_pull_requests=True).pull_requests
    mir_refs = mir.list_repo_refs(repo_id, include_pull_requests=True).pull_requests
    assert [(r.ref, r.target_commit) for r in mir_refs] == [(r.ref, r.target_commit) for r in up_refs]
    got = hf_hub_download(repo_id, "a.txt", revision=f"refs/pr/{pr.pr_num}", endpoint=end, cache_dir=tmp_path / "c",
                          token=False)
    assert Path(got).read_bytes() == b"v2\n"
    with pytest.raises(HfHubHTTPError) as err:  # a local write would be overwritten by the next sync
        HfApi(endpoint=end, token=hubs["mirror_token"]).comment_discussion(repo_id, talk.num, "mine")
    assert err.value.response.status_code == 403 and "read-only mirror" in str(err.value)
    api.comment_discussion(repo_id, talk.num, "Later")
    api.change_discussion_status(repo_id, talk.num, "closed")
    time.sleep(TTL + 0.5)
    mir.model_info(repo_id)  # a read by branch past the TTL: refs checked, the discussions copied after it
    deadline = time.monotonic() + 30
    while (details := mir.get_discussion_details(repo_id, talk.num)).status != "closed" and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    assert details.status == "closed"
    assert [c.content for c in details.events if c.type == "comment"] == ["First words", "A reply", "Later"]
    hubs["discussed"] = (repo_id, talk.num)


def test_a_duplicate_of_a_mirror_is_writable_and_has_every_file(hubs, tmp_path):
    """`duplicate_repo` of a mirror: an ordinary writable repo with the same commits, whose LFS files that
    nobody read through the mirror yet are fetched from the upstream (by oid) on first read."""
    api = HfApi(endpoint=hubs["up"].endpoint, token=hubs["token"])
    repo_id = f"{NAME}/src-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    data = os.urandom(150_000)
    with pytest.MonkeyPatch.context() as mp:
        from huggingface_hub import constants

        mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
        head = api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=repo_id).oid
    end = hubs["mirror"].endpoint
    mine = HfApi(endpoint=end, token=hubs["mirror_token"])
    assert mine.model_info(repo_id).sha == head  # mirrored now; w.bin's bytes not fetched
    copy = f"{NAME}/fork-{uuid.uuid4().hex[:6]}"
    mine.duplicate_repo(repo_id, copy)
    info = mine.model_info(copy)
    assert info.sha == head and getattr(info, "mirror", None) is None
    new = mine.upload_file(path_or_fileobj=b"mine\n", path_in_repo="mine.txt", repo_id=copy).oid  # writable
    got = hf_hub_download(copy, "w.bin", endpoint=end, cache_dir=tmp_path / "c", token=hubs["mirror_token"])
    assert Path(got).read_bytes() == data  # at the copy's own commit, which the upstream never saw
    assert mine.model_info(copy).sha == new


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl: first reads use httpx")
def test_curl_gets_the_token_on_stdin_never_in_argv(hubs, model, tmp_path):
    """First reads run curl (COVE_MIRROR_FETCHER=curl: `auto` splices a plain-HTTP upstream without curl); a wrapper
    in front of the real curl records its argv (what `ps` shows every user) and its stdin: the token and the URL
    are only in the latter."""
    wrap = tmp_path / "bin"
    wrap.mkdir()
    log = tmp_path / "curl"
    (wrap / "curl").write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" >> {log}.argv\n"
                               f"tee -a {log}.stdin | {shutil.which('curl')} \"$@\"\n")
    (wrap / "curl").chmod(0o755)
    srv = start_server(tmp_path / "m", free_port(), PATH=f"{wrap}:{os.environ['PATH']}",
                       **{**hubs["env"], "COVE_MIRROR_FETCHER": "curl"})
    try:
        r = httpx.get(f"{srv.endpoint}/{model['id']}/resolve/{model['main']}/weights.bin", timeout=60)
        assert r.status_code == 200 and r.content == model["files"]["weights.bin"]
    finally:
        stop_server(srv.proc)
    argv, stdin = Path(f"{log}.argv").read_text(), Path(f"{log}.stdin").read_text()
    assert hubs["token"] not in argv and "weights.bin" not in argv
    assert f"Authorization: Bearer {hubs['token']}" in stdin and "weights.bin" in stdin


def test_a_bundle_of_a_mirror_carries_files_nobody_read(hubs, tmp_path):
    """Connected side: mirror a repo, export it as a bundle without reading its LFS file first (the export fetches
    it from the upstream); a third, empty Cove imports it with the same commit and bytes."""
    api = HfApi(endpoint=hubs["up"].endpoint, token=hubs["token"])
    repo_id = f"{NAME}/carry-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    data = os.urandom(170_000)
    with pytest.MonkeyPatch.context() as mp:
        from huggingface_hub import constants

        mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
        head = api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=repo_id).oid
    end = hubs["mirror"].endpoint
    assert HfApi(endpoint=end, token=False).model_info(repo_id).sha == head  # mirrored; w.bin not fetched
    key, out = tmp_path / "k" / "signing.key", tmp_path / "carry.cove"
    _cove(hubs["mirror"].data, "bundle", "keygen", "-o", str(key))
    _cove(hubs["mirror"].data, "bundle", "export", repo_id, "-o", str(out), "--key", str(key), **hubs["env"])
    third = tmp_path / "third"
    _cove(third, "init")
    _cove(third, "user", "add", NAME)
    _cove(third, "bundle", "import", str(out), "--key", f"{key}.pub")
    srv = start_server(third, free_port())
    try:
        other = HfApi(endpoint=srv.endpoint, token=False)
        assert other.model_info(repo_id).sha == head
        got = hf_hub_download(repo_id, "w.bin", endpoint=srv.endpoint, cache_dir=tmp_path / "c", token=False)
        assert Path(got).read_bytes() == data
    finally:
        stop_server(srv.proc)


def test_offline_serves_what_was_fetched(hubs, model, tmp_path):
    never = f"{NAME}/never-{uuid.uuid4().hex[:6]}"
    model["api"].create_repo(never)
    stop_server(hubs["up"].proc)
    hubs["proxy"].shutdown()
    hubs["proxy"].server_close()
    time.sleep(TTL + 0.5)  # past the TTL: the next read by branch checks upstream, fails, trips the breaker
    end = hubs["mirror"].endpoint
    mir = HfApi(endpoint=end, token=False)
    assert mir.model_info(model["id"]).sha == model["main"]
    t0 = time.monotonic()
    for _ in range(5):  # the breaker is open: no per-request wait for the upstream
        assert mir.model_info(model["id"]).sha == model["main"]
    assert (time.monotonic() - t0) / 5 < 0.5
    talk_repo, talk_num = hubs["discussed"]  # the copied discussions are served offline too
    assert mir.get_discussion_details(talk_repo, talk_num).status == "closed"
    cache = tmp_path / "off"
    assert _down(end, model["id"], "weights.bin", cache) == model["files"]["weights.bin"]
    assert _down(end, model["id"], "dev.bin", cache, revision=model["dev"]) == model["files"]["dev.bin"]
    assert _down(end, model["id"], "big.bin", cache, revision="main") == model["files"]["big.bin"]
    with pytest.raises(RepositoryNotFoundError) as err:
        mir.model_info(never)
    assert "unreachable" in str(err.value)
    r = httpx.get(f"{end}/api/models/{never}")
    assert r.status_code == 404 and r.headers["x-error-code"] == "RepoNotFound"
    assert "unreachable" in r.headers["x-error-message"]
    # an LFS file of a fetched repo whose bytes were never fetched: the Hub's miss, saying why
    with pytest.raises(EntryNotFoundError) as err:
        hf_hub_download(model["id"], "unread.bin", endpoint=end, cache_dir=cache, token=False)
    assert "unreachable" in str(err.value)
