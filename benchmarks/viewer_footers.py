"""The dataset viewer's page with column statistics (`?stats=1`): its readers of one parquet split (a page of rows,
then the statistics: footers, then a sample) with the split's files shared (`datafiles.Opener`: each footer read
and parsed once per page) against a fresh opener per reader (as before: the footer read and parsed three times).

    python benchmarks/viewer_footers.py   # ~1 minute; JSON in benchmarks/results/reference-viewer-footers-2cpu.json

The split: one parquet file of 400,000 rows in 2,000 row groups of 200 rows, 12 columns (a footer of ~2.6 MB),
in memory. Read as Cove reads an LFS or Xet file, through `datafiles.RangeReader`, once with no delay per range
read (a local file) and once with `--latency-ms` per range read (a remote blob store or Xet reconstruction).
Both variants run interleaved, `--repeats` times each; medians, their ratio and the load average are recorded.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cove.web import colstats, datafiles  # noqa: E402


def build(rows: int, group: int, columns: int) -> bytes:
    cols = {f"c{i}": pa.array(range(i, rows + i)) for i in range(columns - 1)}
    cols["text"] = pa.array([f"row {i}" for i in range(rows)])
    buf = io.BytesIO()
    pq.write_table(pa.table(cols), buf, row_group_size=group)
    return buf.getvalue()


def page(data: bytes, shared: bool, latency: float) -> float:
    def rng(start: int, end: int) -> bytes:
        if latency:
            time.sleep(latency)
        return data[start:end]

    def open_file() -> io.BufferedReader:
        return io.BufferedReader(datafiles.RangeReader(len(data), rng), buffer_size=1 << 20)

    split = [datafiles.Opener(open_file) if shared else open_file]
    began = time.perf_counter()
    rows = datafiles.parquet_rows(split, 0, 25)
    stats = colstats.split_stats("parquet", split, sample_rows=colstats.SAMPLE_ROWS)
    assert rows.error is None and stats.error is None and stats.total == rows.total
    return time.perf_counter() - began


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "reference-viewer-footers-2cpu.json"))
    args = ap.parse_args()
    data = build(400_000, 200, 12)
    footer = int.from_bytes(data[-8:-4], "little")
    out: dict = {"file_bytes": len(data), "footer_bytes": footer, "row_groups": 2000, "repeats": args.repeats,
                 "load_before": os.getloadavg(), "cases": {}}
    for latency in (0.0, args.latency_ms / 1000):
        times: dict[str, list[float]] = {"shared": [], "per_reader": []}
        for _ in range(args.repeats):  # interleaved
            times["per_reader"].append(page(data, False, latency))
            times["shared"].append(page(data, True, latency))
        med = {k: statistics.median(v) for k, v in times.items()}
        out["cases"][f"latency_ms={latency * 1000:g}"] = {
            "median_s": med, "all_s": times, "shared_over_per_reader": med["shared"] / med["per_reader"]}
        print(f"latency {latency * 1000:g} ms: per reader {med['per_reader']:.3f} s, shared {med['shared']:.3f} s "
              f"(ratio {med['shared'] / med['per_reader']:.2f})")
    out["load_after"] = os.getloadavg()
    out["note"] = "2-core box shared with 5 other engineers' test runs: absolute times are noisy, ratios less so"
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    print(f"load {out['load_before']} -> {out['load_after']}; wrote {args.json}")


if __name__ == "__main__":
    main()
