"""Shard (MDB) files: parse uploads strictly, serialize full shards (lookup tables + footer).

Layout: 48-byte header, file-info section, xorb-info section (each a run of 48-byte entries closed by a
bookend), then, in full shards only, three lookup tables and a 200-byte footer. All integers are LE.
"""

from __future__ import annotations

import io
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from cove.xet import hashes
from cove.xet.errors import ShardFormatError
from cove.xet.packed import PackedRecords
from cove.xet.xorb import ChunkTable

TAG = b"HFRepoMetaData" + bytes([0, 85, 105, 103, 69, 106, 123, 129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169])
VERSION = 2
HEADER_LEN = 48
ENTRY_LEN = 48
FOOTER_LEN = 200
FOOTER_VERSION = 1
BOOKEND = b"\xff" * 32 + bytes(16)

FLAG_VERIFICATION = 1 << 31
FLAG_METADATA_EXT = 1 << 30
CHUNK_FLAG_GLOBAL_DEDUP = 1 << 31
MAX_SHARD_LEN = 64 * 1024 * 1024 + 64 * 1024
U32_MAX = 0xFFFFFFFF
U64_MAX = 0xFFFFFFFFFFFFFFFF

_HEADER = struct.Struct("<32sQQ")
_FILE_HEADER = struct.Struct("<32sIIQ")
_FILE_ENTRY = struct.Struct("<32sIIII")
_XORB_HEADER = struct.Struct("<32sIIII")
_LOOKUP = struct.Struct("<QI")
_FOOTER_HEAD = struct.Struct("<9Q32sQQ6Q4Q")
_TERM = struct.Struct("<32sIII")


@dataclass(frozen=True, slots=True)
class FileTerm:
    """A reconstruction term: chunks ``[chunk_start, chunk_end)`` of one xorb."""

    xorb_hash: bytes
    unpacked_len: int
    chunk_start: int
    chunk_end: int
    flags: int = 0


@dataclass
class FileEntry:
    file_hash: bytes
    terms: list[FileTerm]
    verification: list[bytes] | None = None
    sha256: bytes | None = None  # raw FileMetadataExt bytes (string form == ordinary sha256 hex)
    flags: int = 0

    @property
    def size(self) -> int:
        return sum(t.unpacked_len for t in self.terms)

    @property
    def sha256_hex(self) -> str | None:
        return None if self.sha256 is None else hashes.raw_to_sha256(self.sha256)


@dataclass(frozen=True, slots=True)
class XorbChunkEntry:
    hash: bytes
    offset: int  # cumulative uncompressed offset inside the xorb
    size: int
    flags: int = 0


# A xorb section chunk entry (48 bytes) and a chunk lookup entry (16 bytes), as numpy record types.
_CHUNK_DTYPE = np.dtype([("hash", "V32"), ("offset", "<u4"), ("size", "<u4"), ("flags", "<u4"), ("unused", "<u4")])
_CHUNK_LOOKUP_DTYPE = np.dtype([("key", "<u8"), ("xorb", "<u4"), ("chunk", "<u4")])


class ShardChunks(PackedRecords[XorbChunkEntry]):
    """The chunk entries of one xorb in a parsed shard, left packed in the shard body (48 bytes each).

    Indexing yields ``XorbChunkEntry``s made on demand; validation reads the columns as arrays, so a
    shard for a large file is checked without one Python object per chunk.
    """

    __slots__ = ("_view",)

    def __init__(self, view: memoryview) -> None:
        super().__init__(np.frombuffer(view, dtype=_CHUNK_DTYPE))
        self._view = view

    def _item(self, i: int) -> XorbChunkEntry:
        row = self.rows[i]
        return XorbChunkEntry(self.hash(i), int(row["offset"]), int(row["size"]), int(row["flags"]))

    def hash(self, i: int) -> bytes:
        return bytes(self._view[i * ENTRY_LEN : i * ENTRY_LEN + 32])

    @property
    def sizes(self) -> np.ndarray:
        return self.rows["size"]

    def hash_bytes(self) -> bytes:
        """All chunk hashes, concatenated."""
        return self.rows["hash"].tobytes()

    def dedup_eligible(self, modulus: int) -> list[int]:
        """Indexes of chunks eligible for global dedup: hash 0 mod ``modulus`` or the global-dedup flag."""
        last_word = np.frombuffer(self.hash_bytes(), dtype="<u8")[3::4]
        flagged = (self.rows["flags"] & np.uint32(CHUNK_FLAG_GLOBAL_DEDUP)) != 0
        return np.flatnonzero((last_word % np.uint64(modulus) == 0) | flagged).tolist()


@dataclass
class XorbEntry:
    xorb_hash: bytes
    chunks: Sequence[XorbChunkEntry]
    num_bytes_on_disk: int = 0
    flags: int = 0

    @property
    def num_bytes(self) -> int:
        if isinstance(self.chunks, (ShardChunks, ChunkTable)):  # packed entries
            return int(self.chunks.sizes.sum(dtype=np.uint64))
        return sum(c.size for c in self.chunks)


@dataclass
class ShardFooter:
    file_info_offset: int
    xorb_info_offset: int
    file_lookup_offset: int
    file_lookup_num_entry: int
    xorb_lookup_offset: int
    xorb_lookup_num_entry: int
    chunk_lookup_offset: int
    chunk_lookup_num_entry: int
    chunk_hash_hmac_key: bytes
    creation_timestamp: int
    key_expiry: int
    stored_bytes_on_disk: int
    materialized_bytes: int
    stored_bytes: int
    footer_offset: int


@dataclass
class Shard:
    files: list[FileEntry] = field(default_factory=list)
    xorbs: list[XorbEntry] = field(default_factory=list)
    footer: ShardFooter | None = None
    length: int = 0  # bytes up to the end of the xorb-info bookend


@dataclass(frozen=True)
class ShardLimits:
    max_len: int = MAX_SHARD_LEN
    max_files: int = 100_000
    max_terms: int = 500_000
    max_xorbs: int = 100_000
    max_xorb_chunks: int = 8192
    max_chunk_entries: int = 1_000_000


DEFAULT_LIMITS = ShardLimits()


class ShardReader:
    """An uploaded shard read section by section from a seekable stream, checked as it goes.

    The file section is read whole (a few 48-byte entries per xorb range of each file); the xorb section is
    yielded one xorb at a time, so a shard describing a huge file is checked holding one xorb's chunk entries
    (at most ``max_xorb_chunks`` × 48 bytes), never the body. Call ``files()``, iterate ``xorbs()`` to the
    end, then ``finish()``; each raises ``ShardFormatError`` on the first defect.
    """

    def __init__(self, stream: BinaryIO, size: int, limits: ShardLimits = DEFAULT_LIMITS) -> None:
        if size > limits.max_len:
            raise ShardFormatError(f"shard larger than {limits.max_len} bytes")
        if size < HEADER_LEN:
            raise ShardFormatError("shard truncated: no header")
        self._stream = stream
        self._size = size
        self._limits = limits
        self.pos = 0
        tag, version, footer_size = _HEADER.unpack(self._read(HEADER_LEN, "header"))
        if tag != TAG:
            raise ShardFormatError("not a shard: bad header tag")
        if version != VERSION:
            raise ShardFormatError(f"unsupported shard version {version}")
        if footer_size not in (0, FOOTER_LEN):
            raise ShardFormatError(f"unexpected shard footer size {footer_size}")
        self._footer_size = footer_size
        self.length = 0  # bytes up to the end of the xorb-info bookend, once ``xorbs()`` is done

    def _read(self, n: int, what: str) -> bytes:
        data = self._stream.read(n) if self.pos + n <= self._size else b""
        if len(data) != n:
            raise ShardFormatError(f"shard truncated while reading {what} at offset {self.pos}")
        self.pos += n
        return data

    def _head(self, what: str) -> bytes | None:
        """The next section entry, or None at the section's bookend."""
        head = self._read(ENTRY_LEN, what)
        if head[:32] != BOOKEND[:32]:
            return head
        if head != BOOKEND:
            raise ShardFormatError(f"corrupt bookend after {what}s")
        return None

    def files(self) -> list[FileEntry]:
        limits = self._limits
        files: list[FileEntry] = []
        n_terms = 0
        verification_seen: bool | None = None
        while (head := self._head("file header")) is not None:
            if len(files) >= limits.max_files:
                raise ShardFormatError(f"shard lists more than {limits.max_files} files")
            file_hash, flags, num_entries, _unused = _FILE_HEADER.unpack(head)
            n_terms += num_entries
            if n_terms > limits.max_terms:
                raise ShardFormatError(f"shard has more than {limits.max_terms} terms")
            terms: list[FileTerm] = []
            for xh, xflags, ulen, start, end in _FILE_ENTRY.iter_unpack(
                self._read(num_entries * ENTRY_LEN, "file term")
            ):
                if not start < end:
                    raise ShardFormatError(f"empty or reversed chunk range [{start}, {end})")
                if ulen == 0:
                    raise ShardFormatError("term with zero unpacked bytes")
                terms.append(FileTerm(xh, ulen, start, end, xflags))
            has_verification = bool(flags & FLAG_VERIFICATION)
            if verification_seen is None:
                verification_seen = has_verification
            elif verification_seen != has_verification:
                raise ShardFormatError("verification entries must be present for all files or none")
            verification = None
            if has_verification:
                raw = self._read(num_entries * ENTRY_LEN, "verification entry")
                verification = [raw[i : i + 32] for i in range(0, len(raw), ENTRY_LEN)]
            sha256 = self._read(ENTRY_LEN, "metadata ext")[:32] if flags & FLAG_METADATA_EXT else None
            if num_entries == 0 and file_hash != hashes.ZERO_HASH:
                raise ShardFormatError("a file without terms must have the zero hash")
            files.append(FileEntry(file_hash, terms, verification, sha256, flags))
        return files

    def xorbs(self) -> Iterator[XorbEntry]:
        limits = self._limits
        n_xorbs = n_chunks = 0
        while (head := self._head("xorb header")) is not None:
            if n_xorbs >= limits.max_xorbs:
                raise ShardFormatError(f"shard lists more than {limits.max_xorbs} xorbs")
            n_xorbs += 1
            xh, xflags, num_entries, num_bytes, on_disk = _XORB_HEADER.unpack(head)
            if num_entries == 0 or num_entries > limits.max_xorb_chunks:
                raise ShardFormatError(f"xorb entry with {num_entries} chunks")
            n_chunks += num_entries
            if n_chunks > limits.max_chunk_entries:
                raise ShardFormatError(f"shard has more than {limits.max_chunk_entries} chunk entries")
            chunks = ShardChunks(memoryview(self._read(num_entries * ENTRY_LEN, "xorb chunks")))
            sizes = chunks.sizes.astype(np.uint64)
            ends = np.cumsum(sizes)
            if not sizes.all() or not np.array_equal(chunks.rows["offset"], ends - sizes):
                raise ShardFormatError("xorb chunk offsets are not contiguous")
            if int(ends[-1]) != num_bytes:
                raise ShardFormatError("xorb entry byte count does not match its chunks")
            yield XorbEntry(xh, chunks, on_disk, xflags)
        self.length = self.pos

    def finish(self) -> ShardFooter | None:
        """The footer of a full shard (checked against the sections), or None for the upload form."""
        if not self._footer_size:
            if self.pos != self._size:
                raise ShardFormatError(f"{self._size - self.pos} trailing bytes after the shard sections")
            return None
        if self._size < HEADER_LEN + 2 * ENTRY_LEN + FOOTER_LEN:
            raise ShardFormatError("shard truncated: no footer")
        self._stream.seek(self._size - FOOTER_LEN)
        footer = _parse_footer(self._stream.read(FOOTER_LEN), self._size - FOOTER_LEN)
        if footer.xorb_info_offset > self.length or footer.file_info_offset != HEADER_LEN:
            raise ShardFormatError("shard footer offsets do not match the sections")
        return footer


def parse_shard(data: bytes | memoryview, limits: ShardLimits = DEFAULT_LIMITS) -> Shard:
    """Parse a whole shard in memory (upload form without footer, or full form). Raises ``ShardFormatError``."""
    reader = ShardReader(io.BytesIO(data), len(data), limits)
    files = reader.files()
    xorbs = list(reader.xorbs())
    footer = reader.finish()
    return Shard(files, xorbs, footer, reader.length)


def _parse_footer(raw: bytes, start: int) -> ShardFooter:
    f = _FOOTER_HEAD.unpack_from(raw, 0)
    if f[0] != FOOTER_VERSION:
        raise ShardFormatError(f"unsupported shard footer version {f[0]}")
    footer = ShardFooter(
        file_info_offset=f[1],
        xorb_info_offset=f[2],
        file_lookup_offset=f[3],
        file_lookup_num_entry=f[4],
        xorb_lookup_offset=f[5],
        xorb_lookup_num_entry=f[6],
        chunk_lookup_offset=f[7],
        chunk_lookup_num_entry=f[8],
        chunk_hash_hmac_key=f[9],
        creation_timestamp=f[10],
        key_expiry=f[11],
        stored_bytes_on_disk=f[18],
        materialized_bytes=f[19],
        stored_bytes=f[20],
        footer_offset=f[21],
    )
    if footer.footer_offset != start:
        raise ShardFormatError("shard footer offset field is wrong")
    return footer


# --- serialization ---------------------------------------------------------------------------------


def _file_section(files: Sequence[FileEntry]) -> tuple[bytes, list[tuple[int, int]]]:
    out = bytearray()
    lookup: list[tuple[int, int]] = []
    with_verification = any(f.verification is not None for f in files)
    for f in files:
        lookup.append((int.from_bytes(f.file_hash[:8], "little"), len(out) // ENTRY_LEN))
        flags = (FLAG_VERIFICATION if with_verification else 0) | (FLAG_METADATA_EXT if f.sha256 else 0)
        out += _FILE_HEADER.pack(f.file_hash, flags, len(f.terms), 0)
        for t in f.terms:
            out += _FILE_ENTRY.pack(t.xorb_hash, t.flags, t.unpacked_len, t.chunk_start, t.chunk_end)
        if with_verification:
            if f.verification is None or len(f.verification) != len(f.terms):
                raise ValueError("verification hashes must be given for every term of every file")
            for v in f.verification:
                out += v + bytes(16)
        if f.sha256:
            out += f.sha256 + bytes(16)
    out += BOOKEND
    return bytes(out), lookup


def _chunk_columns(chunks: Sequence[XorbChunkEntry]) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Concatenated chunk hashes, sizes and flags of a xorb entry (packed entries are read without a loop)."""
    if isinstance(chunks, ShardChunks):
        return chunks.hash_bytes(), chunks.sizes.astype(np.uint32), chunks.rows["flags"].astype(np.uint32)
    if isinstance(chunks, ChunkTable):  # a stored xorb's table: hashes and uncompressed sizes, no flags
        return chunks.hash_bytes(), chunks.sizes.astype(np.uint32), np.zeros(len(chunks), dtype=np.uint32)
    return (
        b"".join(c.hash for c in chunks),
        np.fromiter((c.size for c in chunks), dtype=np.uint32, count=len(chunks)),
        np.fromiter((c.flags for c in chunks), dtype=np.uint32, count=len(chunks)),
    )


def _keyed(key: bytes, hash_bytes: bytes) -> bytes:
    """Each 32-byte hash of ``hash_bytes`` replaced by its dedup HMAC (written in place, no list of digests)."""
    out = bytearray(len(hash_bytes))
    for at in range(0, len(hash_bytes), hashes.HASH_LEN):
        out[at : at + hashes.HASH_LEN] = hashes.dedup_hmac(key, hash_bytes[at : at + hashes.HASH_LEN])
    return bytes(out)


def serialize_shard(
    files: Sequence[FileEntry] = (),
    xorbs: Iterable[XorbEntry] = (),
    *,
    full: bool = True,
    hmac_key: bytes | None = None,
    creation_timestamp: int | None = None,
    key_expiry: int = U64_MAX,
) -> bytes:
    """Serialize a shard. ``full=False`` gives the upload form (no lookup tables, no footer).

    With ``hmac_key`` the chunk hashes of the xorb section (and the chunk lookup) are keyed with it, as
    in global-dedup answers.
    """
    return b"".join(
        iter_shard(files, xorbs, full=full, hmac_key=hmac_key, creation_timestamp=creation_timestamp,
                   key_expiry=key_expiry)
    )


def iter_shard(
    files: Sequence[FileEntry] = (),
    xorbs: Iterable[XorbEntry] = (),
    *,
    full: bool = True,
    hmac_key: bytes | None = None,
    creation_timestamp: int | None = None,
    key_expiry: int = U64_MAX,
) -> Iterator[bytes]:
    """The bytes of :func:`serialize_shard`, piece by piece: one piece per xorb entry, taken from ``xorbs``
    only when needed, so a large answer is sent holding 16 bytes per chunk (its lookup entry) at most."""
    head = _HEADER.pack(TAG, VERSION, FOOTER_LEN if full else 0)
    file_bytes, file_lookup = _file_section(files)
    yield head + file_bytes
    xorb_info_offset = length = len(head) + len(file_bytes)
    xorb_lookup: list[tuple[int, int]] = []
    chunk_keys: list[np.ndarray] = []  # chunk lookup columns, one array per xorb (no object per chunk)
    chunk_xorbs: list[np.ndarray] = []
    chunk_indexes: list[np.ndarray] = []
    stored = on_disk = 0
    pos = 0
    for x in xorbs:
        hash_bytes, sizes, flags = _chunk_columns(x.chunks)
        if hmac_key:
            hash_bytes = _keyed(hmac_key, hash_bytes)
        n = len(sizes)
        rows = np.zeros(n, dtype=_CHUNK_DTYPE)
        rows["hash"] = np.frombuffer(hash_bytes, dtype="V32")
        ends = np.cumsum(sizes, dtype=np.uint64)
        rows["offset"] = ends - sizes
        rows["size"] = sizes
        rows["flags"] = flags
        num_bytes = int(ends[-1]) if n else 0
        xorb_lookup.append((int.from_bytes(x.xorb_hash[:8], "little"), pos))
        piece = _XORB_HEADER.pack(x.xorb_hash, x.flags, n, num_bytes, x.num_bytes_on_disk) + rows.tobytes()
        length += len(piece)
        yield piece
        stored += num_bytes
        on_disk += x.num_bytes_on_disk
        chunk_keys.append(np.frombuffer(hash_bytes, dtype="<u8")[0::4].copy())  # not a view on the hashes
        chunk_xorbs.append(np.full(n, pos, dtype=np.uint32))
        chunk_indexes.append(np.arange(n, dtype=np.uint32))
        pos += 1 + n
    if not full:
        yield BOOKEND
        return
    tail = bytearray(BOOKEND)
    file_lookup_offset = length + len(tail)
    for key, idx in sorted(file_lookup):
        tail += _LOOKUP.pack(key, idx)
    xorb_lookup_offset = length + len(tail)
    for key, idx in sorted(xorb_lookup):
        tail += _LOOKUP.pack(key, idx)
    chunk_lookup_offset = length + len(tail)
    yield bytes(tail)
    length += len(tail)
    n_chunks = sum(len(k) for k in chunk_keys)
    if n_chunks:
        lookup = np.zeros(n_chunks, dtype=_CHUNK_LOOKUP_DTYPE)
        lookup["key"] = np.concatenate(chunk_keys)
        del chunk_keys[:]
        lookup["xorb"] = np.concatenate(chunk_xorbs)
        lookup["chunk"] = np.concatenate(chunk_indexes)
        del chunk_xorbs[:], chunk_indexes[:]
        lookup.sort(order=["key", "xorb", "chunk"])
        length += lookup.nbytes
        yield lookup.tobytes()
        del lookup
    materialized = sum(f.size for f in files)
    yield _FOOTER_HEAD.pack(
        FOOTER_VERSION,
        HEADER_LEN,
        xorb_info_offset,
        file_lookup_offset,
        len(file_lookup),
        xorb_lookup_offset,
        len(xorb_lookup),
        chunk_lookup_offset,
        n_chunks,
        hmac_key or bytes(32),
        int(time.time()) if creation_timestamp is None else creation_timestamp,
        key_expiry,
        0,
        0,
        0,
        0,
        0,
        0,
        on_disk,
        materialized,
        stored,
        length,
    )


def pack_terms(terms: Sequence[FileTerm]) -> bytes:
    """Compact storage of a file's terms: 44 bytes each (xorb hash, unpacked bytes, chunk range)."""
    return b"".join(_TERM.pack(t.xorb_hash, t.unpacked_len, t.chunk_start, t.chunk_end) for t in terms)


def unpack_terms(blob: bytes) -> list[FileTerm]:
    if len(blob) % _TERM.size:
        raise ShardFormatError("corrupt packed terms")
    return [FileTerm(h, n, a, b) for h, n, a, b in _TERM.iter_unpack(blob)]
