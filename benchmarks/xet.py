"""Xet benchmark: uploads, deduplication, downloads and server memory through Cove's Xet path, in one run.

    python benchmarks/xet.py [--size 1024] [--reps 3] [--workers 1] [--json results.json]

Against a real `cove serve` (SQLite, local blob store) started here on a free loopback port, with the stock
`huggingface_hub` + `hf_xet` clients (no `HF_HUB_DISABLE_XET`), each client call in its own process with an
empty `HF_HOME` / `HF_XET_CACHE` so that no client-side cache helps:

1. upload of a `--size` MiB random file with `HfApi.upload_file`, then a re-upload of the same file with
   1 MiB in the middle replaced: the bytes Cove received for the second (xorb + shard bodies, from
   `GET /cas/_stats?repo=...`) must be under 2 % of the file;
2. download of that file three ways: Xet (`hf_hub_download`, hf_xet: reconstruction + signed xorb range
   fetches), plain `GET /resolve` (`hf_hub_download` with `HF_HUB_DISABLE_XET=1`: Cove reconstructs the file
   server-side) and nginx serving the same bytes from a plain file at the same URL (the hub-core baseline,
   `hub_core.Bench.start_nginx`); plus a raw streaming GET that discards the bytes, Cove vs nginx;
3. the peak memory (summed PSS, and RSS) of the Cove process tree during the uploads and the downloads,
   for the big file against a 1 MiB file: flat in file size.

Prints a table, checks the targets, writes JSON (exit 0 even when a target is missed, 2 when the set-up
fails). Reuses the server start-up, nginx baseline and memory sampler of `hub_core.py`. Loopback only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import hub_core
from hub_core import GIB, MIB, TARGET_MEMORY_GROWTH_MIB, RssSampler, log, tree_cpu

REPO = "bench/xet"
BIG, SMALL = "big.bin", "small.bin"  # *.bin is LFS in a new repo's .gitattributes, so both travel by Xet
CHANGED = MIB  # bytes replaced in the middle of the file for the re-upload
#: The re-upload of a file with 1 MiB changed must move less than this fraction of the file (issue 3).
TARGET_DEDUP = 0.02
#: Downloads: hub core's target for Cove against nginx, applied to both of Cove's download paths.
TARGET_DOWNLOAD = hub_core.TARGET_DOWNLOAD

# One client operation, run in a fresh process (fresh HF_HOME / HF_XET_CACHE); prints its own timing so
# that interpreter start-up and imports do not count.
_CLIENT = r"""
import json, os, sys, time
from huggingface_hub import HfApi, hf_hub_download
op, endpoint, token, repo = sys.argv[1:5]
t = time.perf_counter()
if op == "upload":
    info = HfApi(endpoint=endpoint, token=token).upload_file(
        path_or_fileobj=sys.argv[5], path_in_repo=sys.argv[6], repo_id=repo)
    out = {"commit": info.oid}
else:
    out = {"path": hf_hub_download(repo, sys.argv[5], endpoint=endpoint, token=token or False,
                                   cache_dir=os.path.join(os.environ["HF_HOME"], "hub"))}
out["seconds"] = time.perf_counter() - t
print(json.dumps(out))
"""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(8 * MIB):
            digest.update(block)
    return digest.hexdigest()


class XetBench(hub_core.Bench):
    """hub_core's harness (work dir, `cove serve`, CLI, nginx, clean-up), driving Xet clients."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.results = {"config": {"size_mib": args.size_mib, "workers": args.workers, "reps": args.reps,
                                   "cpus": os.cpu_count(), "download_dir": str(self.cache_root)}}
        self.runs = 0

    # -- clients ------------------------------------------------------------------------------------
    def client(self, *argv: str, xet: bool = True) -> dict:
        """Run one client operation in a fresh process with empty HF / Xet caches (under the download dir)."""
        self.runs += 1
        home = self.cache_root / f"hf-{self.runs}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
        env.update(HF_HOME=str(home), HF_XET_CACHE=str(home / "xet"), HF_XET_TELEMETRY_ENABLED="0",
                   HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
        if not xet:
            env["HF_HUB_DISABLE_XET"] = "1"
        out = subprocess.run([sys.executable, "-c", _CLIENT, *argv], env=env, capture_output=True, text=True,
                             timeout=600)
        if out.returncode != 0:
            raise RuntimeError(f"client {argv[0]} failed:\n{out.stderr[-3000:]}")
        res = json.loads(out.stdout.strip().splitlines()[-1])
        res["home"] = home
        return res

    def upload(self, path: Path, name: str) -> float:  # type: ignore[override]
        res = self.client("upload", self.endpoint, self.token, REPO, str(path), name)
        shutil.rmtree(res["home"], ignore_errors=True)
        return res["seconds"]

    def download(self, endpoint: str, name: str, token: str, size: int, *, xet: bool,
                 sha256: str | None = None) -> float:
        """`hf_hub_download` into a fresh cache; the file's size (and sha256 if given) is checked."""
        res = self.client("download", endpoint, token, REPO, name, xet=xet)
        try:
            got = os.path.getsize(res["path"])
            if got != size:
                raise RuntimeError(f"downloaded {got} bytes of {name} from {endpoint}, expected {size}")
            if sha256 is not None and sha256_file(res["path"]) != sha256:
                raise RuntimeError(f"{name} from {endpoint} (xet={xet}) has the wrong content")
        finally:
            shutil.rmtree(res["home"], ignore_errors=True)
        return res["seconds"]

    def repo_stats(self) -> dict[str, int]:
        import httpx

        r = httpx.get(f"{self.endpoint}/cas/_stats", params={"repo": f"model/{REPO}"},
                      headers={"Authorization": f"Bearer {self.token}"}, timeout=30)
        r.raise_for_status()
        return r.json()

    # -- the run ------------------------------------------------------------------------------------
    def run(self) -> dict:
        args, res = self.args, self.results
        for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_XET"):
            os.environ.pop(var, None)
        os.environ.update(HF_HUB_DISABLE_TELEMETRY="1", HF_HOME=str(self.root / "hf-home"))
        big_size, small_size = args.size_mib * MIB, MIB
        t0 = time.perf_counter()

        log(f"work dir {self.root}; generating {args.size_mib} MiB of random bytes (+ a copy with 1 MiB changed)")
        v1, v1_oid = self.make_file(BIG, big_size)
        small, small_oid = self.make_file(SMALL, small_size)
        v2 = self.root / "src" / "big-v2.bin"
        shutil.copyfile(v1, v2)
        with open(v2, "r+b") as fh:
            fh.seek(max(0, (big_size - CHANGED) // 2))
            fh.write(os.urandom(min(CHANGED, big_size)))
        v2_oid = sha256_file(v2)

        log(f"starting cove serve on {self.endpoint} (workers={args.workers})")
        self.start_cove()
        self.cli("user", "add", "bench", "--password", "bench-password-1")
        self.token = self.cli("token", "create", "bench", "--role", "write", "--name", "bench").splitlines()[-1]
        from huggingface_hub import HfApi

        HfApi(endpoint=self.endpoint, token=self.token).create_repo(REPO)

        # A first Xet upload, not measured: one-off costs of a fresh process (lazy imports, the Xet tables,
        # first database pages) would otherwise land in the 1 MiB figure.
        warm, _ = self.make_file("warm-up.bin", small_size)
        self.upload(warm, "warm-up.bin")

        # (1) uploads, sampled: 1 MiB, the big file, the big file with 1 MiB changed. Same server process
        # throughout, so the per-repo counters are differences of one process's counters.
        mem: dict = {}
        up: dict = {}
        for key, path, name in (("small", small, SMALL), ("big", v1, BIG), ("big_changed", v2, BIG)):
            log(f"upload {key} ({os.path.getsize(path) / MIB:.0f} MiB) with hf_xet")
            before, cpu = self.repo_stats(), tree_cpu(self.cove_proc.pid)
            with RssSampler(self.cove_proc.pid) as s:
                seconds = self.upload(path, name)
            after = self.repo_stats()
            delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            size = os.path.getsize(path)
            received = delta.get("xorb_bytes_received", 0) + delta.get("shard_bytes_received", 0)
            up[key] = {"seconds": seconds, "MBps": size / seconds / 1e6, "size": size,
                       "bytes_received": received, "received_fraction": received / size,
                       "server_cpu_s": tree_cpu(self.cove_proc.pid) - cpu, "counters": delta}
            mem[f"upload_{key}"] = s.result()
        res["upload"] = up

        # (2) downloads, on a fresh server (what the uploads left in its heap must not count).
        self.start_cove()
        import httpx

        auth = {"Authorization": f"Bearer {self.token}"}
        head = httpx.head(f"{self.endpoint}/{REPO}/resolve/main/{BIG}", headers=auth)
        head.raise_for_status()
        if "x-xet-hash" not in head.headers:
            raise RuntimeError(f"{BIG} is not advertised as a Xet file: {dict(head.headers)}")
        commit = head.headers["x-repo-commit"]
        nginx = self.start_nginx({BIG: (v2, v2_oid, big_size), SMALL: (small, small_oid, small_size)}, commit,
                                 repo=REPO)

        # (3) memory while downloading: 1 MiB then the big file, by Xet and by plain GET, each kind on a
        # fresh server (both plan reconstructions from the same cached chunk tables). The first download of
        # each kind also checks the bytes, and warms the page cache for the timed runs.
        for kind, xet in (("xet", True), ("get", False)):
            if kind != "xet":
                self.start_cove()
            log(f"download ({kind}), sampled: 1 MiB then {args.size_mib} MiB")
            # As for uploads, one unmeasured download first: a fresh process's one-off costs (lazy imports, first
            # database pages, the thread pool) would otherwise land in the 1 MiB figure, or not, from run to run.
            self.download(self.endpoint, "warm-up.bin", self.token, small_size, xet=xet)
            with RssSampler(self.cove_proc.pid) as s:
                self.download(self.endpoint, SMALL, self.token, small_size, xet=xet, sha256=small_oid)
            mem[f"download_{kind}_small"] = s.result()
            with RssSampler(self.cove_proc.pid) as s:
                self.download(self.endpoint, BIG, self.token, big_size, xet=xet, sha256=v2_oid)
            mem[f"download_{kind}_big"] = s.result()
        self.download(nginx, BIG, "", big_size, xet=False, sha256=v2_oid)  # warm nginx's file too
        res["memory"] = mem

        # Timed downloads: alternating order, best and median of `reps`, server CPU per GiB.
        log(f"downloads: {args.reps} x Xet / GET from Cove / GET from nginx, and raw GET Cove / nginx")
        url = f"/{REPO}/resolve/main/{BIG}"
        targets = {
            "cove_xet": (lambda: self.download(self.endpoint, BIG, self.token, big_size, xet=True),
                         self.cove_proc.pid),
            "cove_get": (lambda: self.download(self.endpoint, BIG, self.token, big_size, xet=False),
                         self.cove_proc.pid),
            "nginx_get": (lambda: self.download(nginx, BIG, "", big_size, xet=False), self.nginx_proc.pid),
            "cove_raw": (lambda: self.raw_get(self.endpoint + url, auth, big_size), self.cove_proc.pid),
            "nginx_raw": (lambda: self.raw_get(nginx + url, {}, big_size), self.nginx_proc.pid),
        }
        timings: dict[str, list[float]] = {k: [] for k in targets}
        cpu: dict[str, list[float]] = {k: [] for k in targets}
        for i in range(args.reps):
            for key in (list(targets) if i % 2 == 0 else list(targets)[::-1]):
                fetch, pid = targets[key]
                before = tree_cpu(pid)
                timings[key].append(fetch())
                cpu[key].append(tree_cpu(pid) - before)
        res["download"] = {
            k: {"best_MBps": big_size / min(v) / 1e6, "median_MBps": big_size / statistics.median(v) / 1e6,
                "runs_s": v, "server_cpu_s_per_GiB": statistics.median(cpu[k]) * GIB / big_size}
            for k, v in timings.items()}
        res["elapsed_s"] = time.perf_counter() - t0
        return res


def verdict(res: dict) -> dict:
    up, dl, mem = res["upload"], res["download"], res["memory"]
    checks = {}
    frac = up["big_changed"]["received_fraction"]
    checks["reupload_received_fraction"] = {"ratio": frac, "target": TARGET_DEDUP, "ok": frac < TARGET_DEDUP}
    for key in ("cove_xet", "cove_get"):
        r = dl[key]["best_MBps"] / dl["nginx_get"]["best_MBps"]
        checks[f"download_{key}_vs_nginx"] = {"ratio": r, "target": TARGET_DOWNLOAD, "ok": r >= TARGET_DOWNLOAD}
    checks["download_raw_vs_nginx"] = {"ratio": dl["cove_raw"]["best_MBps"] / dl["nginx_raw"]["best_MBps"],
                                       "target": None, "ok": None}
    for op in ("upload", "download_xet", "download_get"):
        big, small = (f"{op}_big", f"{op}_small")
        growth = mem[big]["peak_mib"] - mem[small]["peak_mib"]
        checks[f"memory_{op}_growth_mib"] = {"ratio": growth, "target": TARGET_MEMORY_GROWTH_MIB,
                                             "ok": growth <= TARGET_MEMORY_GROWTH_MIB}
    return checks


def report(res: dict) -> str:
    up, dl, mem, c = res["upload"], res["download"], res["memory"], res["checks"]
    size = res["config"]["size_mib"]
    rows = [("measure", "cove", "baseline", "ratio", "target", "ok")]

    def ok(v: bool | None) -> str:
        return "-" if v is None else ("yes" if v else "NO")

    for key, label in (("big", f"upload {size} MiB (hf_xet), MB/s"),
                       ("big_changed", f"re-upload {size} MiB, 1 MiB changed, MB/s")):
        rows.append((label, f"{up[key]['MBps']:.0f}", "", "", "", ""))
    rows.append((f"upload {size} MiB: MiB received by Cove", f"{up['big']['bytes_received'] / MIB:.1f}",
                 f"{size} (file)", f"{up['big']['received_fraction']:.3f}", "", ""))
    chk = c["reupload_received_fraction"]
    rows.append(("re-upload: MiB received by Cove", f"{up['big_changed']['bytes_received'] / MIB:.1f}",
                 f"{size} (file)", f"{chk['ratio'] * 100:.2f} %", f"< {TARGET_DEDUP * 100:.0f} %", ok(chk["ok"])))
    rows.append(("server CPU s per GiB uploaded", f"{up['big']['server_cpu_s'] * GIB / up['big']['size']:.2f}",
                 "", "", "", ""))
    nginx = dl["nginx_get"]
    for key, label in (("cove_xet", "Xet (hf_xet)"), ("cove_get", "GET /resolve (reconstructed)")):
        chk = c[f"download_{key}_vs_nginx"]
        rows.append((f"download {size} MiB, {label}, MB/s best", f"{dl[key]['best_MBps']:.0f}",
                     f"{nginx['best_MBps']:.0f} nginx", f"{chk['ratio']:.2f}", f">= {TARGET_DOWNLOAD}",
                     ok(chk["ok"])))
        rows.append((f"download {size} MiB, {label}, MB/s median", f"{dl[key]['median_MBps']:.0f}",
                     f"{nginx['median_MBps']:.0f} nginx", f"{dl[key]['median_MBps'] / nginx['median_MBps']:.2f}",
                     "", ""))
        rows.append((f"server CPU s per GiB, {label}", f"{dl[key]['server_cpu_s_per_GiB']:.2f}",
                     f"{nginx['server_cpu_s_per_GiB']:.2f} nginx", "", "", ""))
    rows.append((f"raw GET {size} MiB discarded, MB/s best", f"{dl['cove_raw']['best_MBps']:.0f}",
                 f"{dl['nginx_raw']['best_MBps']:.0f} nginx", f"{c['download_raw_vs_nginx']['ratio']:.2f}", "", ""))
    for op, label in (("upload", "upload"), ("download_xet", "Xet download"), ("download_get", "GET download")):
        small, big = mem[f"{op}_small"], mem[f"{op}_big"]
        chk = c[f"memory_{op}_growth_mib"]
        rows.append((f"peak PSS MiB, {label} {size} MiB vs 1 MiB", f"{big['peak_mib']:.0f}",
                     f"{small['peak_mib']:.0f} (1 MiB)", f"+{chk['ratio']:.1f} MiB",
                     f"<= +{TARGET_MEMORY_GROWTH_MIB} MiB", ok(chk["ok"])))
    for op, label in (("upload", "upload"), ("download_xet", "Xet download"), ("download_get", "GET download")):
        small, big = mem[f"{op}_small"], mem[f"{op}_big"]
        rows.append((f"peak RSS sum MiB, {label} (info)", f"{big['peak_rss_mib']:.0f}",
                     f"{small['peak_rss_mib']:.0f} (1 MiB)",
                     f"+{big['peak_rss_mib'] - small['peak_rss_mib']:.1f} MiB", "", ""))
    return hub_core.format_table(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", "--size-mib", dest="size_mib", type=int, default=1024,
                   help="size of the big file in MiB (default 1024; 256 for a quick run)")
    p.add_argument("--workers", type=int, default=int(os.environ.get("COVE_WORKERS", "1")),
                   help="uvicorn workers for Cove, nginx worker_processes (default 1)")
    p.add_argument("--reps", type=int, default=3, help="timed downloads per target (default 3)")
    p.add_argument("--download-dir", default=None,
                   help="where clients keep their caches and downloads (default: /dev/shm when it has room)")
    p.add_argument("--tmp", default=None, help="where the work folder goes (default: the system temp dir)")
    p.add_argument("--json", default="benchmarks/results/xet.json", help="where to write the results")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    # Options of hub_core's harness that this benchmark does not use (its HEAD load test).
    p.set_defaults(connections=None, duration=None, head_reps=None, load=None)
    args = p.parse_args(argv)

    return hub_core.run_and_report(XetBench(args), verdict, report, args.json)


if __name__ == "__main__":
    sys.exit(main())
