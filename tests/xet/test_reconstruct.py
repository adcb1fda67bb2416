from __future__ import annotations

import io
import random

import pytest

from cove.xet import hashes, reconstruct, shard, xorb
from cove.xet.errors import ReconstructionError


@pytest.fixture(scope="module")
def stored(real_upload):
    bodies = {hashes.hex_to_hash(h): b for h, b in real_upload.captured.xorbs.items()}
    tables = {h: xorb.unpack_chunk_table(xorb.pack_chunk_table(xorb.parse_xorb(b).chunks)) for h, b in bodies.items()}
    files = {f.file_hash: f for f in shard.parse_shard(real_upload.captured.shards[0]).files}
    return bodies, tables, files


def _read(stored, file_entry, start, end):
    bodies, tables, _ = stored
    plan = reconstruct.plan_range(file_entry.terms, tables.__getitem__, start, end, file_entry.size)
    return plan, b"".join(reconstruct.stream_plan(plan, lambda h: io.BytesIO(bodies[h])))


def test_whole_files_and_random_ranges(stored, real_upload) -> None:
    _, _, files = stored
    rng = random.Random(3)
    for payload, info in zip(real_upload.payloads, real_upload.infos, strict=True):
        if not payload:
            continue
        f = files[hashes.hex_to_hash(info.hash)]
        assert _read(stored, f, 0, len(payload))[1] == payload
        for _ in range(15):
            a = rng.randrange(len(payload))
            b = rng.randrange(a + 1, len(payload) + 1)
            assert _read(stored, f, a, b)[1] == payload[a:b]


def test_plan_shape(stored, real_upload) -> None:
    _, tables, files = stored
    zeros = files[hashes.hex_to_hash(real_upload.infos[2].hash)]  # 300 kB of zeros: duplicate-chunk terms
    plan, data = _read(stored, zeros, 131072 + 5, 300_000)
    assert data == bytes(300_000 - 131072 - 5)
    assert plan.offset_into_first_range == 5
    for t in plan.terms:
        # every term is contained in one merged fetch range of its xorb
        assert any(r.chunk_start <= t.chunk_start and t.chunk_end <= r.chunk_end for r in plan.fetches[t.xorb_hash])
        table = tables[t.xorb_hash]
        assert t.unpacked_len == sum(c.uncompressed_len for c in table[t.chunk_start : t.chunk_end])
    for xh, ranges in plan.fetches.items():
        for r in ranges:
            assert r.byte_start == tables[xh][r.chunk_start].byte_start
            assert r.byte_end == tables[xh][r.chunk_end - 1].byte_end
        assert all(a.chunk_end < b.chunk_start for a, b in zip(ranges, ranges[1:], strict=False))


def test_bad_ranges_and_terms(stored, real_upload) -> None:
    _, tables, files = stored
    f = files[hashes.hex_to_hash(real_upload.infos[1].hash)]
    with pytest.raises(ReconstructionError):
        reconstruct.plan_range(f.terms, tables.__getitem__, 5, 5, f.size)
    with pytest.raises(ReconstructionError):
        reconstruct.plan_range(f.terms, tables.__getitem__, 0, f.size + 1, f.size)
    bad = [shard.FileTerm(f.terms[0].xorb_hash, 12, 0, 10_000)]
    with pytest.raises(ReconstructionError):
        reconstruct.check_terms(bad, tables.__getitem__)
    assert reconstruct.check_terms(f.terms, tables.__getitem__) == 12
