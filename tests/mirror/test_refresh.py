"""What a mirror keeps following after the first read (issue 18): discussions copied off the request path,
the Hub's `refs/convert/*` mirrored and followed like branches, and Xet files read by a Xet client. Two `cove
serve` processes; the mirror's upstream is a proxy in front of the other that can hold the upstream's
discussion requests (as a slow upstream would) until the test lets them through."""

from __future__ import annotations

import io
import json
import subprocess
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url

from tests.conftest import free_port, start_server, stop_server
from tests.mirror.test_pull_through import _cove, _Forward, _Proxy, _upstream

NAME = f"rf{uuid.uuid4().hex[:6]}"
TTL = 3


class _Held(_Forward):
    """Holds every request for a discussion (list or details) while the proxy's `hold` event is not set."""

    def _go(self) -> None:
        srv = self.server
        hold: threading.Event | None = getattr(srv, "hold", None)
        if hold is not None and "/discussions" in self.path:
            with srv.lock:  # type: ignore[attr-defined]
                srv.held.append(self.path)  # type: ignore[attr-defined]
            hold.wait(120)
        super()._go()

    do_GET = do_POST = do_HEAD = _go


@pytest.fixture(scope="module")
def hubs():
    root = Path(tempfile.mkdtemp(prefix="cove-mirror-refresh-"))
    up, token = _upstream(root, NAME)
    proxy = _Proxy.running(up.endpoint, _Held, hold=None, held=[])
    env = {"COVE_MIRROR_UPSTREAM": proxy.url, "COVE_MIRROR_TTL": str(TTL),
           "COVE_MIRROR_CONNECT_TIMEOUT": "2", "COVE_MIRROR_ALLOW": f"{NAME}/*,datasets/{NAME}/*",
           "COVE_MIRROR_SYNC_INTERVAL": "2"}
    mir = start_server(root / "mirror", free_port(), **env)
    try:
        yield {"up": up, "mirror": mir, "proxy": proxy, "api": HfApi(endpoint=up.endpoint, token=token)}
    finally:
        proxy.hold = None
        stop_server(mir.proc)
        stop_server(up.proc)
        proxy.shutdown()


def _until(check, seconds: float = 30.0):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + seconds
    while not (got := check()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return got


def test_reads_never_wait_on_the_upstreams_discussions(hubs):
    """An upstream repo with 51 discussions (two pages) whose discussion API hangs: the first read through the
    mirror and a read by branch past the TTL both answer while the copy waits upstream; the discussions
    appear afterwards. Before, both reads copied the discussions first (and hung with them)."""
    api, proxy, end = hubs["api"], hubs["proxy"], hubs["mirror"].endpoint
    repo_id = f"{NAME}/talk-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"a\n", path_in_repo="a.txt", repo_id=repo_id)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: api.create_discussion(repo_id, title=f"Question {i}"), range(51)))
    listing = f"/api/models/{repo_id}/discussions"
    proxy.hold = threading.Event()
    try:
        r = httpx.get(f"{end}/api/models/{repo_id}", timeout=60)  # the first read: the repo is mirrored now
        assert r.status_code == 200 and r.json()["sha"] == api.model_info(repo_id).sha
        assert _until(lambda: any(p.startswith(listing) for p in proxy.held), 30)  # the copy waits upstream
        assert httpx.get(f"{end}/{repo_id}/resolve/main/a.txt", timeout=60).content == b"a\n"
    finally:
        proxy.hold.set()
        proxy.hold = None
    mir = HfApi(endpoint=end, token=False)
    assert _until(lambda: len(list(mir.get_repo_discussions(repo_id))) == 51)  # the copy, once let through

    api.create_discussion(repo_id, title="Later")
    time.sleep(TTL + 0.5)
    refs_before = proxy.counts[f"/{repo_id}.git/info/refs"]
    proxy.hold, proxy.held = threading.Event(), []
    try:
        r = httpx.get(f"{end}/api/models/{repo_id}/revision/main", timeout=60)  # by branch, past the TTL
        assert r.status_code == 200
        assert proxy.counts[f"/{repo_id}.git/info/refs"] > refs_before  # the refs were checked, inline
        assert _until(lambda: any(p.startswith(listing) for p in proxy.held), 30)  # the discussions: after
    finally:
        proxy.hold.set()
        proxy.hold = None
    assert _until(lambda: "Later" in {d.title for d in mir.get_repo_discussions(repo_id)})


def _upstream_git(hubs, ref: str) -> Path:
    """The upstream's bare repo holding `ref` (found on disk: the test plays the Hub's conversion bot)."""
    for git in Path(hubs["up"].data).rglob("*.git"):
        if git.is_dir() and subprocess.run(["git", "--git-dir", str(git), "rev-parse", "--verify", "-q", ref],
                                           capture_output=True).returncode == 0:
            return git
    raise AssertionError(f"no upstream repo has {ref}")


def _convert(hubs, ds: str, files: dict[str, bytes]) -> str:
    """Commit `files` on a scratch branch upstream, point refs/convert/parquet at it, drop the branch (as the
    Hub's parquet bot leaves a commit reachable only from refs/convert/parquet)."""
    api = hubs["api"]
    branch = f"tmp-{uuid.uuid4().hex[:6]}"
    api.create_branch(ds, branch=branch, repo_type="dataset")
    for path, data in files.items():
        sha = api.upload_file(path_or_fileobj=data, path_in_repo=path, repo_id=ds, repo_type="dataset",
                              revision=branch).oid
    git = _upstream_git(hubs, f"refs/heads/{branch}")
    subprocess.run(["git", "--git-dir", str(git), "update-ref", "refs/convert/parquet", sha], check=True)
    api.delete_branch(ds, branch=branch, repo_type="dataset")
    return sha


def _parquet(rows: int) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.table({"text": [f"row {i}" for i in range(rows)]}), out)
    return out.getvalue()


def test_convert_refs_are_mirrored_and_followed(hubs, tmp_path):
    """The upstream's refs/convert/parquet: listed through the mirror with its commit, readable by
    `revision="refs/convert/parquet"`, and followed after the TTL like a branch."""
    api, end = hubs["api"], hubs["mirror"].endpoint
    ds = f"{NAME}/ds-{uuid.uuid4().hex[:6]}"
    api.create_repo(ds, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"text\nrow 0\n", path_in_repo="data/train.csv", repo_id=ds, repo_type="dataset")
    first = _parquet(3)
    sha = _convert(hubs, ds, {"default/train/0000.parquet": first})
    mir = HfApi(endpoint=end, token=False)
    refs = mir.list_repo_refs(ds, repo_type="dataset", include_pull_requests=True)
    assert [(c.name, c.ref, c.target_commit) for c in refs.converts] == [("parquet", "refs/convert/parquet", sha)]
    assert [b.name for b in refs.branches] == ["main"]
    got = hf_hub_download(ds, "default/train/0000.parquet", repo_type="dataset", revision="refs/convert/parquet",
                          endpoint=end, cache_dir=tmp_path / "a", token=False)
    assert Path(got).read_bytes() == first
    second = _parquet(5)
    newer = _convert(hubs, ds, {"default/train/0000.parquet": second})
    time.sleep(TTL + 0.5)  # past the TTL: a read by refs/convert/parquet checks the upstream, as a branch's would
    r = httpx.get(f"{end}/datasets/{ds}/resolve/refs%2Fconvert%2Fparquet/default/train/0000.parquet", timeout=60)
    assert r.status_code == 200 and r.content == second and r.headers["x-repo-commit"] == newer
    assert mir.list_repo_refs(ds, repo_type="dataset").converts[0].target_commit == newer
    git = subprocess.run(["git", "ls-remote", f"{end}/datasets/{ds}"], capture_output=True, text=True, check=True)
    assert f"{newer}\trefs/convert/parquet" in git.stdout.splitlines()


def test_an_upstream_xet_file_is_served_over_xet_after_its_first_read(hubs, tmp_path):
    """A file the upstream stores in Xet (its HEAD carries X-Xet-Hash), read through the mirror by
    huggingface_hub with hf_xet installed. Before its bytes are here the mirror's HEAD names no Xet hash (it
    holds no xorbs for it), so the client's first read is plain HTTP; once stored, the mirror chunks it into its
    own Xet CAS in the background, and HEAD carries the upstream's own Xet hash: the next client downloads it
    over Xet from the mirror, asking nothing of the upstream. Before, it stayed plain HTTP."""
    import os

    from huggingface_hub.utils._runtime import is_xet_available

    assert is_xet_available()
    api, proxy, end = hubs["api"], hubs["proxy"], hubs["mirror"].endpoint
    repo_id = f"{NAME}/xet-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    data = os.urandom(3 << 20)
    sha = api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=repo_id).oid  # over Xet
    upstream_xet = get_hf_file_metadata(hf_hub_url(repo_id, "w.bin", endpoint=hubs["up"].endpoint)).xet_file_data
    assert upstream_xet is not None  # the upstream really serves it over Xet
    url = hf_hub_url(repo_id, "w.bin", endpoint=end)
    meta = get_hf_file_metadata(url, token=False)
    assert meta.xet_file_data is None and meta.size == len(data) and meta.commit_hash == sha
    got = hf_hub_download(repo_id, "w.bin", endpoint=end, cache_dir=tmp_path / "first", token=False)
    assert Path(got).read_bytes() == data
    assert proxy.counts[f"/{repo_id}/resolve/{sha}/w.bin"] == 1
    meta = _until(lambda: get_hf_file_metadata(url, token=False).xet_file_data)
    assert meta is not None and meta.file_hash == upstream_xet.file_hash
    def fetched() -> int:  # the upstream's file and Xet requests (not ref checks)
        return sum(n for path, n in proxy.counts.items() if "/info/refs" not in path and "/api/models/" not in path)

    seen = fetched()
    got = hf_hub_download(repo_id, "w.bin", endpoint=end, cache_dir=tmp_path / "xet", token=False)
    assert Path(got).read_bytes() == data
    assert fetched() == seen  # the mirror's own CAS answered, not the upstream
    r = httpx.get(f"{end}/{repo_id}/resolve/main/w.bin", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]  # plain HTTP readers: as before


def test_added_patterns_are_mirrored_and_followed_on_the_schedule(hubs):
    """`cove mirror add PATTERN --no-sync`: the server's schedule (COVE_MIRROR_SYNC_INTERVAL) mirrors what the
    pattern names and follows its branch, with no read of it at all."""
    api, data = hubs["api"], hubs["mirror"].data
    repo_id = f"{NAME}/sched-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    first = api.upload_file(path_or_fileobj=b"1\n", path_in_repo="a.txt", repo_id=repo_id).oid
    _cove(data, "mirror", "add", f"{NAME}/sched-*", "--no-sync")

    def synced() -> str | None:
        repos = json.loads(_cove(data, "mirror", "list", "--json"))["repos"]
        return next((r["sha"] for r in repos if r["repo"] == repo_id), None)

    assert _until(lambda: synced() == first, 30)
    second = api.upload_file(path_or_fileobj=b"2\n", path_in_repo="a.txt", repo_id=repo_id).oid
    assert _until(lambda: synced() == second, 30)
    _cove(data, "mirror", "remove", f"{NAME}/sched-*")
