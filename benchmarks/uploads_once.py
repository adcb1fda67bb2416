"""Issue 16 item 5: uploads at disk speed, each byte written once. In one run, on the same disk:

    python benchmarks/uploads_once.py [--size-mib 1024] [--reps 3] [--no-xet] [--baseline-src DIR]

- `dd bs=1M conv=fsync` of the same source file into the data folder (the reference);
- classic LFS, one PUT (`basic`), sent by curl from the file;
- classic LFS `multipart` (the parts PUT in order by curl, then the completion);
- Xet (`HfApi.upload_file` through hf_xet; each repeat uploads fresh random bytes, so nothing deduplicates).
Each: MB/s, the server process tree's CPU seconds per GiB (psutil utime+stime around the upload only), the
bytes it wrote (`/proc/<pid>/io` wchar) per byte uploaded, and the 1-min load average. Repeats interleaved;
medians, ranges and the load average go to JSON. `--baseline-src DIR` runs a second server on another
version's code (PYTHONPATH) and measures it interleaved with this one: before/after in the same run.
Targets: server CPU <= 1.5 s/GiB for LFS (both) and Xet; written once (wchar/bytes ~ 1).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bytes_common import MIB, Bench, bench_args, cpu_around, finish, loadavg, log, summary  # noqa: E402

REPO = "bench/up"


def _wchar(pid: int) -> int:
    import psutil

    return psutil.Process(pid).io_counters().write_chars


def _refresh(path: Path, rep: int) -> str:
    """Make the file a new object (its first 8 bytes); its sha256."""
    with open(path, "r+b") as fh:
        fh.write(rep.to_bytes(8, "little") + os.urandom(8))
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(8 * MIB):
            h.update(block)
    return h.hexdigest()


def _split(src: Path, size: int, folder: Path) -> list[Path]:
    """The multipart parts as files (in RAM when /dev/shm exists), so that curl sends parts as it sends the
    whole file: the same client for both."""
    from cove.services.uploads import part_size

    for old in folder.iterdir():
        old.unlink()
    chunk, out = part_size(size), []
    with open(src, "rb") as fh:
        for n in range(1, -(-size // chunk) + 1):
            path = folder / f"{n:05d}"
            path.write_bytes(fh.read(chunk))
            out.append(path)
    return out


def _curl_put(url: str, path: Path) -> dict:
    cmd = ["curl", "-sf", "-X", "PUT", "-T", str(path), "-H", "Expect:", url, "-D", "-", "-o", "/dev/null"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    etag = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.lower().startswith("etag:")), "")
    return {"etag": etag}


class _Server:
    """One `cove serve` under test (this checkout, or `--baseline-src`'s code) with its user, repo and token."""

    def __init__(self, bench: Bench, name: str, size: int) -> None:
        from huggingface_hub import HfApi

        self.bench, self.name, self.size = bench, name, size
        bench.start_cove()
        self.pid = bench.cove_proc.pid
        bench.cli("user", "add", "bench", "--password", "bench-password-1")
        token = bench.cli("token", "create", "bench", "--role", "write", "--name", "bench").splitlines()[-1]
        self.api = HfApi(endpoint=bench.endpoint, token=token)
        self.api.create_repo(REPO)
        self.auth = {"authorization": f"Bearer {token}"}
        self.batch_url = f"{bench.endpoint}/{REPO}.git/info/lfs/objects/batch"

    def lfs(self, src: Path, parts: list[Path], oid: str, size: int, multipart: bool) -> None:
        import httpx

        transfers = ["basic", "multipart"] if multipart else ["basic"]
        obj = httpx.post(self.batch_url, headers=self.auth, timeout=60, json={
            "operation": "upload", "transfers": transfers, "objects": [{"oid": oid, "size": size}]}
        ).json()["objects"][0]
        up = obj["actions"]["upload"]
        if not multipart:
            _curl_put(up["href"], src)
            return
        done = []
        for k in sorted(k for k in up["header"] if k.isdigit()):
            n = int(k)
            done.append({"partNumber": n, "etag": _curl_put(up["header"][k], parts[n - 1])["etag"]})
        httpx.post(up["href"], json={"oid": oid, "parts": done}, timeout=600).raise_for_status()

    def measure(self, kind: str, fn) -> dict:  # noqa: ANN001
        w0 = _wchar(self.pid)
        _, wall, cpu = cpu_around(self.pid, fn, f"{kind}{self.name}")
        size = self.size
        out = {"MBps": size / wall / 1e6, "cpu_s_per_GiB": cpu * (1 << 30) / size,
               "written_per_byte": (_wchar(self.pid) - w0) / size, "loadavg_1m": loadavg()[0]}
        for ns in ("lfs", "xorbs"):  # measured: dropped (never read again; a small shared disk)
            for path in (self.bench.data / "blobs" / ns).rglob("*"):
                if path.is_file():
                    path.unlink()
        return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--no-xet", action="store_true")
    p.add_argument("--baseline-src", help="a `src` folder of the code to compare with (e.g. `git archive REV src | "
                   "tar -x -C DIR`, then DIR/src): a second server runs it, measured interleaved as <kind>@baseline")
    p.add_argument("--json", default="benchmarks/results/uploads_once.json")
    a = p.parse_args(argv)
    bench = Bench(bench_args(size_mib=a.size_mib, reps=a.reps))
    benches = [bench]
    res: dict = {"config": vars(a), "loadavg_start": loadavg()}
    size = a.size_mib * MIB
    shm = Path(tempfile.mkdtemp(prefix="cove-bench-parts-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    try:
        os.environ.update(HF_HOME=str(bench.root / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
                          HF_HUB_DISABLE_PROGRESS_BARS="1")
        src, _ = bench.make_file("src.bin", size)
        servers = [_Server(bench, "", size)]
        if a.baseline_src:
            old = Bench(bench_args(size_mib=a.size_mib, reps=a.reps))
            benches.append(old)
            old.env["PYTHONPATH"] = str(Path(a.baseline_src).resolve())
            servers.append(_Server(old, "@baseline", size))
        kinds = ("lfs_basic", "lfs_multipart", *(() if a.no_xet else ("xet",)))
        runs: dict[str, list] = {"dd": [], **{k + s.name: [] for s in servers for k in kinds}}
        dd_dest = bench.data / "dd-test.bin"
        part_files: list[Path] = []
        for rep in range(a.reps):
            t = time.perf_counter()
            subprocess.run(["dd", f"if={src}", f"of={dd_dest}", "bs=1M", "conv=fsync", "status=none"], check=True)
            runs["dd"].append({"MBps": size / (time.perf_counter() - t) / 1e6, "loadavg_1m": loadavg()[0]})
            dd_dest.unlink()
            order = servers if rep % 2 == 0 else servers[::-1]
            lfs_kinds = ("lfs_basic", "lfs_multipart") if rep % 2 == 0 else ("lfs_multipart", "lfs_basic")
            for i, kind in enumerate(lfs_kinds):
                for j, s in enumerate(order):
                    oid = _refresh(src, ((rep * 2 + i) * 2 + j))
                    if kind == "lfs_multipart":
                        part_files = _split(src, size, shm)
                    runs[kind + s.name].append(s.measure(kind, lambda s=s, oid=oid, kind=kind, pf=part_files: s.lfs(
                        src, pf, oid, size, kind == "lfs_multipart")))
            if not a.no_xet:
                for s in order:
                    fresh, _ = bench.make_file(f"xet-{rep}{s.name}.bin", size)
                    runs["xet" + s.name].append(s.measure("xet", lambda s=s, fresh=fresh, rep=rep: s.api.upload_file(
                        path_or_fileobj=str(fresh), path_in_repo=f"x{rep}.bin", repo_id=REPO)))
                    fresh.unlink()
            log(f"rep {rep + 1}/{a.reps}: " + json.dumps({k: v[-1] for k, v in runs.items()}, default=str))
        res["runs"] = {k: summary(v) for k, v in runs.items()}
        res["loadavg_end"] = loadavg()
        dd_mbps = res["runs"]["dd"]["median_MBps"]
        res["ratios"] = {f"{k}_MBps_vs_dd": v["median_MBps"] / dd_mbps for k, v in res["runs"].items() if k != "dd"}
        res["targets"] = {"cpu_s_per_GiB": "<= 1.5", "written_per_byte": "~1 (once)"}
    finally:
        for b in benches:
            b.close()
        shutil.rmtree(shm, ignore_errors=True)
    print(f"load average {res['loadavg_start']} -> {res['loadavg_end']}")
    for k, v in res["runs"].items():
        extra = "" if k == "dd" else (f"  {v['median_cpu_s_per_GiB']:.2f} CPU s/GiB "
                                      f"({v['range_cpu_s_per_GiB'][0]:.2f}-{v['range_cpu_s_per_GiB'][1]:.2f})  "
                                      f"written {v['median_written_per_byte']:.2f}x")
        print(f"{k:24} {v['median_MBps']:7.0f} MB/s{extra}")
    return finish(res, a.json, 28)


if __name__ == "__main__":
    sys.exit(main())
