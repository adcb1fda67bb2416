"""Content-defined chunking (gearhash CDC) identical to the ``hf_xet`` client.

The gear table is the ``DEFAULT_TABLE`` of the Rust ``gearhash`` crate. Rather than carrying a copy of
it, it is read once from the installed ``hf_xet`` extension (a hard dependency of huggingface_hub) and
checked against its published sha256.

The rolling hash only depends on the last 64 bytes, and no cut is allowed before ``MIN_CHUNK`` (> 64)
bytes, so the per-chunk hash reset never matters: the hash at every position is a fixed window function
that numpy computes for a whole block at once (six shift-and-add doubling steps). Cut points are then
picked greedily from the candidate positions. Throughput is ~100 MB/s instead of ~1 MB/s in pure Python.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cove.xet import hashes

TARGET_CHUNK = 65536
MIN_CHUNK = TARGET_CHUNK // 8
MAX_CHUNK = TARGET_CHUNK * 2
MASK = 0xFFFF000000000000
_WINDOW = 64

_TABLE_SHA256 = "e1d3936666d7ae7a977c958e9afcc75f90aaca758ce5fbe4ece61dffefe1912c"
_TABLE_FIRST = 0xB088D3A9E840F559
_BLOCK = 8 << 20
_SCAN_WINDOW = 4 << 20


@functools.cache
def gear_table() -> np.ndarray:
    """The 256-entry gear table as ``uint64``, located inside the ``hf_xet`` binary and verified."""
    import hf_xet

    first = struct.pack("<Q", _TABLE_FIRST)
    for lib in sorted(Path(hf_xet.__file__).parent.glob("*.so")) + sorted(Path(hf_xet.__file__).parent.glob("*.pyd")):
        data = lib.read_bytes()
        pos = data.find(first)
        while pos >= 0:
            raw = data[pos : pos + 256 * 8]
            if hashlib.sha256(raw).hexdigest() == _TABLE_SHA256:
                return np.frombuffer(raw, dtype="<u8").astype(np.uint64)
            pos = data.find(first, pos + 1)
    raise RuntimeError("gearhash table not found in the hf_xet extension; cannot chunk like the client")


def rolling_hashes(window: np.ndarray) -> np.ndarray:
    """Gear hash after each byte of ``window`` (uint8 array), as if started from 0 at its beginning."""
    table = gear_table()
    h = table[window]
    step = 1
    while step < _WINDOW:
        h[step:] += h[:-step] << np.uint64(step)
        step *= 2
    return h


@dataclass(frozen=True)
class Chunk:
    hash: bytes
    size: int


class Chunker:
    """Streaming chunker: feed bytes, get chunk byte strings back; ``finish()`` yields the tail."""

    def __init__(self) -> None:
        self._buf = bytearray()
        # Hash context: the (up to) 63 bytes before _buf, which influence the hash of its first bytes.
        self._ctx = b""
        # Cut candidates inside _buf already computed up to this offset.
        self._scanned = 0
        self._cands: list[int] = []

    def _scan(self) -> None:
        """Find cut candidates in the unscanned part of the buffer, a bounded window at a time."""
        buf = self._buf
        while self._scanned < len(buf):
            done = self._scanned
            stop = min(len(buf), done + _SCAN_WINDOW)
            lead = (self._ctx + bytes(buf[max(0, done - _WINDOW + 1) : done]))[-(_WINDOW - 1) :]
            if not done and not self._ctx:
                lead = b""
            block = np.frombuffer(lead + bytes(buf[done:stop]), dtype=np.uint8)
            h = rolling_hashes(block)
            pos = np.flatnonzero((h & np.uint64(MASK)) == 0) - len(lead)
            self._cands.extend((pos[pos >= 0] + done).tolist())
            self._scanned = stop

    def _cuts(self, final: bool) -> list[int]:
        self._scan()
        cuts: list[int] = []
        start = 0
        cands = self._cands
        n = len(self._buf)
        idx = 0
        while True:
            # first candidate i with i + 1 - start >= MIN_CHUNK
            lo = start + MIN_CHUNK - 1
            while idx < len(cands) and cands[idx] < lo:
                idx += 1
            if idx < len(cands) and cands[idx] + 1 - start <= MAX_CHUNK:
                end = cands[idx] + 1
            elif start + MAX_CHUNK <= n:
                end = start + MAX_CHUNK
            else:
                break
            cuts.append(end)
            start = end
        if final and start < n:
            cuts.append(n)
        return cuts

    def _emit(self, final: bool) -> Iterator[bytes]:
        cuts = self._cuts(final)
        if not cuts:
            return
        prev = 0
        for c in cuts:
            yield bytes(self._buf[prev:c])
            prev = c
        self._ctx = (self._ctx + bytes(self._buf[max(0, prev - _WINDOW + 1) : prev]))[-(_WINDOW - 1) :]
        del self._buf[:prev]
        self._cands = [c - prev for c in self._cands if c >= prev]
        self._scanned -= prev

    def update(self, data: bytes | memoryview) -> Iterator[bytes]:
        self._buf += data
        if len(self._buf) >= 2 * MAX_CHUNK:
            yield from self._emit(final=False)

    def finish(self) -> Iterator[bytes]:
        yield from self._emit(final=True)
        self._buf.clear()
        self._cands.clear()
        self._scanned = 0
        self._ctx = b""


def chunk_boundaries(data: bytes | memoryview) -> list[int]:
    """End offsets of the chunks of an in-memory buffer."""
    ends: list[int] = []
    total = 0
    chunker = Chunker()
    for chunk in list(chunker.update(data)) + list(chunker.finish()):
        total += len(chunk)
        ends.append(total)
    return ends


def iter_chunks(stream: BinaryIO | Iterable[bytes], block: int = _BLOCK) -> Iterator[bytes]:
    """Chunks of a binary stream (or an iterable of byte blocks), in order."""
    chunker = Chunker()
    if hasattr(stream, "read"):
        reader = stream  # type: ignore[assignment]

        def blocks() -> Iterator[bytes]:
            while True:
                b = reader.read(block)
                if not b:
                    return
                yield b

        source: Iterable[bytes] = blocks()
    else:
        source = stream  # type: ignore[assignment]
    for b in source:
        yield from chunker.update(b)
    yield from chunker.finish()


@dataclass(frozen=True)
class FileDigest:
    file_hash: bytes
    sha256: str
    size: int
    chunks: list[Chunk]


def digest_stream(stream: BinaryIO | Iterable[bytes]) -> FileDigest:
    """Chunk a stream and compute its Xet file hash, sha256, size and chunk list."""
    sha = hashlib.sha256()
    chunks: list[Chunk] = []
    size = 0
    for data in iter_chunks(stream):
        sha.update(data)
        size += len(data)
        chunks.append(Chunk(hashes.chunk_hash(data), len(data)))
    return FileDigest(hashes.file_hash((c.hash, c.size) for c in chunks), sha.hexdigest(), size, chunks)


def digest_bytes(data: bytes) -> FileDigest:
    return digest_stream([data])
