"""Search within a split: the rows whose text columns contain a string (case-insensitive), with pyarrow compute.

Parquet is searched row group by row group, reading only the text columns; the full rows are then read only for
the row groups that hold the page's matches, and the scan stops once the page (and one more match, so a next page
is known to exist) is found. CSV/TSV and JSON Lines are read record by record within the viewer's byte budget.
A parquet scan also stops after `BUDGET_S` seconds (at a row group's end, once `MIN_SCANNED` rows were looked
at): the page says
which rows were searched and offers to search further from there (`start`), so a page never waits on a whole
large split for a rare string.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from cove.web import datafiles

MAX_SCANNED = 5_000_000  # rows looked at by one search
BUDGET_S = 0.15  # a parquet search stops at the first row group's end past this (then "search further")
MIN_SCANNED = 200_000  # ... once it has looked at this many rows (a small split is always searched whole)
MAX_QUERY = 200


@dataclass
class Matches:
    columns: list[tuple[str, str]] = field(default_factory=list)
    rows: list[list[object]] = field(default_factory=list)
    index: list[int] = field(default_factory=list)  # each row's number in the split
    more: bool = False  # matches past this page
    scanned: int = 0  # rows looked at
    complete: bool = False  # the whole split was searched (so `total` is every match)
    total: int | None = None
    start: int = 0  # the first row searched
    stopped_at: int | None = None  # the scan stopped here (time or row budget) before the page was full
    rows_in_split: int | None = None
    error: str | None = None


def _texty(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or (
        pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)))


def _mask(table: pa.Table, names: list[str], query: str) -> pa.Array:
    hit = None
    for name in names:
        col = table.column(name)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        m = pc.fill_null(pc.match_substring(col, query, ignore_case=True), False)
        hit = m if hit is None else pc.or_(hit, m)
    if hit is None:
        return pa.array([False] * table.num_rows)
    return hit.combine_chunks() if isinstance(hit, pa.ChunkedArray) else hit


def search(fmt: str, handles: list[Callable[[], BinaryIO]], query: str, offset: int, limit: int,
           max_scanned: int = MAX_SCANNED, *, start: int = 0, budget_s: float = BUDGET_S,
           min_scanned: int = MIN_SCANNED) -> Matches:
    """Matches `[offset, offset+limit)` of `query` in the split's text columns, from row `start` (parquet)."""
    query = query[:MAX_QUERY]
    try:
        if fmt == "parquet":
            return _parquet(handles, query, offset, limit, max_scanned, start, budget_s, min_scanned)
        return _text(fmt, handles, query, offset, limit, max_scanned)
    except (pa.ArrowException, OSError, ValueError, KeyError, TypeError) as exc:
        return Matches(error=f"Could not search this split: {exc}")


def _parquet(handles: list[Callable[[], BinaryIO]], query: str, offset: int, limit: int, max_scanned: int,
             start: int = 0, budget_s: float = BUDGET_S, min_scanned: int = MIN_SCANNED) -> Matches:
    out = Matches(start=max(0, start))
    want = offset + limit + 1  # one past the page: is there a next page
    found = 0
    base = 0
    began = time.monotonic()
    for open_file in handles:
        with open_file() as fh:
            pf = datafiles.parquet_file(open_file, fh)
            schema = pf.schema_arrow
            if not out.columns:
                out.columns = [(f.name, str(f.type)) for f in schema]
            names = [f.name for f in schema if _texty(f.type)]
            for g in range(pf.metadata.num_row_groups):
                n = pf.metadata.row_group(g).num_rows
                if found >= want:
                    return out
                if base + n <= out.start:  # before where this search starts: not read
                    base += n
                    continue
                late = out.scanned >= min_scanned and time.monotonic() - began > budget_s
                if out.scanned >= max_scanned or late:
                    out.stopped_at = max(base, out.start)
                    return out
                hits = pc.indices_nonzero(_mask(pf.read_row_group(g, columns=names), names, query)).to_pylist() \
                    if names else []
                if base < out.start:
                    hits = [i for i in hits if base + i >= out.start]
                out.scanned += n - max(0, out.start - base)
                page = [i for k, i in enumerate(hits, start=found) if offset <= k < offset + limit]
                found += len(hits)
                out.total = found
                if page:  # the whole rows, only for a row group holding the page's matches
                    rows = pf.read_row_group(g).take(pa.array(page)).to_pylist()
                    cols = [c for c, _ in out.columns]
                    out.rows += [[datafiles.cell(r.get(c)) for c in cols] for r in rows]
                    out.index += [base + i for i in page]
                out.more = found > offset + limit
                base += n
    out.complete = True
    return out


def _text(fmt: str, handles: list[Callable[[], BinaryIO]], query: str, offset: int, limit: int,
          max_scanned: int) -> Matches:
    out = Matches(complete=True)
    found = 0
    base = 0
    for table, more in datafiles.text_tables(fmt, handles, max_scanned):
        if more:
            out.complete = False
        if table.num_columns == 0:
            continue
        if not out.columns:
            out.columns = [(f.name, str(f.type)) for f in table.schema]
        names = [f.name for f in table.schema if _texty(f.type)]
        hits = pc.indices_nonzero(_mask(table, names, query)).to_pylist() if names else []
        page = [i for k, i in enumerate(hits, start=found) if offset <= k < offset + limit]
        found += len(hits)
        if page:
            cols = [c for c, _ in out.columns]
            out.rows += [[datafiles.cell(r.get(c)) for c in cols] for r in table.take(pa.array(page)).to_pylist()]
            out.index += [base + i for i in page]
        out.scanned += table.num_rows
        base += table.num_rows
    out.total = found
    out.more = found > offset + limit
    return out
