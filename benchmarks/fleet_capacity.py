"""Issue 17 item 10: what one `cove serve` process asks of PostgreSQL, for docs/scale-out.md's capacity model.

    python benchmarks/fleet_capacity.py [--idle 20] [--commits 60] [--heads 400]

A throwaway PostgreSQL cluster (tests/storage/pg.py), one `cove serve` on it. Measured from PostgreSQL's own
counters (pg_stat_database.xact_commit + xact_rollback, pg_stat_activity): transactions per second while idle
(the background pollers: scan worker, webhook worker, Spaces supervisor, download flusher, git maintenance
lease), transactions per commit, per HEAD /resolve (answer cache cold and warm), and the most connections the
process holds while 8 threads commit and 32 threads send HEADs. Writes benchmarks/results/fleet-capacity.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from perf16_common import PY, ROOT, loadavg, serve, stop, write_json  # noqa: F401

sys.path.insert(0, str(ROOT))
from hub_core import free_port  # noqa: E402
from tests.storage.pg import PgCluster  # noqa: E402


def _xacts(url: str, db: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        return c.execute("select xact_commit + xact_rollback from pg_stat_database where datname = %s",
                         (db,)).fetchone()[0]


def _conns(url: str, db: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        return c.execute("select count(*) from pg_stat_activity where datname = %s and pid <> pg_backend_pid()",
                         (db,)).fetchone()[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle", type=float, default=20)
    ap.add_argument("--commits", type=int, default=60)
    ap.add_argument("--heads", type=int, default=400)
    args = ap.parse_args()
    import subprocess

    from huggingface_hub import HfApi

    result: dict = {"config": vars(args), "loadavg_start": loadavg(), "cpus": os.cpu_count()}
    pg = PgCluster(free_port())
    pg.start()
    try:
        db = f"cove_{uuid.uuid4().hex[:8]}"
        url = pg.create_database(db)
        plain = pg.url(db, "postgresql")
        data = Path(tempfile.mkdtemp(prefix="cove-fleetcap-")) / "data"
        data.mkdir()
        env = {"COVE_DATABASE_URL": url, "COVE_SECRET": "x" * 32}
        base = {k: v for k, v in os.environ.items() if not k.startswith("COVE_")}
        run_env = {**base, **env, "COVE_DATA": str(data), "COVE_CONFIG": str(data.parent / "c.toml")}
        subprocess.run([PY, "-m", "cove", "init"], env=run_env, check=True, capture_output=True)
        subprocess.run([PY, "-m", "cove", "user", "add", "cap"], env=run_env, check=True, capture_output=True)
        token = subprocess.run([PY, "-m", "cove", "token", "create", "cap", "--role", "write"], env=run_env,
                               check=True, capture_output=True, text=True).stdout.strip()
        proc, endpoint, _log = serve(data, **env)
        try:
            api = HfApi(endpoint=endpoint, token=token)
            api.create_repo("cap/r")
            api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id="cap/r")
            time.sleep(2)
            x0, t0 = _xacts(plain, db), time.monotonic()
            time.sleep(args.idle)
            result["idle_xacts_per_s"] = round((_xacts(plain, db) - x0) / (time.monotonic() - t0), 2)
            result["idle_connections"] = _conns(plain, db)

            peak = [0]
            done = threading.Event()

            def watch() -> None:
                while not done.is_set():
                    peak[0] = max(peak[0], _conns(plain, db))
                    time.sleep(0.05)

            w = threading.Thread(target=watch, daemon=True)
            w.start()
            x0, t0 = _xacts(plain, db), time.monotonic()

            def commit(i: int) -> None:
                api.upload_file(path_or_fileobj=f"{i}\n".encode(), path_in_repo=f"f{i % 8}.txt", repo_id="cap/r")

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(commit, range(args.commits)))
            secs = time.monotonic() - t0
            idle = result["idle_xacts_per_s"] * secs
            result["commit"] = {"commits_per_s": round(args.commits / secs, 1),
                                "xacts_per_commit": round((_xacts(plain, db) - x0 - idle) / args.commits, 2),
                                "peak_connections": peak[0]}
            import httpx

            head_url = f"{endpoint}/cap/r/resolve/main/config.json"
            with httpx.Client() as c:  # the first HEAD fills the answer cache
                c.head(head_url)
            peak[0] = 0
            x0, t0 = _xacts(plain, db), time.monotonic()

            client = httpx.Client(limits=httpx.Limits(max_connections=32))

            def head(_i: int) -> None:
                assert client.head(head_url).status_code == 200

            with ThreadPoolExecutor(32) as pool:
                list(pool.map(head, range(args.heads)))
            client.close()
            secs = time.monotonic() - t0
            time.sleep(6)  # the download counts are flushed every 5 s: one batched write
            idle = result["idle_xacts_per_s"] * (time.monotonic() - t0)
            result["head_resolve_c32"] = {"rps": round(args.heads / secs), "peak_connections": peak[0],
                                          "xacts_per_head": round((_xacts(plain, db) - x0 - idle) / args.heads, 3)}
            done.set()
        finally:
            stop(proc)
    finally:
        pg.stop()
    out = write_json("fleet-capacity.json", result)
    print(out)
    print({k: v for k, v in result.items() if k not in ("config",)})


if __name__ == "__main__":
    main()
