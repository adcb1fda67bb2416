"""Issue 16 item 5: uploads at disk speed, each byte written once. In one run, on the same disk:

    python benchmarks/uploads_once.py [--size-mib 1024] [--reps 3] [--no-xet]

- `dd bs=1M conv=fsync` of the same source file into the data folder (the reference);
- classic LFS, one PUT (`basic`), sent by curl from the file;
- classic LFS `multipart` (the parts PUT in order by curl, then the completion);
- Xet (`HfApi.upload_file` through hf_xet; each repeat uploads fresh random bytes, so nothing deduplicates).
Each: MB/s, the server process's CPU seconds per GiB, and the bytes it wrote (`/proc/<pid>/io` wchar) per
byte uploaded. Repeats interleaved; medians, ranges and the load average go to JSON.
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--no-xet", action="store_true")
    p.add_argument("--json", default="benchmarks/results/uploads_once.json")
    a = p.parse_args(argv)
    bench = Bench(bench_args(size_mib=a.size_mib, reps=a.reps))
    res: dict = {"config": vars(a), "loadavg_start": loadavg()}
    size = a.size_mib * MIB
    try:
        os.environ.update(HF_HOME=str(bench.root / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
                          HF_HUB_DISABLE_PROGRESS_BARS="1")
        import httpx
        from huggingface_hub import HfApi

        src, _ = bench.make_file("src.bin", size)
        bench.start_cove()
        pid = bench.cove_proc.pid
        bench.cli("user", "add", "bench", "--password", "bench-password-1")
        token = bench.cli("token", "create", "bench", "--role", "write", "--name", "bench").splitlines()[-1]
        api = HfApi(endpoint=bench.endpoint, token=token)
        api.create_repo(REPO)
        auth = {"authorization": f"Bearer {token}"}
        batch_url = f"{bench.endpoint}/{REPO}.git/info/lfs/objects/batch"

        def lfs(oid: str, multipart: bool) -> None:
            transfers = ["basic", "multipart"] if multipart else ["basic"]
            obj = httpx.post(batch_url, headers=auth, timeout=60, json={
                "operation": "upload", "transfers": transfers, "objects": [{"oid": oid, "size": size}]}
            ).json()["objects"][0]
            up = obj["actions"]["upload"]
            if not multipart:
                _curl_put(up["href"], src)
                return
            parts = []
            for k in sorted(k for k in up["header"] if k.isdigit()):
                n = int(k)
                etag = _curl_put(up["header"][k], part_files[n - 1])["etag"]
                parts.append({"partNumber": n, "etag": etag})
            r = httpx.post(up["href"], json={"oid": oid, "parts": parts}, timeout=600)
            r.raise_for_status()

        part_files: list[Path] = []
        shm = Path(tempfile.mkdtemp(prefix="cove-bench-parts-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
        runs: dict[str, list] = {k: [] for k in ("dd", "lfs_basic", "lfs_multipart", *(() if a.no_xet else ("xet",)))}
        dd_dest = bench.data / "dd-test.bin"
        for rep in range(a.reps):
            t = time.perf_counter()
            subprocess.run(["dd", f"if={src}", f"of={dd_dest}", "bs=1M", "conv=fsync", "status=none"], check=True)
            runs["dd"].append({"MBps": size / (time.perf_counter() - t) / 1e6})
            dd_dest.unlink()
            for kind in (("lfs_basic", "lfs_multipart") if rep % 2 == 0 else ("lfs_multipart", "lfs_basic")):
                oid = _refresh(src, rep * 2 + (kind == "lfs_multipart"))
                if kind == "lfs_multipart":
                    part_files = _split(src, size, shm)
                w0 = _wchar(pid)
                _, wall, cpu = cpu_around(pid, lambda oid=oid, kind=kind: lfs(oid, kind == "lfs_multipart"), kind)
                runs[kind].append({"MBps": size / wall / 1e6, "cpu_s_per_GiB": cpu * (1 << 30) / size,
                                   "written_per_byte": (_wchar(pid) - w0) / size})
            if not a.no_xet:
                fresh, _ = bench.make_file(f"xet-{rep}.bin", size)
                w0 = _wchar(pid)
                _, wall, cpu = cpu_around(pid, lambda fresh=fresh, rep=rep: api.upload_file(
                    path_or_fileobj=str(fresh), path_in_repo=f"x{rep}.bin", repo_id=REPO), "xet")
                runs["xet"].append({"MBps": size / wall / 1e6, "cpu_s_per_GiB": cpu * (1 << 30) / size,
                                    "written_per_byte": (_wchar(pid) - w0) / size})
                fresh.unlink()
            log(f"rep {rep + 1}/{a.reps}: " + json.dumps({k: v[-1] for k, v in runs.items()}, default=str))
        res["runs"] = {k: summary(v) for k, v in runs.items()}
        res["loadavg_end"] = loadavg()
        dd_mbps = res["runs"]["dd"]["median_MBps"]
        res["ratios"] = {f"{k}_MBps_vs_dd": v["median_MBps"] / dd_mbps for k, v in res["runs"].items() if k != "dd"}
        res["targets"] = {"cpu_s_per_GiB": "<= 1.5", "written_per_byte": "~1 (once)"}
    finally:
        bench.close()
        shutil.rmtree(shm, ignore_errors=True)
    print(f"load average {res['loadavg_start']} -> {res['loadavg_end']}")
    for k, v in res["runs"].items():
        extra = "" if k == "dd" else (f"  {v['median_cpu_s_per_GiB']:.2f} CPU s/GiB  "
                                      f"written {v['median_written_per_byte']:.2f}x")
        print(f"{k:14} {v['median_MBps']:7.0f} MB/s{extra}")
    return finish(res, a.json, 28)


if __name__ == "__main__":
    sys.exit(main())
