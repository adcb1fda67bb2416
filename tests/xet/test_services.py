"""cove.services.xet in-process: registration, reconstruction, dedup answers, garbage collection."""

from __future__ import annotations

import io
import random

import pytest
from sqlalchemy import delete, select

from cove.backends import build_backends
from cove.db.migrate import upgrade
from cove.db.tables import LfsObject
from cove.db.xet_tables import XetFile, XetShard, XetXorb
from cove.errors import BadRequest, Forbidden, RangeNotSatisfiable, Unauthorized
from cove.services import accounts, repos, xet, xet_maintenance, xet_shards
from cove.settings import Settings
from cove.xet import chunking, hashes, shard, xorb


@pytest.fixture
def bk(tmp_path):
    backends = build_backends(Settings(data=tmp_path / "data", secret="t" * 32))
    upgrade(backends)
    return backends


def _claims(bk, user: str, repo_name: str, scope: str = "write"):
    with bk.db.session() as db:
        if accounts.get_namespace(db, user) is None:
            accounts.add_user(db, user)
        actor = accounts.actor_for_user(db, accounts.require_user(db, user))
        repos.create(db, bk, actor, repo_type="model", namespace=None, name=repo_name)
        issued = xet.issue_token(
            db, bk, actor, repo_type="model", repo_id=f"{user}/{repo_name}", revision="main", scope=scope
        )
        return xet.authenticate(db, bk, f"Bearer {issued.access_token}", write=scope == "write")


def _stored(bk, claims, data: bytes, *, with_verification: bool = True) -> tuple[shard.FileEntry, shard.XorbEntry]:
    """Store ``data`` as one xorb; return the shard entries describing it (nothing registered yet)."""
    chunks = list(chunking.iter_chunks([data]))
    digest, body = xorb.serialize_xorb(chunks)
    xet.store_xorb(bk, claims, xorb_hex=hashes.hash_to_hex(digest), body=io.BytesIO(body))
    hs = [hashes.chunk_hash(c) for c in chunks]
    leaves = [(h, len(c)) for h, c in zip(hs, chunks, strict=True)]
    entry = shard.FileEntry(
        hashes.file_hash(leaves),
        [shard.FileTerm(digest, len(data), 0, len(chunks))],
        [hashes.verification_hash(hs)] if with_verification else None,
        hashes.sha256_to_raw(hashes.sha256_hex(data)),
    )
    offsets = [sum(n for _, n in leaves[:i]) for i in range(len(leaves))]
    xentry = shard.XorbEntry(digest, [shard.XorbChunkEntry(h, o, n) for (h, n), o in zip(leaves, offsets, strict=True)])
    return entry, xentry


def _upload(bk, claims, data: bytes, *, with_verification: bool = True) -> tuple[str, shard.FileEntry]:
    entry, xentry = _stored(bk, claims, data, with_verification=with_verification)
    assert xet_shards.register_shard(bk, claims, io.BytesIO(shard.serialize_shard([entry], [xentry], full=False))) == 1
    return hashes.hash_to_hex(entry.file_hash), entry


def test_shard_from_a_spool_file_is_checked_whole_before_anything_is_kept(bk) -> None:
    """The CAS hands ``register_shard`` the spooled body (a file on disk past 256 KiB), read one section at
    a time; a defect anywhere, even after valid entries, leaves no file row and no stored shard."""
    import hashlib
    import tempfile

    claims = _claims(bk, "alice", "spooled")
    entry, xentry = _stored(bk, claims, random.Random(9).randbytes(300_000))
    other, other_x = _stored(bk, claims, random.Random(10).randbytes(200_000))
    lie = shard.XorbEntry(other_x.xorb_hash, list(other_x.chunks)[:-1])  # one chunk short of the stored xorb
    good = shard.serialize_shard([entry], [xentry], full=False)
    bad_bodies = {
        "Invalid shard": good[:-10],  # truncated inside the closing bookend
        "does not match": shard.serialize_shard([entry], [xentry, lie], full=False),  # the 2nd xorb entry lies
    }
    fh = hashes.hash_to_hex(entry.file_hash)

    def kept() -> tuple[bool, bool]:
        with bk.db.session() as db:
            return db.get(XetFile, fh) is not None, db.get(XetShard, hashlib.sha256(good).hexdigest()) is not None

    for message, body in bad_bodies.items():
        with tempfile.SpooledTemporaryFile(max_size=1) as spool:
            spool.write(body)
            with pytest.raises(BadRequest, match=message):
                xet_shards.register_shard(bk, claims, spool)
        assert kept() == (False, False)
    with tempfile.SpooledTemporaryFile(max_size=1) as spool:
        spool.write(good)
        assert xet_shards.register_shard(bk, claims, spool) == 1
    assert kept() == (True, True)
    with bk.blobs.open(f"shards/{hashlib.sha256(good).hexdigest()}") as stored:
        assert stored.read() == good


def test_register_reconstruct_and_stream(bk) -> None:
    claims = _claims(bk, "alice", "m")
    data = random.Random(1).randbytes(700_000)
    fh, _ = _upload(bk, claims, data)
    with bk.db.session() as db:
        row = db.scalar(select(LfsObject).where(LfsObject.oid == hashes.sha256_hex(data)))
        assert row is not None and row.xet_hash == fh and row.size == len(data)
    assert b"".join(xet.stream_file(bk, fh, 0, len(data))) == data
    assert b"".join(xet.stream_file(bk, fh, 12345, 600_001)) == data[12345:600_001]
    v1 = xet.reconstruction(bk, claims, file_hex=fh, range_header="bytes=100-199", version=1)
    assert v1["offset_into_first_range"] == 100 and len(v1["terms"]) == 1
    (fetch,) = v1["fetch_info"].values()
    assert fetch[0]["url_range"]["start"] == 0 and "sig=" in fetch[0]["url"]
    v2 = xet.reconstruction(bk, claims, file_hex=fh, range_header=None, version=2)
    assert sum(t["unpacked_length"] for t in v2["terms"]) == len(data)
    with pytest.raises(RangeNotSatisfiable):
        xet.reconstruction(bk, claims, file_hex=fh, range_header=f"bytes={len(data)}-", version=2)


def test_reconstruction_needs_the_repo_link(bk) -> None:
    alice = _claims(bk, "alice", "m")
    bob = _claims(bk, "bob", "b", scope="read")
    fh, _ = _upload(bk, alice, random.Random(2).randbytes(50_000))
    with pytest.raises(xet.XetNotFound):
        xet.reconstruction(bk, bob, file_hex=fh, range_header=None, version=2)


def test_read_tokens_cannot_write(bk) -> None:
    claims = _claims(bk, "alice", "m", scope="read")
    token = xet.tokens.sign_token(bk.settings.signing_secret, claims)
    with bk.db.session() as db, pytest.raises(Forbidden):
        xet.authenticate(db, bk, f"Bearer {token}", write=True)
    with bk.db.session() as db, pytest.raises(Unauthorized):
        xet.authenticate(db, bk, None, write=False)


def test_shard_validation_failures(bk) -> None:
    claims = _claims(bk, "alice", "m")
    data = random.Random(3).randbytes(200_000)
    _, entry = _upload(bk, claims, data)
    term = entry.terms[0]
    cases = {
        "outside": shard.FileEntry(entry.file_hash, [shard.FileTerm(term.xorb_hash, 5, 0, 999)], [bytes(32)]),
        "length": shard.FileEntry(
            entry.file_hash, [shard.FileTerm(term.xorb_hash, 5, term.chunk_start, term.chunk_end)], entry.verification
        ),
    }
    for bad in cases.values():
        with pytest.raises(BadRequest):
            xet_shards.register_shard(bk, claims, io.BytesIO(shard.serialize_shard([bad], [], full=False)))
    # a xorb section that disagrees with the stored xorb
    lie = shard.XorbEntry(term.xorb_hash, [shard.XorbChunkEntry(b"\x01" * 32, 0, 10)])
    with pytest.raises(BadRequest, match="does not match"):
        xet_shards.register_shard(bk, claims, io.BytesIO(shard.serialize_shard([], [lie], full=False)))
    # without verification entries, terms may only use the caller's own namespace's xorbs (others' answer
    # as unknown ones)
    bob = _claims(bk, "bob", "b")
    unverified = shard.FileEntry(entry.file_hash, entry.terms, None, entry.sha256)
    with pytest.raises(BadRequest, match="not stored"):
        xet_shards.register_shard(bk, bob, io.BytesIO(shard.serialize_shard([unverified], [], full=False)))
    assert xet_shards.register_shard(bk, claims, io.BytesIO(shard.serialize_shard([unverified], [], full=False))) == 1


def test_dedup_answer_is_a_full_shard(bk) -> None:
    claims = _claims(bk, "alice", "m")
    data = random.Random(4).randbytes(400_000)
    _, entry = _upload(bk, claims, data)
    first_chunk = hashes.chunk_hash(next(chunking.iter_chunks([data])))
    raw = b"".join(xet.dedup_shard(bk, claims, prefix="default", chunk_hex=hashes.hash_to_hex(first_chunk)))
    parsed = shard.parse_shard(raw)
    assert parsed.footer is not None and parsed.footer.chunk_hash_hmac_key != bytes(32)
    (x,) = parsed.xorbs
    assert x.xorb_hash == entry.terms[0].xorb_hash
    assert x.chunks[0].hash == hashes.dedup_hmac(parsed.footer.chunk_hash_hmac_key, first_chunk)
    assert parsed.footer.key_expiry > parsed.footer.creation_timestamp
    with pytest.raises(xet.XetNotFound):  # other namespaces learn nothing
        xet.dedup_shard(bk, _claims(bk, "bob", "b"), prefix="default", chunk_hex=hashes.hash_to_hex(first_chunk))
    with pytest.raises(BadRequest):
        xet.dedup_shard(bk, claims, prefix="nope", chunk_hex=hashes.hash_to_hex(first_chunk))


def _upload_split(bk, claims, data: bytes, parts: int) -> list[bytes]:
    """Register ``data`` as one file whose chunks are spread over ``parts`` xorbs; returns their hashes."""
    chunks = list(chunking.iter_chunks([data]))
    step = -(-len(chunks) // parts)
    terms, xentries, digests = [], [], []
    for i in range(0, len(chunks), step):
        group = chunks[i:i + step]
        digest, body = xorb.serialize_xorb(group)
        xet.store_xorb(bk, claims, xorb_hex=hashes.hash_to_hex(digest), body=io.BytesIO(body))
        hs = [hashes.chunk_hash(c) for c in group]
        offsets = [sum(len(c) for c in group[:k]) for k in range(len(group))]
        xentries.append(shard.XorbEntry(digest, [shard.XorbChunkEntry(h, o, len(c))
                                                 for h, o, c in zip(hs, offsets, group, strict=True)]))
        terms.append((shard.FileTerm(digest, sum(map(len, group)), 0, len(group)), hashes.verification_hash(hs)))
        digests.append(digest)
    leaves = [(hashes.chunk_hash(c), len(c)) for c in chunks]
    entry = shard.FileEntry(hashes.file_hash(leaves), [t for t, _ in terms], [v for _, v in terms],
                            hashes.sha256_to_raw(hashes.sha256_hex(data)))
    assert xet_shards.register_shard(bk, claims, io.BytesIO(shard.serialize_shard([entry], xentries, full=False))) == 1
    return digests


def test_dedup_answer_includes_the_files_other_xorbs(bk) -> None:
    """The client asks about ~1 chunk per 64 MiB xorb: the answer carries the neighbouring xorbs of the
    caller's repo files too, so a re-upload finds the xorbs whose chunks it never asks about."""
    claims = _claims(bk, "alice", "m")
    data = random.Random(7).randbytes(600_000)
    digests = _upload_split(bk, claims, data, 3)
    assert len(digests) == 3
    first_chunk = hashes.chunk_hash(next(chunking.iter_chunks([data])))
    answer = xet.dedup_shard(bk, claims, prefix="default", chunk_hex=hashes.hash_to_hex(first_chunk))
    parsed = shard.parse_shard(b"".join(answer))
    assert [x.xorb_hash for x in parsed.xorbs] == digests  # the hit first, then the nearest
    # another repo of the same namespace that holds none of the file gets the neighbours from the namespace
    other = _claims(bk, "alice", "other")
    answer = xet.dedup_shard(bk, other, prefix="default", chunk_hex=hashes.hash_to_hex(first_chunk))
    parsed = shard.parse_shard(b"".join(answer))
    assert [x.xorb_hash for x in parsed.xorbs] == digests
    # a read token, which anyone who can read one public repo of the namespace gets, has no answer at all
    reader = _claims(bk, "alice", "public-reader", scope="read")
    with pytest.raises(Forbidden):
        xet.dedup_shard(bk, reader, prefix="default", chunk_hex=hashes.hash_to_hex(first_chunk))
    # streamed back whole, in blocks of at most STREAM_BLOCK + one chunk
    fh = hashes.hash_to_hex(hashes.file_hash([(hashes.chunk_hash(c), len(c)) for c in chunking.iter_chunks([data])]))
    blocks = list(xet.stream_file(bk, fh, 0, len(data)))
    assert b"".join(blocks) == data and len(blocks) < 3 * len(digests)



def test_dedup_answer_is_capped_and_streamed(bk, monkeypatch) -> None:
    """At most ``DEDUP_MAX_XORBS`` xorbs, the hit's first and then those after it; sent one xorb at a time."""
    monkeypatch.setattr(xet, "DEDUP_MAX_XORBS", 4)
    claims = _claims(bk, "alice", "capped")
    data = random.Random(8).randbytes(2_000_000)
    digests = _upload_split(bk, claims, data, 6)
    assert len(digests) == 6
    first_chunk = hashes.chunk_hash(next(chunking.iter_chunks([data])))
    pieces = list(xet.dedup_shard(bk, claims, prefix="default", chunk_hex=hashes.hash_to_hex(first_chunk)))
    parsed = shard.parse_shard(b"".join(pieces))
    assert [x.xorb_hash for x in parsed.xorbs] == digests[:4]
    assert parsed.footer is not None
    assert parsed.footer.chunk_lookup_num_entry == sum(len(x.chunks) for x in parsed.xorbs)
    assert len(pieces) >= 4 + 2  # head, one piece per xorb, lookup tables, footer

def test_garbage_collection(bk) -> None:
    claims = _claims(bk, "alice", "m")
    data = random.Random(5).randbytes(300_000)
    fh, entry = _upload(bk, claims, data)
    orphan_hash, orphan = xorb.serialize_xorb([b"orphan" * 1000])
    xet.store_xorb(bk, claims, xorb_hex=hashes.hash_to_hex(orphan_hash), body=io.BytesIO(orphan))

    assert xet_maintenance.collect_garbage(bk).xorbs_removed == 0  # everything is inside the grace period
    report = xet_maintenance.collect_garbage(bk, grace_seconds=-60)
    assert (report.files_removed, report.xorbs_removed, report.bytes_freed) == (0, 1, len(orphan))
    assert not bk.blobs.exists(f"xorbs/{hashes.hash_to_hex(orphan_hash)}")
    assert b"".join(xet.stream_file(bk, fh, 0, len(data))) == data

    with bk.db.session() as db:  # the repo forgets the file: file and xorb become garbage
        db.execute(delete(LfsObject))
    assert xet_maintenance.collect_garbage(bk, grace_seconds=-60, dry_run=True).files_removed == 1
    report = xet_maintenance.collect_garbage(bk, grace_seconds=-60)
    assert (report.files_removed, report.xorbs_removed) == (1, 1)
    assert xet.file_record(bk, fh) is None
    assert not bk.blobs.exists(f"xorbs/{hashes.hash_to_hex(entry.terms[0].xorb_hash)}")


def test_convert_lfs_object_reuses_stored_chunks(bk, tmp_path) -> None:
    import hf_xet

    claims = _claims(bk, "alice", "m")
    base = random.Random(6).randbytes(600_000)
    _upload(bk, claims, base)  # already in Xet: its chunks can be reused
    data = base + bytes(400_000) + random.Random(7).randbytes(300_000)
    oid = hashes.sha256_hex(data)
    bk.blobs.put_bytes(f"lfs/{oid}", data)
    with bk.db.session() as db:
        db.add(LfsObject(repo_pk=claims.repo_pk, oid=oid, size=len(data)))
    before = sum(1 for _ in (tmp_path / "data").rglob("xorbs/*/*/*"))
    with bk.db.session() as db:
        stored_before = sum(db.scalars(select(XetXorb.stored_size)))
    xh = xet_maintenance.convert_lfs_object(bk, repo_pk=claims.repo_pk, oid=oid)

    (tmp_path / "f.bin").write_bytes(data)
    (info,) = hf_xet.hash_files([str(tmp_path / "f.bin")])
    assert xh == info.hash  # same id as a client upload of these bytes
    with bk.db.session() as db:
        assert db.get(LfsObject, (claims.repo_pk, oid)).xet_hash == xh
        new_bytes = sum(db.scalars(select(XetXorb.stored_size))) - stored_before
    assert new_bytes < len(data) - 550_000  # the 600 kB prefix was not stored again; zeros compress
    assert sum(1 for _ in (tmp_path / "data").rglob("xorbs/*/*/*")) == before + 1
    assert b"".join(xet.stream_file(bk, xh, 0, len(data))) == data
    assert xet_maintenance.convert_lfs_object(bk, repo_pk=claims.repo_pk, oid=oid) == xh  # idempotent


def test_abandoned_grant_uploads_are_collected(bk) -> None:
    from cove.services import xet_grants

    claims = _claims(bk, "alice", "m")
    digest, body = xorb.serialize_xorb([random.Random(8).randbytes(10_000)])
    h = hashes.hash_to_hex(digest)
    grant = xet_grants.create_grant(bk, claims, prefix="default", xorb_hex=h, request={"length": len(body)})
    assert grant is not None
    xet_grants.stage_upload(bk, xorb_hex=h, grant_id=grant["id"], length=len(body), body=io.BytesIO(body))
    key = xet_grants.staging_key(h, grant["id"])
    assert bk.blobs.exists(key)
    assert xet_maintenance.collect_garbage(bk).staged_removed == 0
    assert xet_maintenance.collect_garbage(bk, grace_seconds=-60, dry_run=True).staged_removed == 1
    assert bk.blobs.exists(key)
    report = xet_maintenance.collect_garbage(bk, grace_seconds=-60)
    assert report.staged_removed == 1 and report.bytes_freed >= len(body)
    assert not bk.blobs.exists(key)
    with pytest.raises(xet.NotFound):  # the grant can no longer be committed
        xet_grants.commit_grant(bk, claims, prefix="default", xorb_hex=h, grant_id=grant["id"])


def test_anonymous_read_tokens_follow_the_setting(bk) -> None:
    _claims(bk, "alice", "pub")
    with bk.db.session() as db:
        issued = xet.issue_token(
            db, bk, accounts.ANONYMOUS, repo_type="model", repo_id="alice/pub", revision="main", scope="read"
        )
        assert issued.access_token
        with pytest.raises(Unauthorized):
            xet.issue_token(
                db, bk, accounts.ANONYMOUS, repo_type="model", repo_id="alice/pub", revision="main", scope="write"
            )
    bk.settings.anonymous_read = False
    with bk.db.session() as db, pytest.raises(Unauthorized):
        xet.issue_token(
            db, bk, accounts.ANONYMOUS, repo_type="model", repo_id="alice/pub", revision="main", scope="read"
        )


def test_chunk_table_window_evicts_and_reloads(bk, monkeypatch) -> None:
    """A request keeps only the last ``REQUEST_TABLES`` chunk tables: a file over more xorbs than that is
    still validated and rebuilt exactly, reloading what was evicted."""
    monkeypatch.setattr(xet, "REQUEST_TABLES", 2)
    xet.forget_cached()
    claims = _claims(bk, "alice", "window")
    data = random.Random(11).randbytes(1_500_000)
    digests = _upload_split(bk, claims, data, 6)  # validated through a 2-table window
    assert len(digests) == 6
    with bk.db.session() as db:
        tables = xet.ChunkTables(db)
        for d in [*digests, digests[0]]:
            tables(d)
            assert len(tables.tables) <= 2
        assert list(tables.tables) == [digests[-1], digests[0]]
    fh = hashes.hash_to_hex(hashes.file_hash([(hashes.chunk_hash(c), len(c)) for c in chunking.iter_chunks([data])]))
    assert b"".join(xet.stream_file(bk, fh, 0, len(data))) == data
    assert b"".join(xet.stream_file(bk, fh, 123_456, 1_234_567)) == data[123_456:1_234_567]
