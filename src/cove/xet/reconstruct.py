"""Reconstruction planning (which chunks of which xorbs cover a byte range) and streaming.

The plan is shared by the reconstruction API (terms + fetch byte ranges for the client) and by the
server-side ``GET /resolve`` of a Xet file, which decodes the chunks itself, one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from cove.xet.errors import ReconstructionError
from cove.xet.shard import FileTerm
from cove.xet.xorb import ChunkTable, iter_chunk_bytes

ChunkTableLookup = Callable[[bytes], ChunkTable]


@dataclass(frozen=True, slots=True)
class PlannedTerm:
    xorb_hash: bytes
    chunk_start: int
    chunk_end: int
    unpacked_len: int  # whole chunks, also for trimmed first/last terms
    byte_start: int  # where chunk ``chunk_start``'s record starts in the xorb
    byte_end: int  # where chunk ``chunk_end - 1``'s record ends


@dataclass(frozen=True, slots=True)
class FetchRange:
    """Merged chunk range of one xorb and its record bytes ``[byte_start, byte_end)`` (end exclusive)."""

    chunk_start: int
    chunk_end: int
    byte_start: int
    byte_end: int


@dataclass
class Plan:
    start: int  # requested file range [start, end)
    end: int
    file_size: int
    offset_into_first_range: int
    terms: list[PlannedTerm] = field(default_factory=list)
    fetches: dict[bytes, list[FetchRange]] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return self.end - self.start


def _check_term(t: FileTerm, table: ChunkTable) -> None:
    if not 0 <= t.chunk_start < t.chunk_end <= len(table):
        raise ReconstructionError("term chunk range outside its xorb")
    if table.unpacked(t.chunk_start, t.chunk_end) != t.unpacked_len:
        raise ReconstructionError("term unpacked length does not match its chunks")


def check_terms(terms: Sequence[FileTerm], lookup: ChunkTableLookup) -> int:
    """Validate terms against the stored chunk tables; return the file size."""
    size = 0
    for t in terms:
        _check_term(t, lookup(t.xorb_hash))
        size += t.unpacked_len
    return size


def plan_range(terms: Sequence[FileTerm], lookup: ChunkTableLookup, start: int, end: int, file_size: int) -> Plan:
    """Plan the reconstruction of file bytes ``[start, end)``; ``0 <= start < end <= file_size``."""
    if not 0 <= start < end <= file_size:
        raise ReconstructionError(f"range [{start}, {end}) outside a file of {file_size} bytes")
    plan = Plan(start, end, file_size, 0)
    pos = 0
    first = True
    for t in terms:
        term_end = pos + t.unpacked_len
        if term_end <= start:
            pos = term_end
            continue
        if pos >= end:
            break
        table = lookup(t.xorb_hash)
        _check_term(t, table)
        c0, c1, unpacked = t.chunk_start, t.chunk_end, t.unpacked_len
        if pos < start or term_end > end:  # a first or last term, cut by the range: find its chunks
            chunk_ends = pos + np.cumsum(table.ulens(c0, c1), dtype=np.int64)
            lo = int(np.searchsorted(chunk_ends, start, side="right"))  # first chunk ending after start
            hi = int(np.searchsorted(chunk_ends, end, side="left")) + 1  # first chunk reaching end, included
            hi = min(hi, c1 - c0)
            chunk_start = pos if lo == 0 else int(chunk_ends[lo - 1])
            c0, c1 = t.chunk_start + lo, t.chunk_start + hi
            unpacked = int(chunk_ends[hi - 1]) - chunk_start
            if first:
                plan.offset_into_first_range = start - chunk_start
        elif first:
            plan.offset_into_first_range = start - pos
        first = False
        plan.terms.append(PlannedTerm(t.xorb_hash, c0, c1, unpacked, table.byte_start(c0), table.byte_end(c1 - 1)))
        pos = term_end
    if pos < end:
        raise ReconstructionError("terms cover fewer bytes than the file size")
    by_xorb: dict[bytes, list[PlannedTerm]] = {}
    for pt in plan.terms:
        by_xorb.setdefault(pt.xorb_hash, []).append(pt)
    for xh, planned in by_xorb.items():
        merged: list[FetchRange] = []
        for pt in sorted(planned, key=lambda p: (p.chunk_start, p.chunk_end)):
            last = merged[-1] if merged else None
            if last is not None and pt.chunk_start <= last.chunk_end:  # record offsets grow with chunk index
                if pt.chunk_end > last.chunk_end:
                    merged[-1] = FetchRange(last.chunk_start, pt.chunk_end, last.byte_start, pt.byte_end)
            else:
                merged.append(FetchRange(pt.chunk_start, pt.chunk_end, pt.byte_start, pt.byte_end))
        plan.fetches[xh] = merged
    return plan


def stream_plan(plan: Plan, open_xorb: Callable[[bytes], BinaryIO]) -> Iterator[bytes]:
    """Yield the bytes of ``plan`` decoded chunk by chunk (memory bounded by one chunk)."""
    skip = plan.offset_into_first_range
    left = plan.length
    handles: dict[bytes, BinaryIO] = {}
    try:
        for t in plan.terms:
            if left <= 0:
                break
            fh = handles.get(t.xorb_hash)
            if fh is None:
                fh = handles[t.xorb_hash] = open_xorb(t.xorb_hash)
            fh.seek(t.byte_start)
            for data in iter_chunk_bytes(fh, t.chunk_end - t.chunk_start):
                if skip:
                    if skip >= len(data):
                        skip -= len(data)
                        continue
                    data = data[skip:]
                    skip = 0
                if len(data) > left:
                    data = data[:left]
                left -= len(data)
                yield data
                if left <= 0:
                    break
    finally:
        for fh in handles.values():
            fh.close()
    if left > 0:
        raise ReconstructionError("stored chunks ended before the requested range")
