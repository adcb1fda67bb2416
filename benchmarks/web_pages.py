"""Every page's render time (issue 15 "Must show"), in-process, on a hub with 1,000 repos, a repo with 10,000
commits and a 1 GB parquet dataset.

    python benchmarks/web_pages.py            # ~3-6 minutes; JSON in benchmarks/results/web_pages.json

The hub is `web_writes.seed`'s (1,000 repos, 10,000 commits, a 300-comment PR, 300 discussions, 500 access
requests, a 200-member org) plus a dataset whose one split is a 1 GB parquet file (~4.4 M rows of text, a label,
a score; 100,000-row row groups, uncompressed) stored as an LFS object through `uploads.store_object` and
committed with the git store (no HTTP), a collection and an org invitation. The parquet file is built with pyarrow
under /tmp (kept for reruns, never committed).

Each page is fetched through FastAPI's TestClient, signed in as the owner. The first fetch of each page is
"cold" (no cache warm for it); then `--repeats` rounds fetch every page once each, in the same interleaved order,
with the reference page (`/login`: the smallest template through the whole middleware stack) fetched before each
page; the medians and each page's ratio to the reference's median are recorded with the load average.
Target: every page's first and median fetch under 0.3 s. CPU seconds per fetch are recorded too (less
sensitive than wall time to the other processes sharing the cores).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.3
PARQUET = Path(tempfile.gettempdir()) / "cove-bench-1g.parquet"
ROW_GROUP = 100_000
RARE = "zebracorn"


def build_parquet(path: Path, size: int) -> tuple[str, int, int]:
    """A `size`-byte-ish parquet file (kept at `path` for reruns): (sha256, bytes, rows)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.exists() or not size * 0.95 < path.stat().st_size < size * 1.2:
        rng = np.random.default_rng(15)
        words = ["".join(chr(97 + c) for c in rng.integers(0, 26, rng.integers(3, 10))) for _ in range(5000)]
        pool = pa.array([" ".join(rng.choice(words, 30)) for _ in range(8192)])
        schema = pa.schema([("id", pa.int64()), ("text", pa.string()), ("label", pa.int64()),
                            ("score", pa.float64())])
        tmp = path.with_suffix(".tmp")
        rows = 0
        with pq.ParquetWriter(tmp, schema, compression="none", use_dictionary=False) as w:
            while tmp.stat().st_size < size:
                idx = pa.array(rng.integers(0, len(pool), ROW_GROUP))
                text = pool.take(idx)
                if rows // ROW_GROUP == 40:  # one rare string, late in the file
                    text = pa.array([*text[:123].to_pylist(), f"a {RARE} here", *text[124:].to_pylist()])
                w.write_table(pa.table({"id": pa.array(np.arange(rows, rows + ROW_GROUP)), "text": text,
                                        "label": pa.array(rng.integers(0, 5, ROW_GROUP)),
                                        "score": pa.array(rng.normal(0, 1, ROW_GROUP))}, schema=schema),
                              row_group_size=ROW_GROUP)
                rows += ROW_GROUP
        os.replace(tmp, path)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            h.update(chunk)
    return h.hexdigest(), path.stat().st_size, pq.ParquetFile(path).metadata.num_rows


def seed_more(app, parquet: Path, oid: str, size: int) -> dict:  # noqa: ANN001
    """The 1 GB dataset, a collection with items, an invitation to bigorg; what the pages need to name them."""
    from cove.services import accounts, org_admin, uploads
    from cove.services import collections as coll
    from cove.services import repos as repos_service
    from cove.services.accounts import actor_for_user
    from cove.storage.git_repos import FileOp, lfs_pointer

    bk = app.state.backends
    with bk.db.session() as db:
        owner = accounts.require_user(db, "owner")
        actor = actor_for_user(db, owner)
        ds, _ = repos_service.create(db, bk, actor, repo_type="dataset", namespace="owner", name="big-data")
        with open(parquet, "rb") as fh:
            uploads.store_object(db, bk, ds, oid, size, fh)
        key = ds.storage_key
        head = bk.repos.resolve(key, "main")
        new = bk.repos.write_commit(key, parent=head, author="owner", message="1 GB of parquet", ops=[
            FileOp("README.md", b"---\nlicense: mit\ntask_categories: [text-classification]\n---\n# Big data\n"),
            FileOp("data/train-00000-of-00001.parquet", lfs_pointer(oid, size))])
        bk.repos.update_ref(key, "refs/heads/main", new, head)
        repos_service.reindex(db, bk, ds, new)
        c = coll.create(db, actor, "owner", "Favourites", "the big ones", False)
        for name in ("big", "m1", "m2"):
            coll.add_item(db, actor, c, {"type": "model", "id": f"owner/{name}"}, "a note")
        coll.add_item(db, actor, c, {"type": "dataset", "id": "owner/big-data"}, None)
        slug = coll.slug_of(c)
        org_admin.invite(db, actor, "bigorg", "user300", "write")
        big = repos_service.repo_by_id(db, actor, "model", "owner/big")
        sha = big.sha
    return {"collection": f"/collections/{slug}", "sha": sha}


def pages(extra: dict, rows: int) -> list[str]:
    deep = min(rows // 25 - 1, 1_000_000 // 25)
    return [
        "/", "/?q=m1", "/models", "/models?sort=likes&license=mit", "/datasets", "/owner", "/bigorg",
        "/owner/big", "/owner/big/tree/main", "/owner/big/blob/main/README.md", "/owner/big/commits/main",
        "/owner/big/commits/main?p=300", f"/owner/big/commit/{extra['sha']}",
        "/settings/tokens", "/settings/storage", "/settings/invitations", "/organizations/bigorg/settings/storage",
        "/collections/owner", extra["collection"],
        # issue 15's writing pages (as web_writes.py)
        "/new", "/owner/big/upload/main", "/owner/big/edit/main/README.md", "/owner/big/discussions",
        "/owner/big/discussions/1", "/owner/big/discussions/1?tab=files", "/owner/big/compare/v1...main",
        "/owner/big/commits/main/README.md", "/owner/big/blame/main/README.md", "/owner/big/settings",
        "/owner/big/settings/access-requests", "/organizations/bigorg/settings/members",
        # the 1 GB dataset
        "/datasets/owner/big-data", "/datasets/owner/big-data/tree/main/data",
        "/datasets/owner/big-data/viewer", f"/datasets/owner/big-data/viewer?p={deep}",
        "/datasets/owner/big-data/viewer?stats=1", "/datasets/owner/big-data/viewer?q=the",
        f"/datasets/owner/big-data/viewer?q={RARE}",
    ]


def timed(client, path: str) -> tuple[float, int, int, float]:  # noqa: ANN001
    """(wall seconds, status, bytes, CPU seconds of this process: the app's thread and the client's)."""
    t, c = time.perf_counter(), time.process_time()
    r = client.get(path)
    return time.perf_counter() - t, r.status_code, len(r.content), time.process_time() - c


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", type=int, default=10_000)
    ap.add_argument("--repos", type=int, default=1000)
    ap.add_argument("--parquet-bytes", type=int, default=1 << 30)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--parquet", default=str(PARQUET), help="where the parquet file is built (and kept)")
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "web_pages.json"))
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from web_writes import seed, signed_in

    t0 = time.perf_counter()
    parquet = Path(args.parquet)
    oid, size, rows = build_parquet(parquet, args.parquet_bytes)
    built = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="cove-web-pages-") as tmp:
        t0 = time.perf_counter()
        app = seed(Path(tmp), args.commits, args.repos)
        extra = seed_more(app, parquet, oid, size)
        seeded = time.perf_counter() - t0
        client = signed_in(app)
        todo = pages(extra, rows)
        load_before = os.getloadavg()
        first: dict[str, tuple[float, int, int, float]] = {}
        for path in todo:
            first[path] = timed(client, path)
            assert first[path][1] == 200, (path, first[path])
        ref: list[float] = []
        times: dict[str, list[float]] = {p: [] for p in todo}
        cpu: dict[str, list[float]] = {p: [] for p in todo}
        for _ in range(args.repeats):
            for path in todo:
                ref.append(timed(client, "/login")[0])
                wall, _, _, used = timed(client, path)
                times[path].append(wall)
                cpu[path].append(used)
        load_after = os.getloadavg()
    ref_med = statistics.median(ref)
    out_rows = []
    for path in todo:
        med = statistics.median(times[path])
        out_rows.append({"page": path, "first_s": round(first[path][0], 4), "median_s": round(med, 4),
                         "max_s": round(max(times[path]), 4), "ratio_to_reference": round(med / ref_med, 1),
                         "first_cpu_s": round(first[path][3], 4),
                         "median_cpu_s": round(statistics.median(cpu[path]), 4),
                         "bytes": first[path][2],
                         "under_target": max(first[path][0], med) < TARGET_S})
    print(f"parquet: {size / 1e9:.2f} GB, {rows} rows (built/hashed in {built:.0f} s); seeded in {seeded:.0f} s")
    print(f"reference /login median {ref_med * 1000:.1f} ms; load average {load_before} -> {load_after}")
    print(f"{'page':62} {'first':>7} {'median':>7} {'max':>7} {'x ref':>6} {'cpu1st':>7} {'cpu med':>7}")
    for row in out_rows:
        flag = "" if row["under_target"] else "  > target"
        print(f"{row['page'][:62]:62} {row['first_s']:7.3f} {row['median_s']:7.3f} {row['max_s']:7.3f} "
              f"{row['ratio_to_reference']:6.1f} {row['first_cpu_s']:7.3f} {row['median_cpu_s']:7.3f}{flag}")
    out = {"target_s": TARGET_S, "commits": args.commits, "repos": args.repos, "parquet_bytes": size,
           "parquet_rows": rows, "repeats": args.repeats, "reference": "/login", "reference_median_s":
           round(ref_med, 4), "load_average_before": load_before, "load_average_after": load_after,
           "cpus": os.cpu_count(), "machine": platform.platform(), "python": platform.python_version(),
           "note": "2 shared cores, 7 other engineers' tests and builds running at the same time",
           "pages": out_rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
