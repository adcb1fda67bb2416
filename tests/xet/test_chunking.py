from __future__ import annotations

import hashlib
import io
import random

import hf_xet
import numpy as np
import pytest

from cove.xet import chunking, hashes


def test_gear_table_is_the_client_table() -> None:
    table = chunking.gear_table()
    assert len(table) == 256
    assert int(table[0]) == 0xB088D3A9E840F559
    assert int(table[-1]) == 0x63C7A906C1DD187B


def test_rolling_hash_matches_scalar_definition() -> None:
    data = np.frombuffer(random.Random(1).randbytes(5000), dtype=np.uint8)
    table = [int(x) for x in chunking.gear_table()]
    fast = chunking.rolling_hashes(data)
    h = 0
    for i, b in enumerate(data):
        h = ((h << 1) + table[b]) & 0xFFFFFFFFFFFFFFFF
        assert int(fast[i]) == h


def _cases() -> dict[str, bytes]:
    rng = random.Random(7)
    text = b"".join(b"line %d of some text, repeated-ish\n" % (i % 977) for i in range(40000))
    return {
        "empty": b"",
        "12B": b"hello world\n",
        "8191B": rng.randbytes(8191),
        "8192B": rng.randbytes(8192),
        "zeros300k": bytes(300_000),
        "text": text,
        "random1M": rng.randbytes(1_000_000),
        "random5M": rng.randbytes(5_000_000),
        "max_chunks": bytes(131072 * 3 + 5),
    }


def test_file_hashes_match_hf_xet(tmp_path) -> None:
    cases = _cases()
    paths = []
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        paths.append(str(p))
    infos = hf_xet.hash_files(paths)
    for (name, data), info in zip(cases.items(), infos, strict=True):
        d = chunking.digest_bytes(data)
        assert hashes.hash_to_hex(d.file_hash) == info.hash, name
        assert d.size == info.file_size == len(data)
        assert d.sha256 == hashlib.sha256(data).hexdigest()
        assert sum(c.size for c in d.chunks) == len(data)
        assert all(c.size <= chunking.MAX_CHUNK for c in d.chunks)
        assert all(c.size >= chunking.MIN_CHUNK for c in d.chunks[:-1])


@pytest.mark.parametrize("block", [1, 777, 65536, 300_001])
def test_streaming_equals_one_shot(block: int) -> None:
    data = random.Random(block).randbytes(400_000 if block == 1 else 2_500_000)
    expected = chunking.chunk_boundaries(data)
    blocks = [data[i : i + block] for i in range(0, len(data), block)]
    got = []
    total = 0
    for c in chunking.iter_chunks(blocks):
        total += len(c)
        got.append(total)
    assert got == expected
    assert chunking.digest_stream(io.BytesIO(data)).file_hash == chunking.digest_bytes(data).file_hash
