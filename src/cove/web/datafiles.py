"""Rows from data files without loading them whole: parquet by row group, CSV by record, JSON Lines by line.

Files are opened for random access wherever their bytes live: a git blob, a local or remote LFS blob
(ranged reads), or a Xet file (reconstructed range by range).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from cove.backends import Backends
from cove.db.tables import Repo
from cove.services import files
from cove.storage.git_repos import Entry

FORMATS = {".parquet": "parquet", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".json": "jsonl"}
MAX_TEXT_BYTES = 64 << 20  # read at most this much of a text file to reach a page
MAX_JSON_ARRAY = 20 << 20  # a `.json` holding one array is parsed whole only up to this size
MAX_CELL = 300
CSV_BLOCK = 32 << 10  # pyarrow reads CSV in blocks of this many bytes (larger when a record is longer)
CSV_MAX_BLOCK = 8 << 20


def format_of(path: str) -> str | None:
    low = path.lower()
    return next((fmt for ext, fmt in FORMATS.items() if low.endswith(ext)), None)


class RangeReader(io.RawIOBase):
    """A seekable read-only file over `read_range(start, end)`."""

    def __init__(self, size: int, read_range: Callable[[int, int], bytes]) -> None:
        self.size, self._read, self.pos = size, read_range, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buf) -> int:  # noqa: ANN001
        end = min(self.size, self.pos + len(buf))
        if end <= self.pos:
            return 0
        data = self._read(self.pos, end)
        n = len(data)
        buf[:n] = data
        self.pos += n
        return n


def open_entry(bk: Backends, repo: Repo, entry: Entry) -> BinaryIO:
    """A seekable binary file for a repo file, wherever its bytes are stored."""
    if not entry.is_lfs:
        return io.BytesIO(bk.repos.read_blob(repo.storage_key, entry.oid))
    with bk.db.session() as db:
        loc = files.locate(db, bk, repo, entry)
    if loc.kind == "xet":
        from cove.services import xet

        raw: io.RawIOBase = RangeReader(entry.size, lambda s, e: b"".join(xet.stream_file(bk, loc.key, s, e)))
    else:
        local = bk.blobs.local_path(loc.key)
        if local is not None:
            return open(local, "rb")  # noqa: SIM115 - the caller closes it
        raw = RangeReader(entry.size, lambda s, e: bk.blobs.read_range(loc.key, s, e))
    return io.BufferedReader(raw, buffer_size=1 << 20)  # type: ignore[return-value]


class Opener:
    """Opens one data file, as often as asked; a parquet file's footer, once parsed (`parquet_file`), is kept for
    the next opening, so a page that reads a split several ways (rows, statistics) parses each footer once."""

    def __init__(self, open_file: Callable[[], BinaryIO]) -> None:
        self._open = open_file
        self.parquet_meta: pq.FileMetaData | None = None

    def __call__(self) -> BinaryIO:
        return self._open()


def parquet_file(open_file: Callable[[], BinaryIO], fh: BinaryIO) -> pq.ParquetFile:
    """`fh` (opened by `open_file`) as a parquet file, with the footer an `Opener` kept (else parsed, and kept)."""
    meta = open_file.parquet_meta if isinstance(open_file, Opener) else None
    pf = pq.ParquetFile(fh, metadata=meta)
    if isinstance(open_file, Opener) and meta is None:
        open_file.parquet_meta = pf.metadata
    return pf


@dataclass
class Rows:
    columns: list[tuple[str, str]] = field(default_factory=list)  # (name, type)
    rows: list[list[object]] = field(default_factory=list)
    total: int | None = None  # known for parquet; None when only part of a text file was read
    more: bool = False
    error: str | None = None


def cell(value: object) -> object:
    """A value as the viewer shows it: short strings, JSON for nested values, a size for bytes."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict) and isinstance(value.get("bytes"), bytes):
        return f"<{len(value['bytes'])} bytes {value.get('path') or ''}>".replace(" >", ">")
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= MAX_CELL else text[:MAX_CELL] + "…"


def _from_table(table: pa.Table, out: Rows) -> None:
    out.columns = [(f.name, str(f.type)) for f in table.schema]
    out.rows += [[cell(r.get(name)) for name, _ in out.columns] for r in table.to_pylist()]


def parquet_rows(handles: list[Callable[[], BinaryIO]], offset: int, limit: int) -> Rows:
    """Rows `[offset, offset+limit)` across parquet files, reading only the row groups that hold them."""
    out = Rows(total=0)
    want_start, want_end = offset, offset + limit
    seen = 0
    for open_file in handles:
        with open_file() as fh:
            pf = parquet_file(open_file, fh)
            meta = pf.metadata
            if not out.columns:
                out.columns = [(f.name, str(f.type)) for f in pf.schema_arrow]
            file_start = seen
            seen += meta.num_rows
            if seen <= want_start or file_start >= want_end:
                continue
            groups, pos, first = [], file_start, None
            for i in range(meta.num_row_groups):
                n = meta.row_group(i).num_rows
                if pos + n > want_start and pos < want_end:
                    groups.append(i)
                    first = pos if first is None else first
                pos += n
            if not groups:
                continue
            table = pf.read_row_groups(groups)
            lo = max(0, want_start - first)  # type: ignore[operator]
            hi = min(table.num_rows, want_end - first)  # type: ignore[operator]
            got = table.slice(lo, max(0, hi - lo))
            cols = [name for name, _ in out.columns]
            out.rows += [[cell(r.get(c)) for c in cols] for r in got.to_pylist()]
    out.total = seen
    out.more = offset + limit < seen
    return out


def _lines(fh: BinaryIO, skip: int, take: int, budget: list[int]) -> tuple[list[bytes], int, bool]:
    """(the lines kept, lines seen, whether the file has more) reading line by line within the byte budget."""
    kept: list[bytes] = []
    n = 0
    for line in fh:
        budget[0] -= len(line)
        if not line.strip():
            continue
        if n >= skip + take or budget[0] < 0:
            return kept, n, True
        if n >= skip:
            kept.append(line if line.endswith(b"\n") else line + b"\n")
        n += 1
    return kept, n, False


class Unparsable(ValueError):
    """A data file that does not parse (its message says why)."""


def text_tables(fmt: str, handles: list[Callable[[], BinaryIO]], max_rows: int) -> Iterator[tuple[pa.Table, bool]]:
    """The first `max_rows` records of CSV/TSV/JSON Lines files within `MAX_TEXT_BYTES`, a table per file: (the
    table, whether records were left unread, in its file or after it). A CSV file that does not parse raises
    `Unparsable`."""
    budget = [MAX_TEXT_BYTES]
    for i, open_file in enumerate(handles):
        if fmt in ("csv", "tsv"):
            rows = Rows()
            table, more = csv_table(open_file, fmt, max_rows, budget, rows)
            if rows.error:
                raise Unparsable(rows.error)
        else:
            with open_file() as fh:
                kept, _, more = _lines(fh, 0, max_rows, budget)
            table = pajson.read_json(io.BytesIO(b"".join(kept))) if kept else None
        max_rows -= table.num_rows if table is not None else 0
        stop = more or max_rows <= 0 or budget[0] < 0
        left = more or (stop and i + 1 < len(handles))
        if table is not None or left:
            yield (table if table is not None else pa.table({})), left
        if stop:
            return


def text_rows(fmt: str, handles: list[Callable[[], BinaryIO]], offset: int, limit: int) -> Rows:
    """Rows of CSV/TSV/JSON Lines files, reading only the first records up to the page asked for.

    CSV/TSV are read as records by pyarrow's streaming reader (quoted fields may hold newlines); JSON Lines by line.
    `total` is set only when every file was read to its end within the byte budget.
    """
    out = Rows()
    budget = [MAX_TEXT_BYTES]
    skip = offset
    seen = 0
    for i, open_file in enumerate(handles):
        if fmt in ("csv", "tsv"):
            n, more = _csv_file(open_file, fmt, skip, limit - len(out.rows), budget, out)
            if out.error:
                return out
        else:
            with open_file() as fh:
                if _first_byte(fh) == b"[":
                    return _json_array(fh, offset, limit)
                kept, n, more = _lines(fh, skip, limit - len(out.rows), budget)
                if kept:
                    _parse_jsonl(b"".join(kept), out)
        seen += n
        if more or budget[0] < 0:
            out.more = True
            return out
        skip = max(0, skip - n)
        if len(out.rows) >= limit and i + 1 < len(handles):
            out.more = True
            return out
    out.total = seen
    return out


def _open_csv(fh: BinaryIO, fmt: str, types: dict[str, pa.DataType] | None, block: int) -> pacsv.CSVStreamingReader:
    return pacsv.open_csv(
        fh,
        read_options=pacsv.ReadOptions(block_size=block, use_threads=False),
        parse_options=pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",", newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types=types or {}))


def _csv_file(open_file: Callable[[], BinaryIO], fmt: str, skip: int, take: int, budget: list[int],
              out: Rows) -> tuple[int, bool]:
    """Records `[skip, skip+take)` of one CSV file into `out`: (records seen, whether the file has more)."""
    table, n, more = csv_records(open_file, fmt, skip, take, budget, out)
    if table is not None:
        _from_table(table, out)
    return n, more


def csv_table(open_file: Callable[[], BinaryIO], fmt: str, take: int, budget: list[int],
              out: Rows) -> tuple[pa.Table | None, bool]:
    """The first `take` records of a CSV file as a table, and whether the file has more (errors in `out`)."""
    table, _, more = csv_records(open_file, fmt, 0, take, budget, out)
    return table, more


def csv_records(open_file: Callable[[], BinaryIO], fmt: str, skip: int, take: int, budget: list[int],
                out: Rows) -> tuple[pa.Table | None, int, bool]:
    """Records `[skip, skip+take)` of one CSV file: (a table, records seen, whether the file has more).

    Types are inferred from the first block; a later block that does not fit them restarts the file as strings.
    A record longer than a block restarts it with larger blocks. (pyarrow reads ~32 blocks ahead: ~1 MB.)
    """
    types: dict[str, pa.DataType] | None = None
    block = CSV_BLOCK
    while True:
        with open_file() as fh:
            try:
                reader = _open_csv(fh, fmt, types, block)
            except (pa.ArrowInvalid, ValueError) as exc:
                if "straddl" in str(exc) and block < CSV_MAX_BLOCK:
                    block *= 16
                    continue
                out.error = f"Could not parse the file: {exc}"
                return None, 0, False
            kept: list[pa.RecordBatch] = []
            n, more = 0, False
            try:
                for batch in reader:
                    if n >= skip + take or fh.tell() > budget[0]:
                        more = batch.num_rows > 0 or n >= skip + take
                        break
                    lo, hi = max(0, skip - n), min(batch.num_rows, skip + take - n)
                    if hi > lo:
                        kept.append(batch.slice(lo, hi - lo))
                    n += batch.num_rows
            except pa.ArrowInvalid as exc:
                if types is None and "conversion error" in str(exc).lower():
                    types = {f.name: pa.string() for f in reader.schema}
                    continue
                if "straddl" in str(exc) and block < CSV_MAX_BLOCK:
                    block *= 16
                    continue
                out.error = f"Could not parse the file: {exc}"
                return None, n, False
            budget[0] -= fh.tell()
        if n > skip + take:
            n, more = skip + take, True
        return pa.Table.from_batches(kept, reader.schema), n, more


def _first_byte(fh: BinaryIO) -> bytes:
    head = fh.read(256).lstrip()
    fh.seek(0)
    return head[:1]


def _parse_jsonl(data: bytes, out: Rows) -> None:
    try:
        table = pajson.read_json(io.BytesIO(data))
    except (pa.ArrowInvalid, ValueError) as exc:
        out.error = f"Could not parse the file: {exc}"
        return
    _from_table(table, out)


def _json_array(fh: BinaryIO, offset: int, limit: int) -> Rows:
    data = fh.read(MAX_JSON_ARRAY + 1)
    if len(data) > MAX_JSON_ARRAY:
        return Rows(error="This JSON file holds one large array: "
                           "convert it to JSON Lines or parquet to view it")
    try:
        items = json.loads(data)
    except ValueError as exc:
        return Rows(error=f"Invalid JSON: {exc}")
    if not isinstance(items, list):
        return Rows(error="The JSON file is not a list of records")
    out = Rows(total=len(items), more=offset + limit < len(items))
    records = [x if isinstance(x, dict) else {"value": x} for x in items[offset: offset + limit]]
    if records:
        try:
            _from_table(pa.Table.from_pylist(records), out)
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
            out.columns = [("value", "json")]
            out.rows = [[cell(r)] for r in records]
    return out
