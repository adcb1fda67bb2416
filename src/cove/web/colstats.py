"""Column statistics for the dataset viewer: type, nulls, min/max and a histogram for numbers, top values for
strings.

Parquet: null counts and min/max come from the row groups' statistics in the footers (the whole split, no data
read) where every row group has them; what they lack (and top values) is computed with pyarrow compute over a
sample: the first `sample_rows` rows, reading only the columns that need it. CSV/TSV/JSON Lines: the first
`sample_rows` records (within the viewer's byte budget); exact when that is the whole split. Histograms (integers
and floats, `BINS` equal-width bins between the sample's min and max, counted by numpy) are over the sample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cove.web import datafiles

SAMPLE_ROWS = 100_000
TOP = 5
BINS = 10


@dataclass
class ColumnStats:
    name: str
    type: str
    nulls: int | None = None
    min: object = None
    max: object = None
    top: list[tuple[object, int]] = field(default_factory=list)
    exact: bool = False  # over the whole split (else over the sample)
    hist: list[tuple[object, object, int]] = field(default_factory=list)  # (low, high, count) per bin
    hist_rows: int = 0  # the values the histogram counts (the sample's non-null ones)

    @property
    def hist_max(self) -> int:
        return max((n for _, _, n in self.hist), default=0)


@dataclass
class SplitStats:
    columns: list[ColumnStats] = field(default_factory=list)
    sample_rows: int = 0  # rows the computed figures are over
    total: int | None = None
    error: str | None = None


def _ranged(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_temporal(t)


def _topped(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_boolean(t) or \
        pa.types.is_dictionary(t)


def _binned(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


def _histogram(col: ColumnStats, arr: pa.ChunkedArray) -> None:
    values = arr.drop_null().to_numpy() if arr.null_count else arr.to_numpy()
    if values.dtype.kind == "f":
        values = values[np.isfinite(values)]
    if not len(values):
        return
    lo, hi = values.min(), values.max()
    integral = values.dtype.kind in "iu"
    bins = min(BINS, int(hi) - int(lo) + 1) if integral else BINS
    counts, edges = np.histogram(values, bins=bins, range=(float(lo), float(hi) + (1 if integral else 0)))
    edges = edges.tolist()
    col.hist = [(_edge(edges[i], integral), _edge(edges[i + 1], integral), int(n)) for i, n in enumerate(counts)]
    col.hist_rows = len(values)


def _edge(v: float, integral: bool) -> object:
    return int(np.ceil(v)) if integral else float(f"{v:.4g}")


def _py(v: object) -> object:
    return v.as_py() if isinstance(v, pa.Scalar) else v


def _compute(col: ColumnStats, arr: pa.ChunkedArray, t: pa.DataType) -> None:
    """Fill what `col` lacks from the sample `arr`."""
    if col.nulls is None:
        col.nulls = arr.null_count
    if _ranged(t) and col.min is None and len(arr) > arr.null_count:
        mm = pc.min_max(arr)
        col.min, col.max = _py(mm["min"]), _py(mm["max"])
    if _binned(t):
        _histogram(col, arr)
    if _topped(t):
        counts = pc.value_counts(arr.drop_null() if arr.null_count else arr)
        pairs = sorted(((_py(v), int(_py(n))) for v, n in zip(counts.field("values"), counts.field("counts"),
                                                               strict=True)), key=lambda p: (-p[1], str(p[0])))
        col.top = [(datafiles.cell(v), n) for v, n in pairs[:TOP]]


def _from_table(table: pa.Table, exact: bool) -> SplitStats:
    out = SplitStats(sample_rows=table.num_rows, total=table.num_rows if exact else None)
    for f in table.schema:
        col = ColumnStats(f.name, str(f.type), exact=exact)
        _compute(col, table.column(f.name), f.type)
        out.columns.append(col)
    return out


def parquet_stats(handles: list[Callable[[], BinaryIO]], sample_rows: int = SAMPLE_ROWS) -> SplitStats:
    schema: pa.Schema | None = None
    nulls: dict[str, int | None] = {}
    lo: dict[str, object] = {}
    hi: dict[str, object] = {}
    total = 0
    for open_file in handles:
        with open_file() as fh:
            pf = datafiles.parquet_file(open_file, fh)
            schema = schema or pf.schema_arrow
            meta = pf.metadata
            total += meta.num_rows
            for g in range(meta.num_row_groups):
                rg = meta.row_group(g)
                seen = set()
                for c in range(rg.num_columns):
                    cm = rg.column(c)
                    name, st = cm.path_in_schema, cm.statistics
                    seen.add(name)
                    if st is None or not st.has_null_count:
                        nulls[name] = None
                    elif nulls.get(name, 0) is not None:
                        nulls[name] = nulls.get(name, 0) + st.null_count
                    if st is not None and st.has_min_max and lo.get(name, 0) is not None:
                        lo[name] = st.min if name not in lo else min(lo[name], st.min)
                        hi[name] = st.max if name not in hi else max(hi[name], st.max)
                    elif st is None or (not st.has_min_max and st.num_values > 0):
                        lo[name] = hi[name] = None
                for f in schema:  # nested columns have no top-level statistics
                    if f.name not in seen:
                        nulls[f.name] = lo[f.name] = hi[f.name] = None
    if schema is None:
        return SplitStats()
    out = SplitStats(total=total)
    need: list[str] = []
    for f in schema:
        col = ColumnStats(f.name, str(f.type), exact=True)
        col.nulls = nulls.get(f.name)
        if _ranged(f.type) and lo.get(f.name) is not None and not pa.types.is_decimal(f.type):
            col.min, col.max = (v + 0.0 if isinstance(v, float) else v for v in (lo[f.name], hi[f.name]))  # not -0.0
        if col.nulls is None or (_ranged(f.type) and col.min is None and col.nulls != total) or _topped(f.type) \
                or _binned(f.type):
            need.append(f.name)
            col.exact = col.nulls is not None and not _topped(f.type) and not _ranged(f.type)
            # numbers whose footers gave nulls and min/max: exact; only their histogram is over the sample
            col.exact = col.exact or (_binned(f.type) and col.nulls is not None and col.min is not None)
        out.columns.append(col)
    if need:
        sample = _parquet_sample(handles, need, sample_rows)
        out.sample_rows = sample.num_rows
        whole = sample.num_rows == total
        for col in out.columns:
            if col.name in need:
                _compute(col, sample.column(col.name), schema.field(col.name).type)
                col.exact = whole or col.exact
    return out


def _parquet_sample(handles: list[Callable[[], BinaryIO]], columns: list[str], rows: int) -> pa.Table:
    """The first `rows` rows of `columns`, reading only the row groups that hold them."""
    parts: list[pa.Table] = []
    got = 0
    for open_file in handles:
        with open_file() as fh:
            pf = datafiles.parquet_file(open_file, fh)
            groups, n = [], 0
            for g in range(pf.metadata.num_row_groups):
                if got + n >= rows:
                    break
                groups.append(g)
                n += pf.metadata.row_group(g).num_rows
            if groups:
                parts.append(pf.read_row_groups(groups, columns=columns))
                got += parts[-1].num_rows
        if got >= rows:
            break
    return pa.concat_tables(parts, promote_options="permissive").slice(0, rows)


def text_stats(fmt: str, handles: list[Callable[[], BinaryIO]], sample_rows: int = SAMPLE_ROWS) -> SplitStats:
    parts: list[pa.Table] = []
    more = False
    try:
        for table, left in datafiles.text_tables(fmt, handles, sample_rows):
            if table.num_columns:
                parts.append(table)
            more = more or left
    except datafiles.Unparsable as exc:
        return SplitStats(error=str(exc))
    if not parts:
        return SplitStats()
    return _from_table(pa.concat_tables(parts, promote_options="permissive"), exact=not more)


def split_stats(fmt: str, handles: list[Callable[[], BinaryIO]], sample_rows: int = SAMPLE_ROWS) -> SplitStats:
    try:
        if fmt == "parquet":
            return parquet_stats(handles, sample_rows)
        return text_stats(fmt, handles, sample_rows)
    except (pa.ArrowException, OSError, ValueError, KeyError, TypeError) as exc:
        return SplitStats(error=f"Could not compute statistics: {exc}")
