"""Stock huggingface_hub + hf_xet against a real `cove serve`: uploads, downloads, dedup, refusals."""

from __future__ import annotations

import json
import os
import random
import time

import httpx
import pytest
from huggingface_hub import hf_hub_download
from live import cas, download_in_fresh_client, stats, upload_in_fresh_client, xet_token

from cove.xet import hashes, shard, tokens, xorb

pytestmark = pytest.mark.xet

MB = 1_000_000


def _random(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.fixture
def blob(tmp_path):
    def make(data: bytes, name: str = "w.bin"):
        p = tmp_path / name
        p.write_bytes(data)
        return p

    return make


def test_upload_download_roundtrip(server, alice, api, repo_factory, blob, tmp_path) -> None:
    repo = repo_factory("xet")
    data = _random(6 * MB, 1)
    api.upload_file(path_or_fileobj=blob(data), path_in_repo="weights.bin", repo_id=repo)
    st = stats(server.endpoint, alice.token, repo)
    assert st["xorbs_inserted"] >= 1 and st["shards_registered"] == 1
    assert st["grants_committed"] == st["xorbs_inserted"]  # hf_xet 1.8 uploads through grants
    assert 6 * MB <= st["xorb_bytes_received"] < 6.1 * MB  # random data: no compression

    # Xet download through the stock client
    path = hf_hub_download(repo, "weights.bin", token=alice.token, cache_dir=tmp_path / "c1")
    with open(path, "rb") as fh:
        assert fh.read() == data

    # resolve headers advertise Xet; listings carry xetHash
    auth = {"authorization": f"Bearer {alice.token}"}
    head = httpx.head(f"{server.endpoint}/{repo}/resolve/main/weights.bin", headers=auth)
    xet_hash = head.headers["x-xet-hash"]
    assert hashes.is_hash_hex(xet_hash)
    assert head.headers["x-linked-size"] == str(len(data))
    assert 'rel="xet-auth"' in head.headers["link"] and head.headers["link"].startswith(f"<{server.endpoint}/")
    (entry,) = [e for e in api.list_repo_tree(repo) if e.path == "weights.bin"]
    assert entry.xet_hash == xet_hash and entry.lfs.sha256 == hashes.sha256_hex(data)

    # plain GET (no hf_xet): server-side reconstruction, whole and ranged
    url = f"{server.endpoint}/{repo}/resolve/main/weights.bin"
    assert httpx.get(url, headers=auth).content == data
    rng = random.Random(2)
    for _ in range(5):
        a = rng.randrange(len(data))
        b = rng.randrange(a, len(data))
        r = httpx.get(url, headers={**auth, "range": f"bytes={a}-{b}"})
        assert r.status_code == 206 and r.content == data[a : b + 1]
        assert r.headers["content-range"] == f"bytes {a}-{b}/{len(data)}"


def test_download_without_xet_uses_plain_resolve(server, alice, api, repo_factory, blob, monkeypatch, tmp_path) -> None:
    repo = repo_factory("xet-plain")
    data = _random(3 * MB, 3)
    api.upload_file(path_or_fileobj=blob(data), path_in_repo="a.bin", repo_id=repo)  # through Xet
    assert stats(server.endpoint, alice.token, repo)["shards_registered"] == 1
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    path = hf_hub_download(repo, "a.bin", token=alice.token, cache_dir=tmp_path / "c2")
    with open(path, "rb") as fh:
        assert fh.read() == data
    assert stats(server.endpoint, alice.token, repo).get("reconstructions", 0) == 0  # served by GET /resolve itself


def test_dedup_second_repo_transfers_no_chunks(server, alice, repo_factory, blob) -> None:
    repo1, repo2 = repo_factory("dedup-a"), repo_factory("dedup-b")
    data = _random(8 * MB, 4)
    path = blob(data)
    upload_in_fresh_client(alice.token, path, "w.bin", repo1)
    first = stats(server.endpoint, alice.token, repo1)["xorb_bytes_received"]
    assert first >= 8 * MB
    upload_in_fresh_client(alice.token, path, "w.bin", repo2)  # empty client cache: only global dedup helps
    st2 = stats(server.endpoint, alice.token, repo2)
    print(f"\ndedup: first upload {first} xorb bytes, same file into a second repo {st2.get('xorb_bytes_received', 0)}")
    assert st2.get("xorb_bytes_received", 0) == 0
    assert st2["dedup_hits"] >= 1 and st2["shards_registered"] == 1
    assert download_in_fresh_client(alice.token, repo2, "w.bin") == data


def test_small_change_transfers_only_changed_chunks(server, alice, repo_factory, blob) -> None:
    repo = repo_factory("delta")
    data = bytearray(_random(8 * MB, 5))
    upload_in_fresh_client(alice.token, blob(bytes(data), "v1.bin"), "w.bin", repo)
    before = stats(server.endpoint, alice.token, repo)["xorb_bytes_received"]
    data[4 * MB : 4 * MB + 100] = b"x" * 100
    upload_in_fresh_client(alice.token, blob(bytes(data), "v2.bin"), "w.bin", repo)
    delta = stats(server.endpoint, alice.token, repo)["xorb_bytes_received"] - before
    print(f"\ndelta: 100 bytes changed mid-file of {len(data)}: {delta} xorb bytes sent (first upload {before})")
    assert 0 < delta < 400_000, delta  # ~1-3 chunks of 64 KiB on average, not 8 MB
    assert download_in_fresh_client(alice.token, repo, "w.bin") == bytes(data)


@pytest.mark.parametrize("version", ["1", "2"])
def test_api_versions_forced(server, alice, repo_factory, blob, version) -> None:
    """v1 shards/reconstructions with direct xorb POSTs; v2 with grants."""
    repo = repo_factory(f"v{version}")
    data = bytes(300_000) + _random(500_000, 6 + int(version)) + bytes(300_000)  # duplicate-chunk terms
    env = {"HF_XET_CLIENT_SHARD_API_VERSION": version, "HF_XET_CLIENT_RECONSTRUCTION_API_VERSION": version}
    if version == "1":
        env["HF_XET_CLIENT_LEGACY_DIRECT_XORB_UPLOAD"] = "1"
    upload_in_fresh_client(alice.token, blob(data), "z.bin", repo, **env)
    assert download_in_fresh_client(alice.token, repo, "z.bin", **env) == data
    st = stats(server.endpoint, alice.token, repo)
    assert st["xorbs_inserted"] >= 1
    assert st.get("grants_committed", 0) == (0 if version == "1" else st["xorbs_inserted"])


def test_dedup_does_not_cross_namespaces(server, alice, bob, bob_api, repo_factory, blob) -> None:
    """Global dedup answers stay inside a namespace: bob learns nothing about alice's chunks."""
    mine = repo_factory("ns-a")
    data = _random(3 * MB, 11)
    upload_in_fresh_client(alice.token, blob(data), "w.bin", mine)
    theirs = "bob/ns-b-" + os.urandom(4).hex()
    bob_api.create_repo(theirs)
    try:
        upload_in_fresh_client(bob.token, blob(data, "copy.bin"), "w.bin", theirs)
        st = stats(server.endpoint, bob.token, theirs)
        assert st.get("dedup_hits", 0) == 0
        assert st["xorb_bytes_received"] >= 3 * MB  # he had to send the bytes himself: no "already stored"
        assert st["xorbs_inserted"] >= 1
        assert download_in_fresh_client(bob.token, theirs, "w.bin") == data
    finally:
        bob_api.delete_repo(theirs)



def test_dedup_answers_need_a_write_token(server, alice, bob, repo_factory, blob) -> None:
    """A CAS read token comes to anyone who can read one public repo of a namespace: it gets no dedup answer
    and no xorb `HEAD`, so an outsider cannot probe what the namespace's private repos hold."""
    from cove.xet import chunking

    private, public = repo_factory("dd-private", private=True), repo_factory("dd-public")
    data = _random(2 * MB, 12)
    upload_in_fresh_client(alice.token, blob(data), "w.bin", private)
    first_chunk = hashes.hash_to_hex(hashes.chunk_hash(next(chunking.iter_chunks([data]))))
    r = xet_token(server.endpoint, bob.token, public, "read")
    assert r.status_code == 200, r.text  # bob may read the public repo, so he holds a read token for it
    base, outsider = cas(r.json())
    answer = httpx.get(f"{base}/v1/chunks/default-merkledb/{first_chunk}", headers=outsider)
    assert answer.status_code == 403 and answer.headers["x-error-message"] == "This CAS token is read-only"
    base, member = cas(xet_token(server.endpoint, alice.token, public, "write").json())
    answer = httpx.get(f"{base}/v1/chunks/default-merkledb/{first_chunk}", headers=member)
    assert answer.status_code == 200  # members may: every member reads every repo of the namespace
    parsed = shard.parse_shard(answer.content)
    assert parsed.footer is not None and len(parsed.xorbs) == 1
    # nor does a read token learn whether the namespace stores a xorb
    xorb_url = f"{base}/v1/xorbs/default/{hashes.hash_to_hex(parsed.xorbs[0].xorb_hash)}"
    assert httpx.head(xorb_url, headers=outsider).status_code == 403
    assert httpx.head(xorb_url, headers=member).status_code == 200


def test_dedup_second_repo_of_a_large_file(server, alice, repo_factory, tmp_path) -> None:
    """A file over several xorbs, uploaded again to another repo of the namespace by a fresh client: the first
    answer lists the file's other xorbs too (taken from the namespace's files), so nothing is sent again."""
    repo1, repo2 = repo_factory("big-a"), repo_factory("big-b")
    path = tmp_path / "big.bin"
    with open(path, "wb") as fh:
        rng = random.Random(13)
        for _ in range(150):
            fh.write(rng.randbytes(1 << 20))
    upload_in_fresh_client(alice.token, path, "w.bin", repo1)
    assert stats(server.endpoint, alice.token, repo1)["xorbs_inserted"] >= 3
    upload_in_fresh_client(alice.token, path, "w.bin", repo2)
    st2 = stats(server.endpoint, alice.token, repo2)
    assert st2.get("xorb_bytes_received", 0) == 0, st2
    assert st2["dedup_queries"] == 1 and st2["shards_registered"] == 1

def test_stats_need_read_access(server, alice, bob, repo_factory) -> None:
    private = repo_factory("stats", private=True)
    r = httpx.get(
        f"{server.endpoint}/cas/_stats",
        params={"repo": f"model/{private}"},
        headers={"authorization": f"Bearer {bob.token}"},
    )
    assert r.status_code == 404
    assert stats(server.endpoint, alice.token, private) == {}


# --- refusals ---------------------------------------------------------------------------------------


def _write(server, user, repo) -> tuple[str, dict[str, str]]:
    r = xet_token(server.endpoint, user.token, repo, "write")
    assert r.status_code == 200, r.text
    assert r.headers["x-xet-access-token"] == r.json()["accessToken"]
    # Short-lived (re-issued through the token route), yet well past huggingface_hub's 60 s safety period.
    assert time.time() + 600 <= int(r.headers["x-xet-token-expiration"]) <= time.time() + 900 + 5
    return cas(r.json())


def test_corrupted_xorb_rejected_and_not_stored(server, alice, repo_factory) -> None:
    repo = repo_factory("corrupt")
    base, auth = _write(server, alice, repo)
    chunks = [_random(70_000, 7), bytes(50_000)]
    digest, body = xorb.serialize_xorb(chunks)
    h = hashes.hash_to_hex(digest)
    bad = bytearray(body)
    bad[100] ^= 0xFF
    r = httpx.post(f"{base}/v1/xorbs/default/{h}", content=bytes(bad), headers=auth)
    assert r.status_code == 400, r.text
    assert httpx.head(f"{base}/v1/xorbs/default/{h}", headers=auth).status_code == 404
    assert not any(server.data.glob(f"blobs/xorbs/**/{h}"))
    # wrong hash in the path
    other = hashes.hash_to_hex(bytes(32))
    assert httpx.post(f"{base}/v1/xorbs/default/{other}", content=body, headers=auth).status_code == 400
    # and the good body is accepted, idempotently
    r = httpx.post(f"{base}/v1/xorbs/default/{h}", content=body, headers=auth)
    assert r.status_code == 200 and r.json() == {"was_inserted": True}
    r = httpx.post(f"{base}/v1/xorbs/default/{h}", content=body, headers=auth)
    assert r.status_code == 200 and r.json() == {"was_inserted": False}


def test_shard_with_unknown_xorb_rejected(server, alice, repo_factory) -> None:
    repo = repo_factory("badshard")
    base, auth = _write(server, alice, repo)
    data = _random(20_000, 8)
    ch = hashes.chunk_hash(data)
    xh = hashes.xorb_hash([(ch, len(data))])  # never uploaded
    f = shard.FileEntry(
        hashes.file_hash([(ch, len(data))]),
        [shard.FileTerm(xh, len(data), 0, 1)],
        [hashes.verification_hash([ch])],
        hashes.sha256_to_raw(hashes.sha256_hex(data)),
    )
    body = shard.serialize_shard([f], [], full=False)
    r = httpx.post(f"{base}/v1/shards", content=body, headers=auth)
    assert r.status_code == 400 and "not stored" in r.text
    r = httpx.post(f"{base}/v2/shards", content=body, headers=auth)
    events = [json.loads(line) for line in r.text.splitlines()]
    assert r.status_code == 200 and events[-1]["type"] == "error" and not events[-1]["retryable"]
    # now upload the xorb; a wrong file hash is still refused, the right one accepted
    _, xbody = xorb.serialize_xorb([data])
    assert httpx.post(f"{base}/v1/xorbs/default/{hashes.hash_to_hex(xh)}", content=xbody, headers=auth).is_success
    wrong = shard.FileEntry(b"\x01" * 32, f.terms, f.verification, f.sha256)
    r = httpx.post(f"{base}/v1/shards", content=shard.serialize_shard([wrong], [], full=False), headers=auth)
    assert r.status_code == 400 and "does not match" in r.text
    bad_v = shard.FileEntry(f.file_hash, f.terms, [bytes(32)], f.sha256)
    r = httpx.post(f"{base}/v1/shards", content=shard.serialize_shard([bad_v], [], full=False), headers=auth)
    assert r.status_code == 400 and "verification" in r.text
    r = httpx.post(f"{base}/v1/shards", content=body, headers=auth)
    assert r.status_code == 200 and r.json() == {"result": 1}
    assert httpx.post(f"{base}/v1/shards", content=body, headers=auth).json() == {"result": 0}
    assert httpx.post(f"{base}/v1/shards", content=body[:-5], headers=auth).status_code == 400


def test_token_refusals(server, alice, bob, repo_factory) -> None:
    repo = repo_factory("tokens")
    base, auth = _write(server, alice, repo)
    xh = hashes.hash_to_hex(bytes(32))
    # bob may (any reader opens pull requests, as on the Hub: his uploads are scoped to him), but not for a
    # private repo of alice's, which stays missing; anonymous never
    assert xet_token(server.endpoint, bob.token, repo, "write").status_code == 200
    assert xet_token(server.endpoint, bob.token, repo_factory("tokens-private", private=True),
                     "write").status_code == 404
    assert xet_token(server.endpoint, None, repo, "write").status_code == 401
    assert xet_token(server.endpoint, alice.token, repo, "read", rev="nope").status_code == 404
    assert xet_token(server.endpoint, alice.read_token, repo, "write").status_code == 403
    # no / garbage / tampered / expired CAS tokens
    url = f"{base}/v1/shards"
    assert httpx.post(url, content=b"").status_code == 401
    assert httpx.post(url, content=b"", headers={"authorization": "Bearer nope"}).status_code == 401
    token = auth["authorization"].split()[1]
    tampered = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    assert httpx.post(url, content=b"", headers={"authorization": f"Bearer {tampered}"}).status_code == 401
    secret = (server.data / "secret").read_text().strip()
    claims = tokens.verify_token(secret, token)
    expired = tokens.sign_token(secret, tokens.XetClaims(**{**claims.__dict__, "exp": int(time.time()) - 1}))
    assert httpx.post(url, content=b"", headers={"authorization": f"Bearer {expired}"}).status_code == 401
    # a read token cannot write
    read_base, read_auth = cas(xet_token(server.endpoint, alice.token, repo, "read").json())
    r = httpx.post(f"{read_base}/v1/xorbs/default/{xh}", content=b"x", headers=read_auth)
    assert r.status_code == 403


def test_private_reconstruction_refused_to_outsiders(server, alice, bob, api, bob_api, repo_factory, blob) -> None:
    private = repo_factory("secret", private=True)
    data = _random(2 * MB, 9)
    api.upload_file(path_or_fileobj=blob(data), path_in_repo="s.bin", repo_id=private)
    head = httpx.head(
        f"{server.endpoint}/{private}/resolve/main/s.bin", headers={"authorization": f"Bearer {alice.token}"}
    )
    xet_hash = head.headers["x-xet-hash"]
    # outsiders cannot get a read token for the private repo
    assert xet_token(server.endpoint, bob.token, private, "read").status_code == 404
    assert xet_token(server.endpoint, None, private, "read").status_code in (401, 404)
    # ... nor reconstruct the file through a token of their own repo
    bob_repo = "bob/mine-" + os.urandom(4).hex()
    bob_api.create_repo(bob_repo)
    try:
        base, auth = cas(xet_token(server.endpoint, bob.token, bob_repo, "read").json())
        assert httpx.get(f"{base}/v1/reconstructions/{xet_hash}", headers=auth).status_code == 404
        assert httpx.get(f"{base}/v2/reconstructions/{xet_hash}", headers=auth).status_code == 404
    finally:
        bob_api.delete_repo(bob_repo)
    # alice can, with ranges; 416 past the end
    base, auth = cas(xet_token(server.endpoint, alice.token, private, "read").json())
    r = httpx.get(f"{base}/v1/reconstructions/{xet_hash}", headers={**auth, "range": "bytes=0-99"})
    assert r.status_code == 200 and r.json()["terms"]
    r = httpx.get(f"{base}/v2/reconstructions/{xet_hash}", headers={**auth, "range": f"bytes={len(data)}-"})
    assert r.status_code == 416


def test_fetch_urls_are_capabilities(server, alice, api, repo_factory, blob) -> None:
    repo = repo_factory("fetch")
    data = _random(1 * MB, 10)
    api.upload_file(path_or_fileobj=blob(data), path_in_repo="f.bin", repo_id=repo)
    xet_hash = httpx.head(
        f"{server.endpoint}/{repo}/resolve/main/f.bin", headers={"authorization": f"Bearer {alice.token}"}
    ).headers["x-xet-hash"]
    base, auth = cas(xet_token(server.endpoint, alice.token, repo, "read").json())
    recon = httpx.get(f"{base}/v2/reconstructions/{xet_hash}", headers=auth).json()
    (fetches,) = recon["xorbs"].values()
    entry = fetches[0]
    rng = entry["ranges"][0]["bytes"]
    ok = httpx.get(entry["url"], headers={"range": f"bytes={rng['start']}-{rng['end']}"})  # no Authorization
    assert ok.status_code == 206 and len(ok.content) == rng["end"] - rng["start"] + 1
    sub = httpx.get(entry["url"], headers={"range": f"bytes={rng['start']}-{rng['start'] + 9}"})
    assert sub.status_code == 206 and sub.content == ok.content[:10]
    multi = httpx.get(
        entry["url"],
        headers={"range": f"bytes={rng['start']}-{rng['start'] + 9},{rng['start'] + 20}-{rng['start'] + 29}"},
    )
    assert multi.status_code == 206 and multi.headers["content-type"].startswith("multipart/byteranges")
    tampered = entry["url"].replace("sig=", "sig=0")
    assert httpx.get(tampered, headers={"range": "bytes=0-9"}).status_code == 403
    outside = httpx.get(entry["url"], headers={"range": f"bytes={rng['end'] + 1}-{rng['end'] + 10}"})
    assert outside.status_code == 416


def test_token_route_accepts_quoted_revisions(server, alice, api, repo_factory) -> None:
    repo = repo_factory("revs")
    api.create_branch(repo, branch="feat/x")
    r = xet_token(server.endpoint, alice.token, repo, "read", rev="feat%2Fx")
    assert r.status_code == 200 and r.json()["casUrl"] == f"{server.endpoint}/cas"
    sha = api.repo_info(repo).sha
    assert xet_token(server.endpoint, alice.token, repo, "read", rev=sha).status_code == 200
    r = httpx.get(
        f"{server.endpoint}/api/models/{repo}/xet-write-token/None",
        params={"create_pr": "1"},
        headers={"authorization": f"Bearer {alice.token}"},
    )
    assert r.status_code == 200
    claims = r.json()["accessToken"]
    assert claims and int(r.json()["exp"]) > time.time() + 600


@pytest.mark.slow
def test_large_file_spans_several_xorbs(server, alice, repo_factory, blob) -> None:
    """140 MiB → at least 3 xorbs; float32 data so byte-grouping (BG4) chunks appear too."""
    import numpy as np

    repo = repo_factory("large")
    rng = np.random.default_rng(12)
    data = rng.standard_normal(140 * 1024 * 1024 // 4).astype("float32").tobytes()
    upload_in_fresh_client(alice.token, blob(data, "big.bin"), "big.bin", repo)
    st = stats(server.endpoint, alice.token, repo)
    assert st["xorbs_inserted"] >= 3, st
    assert download_in_fresh_client(alice.token, repo, "big.bin") == data
    url = f"{server.endpoint}/{repo}/resolve/main/big.bin"
    a, b = 64 * 1024 * 1024 - 1000, 64 * 1024 * 1024 + 5000  # across a xorb boundary
    r = httpx.get(url, headers={"authorization": f"Bearer {alice.token}", "range": f"bytes={a}-{b}"})
    assert r.status_code == 206 and r.content == data[a : b + 1]


def test_upload_folder_and_snapshot_download(server, alice, api, repo_factory, tmp_path) -> None:
    from huggingface_hub import snapshot_download

    repo = repo_factory("folder")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    files = {"a.bin": _random(2 * MB, 20), "sub/b.safetensors": _random(1 * MB, 21), "README.md": b"# hi\n"}
    for name, data in files.items():
        (src / name).write_bytes(data)
    api.upload_folder(folder_path=src, repo_id=repo)
    sha = api.repo_info(repo).sha
    out = snapshot_download(repo, revision=sha, token=alice.token, cache_dir=tmp_path / "c")
    for name, data in files.items():
        with open(f"{out}/{name}", "rb") as fh:
            assert fh.read() == data
    infos = {e.path: e for e in api.get_paths_info(repo, list(files), revision=sha)}
    assert infos["a.bin"].xet_hash and infos["sub/b.safetensors"].xet_hash and infos["README.md"].xet_hash is None
    # a second hf_hub_download at the commit uses the tree cache (no HEAD) and the read-token route
    path = hf_hub_download(
        repo, "a.bin", revision=sha, token=alice.token, cache_dir=tmp_path / "c", force_download=True
    )
    with open(path, "rb") as fh:
        assert fh.read() == files["a.bin"]


def test_gated_repo_read_token_needs_access(server, alice, bob, api, repo_factory, blob) -> None:
    repo = repo_factory("gated")
    api.upload_file(path_or_fileobj=blob(_random(300_000, 30)), path_in_repo="g.bin", repo_id=repo)
    api.update_repo_settings(repo, gated="manual")
    if not api.repo_info(repo).gated:
        pytest.skip("gating not available in this build")
    assert xet_token(server.endpoint, alice.token, repo, "read").status_code == 200
    assert xet_token(server.endpoint, bob.token, repo, "read").status_code == 403
    assert xet_token(server.endpoint, None, repo, "read").status_code == 401


def test_commit_cannot_borrow_a_private_xet_file(server, alice, bob, api, bob_api, repo_factory, blob) -> None:
    """Knowing a sha256 is not enough to commit (and then read) someone else's Xet upload."""
    private = repo_factory("borrow", private=True)
    data = _random(1 * MB, 40)
    api.upload_file(path_or_fileobj=blob(data), path_in_repo="p.bin", repo_id=private)
    sha = hashes.sha256_hex(data)
    theirs = "bob/borrow-" + os.urandom(4).hex()
    bob_api.create_repo(theirs)
    try:
        lines = [
            {"key": "header", "value": {"summary": "borrow"}},
            {"key": "lfsFile", "value": {"path": "stolen.bin", "algo": "sha256", "oid": sha, "size": len(data)}},
        ]
        r = httpx.post(
            f"{server.endpoint}/api/models/{theirs}/commit/main",
            content="\n".join(json.dumps(x) for x in lines),
            headers={"authorization": f"Bearer {bob.token}", "content-type": "application/x-ndjson"},
        )
        assert 400 <= r.status_code < 500, r.text
        assert (
            httpx.head(
                f"{server.endpoint}/{theirs}/resolve/main/stolen.bin", headers={"authorization": f"Bearer {bob.token}"}
            ).status_code
            == 404
        )
    finally:
        bob_api.delete_repo(theirs)
    # alice herself may reuse her upload in another of her repos without sending bytes again
    other = repo_factory("reuse")
    lines = [
        {"key": "header", "value": {"summary": "reuse"}},
        {"key": "lfsFile", "value": {"path": "p.bin", "algo": "sha256", "oid": sha, "size": len(data)}},
    ]
    r = httpx.post(
        f"{server.endpoint}/api/models/{other}/commit/main",
        content="\n".join(json.dumps(x) for x in lines),
        headers={"authorization": f"Bearer {alice.token}", "content-type": "application/x-ndjson"},
    )
    assert r.status_code == 200, r.text
    head = httpx.head(
        f"{server.endpoint}/{other}/resolve/main/p.bin", headers={"authorization": f"Bearer {alice.token}"}
    )
    assert hashes.is_hash_hex(head.headers["x-xet-hash"])
    assert (
        httpx.get(
            f"{server.endpoint}/{other}/resolve/main/p.bin", headers={"authorization": f"Bearer {alice.token}"}
        ).content
        == data
    )


def test_anonymous_and_multirange_downloads(server, alice, api, repo_factory, blob, tmp_path) -> None:
    repo = repo_factory("public")
    data = bytes(300_000) + _random(400_000, 50) + bytes(300_000) + _random(200_000, 51)
    api.upload_file(path_or_fileobj=blob(data), path_in_repo="p.bin", repo_id=repo)
    # anonymous Xet download of a public repo (read token without a Hub token)
    path = hf_hub_download(repo, "p.bin", token=False, cache_dir=tmp_path / "anon")
    with open(path, "rb") as fh:
        assert fh.read() == data
    assert xet_token(server.endpoint, None, repo, "read").status_code == 200
    # the client's multi-range fetch mode
    got = download_in_fresh_client(alice.token, repo, "p.bin", HF_XET_CLIENT_ENABLE_MULTIRANGE_FETCHING="1")
    assert got == data


def test_upload_grants(server, alice, repo_factory) -> None:
    repo = repo_factory("grants")
    base, auth = _write(server, alice, repo)
    digest, body = xorb.serialize_xorb([_random(50_000, 60), bytes(30_000)])
    h = hashes.hash_to_hex(digest)
    r = httpx.post(f"{base}/v1/xorb-grants/default/{h}", json={"length": len(body)}, headers=auth)
    assert r.status_code == 201, r.text
    grant = r.json()
    assert set(grant) == {"id", "method", "url", "headers"} and grant["method"] == "PUT"
    commit = f"{base}/v1/xorb-commits/default/{h}/grant/{grant['id']}"
    assert httpx.post(commit, headers=auth).status_code == 404  # nothing uploaded yet
    assert httpx.put(grant["url"].replace("sig=", "sig=0"), content=body).status_code == 403
    assert httpx.put(grant["url"], content=body[:-1]).status_code == 400  # not the announced length
    assert httpx.put(grant["url"], content=body).status_code == 200  # no Authorization needed
    assert httpx.put(grant["url"], content=body).status_code == 412  # already uploaded
    assert httpx.post(commit).status_code == 401  # committing needs the CAS token
    r = httpx.post(commit, headers=auth)
    assert r.status_code == 200 and r.json() == {"was_inserted": True}
    assert httpx.head(f"{base}/v1/xorbs/default/{h}", headers=auth).status_code == 200
    # a stored xorb needs no grant; a corrupt staged body is refused at commit and not kept
    assert httpx.post(f"{base}/v1/xorb-grants/default/{h}", json={"length": len(body)}, headers=auth).status_code == 200
    digest2, body2 = xorb.serialize_xorb([_random(40_000, 61)])
    h2 = hashes.hash_to_hex(digest2)
    grant = httpx.post(f"{base}/v1/xorb-grants/default/{h2}", json={"length": len(body2)}, headers=auth).json()
    bad = bytearray(body2)
    bad[-1] ^= 1
    # verified while it streams in (local disk as an object store): refused at the PUT, nothing kept
    assert httpx.put(grant["url"], content=bytes(bad)).status_code == 400
    r = httpx.post(f"{base}/v1/xorb-commits/default/{h2}/grant/{grant['id']}", headers=auth)
    assert r.status_code == 404
    assert httpx.head(f"{base}/v1/xorbs/default/{h2}", headers=auth).status_code == 404
    assert not any(server.data.glob(f"blobs/xorb-staging/**/{h2}-*"))
    assert not any(server.data.glob(f"blobs/xorbs/**/{h2}"))


def test_no_xorb_existence_oracle_across_namespaces(server, alice, bob, bob_api, repo_factory) -> None:
    mine = repo_factory("oracle")
    base, auth = _write(server, alice, mine)
    digest, body = xorb.serialize_xorb([_random(60_000, 70)])
    h = hashes.hash_to_hex(digest)
    assert httpx.post(f"{base}/v1/xorbs/default/{h}", content=body, headers=auth).json() == {"was_inserted": True}
    theirs = "bob/oracle-" + os.urandom(4).hex()
    bob_api.create_repo(theirs)
    try:
        bbase, bauth = _write(server, bob, theirs)
        assert httpx.head(f"{bbase}/v1/xorbs/default/{h}", headers=bauth).status_code == 404
        grant = httpx.post(f"{bbase}/v1/xorb-grants/default/{h}", json={"length": len(body)}, headers=bauth)
        assert grant.status_code == 201  # not "already stored"
        junk = httpx.post(f"{bbase}/v1/xorbs/default/{h}", content=b"\x00" * 64, headers=bauth)
        assert junk.status_code == 400  # the body is checked, whoever stored the hash before
        r = httpx.post(f"{bbase}/v1/xorbs/default/{h}", content=body, headers=bauth)
        assert r.json() == {"was_inserted": True}  # same answer as for new bytes
        assert httpx.head(f"{bbase}/v1/xorbs/default/{h}", headers=bauth).status_code == 200  # now his too
        again = httpx.post(f"{bbase}/v1/xorbs/default/{h}", content=body, headers=bauth)
        assert again.json() == {"was_inserted": False}
    finally:
        bob_api.delete_repo(theirs)


def _bytes_from_v1(terms: list[dict], fetch_info: dict[str, list[dict]]) -> bytes:
    """Rebuild a file from v1 terms: fetch each term's covering range (no Authorization) and decode it."""
    import io

    out = bytearray()
    for t in terms:
        start, end = t["range"]["start"], t["range"]["end"]
        (entry,) = [
            e for e in fetch_info[t["hash"]] if e["range"]["start"] <= start and end <= e["range"]["end"]
        ]
        rng = entry["url_range"]
        r = httpx.get(entry["url"], headers={"range": f"bytes={rng['start']}-{rng['end']}"})
        assert r.status_code == 206
        chunks = list(xorb.iter_chunk_bytes(io.BytesIO(r.content), entry["range"]["end"] - entry["range"]["start"]))
        out += b"".join(chunks[start - entry["range"]["start"] : end - entry["range"]["start"]])
    return bytes(out)


def test_batch_reconstruction(server, alice, bob, api, bob_api, repo_factory, blob) -> None:
    repo = repo_factory("batch")
    one, two = _random(3 * MB, 21), _random(2 * MB, 22)
    api.upload_file(path_or_fileobj=blob(one, "a.bin"), path_in_repo="a.bin", repo_id=repo)
    api.upload_file(path_or_fileobj=blob(two, "b.bin"), path_in_repo="b.bin", repo_id=repo)
    auth_hub = {"authorization": f"Bearer {alice.token}"}
    ids = [
        httpx.head(f"{server.endpoint}/{repo}/resolve/main/{name}", headers=auth_hub).headers["x-xet-hash"]
        for name in ("a.bin", "b.bin")
    ]
    base, auth = cas(xet_token(server.endpoint, alice.token, repo, "read").json())
    unknown = "ab" * 32
    r = httpx.get(f"{base}/v1/reconstructions", params=[("file_id", i) for i in (*ids, unknown)], headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert sorted(body["files"]) == sorted(ids)  # the unknown id is simply absent
    single = httpx.get(f"{base}/v1/reconstructions/{ids[0]}", headers=auth).json()
    assert body["files"][ids[0]] == single["terms"]
    for file_id, data in zip(ids, (one, two), strict=True):
        assert _bytes_from_v1(body["files"][file_id], body["fetch_info"]) == data

    # another user's token for their own repo learns nothing about alice's files
    bob_repo = "bob/batch-" + os.urandom(4).hex()
    bob_api.create_repo(bob_repo)
    try:
        bob_base, bob_auth = cas(xet_token(server.endpoint, bob.token, bob_repo, "read").json())
        r = httpx.get(f"{bob_base}/v1/reconstructions", params=[("file_id", i) for i in ids], headers=bob_auth)
        assert r.status_code == 200 and r.json() == {"files": {}, "fetch_info": {}}
    finally:
        bob_api.delete_repo(bob_repo)
    # bad input: a malformed id, too many ids, no token
    assert httpx.get(f"{base}/v1/reconstructions", params={"file_id": "nope"}, headers=auth).status_code == 400
    many = [("file_id", os.urandom(32).hex()) for _ in range(129)]
    assert httpx.get(f"{base}/v1/reconstructions", params=many, headers=auth).status_code == 400
    assert httpx.get(f"{base}/v1/reconstructions", params={"file_id": ids[0]}).status_code == 401
