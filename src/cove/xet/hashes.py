"""Xet hashes: chunk, merkle (xorb), file, verification-range and dedup HMAC hashes.

Hashes are 32 raw bytes. Their string form (URLs, JSON, ``X-Xet-Hash``, merkle node text) reads each
8-byte group as a little-endian u64 and prints it as ``%016x``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from blake3 import blake3

from cove.xet.errors import HashFormatError

HASH_LEN = 32
ZERO_HASH = bytes(HASH_LEN)

DATA_KEY = bytes(
    [102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28,
     157, 228, 33, 16, 155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41]
)  # fmt: skip
INTERNAL_NODE_KEY = bytes(
    [1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230,
     93, 221, 83, 111, 55, 199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63]
)  # fmt: skip
VERIFICATION_KEY = bytes(
    [127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243,
     164, 205, 38, 213, 181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195]
)  # fmt: skip

# Merkle tree shape: a node closes when a child's hash is 0 mod 4 (after at least 3), at most 9 children.
_MEAN_BRANCHING = 4
_MAX_CHILDREN = 9

_HEX = frozenset("0123456789abcdefABCDEF")


def hash_to_hex(h: bytes) -> str:
    """String form of a raw 32-byte hash (LE u64 words printed as ``%016x``)."""
    if len(h) != HASH_LEN:
        raise HashFormatError(f"a hash has {HASH_LEN} bytes, got {len(h)}")
    return h[0:8][::-1].hex() + h[8:16][::-1].hex() + h[16:24][::-1].hex() + h[24:32][::-1].hex()


def hex_to_hash(s: str) -> bytes:
    """Raw bytes of a hash string; accepts upper case. Raises ``HashFormatError``."""
    if not isinstance(s, str) or len(s) != 64 or not _HEX.issuperset(s):
        raise HashFormatError(f"not a 64-hex Xet hash: {str(s)[:80]!r}")
    return b"".join(bytes.fromhex(s[i : i + 16])[::-1] for i in range(0, 64, 16))


def is_hash_hex(s: str) -> bool:
    return isinstance(s, str) and len(s) == 64 and _HEX.issuperset(s)


def hash_mod(h: bytes, n: int) -> int:
    """``hash % n`` as the client computes it: the last u64 word (bytes 24..32, LE) modulo n."""
    return int.from_bytes(h[24:32], "little") % n


def keyed_hash(key: bytes, data: bytes | memoryview) -> bytes:
    return blake3(data, key=key).digest()


def chunk_hash(data: bytes | memoryview) -> bytes:
    """Hash of one uncompressed chunk."""
    return blake3(data, key=DATA_KEY).digest()


def _merge(nodes: Sequence[tuple[bytes, int]]) -> tuple[bytes, int]:
    text = "".join(f"{hash_to_hex(h)} : {size}\n" for h, size in nodes)
    return keyed_hash(INTERNAL_NODE_KEY, text.encode("ascii")), sum(size for _, size in nodes)


def _cut(nodes: Sequence[tuple[bytes, int]], final: bool) -> int:
    """How many of the leading ``nodes`` close the next parent; 0 while more nodes are needed to tell.

    A parent closes after the first child at index >= 2 whose hash is 0 mod 4, or at 9 children; at the
    end of a level, the last one or two nodes close it whatever their hashes.
    """
    if len(nodes) <= 2:
        return len(nodes) if final else 0
    end = min(_MAX_CHILDREN, len(nodes))
    for i in range(2, end):
        if hash_mod(nodes[i][0], _MEAN_BRANCHING) == 0:
            return i + 1
    return end if final or len(nodes) >= _MAX_CHILDREN else 0


class _MerkleBuilder:
    """Computes the aggregated hash of a stream of leaves, keeping at most ~9 nodes per tree level.

    Same result as merging whole levels one after the other (the definition), but without holding a
    level: a file of a few GiB has tens of thousands of leaves.
    """

    def __init__(self) -> None:
        self.levels: list[list[tuple[bytes, int]]] = []
        self.counts: list[int] = []

    def add(self, node: tuple[bytes, int], level: int = 0) -> None:
        if level == len(self.levels):
            self.levels.append([])
            self.counts.append(0)
        pending = self.levels[level]
        pending.append(node)
        self.counts[level] += 1
        while n := _cut(pending, final=False):
            parent = _merge(pending[:n])
            del pending[:n]
            self.add(parent, level + 1)

    def root(self) -> bytes:
        level = 0
        while level < len(self.levels):
            pending = self.levels[level]
            if self.counts[level] == 1 and level == len(self.levels) - 1:
                return pending[0][0]
            while pending:
                n = _cut(pending, final=True)
                parent = _merge(pending[:n])
                del pending[:n]
                self.add(parent, level + 1)
            level += 1
        return ZERO_HASH

    @classmethod
    def over(cls, leaves: Iterable[tuple[bytes, int]]) -> _MerkleBuilder:
        builder = cls()
        for leaf in leaves:
            builder.add(leaf)
        return builder


def merkle_root(leaves: Iterable[tuple[bytes, int]]) -> bytes:
    """Aggregated hash of ``(hash, size)`` leaves; 32 zero bytes for no leaves. Streams its input."""
    return _MerkleBuilder.over(leaves).root()


def xorb_hash(chunks: Iterable[tuple[bytes, int]]) -> bytes:
    """Xorb hash from its chunks' ``(chunk_hash, uncompressed_len)``."""
    return merkle_root(chunks)


def file_hash(chunks: Iterable[tuple[bytes, int]], salt: bytes = ZERO_HASH) -> bytes:
    """File hash from all its chunks in order; an empty file hashes to 32 zero bytes."""
    builder = _MerkleBuilder.over(chunks)
    return keyed_hash(salt, builder.root()) if builder.counts else ZERO_HASH


def verification_hash(chunk_hashes: Iterable[bytes]) -> bytes:
    """Range verification hash of a term: keyed blake3 over the concatenated raw chunk hashes."""
    hasher = blake3(key=VERIFICATION_KEY)
    for h in chunk_hashes:
        hasher.update(h)
    return hasher.digest()


def dedup_hmac(key: bytes, h: bytes) -> bytes:
    """Chunk hash as stored in a dedup shard with a ``chunk_hash_hmac_key`` (keyed blake3, not RFC 2104)."""
    return keyed_hash(key, h)


def sha256_to_raw(sha256_hex: str) -> bytes:
    """sha256 hex digest → the 32 bytes stored in a shard's ``FileMetadataExt``."""
    return hex_to_hash(sha256_hex)


def raw_to_sha256(raw: bytes) -> str:
    """``FileMetadataExt`` bytes → ordinary lowercase sha256 hex digest."""
    return hash_to_hex(raw)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
