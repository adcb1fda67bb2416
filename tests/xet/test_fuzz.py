"""Corrupt inputs raise the format errors (ValueError subclasses) and nothing else."""

from __future__ import annotations

import contextlib
import random

from cove.xet import shard, xorb
from cove.xet.errors import ShardFormatError, XorbFormatError


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        pos = rng.randrange(len(buf))
        if kind < 0.6:
            buf[pos] = rng.randrange(256)
        elif kind < 0.8:
            del buf[pos : pos + rng.randint(1, 64)]
        else:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 64))
    return bytes(buf)


def test_shard_mutations(real_upload) -> None:
    (body,) = real_upload.captured.shards
    rng = random.Random(0)
    for _ in range(3000):
        with contextlib.suppress(ShardFormatError):
            shard.parse_shard(_mutate(rng, body))


def test_xorb_mutations() -> None:
    rng = random.Random(1)
    chunks = [rng.randbytes(3000), bytes(5000), b"abc" * 2000, bytes(range(256)) * 20]
    digest, body = xorb.serialize_xorb(chunks)
    accepted = 0
    for _ in range(3000):
        mutated = _mutate(rng, body)
        if mutated == body:
            continue
        try:
            xorb.parse_xorb(mutated, expected_hash=digest)
            accepted += 1
        except XorbFormatError:
            pass
    assert accepted == 0  # any change to the records changes the hash or breaks the format
