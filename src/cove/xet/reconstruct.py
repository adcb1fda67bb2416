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
    chunk_tables: dict[bytes, ChunkTable] = field(default_factory=dict, repr=False)

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
    kept: dict[bytes, list[tuple[int, int]]] = {}
    tables = plan.chunk_tables
    pos = 0
    first = True
    for t in terms:
        term_end = pos + t.unpacked_len
        if term_end <= start:
            pos = term_end
            continue
        if pos >= end:
            break
        table = tables.get(t.xorb_hash)
        if table is None:
            table = tables[t.xorb_hash] = lookup(t.xorb_hash)
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
        plan.terms.append(PlannedTerm(t.xorb_hash, c0, c1, unpacked))
        kept.setdefault(t.xorb_hash, []).append((c0, c1))
        pos = term_end
    if pos < end:
        raise ReconstructionError("terms cover fewer bytes than the file size")
    for xh, ranges in kept.items():
        table = tables[xh]
        merged: list[list[int]] = []
        for a, b in sorted(ranges):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        plan.fetches[xh] = [FetchRange(a, b, table.byte_start(a), table.byte_end(b - 1)) for a, b in merged]
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
            fh.seek(plan.chunk_tables[t.xorb_hash].byte_start(t.chunk_start))
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
