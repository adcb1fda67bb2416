"""Integrity (issue 10, findings 1, 2, 5, 6, 15): an object joins a repo only with its bytes or from a repo
whose contents the caller may read; a client's sha256 claim stays in the repo that made it; object sizes
are capped; stored objects and xorbs the caller cannot read answer as unknown ones do."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from cove.xet import hashes, shard, xorb
from tests.conftest import ENDPOINT, free_port, start_server, stop_server
from tests.security.conftest import bearer as _auth

MIB = 1024 * 1024




def _batch(token: str, repo_id: str, oid: str, size: int, transfers: tuple[str, ...] = ("basic",),
           endpoint: str = ENDPOINT, timeout: float = 60) -> dict:
    r = httpx.post(f"{endpoint}/{repo_id}.git/info/lfs/objects/batch", headers=_auth(token), timeout=timeout,
                   json={"operation": "upload", "transfers": list(transfers), "objects": [{"oid": oid, "size": size}]})
    assert r.status_code == 200, r.text
    return r.json()["objects"][0]


def _verify(token: str, repo_id: str, oid: str, size: int) -> httpx.Response:
    return httpx.post(f"{ENDPOINT}/{repo_id}.git/info/lfs/objects/verify", headers=_auth(token),
                      json={"oid": oid, "size": size})


def _lfs_commit(token: str, repo_id: str, path: str, oid: str, size: int) -> httpx.Response:
    lines = [{"key": "header", "value": {"summary": "lfs commit"}},
             {"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": oid, "size": size}}]
    return httpx.post(f"{ENDPOINT}/api/models/{repo_id}/commit/main", content="\n".join(map(json.dumps, lines)),
                      headers={**_auth(token), "content-type": "application/x-ndjson"})


def _resolve(token: str, repo_id: str, path: str) -> httpx.Response:
    return httpx.get(f"{ENDPOINT}/{repo_id}/resolve/main/{path}", headers=_auth(token))


def _lfs_download(token: str, repo_id: str, oid: str, size: int) -> bytes | None:
    """The object's bytes through the LFS batch download API, or None when the repo does not hold it."""
    r = httpx.post(f"{ENDPOINT}/{repo_id}.git/info/lfs/objects/batch", headers=_auth(token),
                   json={"operation": "download", "objects": [{"oid": oid, "size": size}]})
    obj = r.json()["objects"][0]
    if "actions" not in obj:
        return None
    return httpx.get(obj["actions"]["download"]["href"]).content


_DOWNLOAD = """
import sys
from huggingface_hub import hf_hub_download
print(hf_hub_download(*sys.argv[1:3], token=sys.argv[3]))
"""


def _xet_download(token: str, repo_id: str, path: str) -> bytes:
    """hf_hub_download in a fresh process with Xet enabled and empty caches."""
    home = tempfile.mkdtemp(prefix="hf-home-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_XET", "HF_HUB_DISABLE_XET"))}
    env.update(HF_HOME=home, HF_XET_CACHE=str(Path(home) / "xet"), HF_XET_TELEMETRY_ENABLED="0")
    out = subprocess.run([sys.executable, "-c", _DOWNLOAD, repo_id, path, token], env=env, check=True,
                         capture_output=True, text=True, timeout=300)
    return Path(out.stdout.strip().splitlines()[-1]).read_bytes()


def _cas(token: str, repo_id: str) -> tuple[str, dict[str, str]]:
    r = httpx.get(f"{ENDPOINT}/api/models/{repo_id}/xet-write-token/main", headers=_auth(token))
    assert r.status_code == 200, r.text
    return r.json()["casUrl"], _auth(r.json()["accessToken"])


def _put_xorb(base: str, auth: dict, data: bytes) -> tuple[bytes, list[tuple[bytes, int]]]:
    chunks = [data[i:i + 50_000] for i in range(0, len(data), 50_000)]
    digest, body = xorb.serialize_xorb(chunks)
    r = httpx.post(f"{base}/v1/xorbs/default/{hashes.hash_to_hex(digest)}", content=body, headers=auth)
    assert r.is_success, r.text
    return digest, [(hashes.chunk_hash(c), len(c)) for c in chunks]


def _xet_file(base: str, auth: dict, data: bytes, claimed_sha256: str) -> None:
    """Upload `data` as a xorb, and a shard that names it a file whose sha256 is `claimed_sha256`."""
    digest, leaves = _put_xorb(base, auth, data)
    f = shard.FileEntry(hashes.file_hash(leaves), [shard.FileTerm(digest, len(data), 0, len(leaves))],
                        [hashes.verification_hash([h for h, _ in leaves])], hashes.sha256_to_raw(claimed_sha256))
    r = httpx.post(f"{base}/v1/shards", content=shard.serialize_shard([f], [], full=False), headers=auth)
    assert r.status_code == 200, r.text


# -- finding 1: knowing a hash is not owning the bytes ------------------------------------------------


def test_upload_of_an_object_stored_elsewhere_is_verified(api, bob, repo_factory, bob_repos, no_xet):
    secret = os.urandom(6000)
    oid, size = hashlib.sha256(secret).hexdigest(), len(secret)
    private = repo_factory("secret", private=True)
    api.upload_file(path_or_fileobj=secret, path_in_repo="s.bin", repo_id=private)
    mine = bob_repos("steal")

    obj = _batch(bob.token, mine, oid, size)
    assert "actions" in obj, "the server must ask for the bytes"
    garbage = httpx.put(obj["actions"]["upload"]["href"], content=b"not the secret!!!!")
    assert garbage.status_code == 400, "an upload of a stored object must still be hashed"
    wrong_same_size = httpx.put(obj["actions"]["upload"]["href"], content=os.urandom(size))
    assert wrong_same_size.status_code == 400
    assert _verify(bob.token, mine, oid, size).status_code == 404
    assert _lfs_commit(bob.token, mine, "s.bin", oid, size).status_code == 400
    assert _resolve(bob.token, mine, "s.bin").status_code == 404
    assert _lfs_download(bob.token, mine, oid, size) is None

    # the real bytes are taken (one copy is kept), and the owner needs not send them again elsewhere
    assert httpx.put(obj["actions"]["upload"]["href"], content=secret).status_code == 200
    assert _resolve(bob.token, mine, "s.bin").status_code == 404  # uploaded, not committed yet
    again = repo_factory("again", private=True)
    assert "actions" not in _batch(api.token, again, oid, size)  # she reads the repo that holds it
    assert _lfs_commit(api.token, again, "s.bin", oid, size).status_code == 200
    assert _resolve(api.token, again, "s.bin").content == secret


def test_multipart_upload_needs_the_callers_own_parts(api, bob, repo_factory, bob_repos):
    data = os.urandom(64 * MIB + 1000)
    oid, size = hashlib.sha256(data).hexdigest(), len(data)
    private = repo_factory("mp-secret", private=True)
    mine = bob_repos("mp-steal")

    # alice sends her parts but has not completed yet ...
    obj = _batch(api.token, private, oid, size, ("basic", "multipart"))
    header = dict(obj["actions"]["upload"]["header"])
    chunk = int(header.pop("chunk_size"))
    for n, url in sorted(header.items()):
        i = int(n) - 1
        assert httpx.put(url, content=data[i * chunk:(i + 1) * chunk], timeout=120).status_code == 200
    # ... when bob, who knows the hash, completes an upload of his own: her parts are not his
    theirs = _batch(bob.token, mine, oid, size, ("basic", "multipart"))
    done = httpx.post(theirs["actions"]["upload"]["href"], json={"oid": oid, "parts": []}, timeout=120)
    assert done.status_code == 400, done.text
    assert _lfs_commit(bob.token, mine, "big.bin", oid, size).status_code == 400

    done = httpx.post(obj["actions"]["upload"]["href"], json={"oid": oid, "parts": []}, timeout=120)
    assert done.status_code == 200, done.text
    assert _lfs_commit(api.token, private, "big.bin", oid, size).status_code == 200

    # the object is stored now: bob's garbage parts are still hashed, not adopted
    theirs = _batch(bob.token, mine, oid, size, ("basic", "multipart"))
    assert "actions" in theirs
    header = dict(theirs["actions"]["upload"]["header"])
    chunk = int(header.pop("chunk_size"))
    for n, url in sorted(header.items()):
        part = min(chunk, size - (int(n) - 1) * chunk)
        assert httpx.put(url, content=bytes(part), timeout=120).status_code == 200
    done = httpx.post(theirs["actions"]["upload"]["href"], json={"oid": oid, "parts": []}, timeout=120)
    assert done.status_code == 400, done.text
    assert _lfs_commit(bob.token, mine, "big.bin", oid, size).status_code == 400
    assert _resolve(bob.token, mine, "big.bin").status_code == 404


# -- finding 2: a client-claimed sha256 is not a fact --------------------------------------------------


def test_a_shard_sha256_claim_does_not_leave_its_repo(api, alice, bob, repo_factory, bob_repos, no_xet):
    real = os.urandom(150_000)
    oid, size = hashlib.sha256(real).hexdigest(), len(real)
    fake = os.urandom(size)
    trap = bob_repos("trap")  # public
    base, auth = _cas(bob.token, trap)
    _xet_file(base, auth, fake, oid)  # "the file whose sha256 is <real> has bytes <fake>"
    assert _lfs_commit(bob.token, trap, "model.bin", oid, size).status_code == 200

    victim = repo_factory("victim")
    api.upload_file(path_or_fileobj=real, path_in_repo="model.bin", repo_id=victim)  # classic LFS
    got = _resolve(alice.token, victim, "model.bin")
    assert got.headers["etag"] == f'"{oid}"'
    assert got.content == real, "the victim's repo serves the attacker's bytes under the real ETag"
    assert _xet_download(alice.token, victim, "model.bin") == real
    assert _lfs_download(alice.token, victim, oid, size) == real
    # the claim still holds in the repo that made it, and only there
    assert _resolve(bob.token, trap, "model.bin").content == fake


def test_a_shard_sha256_claim_does_not_open_a_private_blob(api, alice, bob, repo_factory, bob_repos, no_xet):
    secret = os.urandom(120_000)
    oid, size = hashlib.sha256(secret).hexdigest(), len(secret)
    private = repo_factory("blob-secret", private=True)
    api.upload_file(path_or_fileobj=secret, path_in_repo="s.bin", repo_id=private)

    mine = bob_repos("claim")
    base, auth = _cas(bob.token, mine)
    mask = os.urandom(size)
    _xet_file(base, auth, mask, oid)
    assert _lfs_commit(bob.token, mine, "s.bin", oid, size).status_code == 200
    assert _resolve(bob.token, mine, "s.bin").content == mask
    assert _lfs_download(bob.token, mine, oid, size) == mask
    assert _xet_download(bob.token, mine, "s.bin") == mask


# -- finding 5: gated files are not copied by their listed hashes --------------------------------------


def test_gated_files_cannot_be_copied_by_hash(api, anon_api, bob, bob_api, repo_factory, bob_repos, monkeypatch):
    from huggingface_hub import constants

    gated = repo_factory("gated")
    xet_data, lfs_data = os.urandom(200_000), os.urandom(7000)
    api.upload_file(path_or_fileobj=xet_data, path_in_repo="xet.bin", repo_id=gated)  # over Xet
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    api.upload_file(path_or_fileobj=lfs_data, path_in_repo="lfs.bin", repo_id=gated)  # classic LFS
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    api.update_repo_settings(gated, gated="manual")
    listed = {e.path: e.lfs for e in anon_api.get_paths_info(gated, ["xet.bin", "lfs.bin"])}
    assert listed["xet.bin"].sha256 == hashlib.sha256(xet_data).hexdigest()

    mine = bob_repos("copy")
    for path in ("xet.bin", "lfs.bin"):
        oid, size = listed[path].sha256, listed[path].size
        assert _lfs_commit(bob.token, mine, path, oid, size).status_code == 400, path
        assert "actions" in _batch(bob.token, mine, oid, size), path
        assert _verify(bob.token, mine, oid, size).status_code == 404, path
        assert _lfs_commit(bob.token, mine, path, oid, size).status_code == 400, path
        assert _resolve(bob.token, mine, path).status_code == 404, path

    # once granted, bob may reuse what he can read, the Xet file included
    api.grant_access(gated, "bob")
    for path, data in (("xet.bin", xet_data), ("lfs.bin", lfs_data)):
        assert _lfs_commit(bob.token, mine, path, listed[path].sha256, listed[path].size).status_code == 200
        assert _resolve(bob.token, mine, path).content == data
    assert bob_api.list_repo_files(mine)


# -- finding 6: object sizes are capped, part tables bounded -------------------------------------------


def test_lfs_object_size_is_capped(api, repo_factory):
    repo = repo_factory("huge")
    oid = hashlib.sha256(b"huge").hexdigest()
    for size in (60 * 10**9, 10**15):
        obj = _batch(api.token, repo, oid, size, ("basic", "multipart"), timeout=10)
        assert "actions" not in obj and obj["error"]["code"] == 422, obj
    obj = _batch(api.token, repo, oid, 50 * 10**9, ("basic", "multipart"), timeout=10)
    assert len(obj["actions"]["upload"]["header"]) <= 10_001


def test_part_tables_stay_bounded_under_a_raised_cap(tmp_path, alice):
    port = free_port()
    srv = start_server(tmp_path / "data", port, COVE_MAX_LFS_FILE_SIZE=str(10**15))
    try:
        env = {**os.environ, "COVE_DATA": str(srv.data)}
        subprocess.run([sys.executable, "-m", "cove", "user", "add", "carol", "--password", "carol-password"],
                       env=env, check=True, capture_output=True)
        token = subprocess.run([sys.executable, "-m", "cove", "token", "create", "carol", "--role", "write"],
                               env=env, check=True, capture_output=True, text=True).stdout.strip()
        httpx.post(f"{srv.endpoint}/api/repos/create", headers=_auth(token),
                   json={"name": "big", "type": "model"}).raise_for_status()
        obj = _batch(token, "carol/big", hashlib.sha256(b"x").hexdigest(), 10**15, ("basic", "multipart"),
                     endpoint=srv.endpoint, timeout=10)
        header = obj["actions"]["upload"]["header"]
        assert len(header) <= 10_001 and int(header["chunk_size"]) * (len(header) - 1) >= 10**15
    finally:
        stop_server(srv.proc)


# -- finding 15: no existence oracles ----------------------------------------------------------------


def _masked(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, re.sub(r"[0-9a-f]{64}", "<hash>", r.headers.get("x-error-message", r.text))


def test_stored_objects_answer_as_unknown_ones(api, bob, repo_factory, bob_repos, no_xet):
    secret = os.urandom(5000)
    oid, size = hashlib.sha256(secret).hexdigest(), len(secret)
    private = repo_factory("oracle", private=True)
    api.upload_file(path_or_fileobj=secret, path_in_repo="s.bin", repo_id=private)
    mine = bob_repos("probe")
    unknown = hashlib.sha256(os.urandom(16)).hexdigest()
    assert _masked(_verify(bob.token, mine, oid, size)) == _masked(_verify(bob.token, mine, unknown, size))
    assert _verify(bob.token, mine, oid, size).status_code == 404
    assert (_batch(bob.token, mine, oid, size).keys() == _batch(bob.token, mine, unknown, size).keys())


def test_foreign_xorbs_answer_as_unknown_ones_in_shards(alice, bob, repo_factory, bob_repos):
    theirs = repo_factory("xorbs")
    base, auth = _cas(alice.token, theirs)
    data = os.urandom(100_000)
    stored, leaves = _put_xorb(base, auth, data)
    unknown = hashes.xorb_hash([(hashes.chunk_hash(b"x" * 1000), 1000)])

    mine = bob_repos("shards")
    bbase, bauth = _cas(bob.token, mine)

    def post(files: list[shard.FileEntry], xorbs: list[shard.XorbEntry]) -> httpx.Response:
        return httpx.post(f"{bbase}/v1/shards", content=shard.serialize_shard(files, xorbs, full=False), headers=bauth)

    def file_into(xh: bytes, *, verification: list[bytes] | None, end: int = 2, length: int = len(data)):
        return shard.FileEntry(hashes.file_hash(leaves), [shard.FileTerm(xh, length, 0, end)], verification)

    cases = {
        "bad verification": dict(verification=[bytes(32)]),
        "no verification": dict(verification=None),
        "chunk range outside": dict(verification=[bytes(32)], end=9),
        "wrong length": dict(verification=[bytes(32)], length=5),
    }
    for what, kw in cases.items():
        assert _masked(post([file_into(stored, **kw)], [])) == _masked(post([file_into(unknown, **kw)], [])), what
    wrong_chunks = [shard.XorbChunkEntry(bytes(32), 0, 10)]
    listed = _masked(post([], [shard.XorbEntry(stored, wrong_chunks)]))
    assert listed == _masked(post([], [shard.XorbEntry(unknown, wrong_chunks)]))
    assert listed[0] == 400
