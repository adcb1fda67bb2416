from __future__ import annotations

import os

import hf_xet
import pytest

from cove.xet import hashes
from cove.xet.chunking import digest_bytes
from cove.xet.errors import HashFormatError

H = hashes.hex_to_hash


def test_string_form_is_le_u64_words() -> None:
    raw = bytes(range(32))
    s = "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918"
    assert hashes.hash_to_hex(raw) == s
    assert hashes.hex_to_hash(s) == raw
    assert hashes.hex_to_hash(s.upper()) == raw


@pytest.mark.parametrize("bad", ["", "00" * 31, "zz" * 32, "0" * 65, None])
def test_bad_hash_strings(bad: object) -> None:
    with pytest.raises(HashFormatError):
        hashes.hex_to_hash(bad)  # type: ignore[arg-type]
    assert not hashes.is_hash_hex(bad)  # type: ignore[arg-type]


def test_spec_vectors_hello_world() -> None:
    h = hashes.chunk_hash(b"hello world\n")
    assert hashes.hash_to_hex(h) == "6899563fa6b6abb19b8ecdd9f662a6c9acfca9fd4ff9f513086ec6c5685193ab"
    assert (
        hashes.hash_to_hex(hashes.file_hash([(h, 12)]))
        == "a302d931b8763df0bfb9926b9ff26b11c2a77d5be8dde4ce1c8bb7202a6a8681"
    )


def test_spec_vectors_zeros() -> None:
    big, tail = hashes.chunk_hash(bytes(131072)), hashes.chunk_hash(bytes(37856))
    assert hashes.hash_to_hex(big) == "2e39f13c248013b27e22913ba2893a654120ed0ad8eb7ecbf3f05b9d708634fc"
    assert hashes.hash_to_hex(tail) == "9b0a79fb7a9b2632483530fce1c82092edd9b94a8690abc12f700bc530d950b0"
    leaves = [(big, 131072), (big, 131072), (tail, 37856)]
    assert (
        hashes.hash_to_hex(hashes.file_hash(leaves))
        == "3d7bd4178bc2851ba07d59c24c3a88ae0c7220e9920d6c5c6a06b01556d46404"
    )
    assert (
        hashes.hash_to_hex(hashes.xorb_hash(leaves))
        == "c2c391c2780688107997606ed6798520928296386f08a43bdf7e28cd1b06b37b"
    )
    assert (
        hashes.hash_to_hex(hashes.verification_hash([big, big, tail]))
        == "e169d38b9b9fae44721fdd0d6c3a25406ba8346446f87a34224f1730d6172a7f"
    )


def test_spec_vectors_mod251() -> None:
    d = digest_bytes(bytes(i % 251 for i in range(1_000_000)))
    assert [c.size for c in d.chunks] == [131072] * 7 + [82496]
    assert hashes.hash_to_hex(d.file_hash) == "a6915bc7a3b8f6812da0990d510cc8228f8fe8d41d96c0678649c18122e4caf8"
    leaves = [(c.hash, c.size) for c in d.chunks]
    assert (
        hashes.hash_to_hex(hashes.xorb_hash(leaves))
        == "adeb433d4f41b818bc19a3dd9304cccb605b257a89ceac78a821ce6c9575c409"
    )
    assert (
        hashes.hash_to_hex(hashes.verification_hash(c.hash for c in d.chunks))
        == "7ea61374a0fd821f2395b8859ef55e03b1f8e5bd656d0d003972c0ede5c96183"
    )


def test_aggregated_hash_vectors() -> None:
    a = H("cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6")
    b = H("c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72")
    c = H("0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37")
    assert hashes.xorb_hash([(a, 100)]) == a
    assert (
        hashes.hash_to_hex(hashes.file_hash([(a, 100)]))
        == "8e16257caa3fe079d484d872a8975264b2ff683b0d6db9028cc7c0f968a45661"
    )
    three = [(a, 100), (b, 200), (c, 300)]
    assert (
        hashes.hash_to_hex(hashes.xorb_hash(three))
        == "71ec1275fca074724e2dd666921b3277c7cee603e4d025bcab2d4050015be2bc"
    )
    assert (
        hashes.hash_to_hex(hashes.file_hash(three))
        == "54e55dccc6653c612bdb5576c5d3cb34bb31bc4e100248abccf4c908b3ef7715"
    )
    zero = [(hashes.ZERO_HASH, 0)]
    assert hashes.xorb_hash(zero) == hashes.ZERO_HASH
    assert (
        hashes.hash_to_hex(hashes.file_hash(zero)) == "638a6bc391964a85939d48f008e8bdbae6a7975e7ca2d87a3ce2492f4e4d8a4c"
    )


def test_empty_file_hash_is_zero() -> None:
    assert hashes.file_hash([]) == hashes.ZERO_HASH
    assert hashes.merkle_root([]) == hashes.ZERO_HASH


def test_sha256_metadata_byte_order() -> None:
    digest = hashes.sha256_hex(b"hello world\n")
    raw = hashes.sha256_to_raw(digest)
    assert raw[:8] == bytes.fromhex(digest)[:8][::-1]
    assert hashes.raw_to_sha256(raw) == digest


def test_deep_merkle_tree_matches_hf_xet(tmp_path) -> None:
    """A file of ~1500 chunks exercises several tree levels; compare with hf_xet.hash_files."""
    path = tmp_path / "big.bin"
    data = os.urandom(24_000_000)
    path.write_bytes(data)
    (info,) = hf_xet.hash_files([str(path)])
    assert hashes.hash_to_hex(digest_bytes(data).file_hash) == info.hash


def _root_by_levels(leaves: list[tuple[bytes, int]]) -> bytes:
    """The aggregated hash as the spec states it: merge whole levels until one node is left."""
    level = list(leaves)
    if not level:
        return hashes.ZERO_HASH
    while len(level) > 1:
        parents, pos = [], 0
        while pos < len(level):
            remaining = len(level) - pos
            n = remaining
            if remaining > 2:
                n = min(9, remaining)
                for i in range(2, n):
                    if hashes.hash_mod(level[pos + i][0], 4) == 0:
                        n = i + 1
                        break
            parents.append(hashes._merge(level[pos : pos + n]))
            pos += n
        level = parents
    return level[0][0]


def test_streaming_merkle_matches_level_by_level() -> None:
    """merkle_root streams its leaves (~9 nodes per level); it must agree with the whole-level definition."""
    import random

    rng = random.Random(5)
    for n in [*range(0, 120), 1000, 4097]:
        leaves = [(rng.randbytes(32), rng.randint(1, 1 << 17)) for _ in range(n)]
        assert hashes.merkle_root(iter(leaves)) == _root_by_levels(leaves), n
