"""Serialized xorbs: chunk records (8-byte header + payload), compression schemes, optional footer.

A record is ``version u8 = 0 | compressed_len u24 | scheme u8 | uncompressed_len u24 | payload``.
Schemes: 0 none, 1 LZ4 frame, 2 byte-grouping-4 then LZ4 frame. Clients upload records only; older
writers append a footer starting with ``XETBLOB``, which ends the record stream.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import lz4.frame
import numpy as np

from cove.xet import hashes
from cove.xet.errors import XorbFormatError
from cove.xet.packed import PackedRecords

SCHEME_NONE = 0
SCHEME_LZ4 = 1
SCHEME_BG4_LZ4 = 2
SCHEMES = (SCHEME_NONE, SCHEME_LZ4, SCHEME_BG4_LZ4)

HEADER_LEN = 8
MAX_CHUNK_LEN = 128 * 1024
MAX_COMPRESSED_LEN = 2 * MAX_CHUNK_LEN
MAX_XORB_CHUNKS = 8192
MAX_XORB_UNCOMPRESSED = 64 * 1024 * 1024
MAX_XORB_SERIALIZED = MAX_XORB_UNCOMPRESSED + 64 * 1024
FOOTER_MAGIC = b"XETBLOB"

_TABLE_ENTRY = struct.Struct("<32sII")  # chunk hash, uncompressed length, end offset of the record
_TABLE_DTYPE = np.dtype([("hash", "V32"), ("ulen", "<u4"), ("end", "<u4")])


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """One chunk of a stored xorb: its hash, uncompressed size and record span ``[byte_start, byte_end)``."""

    hash: bytes
    uncompressed_len: int
    byte_start: int
    byte_end: int


@dataclass(frozen=True)
class XorbInfo:
    hash: bytes
    chunks: tuple[ChunkRecord, ...]
    stream_len: int  # bytes of chunk records (the footer, if any, comes after)
    total_len: int  # bytes read, footer included
    has_footer: bool

    @property
    def uncompressed_len(self) -> int:
        return sum(c.uncompressed_len for c in self.chunks)


# --- headers and (de)compression ------------------------------------------------------------------


def parse_header(header: bytes) -> tuple[int, int, int]:
    """``(scheme, compressed_len, uncompressed_len)`` of an 8-byte record header."""
    if len(header) != HEADER_LEN:
        raise XorbFormatError("truncated chunk header")
    if header[0] != 0:
        raise XorbFormatError(f"unsupported chunk record version {header[0]}")
    clen = int.from_bytes(header[1:4], "little")
    scheme = header[4]
    ulen = int.from_bytes(header[5:8], "little")
    if scheme not in SCHEMES:
        raise XorbFormatError(f"unknown compression scheme {scheme}")
    if clen > MAX_COMPRESSED_LEN or ulen > MAX_CHUNK_LEN:
        raise XorbFormatError(f"chunk too large (compressed {clen}, uncompressed {ulen})")
    if ulen == 0:
        raise XorbFormatError("empty chunk")
    if scheme == SCHEME_NONE and clen != ulen:
        raise XorbFormatError("uncompressed chunk with mismatched lengths")
    return scheme, clen, ulen


def make_header(scheme: int, compressed_len: int, uncompressed_len: int) -> bytes:
    return b"\x00" + compressed_len.to_bytes(3, "little") + bytes([scheme]) + uncompressed_len.to_bytes(3, "little")


def bg4_split(data: bytes) -> bytes:
    return data[0::4] + data[1::4] + data[2::4] + data[3::4]


def bg4_join(grouped: bytes | bytearray) -> bytes:
    n = len(grouped)
    out = bytearray(n)
    pos = 0
    for k in range(4):
        size = n // 4 + (1 if n % 4 > k else 0)
        out[k::4] = grouped[pos : pos + size]
        pos += size
    return bytes(out)


def _lz4_decompress(payload: bytes | memoryview, ulen: int) -> bytes:
    try:
        dec = lz4.frame.LZ4FrameDecompressor()
        out = dec.decompress(bytes(payload), max_length=ulen + 1)
    except RuntimeError as exc:
        raise XorbFormatError(f"invalid LZ4 frame: {exc}") from exc
    if len(out) != ulen or not dec.eof:
        raise XorbFormatError(f"LZ4 payload does not decompress to {ulen} bytes")
    return out


def decompress(scheme: int, payload: bytes | memoryview, ulen: int) -> bytes:
    """Uncompressed bytes of a record payload, checked against ``ulen``."""
    if scheme == SCHEME_NONE:
        if len(payload) != ulen:
            raise XorbFormatError("uncompressed chunk with mismatched lengths")
        return bytes(payload)
    if scheme == SCHEME_LZ4:
        return _lz4_decompress(payload, ulen)
    if scheme == SCHEME_BG4_LZ4:
        return bg4_join(_lz4_decompress(payload, ulen))
    raise XorbFormatError(f"unknown compression scheme {scheme}")


def encode_chunk(data: bytes, scheme: int = SCHEME_LZ4) -> bytes:
    """One record for ``data``; falls back to scheme 0 when compression does not shrink it."""
    if not 0 < len(data) <= MAX_CHUNK_LEN:
        raise ValueError("chunk size out of range")
    if scheme == SCHEME_LZ4:
        payload = lz4.frame.compress(data, store_size=False)
    elif scheme == SCHEME_BG4_LZ4:
        payload = lz4.frame.compress(bg4_split(data), store_size=False)
    else:
        payload = data
    if len(payload) >= len(data):
        scheme, payload = SCHEME_NONE, data
    return make_header(scheme, len(payload), len(data)) + payload


def serialize_xorb(chunks: Iterable[bytes], scheme: int = SCHEME_LZ4) -> tuple[bytes, bytes]:
    """``(xorb_hash, body)`` for a list of chunk byte strings (no footer, like hf_xet uploads)."""
    body = bytearray()
    leaves = []
    for data in chunks:
        leaves.append((hashes.chunk_hash(data), len(data)))
        body += encode_chunk(data, scheme)
    return hashes.xorb_hash(leaves), bytes(body)


# --- parsing ----------------------------------------------------------------------------------------


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    while len(data) < n:
        more = stream.read(n - len(data))
        if not more:
            break
        data += more
    return data


def iter_records(stream: BinaryIO, *, max_len: int = MAX_XORB_SERIALIZED) -> Iterator[tuple[int, int, int, bytes]]:
    """Yield ``(offset, record_len, uncompressed_len, chunk_bytes)`` per record until EOF.

    Raises ``FooterReached`` (carrying the offset and the 8 bytes read) when a footer starts.
    """
    offset = 0
    while True:
        header = _read_exact(stream, HEADER_LEN)
        if not header:
            return
        if header.startswith(FOOTER_MAGIC):
            raise FooterReached(offset, header)
        scheme, clen, ulen = parse_header(header)
        if offset + HEADER_LEN + clen > max_len:
            raise XorbFormatError(f"xorb larger than {max_len} bytes")
        payload = _read_exact(stream, clen)
        if len(payload) != clen:
            raise XorbFormatError("truncated chunk payload")
        yield offset, HEADER_LEN + clen, ulen, decompress(scheme, payload, ulen)
        offset += HEADER_LEN + clen


class FooterReached(Exception):  # noqa: N818 - control flow marker
    def __init__(self, offset: int, head: bytes) -> None:
        super().__init__("xorb footer reached")
        self.offset = offset
        self.head = head


def parse_xorb(
    stream: BinaryIO | bytes,
    *,
    expected_hash: bytes | None = None,
    max_len: int = MAX_XORB_SERIALIZED,
) -> XorbInfo:
    """Parse and validate a serialized xorb; every chunk is decompressed and hashed.

    Raises ``XorbFormatError`` on a malformed record, a limit exceeded, a bad footer or a hash
    different from ``expected_hash``.
    """
    if isinstance(stream, bytes | bytearray | memoryview):
        stream = io.BytesIO(stream)
    chunks: list[ChunkRecord] = []
    total_ulen = 0
    footer: bytes | None = None
    stream_len = 0
    try:
        for offset, rec_len, ulen, data in iter_records(stream, max_len=max_len):
            if len(chunks) >= MAX_XORB_CHUNKS:
                raise XorbFormatError(f"xorb has more than {MAX_XORB_CHUNKS} chunks")
            total_ulen += ulen
            if total_ulen > MAX_XORB_UNCOMPRESSED:
                raise XorbFormatError("xorb holds more than 64 MiB of uncompressed data")
            chunks.append(ChunkRecord(hashes.chunk_hash(data), ulen, offset, offset + rec_len))
            stream_len = offset + rec_len
    except FooterReached as reached:
        stream_len = reached.offset
        footer = reached.head + _read_exact(stream, max_len - stream_len)
        if stream.read(1):
            raise XorbFormatError(f"xorb larger than {max_len} bytes") from None
    if not chunks:
        raise XorbFormatError("xorb has no chunks")
    digest = hashes.xorb_hash((c.hash, c.uncompressed_len) for c in chunks)
    if expected_hash is not None and digest != expected_hash:
        raise XorbFormatError(
            f"xorb hash mismatch: body hashes to {hashes.hash_to_hex(digest)}, "
            f"expected {hashes.hash_to_hex(expected_hash)}"
        )
    if footer is not None:
        check_footer(footer, digest, chunks)
    return XorbInfo(digest, tuple(chunks), stream_len, stream_len + len(footer or b""), footer is not None)


def check_footer(footer: bytes, digest: bytes, chunks: Sequence[ChunkRecord]) -> None:
    """Check an appended ``XETBLOB`` footer (V0 or V1) against the parsed records."""
    if len(footer) < 44 or not footer.startswith(FOOTER_MAGIC):
        raise XorbFormatError("truncated xorb footer")
    info_len = int.from_bytes(footer[-4:], "little")
    if info_len != len(footer) - 4:
        raise XorbFormatError("xorb footer length field does not match")
    version = footer[7]
    if footer[8:40] != digest:
        raise XorbFormatError("xorb footer names a different xorb hash")
    n = len(chunks)
    if version == 1:
        if len(footer) != 96 + 40 * n:
            raise XorbFormatError("xorb footer size does not match the chunk count")
        pos = 40
        if footer[pos : pos + 7] != b"XBLBHSH" or int.from_bytes(footer[pos + 8 : pos + 12], "little") != n:
            raise XorbFormatError("bad xorb footer hash section")
        pos += 12
        for c in chunks:
            if footer[pos : pos + 32] != c.hash:
                raise XorbFormatError("xorb footer chunk hashes do not match the records")
            pos += 32
        if footer[pos : pos + 7] != b"XBLBBND" or int.from_bytes(footer[pos + 8 : pos + 12], "little") != n:
            raise XorbFormatError("bad xorb footer boundary section")
        pos += 12
        ends = struct.unpack_from(f"<{n}I", footer, pos)
        if list(ends) != [c.byte_end for c in chunks]:
            raise XorbFormatError("xorb footer chunk boundaries do not match the records")
    elif version == 0:
        if int.from_bytes(footer[40:44], "little") != n:
            raise XorbFormatError("xorb footer chunk count does not match")
    else:
        raise XorbFormatError(f"unsupported xorb footer version {version}")


# --- chunk tables (compact per-xorb metadata) -------------------------------------------------------


def pack_chunk_table(chunks: Sequence[ChunkRecord]) -> bytes:
    """Compact metadata: 40 bytes per chunk (hash, uncompressed length, record end offset)."""
    return b"".join(_TABLE_ENTRY.pack(c.hash, c.uncompressed_len, c.byte_end) for c in chunks)


class ChunkTable(PackedRecords[ChunkRecord]):
    """A xorb's chunk table kept packed: one bytes object of 40-byte entries, not one object per chunk.

    Indexing yields ``ChunkRecord``s made on demand; the range helpers (``unpacked``, ``leaves``,
    ``hash_bytes``) work on the packed form, so planning or validating a large file holds a few bytes objects
    per xorb instead of ~17,000 Python objects per GiB.
    """

    __slots__ = ("_blob", "_ends", "_ulens")

    def __init__(self, blob: bytes) -> None:
        if len(blob) % _TABLE_ENTRY.size:
            raise XorbFormatError("corrupt chunk table")
        super().__init__(np.frombuffer(blob, dtype=_TABLE_DTYPE))
        self._blob = blob
        self._ulens = self.rows["ulen"]
        self._ends = self.rows["end"]

    def _item(self, i: int) -> ChunkRecord:
        return ChunkRecord(self.hash(i), int(self._ulens[i]), self.byte_start(i), int(self._ends[i]))

    def __eq__(self, other: object) -> bool:
        return self._blob == other._blob if isinstance(other, ChunkTable) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def hash(self, i: int) -> bytes:
        at = i * _TABLE_ENTRY.size
        return self._blob[at : at + 32]

    def byte_start(self, i: int) -> int:
        return int(self._ends[i - 1]) if i else 0

    def byte_end(self, i: int) -> int:
        return int(self._ends[i])

    def unpacked(self, start: int, end: int) -> int:
        """Uncompressed bytes of chunks ``[start, end)``."""
        return int(self._ulens[start:end].sum(dtype=np.uint64))

    @property
    def sizes(self) -> np.ndarray:
        """Uncompressed lengths of all chunks (a view): what a shard's xorb entry lists as chunk sizes."""
        return self._ulens

    def ulens(self, start: int, end: int) -> np.ndarray:
        """Uncompressed lengths of chunks ``[start, end)`` (a view)."""
        return self._ulens[start:end]

    def hash_bytes(self, start: int = 0, end: int | None = None) -> bytes:
        """Hashes of chunks ``[start, end)``, concatenated (what a verification hash covers)."""
        return self.rows["hash"][start:end].tobytes()

    def same_chunks(self, hash_bytes: bytes, ulens: np.ndarray) -> bool:
        """Whether this table lists exactly these chunk hashes (concatenated) and uncompressed lengths."""
        return len(ulens) == len(self) and hash_bytes == self.hash_bytes() and bool(np.array_equal(ulens, self._ulens))

    def leaves(self, start: int, end: int) -> Iterator[tuple[bytes, int]]:
        """``(chunk hash, uncompressed length)`` of chunks ``[start, end)``: merkle leaves."""
        for i in range(start, end):
            yield self.hash(i), int(self._ulens[i])


def unpack_chunk_table(blob: bytes) -> ChunkTable:
    """The packed table of :func:`pack_chunk_table`, readable as a sequence of ``ChunkRecord``."""
    return ChunkTable(blob)


# --- reading stored chunks ----------------------------------------------------------------------------


def iter_chunk_bytes(stream: BinaryIO, count: int) -> Iterator[bytes]:
    """Decompressed bytes of ``count`` consecutive records read from ``stream`` (positioned at a record)."""
    for _ in range(count):
        scheme, clen, ulen = parse_header(_read_exact(stream, HEADER_LEN))
        payload = _read_exact(stream, clen)
        if len(payload) != clen:
            raise XorbFormatError("truncated chunk payload")
        yield decompress(scheme, payload, ulen)


def decode_range(body: bytes, chunks: Sequence[ChunkRecord], start: int, end: int) -> bytes:
    """Uncompressed bytes of chunks ``[start, end)`` of an in-memory xorb body."""
    if not 0 <= start < end <= len(chunks):
        raise XorbFormatError("chunk range out of bounds")
    stream = io.BytesIO(body)
    stream.seek(chunks[start].byte_start)
    return b"".join(iter_chunk_bytes(stream, end - start))
