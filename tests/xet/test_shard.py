from __future__ import annotations

import pytest

from cove.xet import hashes, shard, xorb
from cove.xet.errors import ShardFormatError


def _real_shard(real_upload) -> tuple[bytes, shard.Shard]:
    (body,) = real_upload.captured.shards
    return body, shard.parse_shard(body)


def test_real_shard_files(real_upload) -> None:
    _, s = _real_shard(real_upload)
    by_hash = {hashes.hash_to_hex(f.file_hash): f for f in s.files}
    for payload, info in zip(real_upload.payloads, real_upload.infos, strict=True):
        f = by_hash[info.hash]
        assert f.size == len(payload) == info.file_size
        assert f.sha256_hex == hashes.sha256_hex(payload) == info.sha256
        assert f.flags == shard.FLAG_VERIFICATION | shard.FLAG_METADATA_EXT
    empty = by_hash["0" * 64]
    assert empty.terms == [] and empty.verification == []


def test_real_shard_consistent_with_real_xorbs(real_upload) -> None:
    _, s = _real_shard(real_upload)
    tables = {}
    for hex_hash, body in real_upload.captured.xorbs.items():
        tables[hashes.hex_to_hash(hex_hash)] = xorb.parse_xorb(body).chunks
    assert {x.xorb_hash for x in s.xorbs} == set(tables)
    for x in s.xorbs:
        assert [(c.hash, c.size) for c in x.chunks] == [(c.hash, c.uncompressed_len) for c in tables[x.xorb_hash]]
    for f in s.files:
        leaves = []
        for term, vhash in zip(f.terms, f.verification or [], strict=True):
            chunks = tables[term.xorb_hash][term.chunk_start : term.chunk_end]
            assert sum(c.uncompressed_len for c in chunks) == term.unpacked_len
            assert hashes.verification_hash(c.hash for c in chunks) == vhash
            leaves += [(c.hash, c.uncompressed_len) for c in chunks]
        assert hashes.file_hash(leaves) == f.file_hash


def test_upload_form_roundtrip_is_byte_exact(real_upload) -> None:
    body, s = _real_shard(real_upload)
    assert shard.serialize_shard(s.files, s.xorbs, full=False) == body


def test_full_shard_roundtrip_with_hmac() -> None:
    key = bytes(range(32))
    ch = [hashes.chunk_hash(bytes([i]) * 100) for i in range(5)]
    x = shard.XorbEntry(b"\x11" * 32, [shard.XorbChunkEntry(h, 100 * i, 100) for i, h in enumerate(ch)], 777)
    body = shard.serialize_shard([], [x], hmac_key=key, creation_timestamp=5, key_expiry=99)
    s = shard.parse_shard(body)
    assert s.files == [] and len(s.xorbs) == 1
    assert [c.hash for c in s.xorbs[0].chunks] == [hashes.dedup_hmac(key, h) for h in ch]
    assert s.footer is not None
    assert s.footer.chunk_hash_hmac_key == key
    assert (s.footer.creation_timestamp, s.footer.key_expiry) == (5, 99)
    assert s.footer.chunk_lookup_num_entry == 5 and s.footer.xorb_lookup_num_entry == 1
    assert s.footer.stored_bytes == 500 and s.footer.stored_bytes_on_disk == 777
    assert s.footer.footer_offset == len(body) - shard.FOOTER_LEN
    # chunk lookup sorted by integer key
    import struct

    keys = [struct.unpack_from("<Q", body, s.footer.chunk_lookup_offset + 16 * i)[0] for i in range(5)]
    assert keys == sorted(keys)


def test_every_truncation_is_a_format_error(real_upload) -> None:
    body, _ = _real_shard(real_upload)
    for cut in range(0, len(body), 7):
        with pytest.raises(ShardFormatError):
            shard.parse_shard(body[:cut])


def test_corruptions(real_upload) -> None:
    body, _ = _real_shard(real_upload)
    with pytest.raises(ShardFormatError, match="tag"):
        shard.parse_shard(b"X" + body[1:])
    with pytest.raises(ShardFormatError, match="trailing"):
        shard.parse_shard(body + bytes(48))
    with pytest.raises(ShardFormatError, match="version"):
        shard.parse_shard(body[:32] + (3).to_bytes(8, "little") + body[40:])
    with pytest.raises(ShardFormatError, match="limit|more than"):
        shard.parse_shard(body, shard.ShardLimits(max_files=2))
    assert issubclass(ShardFormatError, ValueError)


def test_reversed_term_range_rejected() -> None:
    f = shard.FileEntry(b"\x01" * 32, [shard.FileTerm(b"\x02" * 32, 10, 5, 3)])
    with pytest.raises(ShardFormatError, match="range"):
        shard.parse_shard(shard.serialize_shard([f], [], full=False))


def test_nonzero_hash_without_terms_rejected() -> None:
    f = shard.FileEntry(b"\x01" * 32, [])
    with pytest.raises(ShardFormatError, match="zero hash"):
        shard.parse_shard(shard.serialize_shard([f], [], full=False))


def test_reader_streams_a_spooled_body(real_upload) -> None:
    """What the CAS does with an upload: the body spooled to disk, read one section (one xorb) at a time."""
    import hashlib
    import tempfile

    body, whole = _real_shard(real_upload)
    with tempfile.SpooledTemporaryFile(max_size=64) as spool:  # rolled over to a real file
        spool.write(body)
        spool.seek(0)
        assert hashlib.file_digest(spool, "sha256").hexdigest() == hashlib.sha256(body).hexdigest()
        spool.seek(0)
        reader = shard.ShardReader(spool, len(body))
        assert reader.files() == whole.files
        streamed = reader.xorbs()
        first = next(streamed)
        assert spool.tell() < len(body)  # the rest of the xorb section is still unread
        rest = list(streamed)
        assert reader.finish() is None and reader.length == whole.length == len(body)
    assert [(x.xorb_hash, list(x.chunks)) for x in [first, *rest]] == [
        (x.xorb_hash, list(x.chunks)) for x in whole.xorbs
    ]


def test_reader_stops_at_a_truncated_xorb_entry(real_upload) -> None:
    import io

    body, _ = _real_shard(real_upload)
    cut = len(body) - 48 - 10  # inside the last xorb's chunk entries
    reader = shard.ShardReader(io.BytesIO(body[:cut]), cut)
    reader.files()
    with pytest.raises(ShardFormatError, match="truncated while reading xorb chunks"):
        list(reader.xorbs())
