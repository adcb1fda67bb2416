"""`cove bundle keygen|export|import` (issue 18 item 5): a repo with a small file, an LFS file and a Xet file,
a branch and a tag, carried from the shared test server to a third, empty Cove in one signed file, arriving with
the same commit ids and bytes; a one-byte tamper anywhere refuses it; importing again changes nothing; an
incremental bundle applies on top; a diverged branch refuses the whole bundle."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, constants, hf_hub_download

from tests.conftest import ENDPOINT, SERVER_ENV, cove, free_port, start_server, stop_server

MB = 1_000_000


def cove_at(data: Path, *args: str) -> subprocess.CompletedProcess:
    """The `cove` CLI against another hub's data folder."""
    return subprocess.run([sys.executable, "-m", "cove", *args], env={**SERVER_ENV, "COVE_DATA": str(data)},
                          capture_output=True, text=True, check=False)


def _upload(api: HfApi, repo: str, path: str, data: bytes, *, xet: bool, revision: str | None = None,
            repo_type: str | None = None) -> None:
    saved = constants.HF_HUB_DISABLE_XET
    constants.HF_HUB_DISABLE_XET = not xet
    os.environ["HF_HUB_DISABLE_XET"] = "0" if xet else "1"
    try:
        api.upload_file(path_or_fileobj=data, path_in_repo=path, repo_id=repo, revision=revision,
                        repo_type=repo_type)
    finally:
        constants.HF_HUB_DISABLE_XET = saved
        os.environ.pop("HF_HUB_DISABLE_XET", None)


def _ls_remote(endpoint: str, token: str, repo: str) -> dict[str, str]:
    url = endpoint.replace("http://", f"http://alice:{token}@") + f"/{repo}"
    out = subprocess.run(["git", "ls-remote", url], capture_output=True, text=True, check=True).stdout
    return {ref: sha for sha, ref in (line.split("\t") for line in out.splitlines())
            if ref.startswith(("refs/heads/", "refs/tags/"))}


class World:
    """The source repo on the shared server, a key pair, and a third Cove with its own data folder."""

    def __init__(self, tmp: Path, alice) -> None:  # noqa: ANN001
        self.tmp, self.alice = tmp, alice
        self.api = HfApi(endpoint=ENDPOINT, token=alice.token)
        self.repo = f"alice/carry-{uuid.uuid4().hex[:8]}"
        self.dataset = f"alice/carry-data-{uuid.uuid4().hex[:8]}"  # private; shares weights.bin's bytes
        self.small = b"---\nlicense: mit\n---\n# carried\n\nA small card.\n"
        rng = random.Random(18)
        self.lfs = rng.randbytes(300_000)
        self.xet = rng.randbytes(2 * MB)
        self.dev = rng.randbytes(50_000)
        self.key = tmp / "keys" / "signing.key"
        self.third = None

    def build(self) -> None:
        api, repo = self.api, self.repo
        api.create_repo(repo)
        api.upload_file(path_or_fileobj=self.small, path_in_repo="README.md", repo_id=repo)
        _upload(api, repo, "weights.bin", self.lfs, xet=False)
        _upload(api, repo, "model.safetensors", self.xet, xet=True)
        api.create_tag(repo, tag="v1")
        api.create_branch(repo, branch="dev")
        _upload(api, repo, "dev.bin", self.dev, xet=False, revision="dev")
        api.update_repo_settings(repo, gated="auto")
        api.create_repo(self.dataset, repo_type="dataset", private=True)
        _upload(api, self.dataset, "data/train.bin", self.lfs, xet=False, repo_type="dataset")
        files = {f.path: f for f in api.get_paths_info(repo, ["weights.bin", "model.safetensors"], expand=True)}
        assert files["model.safetensors"].xet_hash is not None  # uploaded through Xet
        assert files["weights.bin"].xet_hash is None  # through classic LFS
        data = self.tmp / "third"
        self.third = start_server(data, free_port())
        assert cove_at(data, "user", "add", "alice", "--password", "alice-password").returncode == 0
        self.token3 = cove_at(data, "token", "create", "alice", "--role", "write").stdout.strip()
        self.api3 = HfApi(endpoint=self.third.endpoint, token=self.token3)

    def export(self, name: str, *specs: str, since: str | None = None) -> Path:
        out = self.tmp / name
        specs = specs or (self.repo, f"datasets/{self.dataset}")
        args = ["bundle", "export", *specs, "-o", str(out), "--key", str(self.key)]
        proc = cove(*args, *(["--since", since] if since else []), check=False)
        assert proc.returncode == 0, proc.stderr
        return out

    def import_(self, bundle: Path, data: Path | None = None, key: Path | None = None) -> subprocess.CompletedProcess:
        return cove_at(data or self.third.data, "bundle", "import", str(bundle), "--key",
                       str(key or self.key.with_name("signing.key.pub")))

    def download(self, path: str, revision: str, cache: str) -> bytes:
        got = hf_hub_download(self.repo, path, revision=revision, endpoint=self.third.endpoint, token=self.token3,
                              cache_dir=self.tmp / cache)
        return Path(got).read_bytes()


@pytest.fixture(scope="module")
def world(server, alice, tmp_path_factory):  # noqa: ANN001
    w = World(tmp_path_factory.mktemp("bundles"), alice)
    proc = cove("bundle", "keygen", "-o", str(w.key), check=False)
    assert proc.returncode == 0, proc.stderr
    try:
        w.build()
        yield w
    finally:
        if w.third is not None:
            stop_server(w.third.proc)


def test_keygen_makes_a_private_key_only_its_owner_reads(world: World) -> None:
    assert (world.key.stat().st_mode & 0o777) == 0o600
    pub = world.key.with_name("signing.key.pub").read_text()
    assert pub.startswith("ssh-ed25519 ") and "PRIVATE" not in pub
    again = cove("bundle", "keygen", "-o", str(world.key), check=False)
    assert again.returncode == 1 and "--force" in again.stderr  # never overwritten by accident


def _flip(src: Path, dest: Path, offset: int) -> Path:
    data = bytearray(src.read_bytes())
    data[offset] ^= 0x01
    dest.write_bytes(bytes(data))
    return dest


def _reheader(src: Path, dest: Path, header: int) -> Path:
    """Change one byte of a member header's mtime and write a valid tar checksum back (as a forger would)."""
    data = bytearray(src.read_bytes())
    data[header + 140] ^= 0x01
    block = data[header:header + 512]
    block[148:156] = b" " * 8
    data[header + 148:header + 156] = b"%06o\0 " % sum(block)
    dest.write_bytes(bytes(data))
    return dest


def test_a_one_byte_tamper_anywhere_is_refused_and_nothing_appears(world: World) -> None:
    bundle = world.export("full.cove")
    with tarfile.open(bundle) as tar:
        infos = {i.name: i for i in tar.getmembers()}
    names = list(infos)
    assert names[-2:] == ["manifest.json", "bundle.sig"] and any(n.startswith("git/") for n in names)
    oid = __import__("hashlib").sha256(world.xet).hexdigest()
    assert f"lfs/{oid}" in infos  # the Xet file travels as its bytes
    # weights.bin, model.safetensors, dev.bin: weights.bin once, though both repos hold it
    assert len([n for n in names if n.startswith("lfs/")]) == 3
    places = {
        "git bundle": infos[next(n for n in names if n.startswith("git/"))].offset_data + 100,
        "xet file bytes": infos[f"lfs/{oid}"].offset_data + 12345,
        "a member header": infos[f"lfs/{oid}"].offset + 140,  # the mtime field
        "manifest": infos["manifest.json"].offset_data + 20,
        "signature": infos["bundle.sig"].offset_data + 3,
        "signature header": infos["bundle.sig"].offset + 120,
        "end of archive": bundle.stat().st_size - 1,
    }
    for what, offset in places.items():
        bad = _flip(bundle, world.tmp / "tampered.cove", offset)
        proc = world.import_(bad)
        assert proc.returncode == 1, (what, proc.stdout, proc.stderr)
        assert "Error:" in proc.stderr, what
    with tarfile.open(_reheader(bundle, world.tmp / "reheadered.cove", infos[f"lfs/{oid}"].offset)) as tar:
        assert [i.name for i in tar.getmembers()] == names  # still a valid tar
    proc = world.import_(world.tmp / "reheadered.cove")
    assert proc.returncode == 1 and "signature" in proc.stderr
    other = world.tmp / "keys" / "other.key"
    assert cove("bundle", "keygen", "-o", str(other), check=False).returncode == 0
    proc = world.import_(bundle, key=other.with_name("other.key.pub"))
    assert proc.returncode == 1 and "signature" in proc.stderr
    assert not world.api3.repo_exists(world.repo)
    assert not [p for p in (world.third.data / "blobs").rglob("*") if p.is_file()]  # no blob published
    assert not list((world.third.data / "tmp").rglob("*"))  # the temp area is cleaned up


def test_import_into_an_empty_cove_keeps_commit_ids_and_bytes(world: World) -> None:
    bundle = world.tmp / "full.cove"
    proc = world.import_(bundle)
    assert proc.returncode == 0, proc.stderr
    assert "created" in proc.stdout
    src, dst = world.api, world.api3
    for branch in ("main", "dev"):
        a = [c.commit_id for c in src.list_repo_commits(world.repo, revision=branch)]
        b = [c.commit_id for c in dst.list_repo_commits(world.repo, revision=branch)]
        assert a == b and len(a) >= 3
    assert _ls_remote(ENDPOINT, world.alice.token, world.repo) == _ls_remote(world.third.endpoint, world.token3,
                                                                           world.repo)
    main = src.model_info(world.repo).sha
    tag = src.list_repo_refs(world.repo).tags[0].target_commit
    dev = src.model_info(world.repo, revision="dev").sha
    assert world.download("README.md", main, "c1") == world.small
    assert world.download("weights.bin", main, "c1") == world.lfs
    assert world.download("model.safetensors", tag, "c1") == world.xet
    assert world.download("dev.bin", dev, "c1") == world.dev
    info = dst.model_info(world.repo)
    assert info.sha == main and info.gated == "auto" and not info.private
    ds = dst.dataset_info(world.dataset)
    assert ds.private and ds.sha == src.dataset_info(world.dataset).sha
    got = hf_hub_download(world.dataset, "data/train.bin", repo_type="dataset", revision=ds.sha,
                          endpoint=world.third.endpoint, token=world.token3, cache_dir=world.tmp / "c1")
    assert Path(got).read_bytes() == world.lfs
    assert not world.api3.repo_exists(world.dataset, repo_type="dataset", token=False)  # private stays private
    fsck = cove_at(world.third.data, "fsck")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr  # blobs hash right, index rows agree with git


def test_importing_again_changes_nothing(world: World) -> None:
    before = _ls_remote(world.third.endpoint, world.token3, world.repo)
    modified = world.api3.model_info(world.repo).last_modified
    proc = world.import_(world.tmp / "full.cove")
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stdout
    assert _ls_remote(world.third.endpoint, world.token3, world.repo) == before
    assert world.api3.model_info(world.repo).last_modified == modified


def test_an_incremental_bundle_applies_on_top(world: World) -> None:
    old_main = world.api.model_info(world.repo).sha
    extra = random.Random(7).randbytes(100_000)
    _upload(world.api, world.repo, "extra.bin", extra, xet=True)
    new_main = world.api.model_info(world.repo).sha
    bundle = world.export("incr.cove", f"{world.repo}@main", since=old_main)
    with tarfile.open(bundle) as tar:
        lfs = [n for n in tar.getnames() if n.startswith("lfs/")]
    assert lfs == [f"lfs/{__import__('hashlib').sha256(extra).hexdigest()}"]  # only what the other side lacks

    fresh = world.tmp / "fresh"
    assert cove_at(fresh, "init").returncode == 0
    assert cove_at(fresh, "user", "add", "alice").returncode == 0
    lacking = world.import_(bundle, data=fresh)  # a hub that never got the full bundle
    assert lacking.returncode == 1 and "lacks the commits" in lacking.stderr

    proc = world.import_(bundle)
    assert proc.returncode == 0, proc.stderr
    assert "fast-forward" in proc.stdout
    assert world.api3.model_info(world.repo).sha == new_main
    assert world.download("extra.bin", new_main, "c2") == extra
    assert world.download("weights.bin", old_main, "c2") == world.lfs  # the older commit still reads


def test_a_diverged_branch_refuses_the_whole_bundle(world: World) -> None:
    world.api3.upload_file(path_or_fileobj=b"local change\n", path_in_repo="local.txt", repo_id=world.repo,
                           revision="dev")
    world.api.upload_file(path_or_fileobj=b"upstream change\n", path_in_repo="up.txt", repo_id=world.repo,
                          revision="dev")
    world.api.upload_file(path_or_fileobj=b"more\n", path_in_repo="more.txt", repo_id=world.repo)
    before = _ls_remote(world.third.endpoint, world.token3, world.repo)
    bundle = world.export("diverged.cove")
    proc = world.import_(bundle)
    assert proc.returncode == 1
    assert "dev has diverged" in proc.stderr and "Nothing was imported" in proc.stderr
    assert _ls_remote(world.third.endpoint, world.token3, world.repo) == before  # main did not move either
    r = httpx.get(f"{world.third.endpoint}/api/models/{world.repo}/revision/main",
                  headers={"authorization": f"Bearer {world.token3}"})
    assert r.json()["sha"] == before["refs/heads/main"]


def test_a_moved_tag_is_refused(world: World) -> None:
    before = _ls_remote(world.third.endpoint, world.token3, world.repo)
    world.api.delete_tag(world.repo, tag="v1")
    world.api.create_tag(world.repo, tag="v1", revision="main")  # v1 now names another commit at the source
    proc = world.import_(world.export("tag.cove", f"{world.repo}@v1"))
    assert proc.returncode == 1 and "tag v1" in proc.stderr and "never move" in proc.stderr
    assert _ls_remote(world.third.endpoint, world.token3, world.repo) == before


def test_a_commit_id_travels_as_main(world: World) -> None:
    commits = [c.commit_id for c in world.api.list_repo_commits(world.repo)]
    old = commits[2]  # an older commit of main
    fresh = world.tmp / "fresh-at-sha"
    assert cove_at(fresh, "init").returncode == 0
    assert cove_at(fresh, "user", "add", "alice").returncode == 0
    proc = world.import_(world.export("at-sha.cove", f"{world.repo}@{old}"), data=fresh)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(cove_at(fresh, "repo", "list", "--json").stdout)
    assert row["id"] == world.repo and row["sha"] == old
