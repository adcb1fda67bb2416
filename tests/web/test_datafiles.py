"""The viewer's readers: only the row groups or first lines a page needs; configs and splits."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from cove.storage.git_repos import Entry
from cove.web import datafiles
from cove.web.viewer import discover


class Counting:
    """A RangeReader-backed file that counts the bytes it hands out."""

    def __init__(self, data: bytes) -> None:
        self.data, self.read = data, 0

    def open(self):  # noqa: ANN201
        def rng(start: int, end: int) -> bytes:
            self.read += end - start
            return self.data[start:end]

        return io.BufferedReader(datafiles.RangeReader(len(self.data), rng), buffer_size=4096)


def _parquet(n: int, group: int) -> bytes:
    t = pa.table({"i": list(range(n)), "s": [f"row {i} " + "x" * 200 for i in range(n)]})
    buf = io.BytesIO()
    pq.write_table(t, buf, row_group_size=group, compression="none")
    return buf.getvalue()


def test_parquet_reads_only_the_row_groups_of_the_page():
    data = _parquet(5000, 500)
    f = Counting(data)
    rows = datafiles.parquet_rows([f.open], offset=2490, limit=20)
    assert [r[0] for r in rows.rows] == list(range(2490, 2510))
    assert rows.total == 5000 and rows.more
    assert rows.columns == [("i", "int64"), ("s", "string")]
    assert f.read < len(data) / 3  # two row groups of ten, plus the footer


def test_parquet_pages_across_files():
    a, b = Counting(_parquet(30, 10)), Counting(_parquet(30, 10))
    rows = datafiles.parquet_rows([a.open, b.open], offset=25, limit=10)
    assert [r[0] for r in rows.rows] == [25, 26, 27, 28, 29, 0, 1, 2, 3, 4]
    assert rows.total == 60


def test_csv_reads_only_the_first_records():
    body = b"a,b\n" + b"".join(b"%d,%s\n" % (i, b"y" * 100) for i in range(200_000))
    f = Counting(body)
    rows = datafiles.text_rows("csv", [f.open], offset=50, limit=25)
    assert [r[0] for r in rows.rows] == list(range(50, 75))
    assert rows.columns == [("a", "int64"), ("b", "string")]
    assert rows.more and rows.total is None
    assert f.read < 2 << 20  # of 20 MB: the first blocks and pyarrow's readahead (32 blocks of 32 KiB)


def test_jsonl_nested_values_and_end_of_file():
    body = b"".join(b'{"t": "v%d", "meta": {"k": %d}, "n": null}\n' % (i, i) for i in range(30))
    rows = datafiles.text_rows("jsonl", [lambda: io.BytesIO(body)], offset=20, limit=25)
    assert len(rows.rows) == 10 and not rows.more and rows.total == 30
    assert rows.rows[0][:2] == ["v20", '{"k": 20}']
    assert dict(rows.columns)["meta"].startswith("struct")


def test_json_array_file():
    body = b'[{"a": 1}, {"a": 2}, {"a": 3}]'
    rows = datafiles.text_rows("jsonl", [lambda: io.BytesIO(body)], offset=1, limit=1)
    assert rows.rows == [[2]] and rows.total == 3 and rows.more


def test_long_cells_and_bytes_are_shortened():
    assert datafiles.cell("x" * 1000).endswith("…")
    assert datafiles.cell(b"\x00" * 10) == "<10 bytes>"


def _e(path: str) -> Entry:
    return Entry(path, "file", "0" * 40, 1)


def test_splits_from_file_names():
    entries = [
        _e("README.md"),
        _e("data/train-00000.parquet"),
        _e("data/train-00001.parquet"),
        _e("data/test.csv"),
        _e("data/validation.jsonl"),
        _e("extra/notes.txt"),
    ]
    (cfg,) = discover({}, entries)
    assert cfg.name == "default"
    assert [(s.name, [e.path for e in s.files]) for s in cfg.splits] == [
        ("train", ["data/train-00000.parquet", "data/train-00001.parquet"]),
        ("validation", ["data/validation.jsonl"]),
        ("test", ["data/test.csv"]),
    ]


def test_configs_from_the_card():
    meta = {
        "configs": [
            {
                "config_name": "en",
                "data_files": [
                    {"split": "train", "path": "en/train-*"},
                    {"split": "test", "path": "en/test.csv"},
                ],
            },
            {"config_name": "fr", "data_files": "fr/*.jsonl"},
        ]
    }
    entries = [_e("en/train-0.csv"), _e("en/train-1.csv"), _e("en/test.csv"), _e("fr/a.jsonl")]
    configs = discover(meta, entries)
    assert [(c.name, [(s.name, len(s.files)) for s in c.splits]) for c in configs] == [
        ("en", [("train", 2), ("test", 1)]),
        ("fr", [("train", 1)]),
    ]


def _multiline_csv(n: int) -> bytes:
    """`n` records, every third with a quoted field spanning two lines (so lines > records)."""
    out = [b"id,text,score\n"]
    for i in range(n):
        text = b'"line one of %d\nline two, with a comma"' % i if i % 3 == 0 else b"plain %d" % i
        out.append(b"%d,%s,%d.5\n" % (i, text, i))
    return b"".join(out)


def test_csv_counts_records_not_lines():
    body = _multiline_csv(500)
    assert body.count(b"\n") - 1 > 500  # more lines than records
    f = lambda: io.BytesIO(body)  # noqa: E731
    last = datafiles.text_rows("csv", [f], offset=475, limit=25)
    assert last.error is None
    assert last.total == 500 and not last.more
    assert [r[0] for r in last.rows] == list(range(475, 500))
    assert last.rows[0][1] == "plain 475" and last.rows[2][1] == "line one of 477\nline two, with a comma"
    seen = []
    for p in range(21):
        seen += [r[0] for r in datafiles.text_rows("csv", [f], offset=p * 25, limit=25).rows]
    assert seen == list(range(500))  # every record shown once, none lost at page boundaries


def test_csv_pages_across_files_by_record():
    a, b = _multiline_csv(30), _multiline_csv(30)
    rows = datafiles.text_rows("csv", [lambda: io.BytesIO(a), lambda: io.BytesIO(b)], offset=25, limit=10)
    assert [r[0] for r in rows.rows] == [25, 26, 27, 28, 29, 0, 1, 2, 3, 4]
    rest = datafiles.text_rows("csv", [lambda: io.BytesIO(a), lambda: io.BytesIO(b)], offset=50, limit=25)
    assert rest.total == 60 and not rest.more and len(rest.rows) == 10


def test_csv_types_changing_after_the_first_block_fall_back_to_strings():
    body = b"a,b\n" + b"".join(b"%d,x\n" % i for i in range(50_000)) + b"oops,y\n"
    rows = datafiles.text_rows("csv", [lambda: io.BytesIO(body)], offset=49_990, limit=25)
    assert rows.error is None and rows.total == 50_001
    assert [r[0] for r in rows.rows][-1] == "oops"


def test_csv_record_longer_than_a_block():
    body = b'a,b\n1,"' + b"z\n" * 50_000 + b'"\n2,x\n'
    rows = datafiles.text_rows("csv", [lambda: io.BytesIO(body)], offset=0, limit=25)
    assert rows.error is None and rows.total == 2 and [r[0] for r in rows.rows] == [1, 2]


def test_parquet_column_stats_from_the_footer_and_a_sample():
    from cove.web import colstats

    n = 20_000
    t = pa.table({"i": list(range(n)), "f": [None if i % 10 == 0 else i / 2 for i in range(n)],
                  "s": [f"v{i % 3}" + "x" * 50 for i in range(n)]})
    buf = io.BytesIO()
    pq.write_table(t, buf, row_group_size=1000, compression="none", use_dictionary=False)
    f = Counting(buf.getvalue())
    stats = colstats.split_stats("parquet", [f.open], sample_rows=2000)
    by = {c.name: c for c in stats.columns}
    assert by["i"].type == "int64" and (by["i"].min, by["i"].max, by["i"].nulls) == (0, n - 1, 0)
    assert (by["f"].nulls, by["f"].min, by["f"].max) == (n // 10, 0.5, (n - 1) / 2)
    assert by["i"].exact and by["f"].exact  # from the row groups' statistics: the whole split
    assert [v for v, _ in by["s"].top] == ["v0" + "x" * 50, "v1" + "x" * 50, "v2" + "x" * 50]
    assert not by["s"].exact and stats.sample_rows == 2000
    assert f.read < len(buf.getvalue()) / 5  # the footer and the string column of two row groups


def test_csv_column_stats_over_the_first_records():
    from cove.web import colstats

    body = b"a,b\n" + b"".join(b"%d,%s\n" % (i, b"yes" if i % 4 else b"no") for i in range(1000)) + b",no\n"
    stats = colstats.split_stats("csv", [lambda: io.BytesIO(body)], sample_rows=100_000)
    a, b = stats.columns
    assert (a.type, a.nulls, a.min, a.max, a.exact) == ("int64", 1, 0, 999, True)
    assert b.top == [("yes", 750), ("no", 251)] and b.min is None


def test_parquet_search_reads_text_columns_then_only_the_page_rows():
    from cove.web import rowsearch

    n = 20_000
    t = pa.table({"i": list(range(n)), "blob": pa.array([b"y" * 300] * n, pa.binary()),
                  "s": [f"needle {i}" if i % 1000 == 7 else f"hay {i}" for i in range(n)]})
    buf = io.BytesIO()
    pq.write_table(t, buf, row_group_size=1000, compression="none", use_dictionary=False)
    f = Counting(buf.getvalue())
    got = rowsearch.search("parquet", [f.open], "NEEDLE", offset=0, limit=3, budget_s=60)
    assert got.index == [7, 1007, 2007] and [r[0] for r in got.rows] == [7, 1007, 2007]
    assert got.rows[0][2] == "needle 7" and got.more and not got.complete
    # The text column of four row groups (the 4th holds the match past the page), whole rows of three:
    # the binary "blob" column of the other 17 row groups is never read.
    assert f.read < len(buf.getvalue()) / 5
    # The second page, then past the last match: the whole split searched, every match counted.
    page2 = rowsearch.search("parquet", [f.open], "needle", offset=3, limit=3, budget_s=60)
    assert page2.index == [3007, 4007, 5007]
    last = rowsearch.search("parquet", [f.open], "needle", offset=18, limit=3, budget_s=60)
    assert last.index == [18007, 19007] and last.complete and last.total == 20 and not last.more
    none = rowsearch.search("parquet", [f.open], "absent", offset=0, limit=3, budget_s=60)
    assert none.rows == [] and none.complete and none.total == 0 and none.scanned == n
    # Out of time (here: at once, after one row), the scan stops at a row group's end and says where; it goes on
    # from there, reading nothing before that row (nor before `start` within its row group).
    cut = rowsearch.search("parquet", [f.open], "needle", offset=0, limit=3, budget_s=0, min_scanned=1)
    assert cut.stopped_at == 1000 and cut.index == [7] and not cut.complete and cut.scanned == 1000
    f.read = 0
    on = rowsearch.search("parquet", [f.open], "needle", offset=0, limit=3, budget_s=0, min_scanned=1,
                          start=cut.stopped_at)
    assert on.index == [1007] and on.stopped_at == 2000 and on.start == 1000
    assert f.read < len(buf.getvalue()) / 10
    mid = rowsearch.search("parquet", [f.open], "needle", offset=0, limit=2, budget_s=60, start=1008)
    assert mid.index == [2007, 3007]


def test_csv_and_jsonl_search_by_record():
    from cove.web import rowsearch

    body = b'a,b\n1,"multi\nline needle"\n2,plain\n3,NEEDLE again\n'
    got = rowsearch.search("csv", [lambda: io.BytesIO(body)], "needle", offset=0, limit=25)
    assert got.error is None and got.index == [0, 2] and got.complete and got.total == 2
    assert got.rows[0] == [1, "multi\nline needle"]
    lines = b"".join(b'{"t": "%s", "n": %d}\n' % (b"x" if i % 2 else b"match", i) for i in range(10))
    got = rowsearch.search("jsonl", [lambda: io.BytesIO(lines)], "match", offset=2, limit=2)
    assert got.index == [4, 6] and got.more


def test_numeric_histograms_over_the_sample():
    from cove.web import colstats

    n = 10_000
    t = pa.table({"i": [i % 100 for i in range(n)], "f": [None if i % 4 == 0 else i / 10 for i in range(n)],
                  "small": [i % 3 for i in range(n)]})
    buf = io.BytesIO()
    pq.write_table(t, buf, row_group_size=1000)
    stats = colstats.split_stats("parquet", [lambda: io.BytesIO(buf.getvalue())], sample_rows=n)
    by = {c.name: c for c in stats.columns}
    assert len(by["i"].hist) == 10 and sum(c for _, _, c in by["i"].hist) == n
    assert [c for _, _, c in by["i"].hist] == [1000] * 10 and by["i"].hist[0][:2] == (0, 10)
    assert sum(c for _, _, c in by["f"].hist) == n - n // 4 and by["f"].hist_rows == n - n // 4
    assert [(lo, c) for lo, _, c in by["small"].hist] == [(0, 3334), (1, 3333), (2, 3333)]  # one bin per value
    assert by["i"].exact  # nulls and min/max from the footers; the histogram over the sample (here: all rows)



def test_one_page_parses_each_parquet_footer_once():
    """The viewer's rows, column statistics and search of one split share its files (`datafiles.Opener`): each
    footer is read and parsed once per page, not once per reader."""
    from cove.web import colstats, rowsearch

    data = _parquet(20_000, 100)  # 200 row groups: a footer of many KB
    tail_reads = []

    def rng(start: int, end: int) -> bytes:
        if end >= len(data):
            tail_reads.append(start)
        return data[start:end]

    def open_file() -> io.BufferedReader:
        return io.BufferedReader(datafiles.RangeReader(len(data), rng), buffer_size=4096)

    with open_file() as fh:
        pq.ParquetFile(fh)
    one_parse = len(tail_reads)  # the footer's length, then the footer
    split = [datafiles.Opener(open_file)]
    rows = datafiles.parquet_rows(split, offset=0, limit=25)
    stats = colstats.split_stats("parquet", split, sample_rows=300)
    found = rowsearch.search("parquet", split, "row 7 ", 0, 5)
    assert rows.total == 20_000 and stats.total == 20_000 and found.rows[0][0] == 7
    assert len(tail_reads) == 2 * one_parse  # the one above, and the page's
