"""Pull-through mirror throughput (issue 18, docs/mirror.md), two `cove serve` processes in one run:

- first read: a never-read LFS file through the mirror (fetched from the upstream while streamed to the client and
  stored) vs the same-sized file downloaded straight from the upstream, in the same run (target >= 0.9x);
- cached read: the file again through the mirror (an ordinary stored blob now) vs a plain Cove download of it
  from the upstream (target >= 0.9x).

Files are random bytes uploaded as classic LFS; the client streams each GET and discards the body. Runs
interleave (which goes first alternates) and report medians. Writes benchmarks/results/mirror.json.

    python benchmarks/mirror.py [--size-mib 256] [--reps 3] [--fetchers curl,httpx]

Each fetcher (COVE_MIRROR_FETCHER: curl, httpx) gets a mirror of its own, interleaved in the same run, with the
mirror process's CPU seconds per GiB of first read (its curl children included): on a CPU-starved host the
ratio measures the CPU left, the CPU cost does not depend on the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from hub_core import free_port, log, stop, wait_http  # noqa: E402

MIB = 1 << 20


def serve(data: Path, **env: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    full = {**os.environ, "COVE_DATA": str(data), "COVE_PORT": str(port), "COVE_HOST": "127.0.0.1",
            "XDG_CONFIG_HOME": str(data.parent / "config"), **env}
    logf = data.parent / f"{data.name}.log"
    proc = subprocess.Popen([sys.executable, "-m", "cove", "serve", "--log-level", "warning"], env=full,
                            stdout=open(logf, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/api/agent-harnesses", proc, logf)
    return proc, url


def cli(data: Path, *args: str) -> str:
    env = {**os.environ, "COVE_DATA": str(data), "XDG_CONFIG_HOME": str(data.parent / "config")}
    return subprocess.run([sys.executable, "-m", "cove", *args], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def get_mbps(url: str) -> float:
    n, t0 = 0, time.perf_counter()
    with httpx.stream("GET", url, timeout=600) as r:
        r.raise_for_status()
        for block in r.iter_raw(8 * MIB):
            n += len(block)
    return n / MIB / (time.perf_counter() - t0)


def cpu_s(pid: int) -> float:
    """CPU seconds of a process so far, with its ended children's (the mirror's curl)."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def stages(url: str, folder: Path, size_mib: int) -> dict[str, float]:
    """What each stage of a first read manages alone, MiB/s: curl from the upstream into a file (the mirror's
    receive + store), hashing that file back (its check), and the benchmark's client alone (its read)."""
    import hashlib
    import shutil

    out: dict[str, float] = {"client_alone": get_mbps(url)}
    if shutil.which("curl"):
        dest = folder / "stage.bin"
        t0 = time.perf_counter()
        subprocess.run(["curl", "-sS", "-o", str(dest), url], check=True)
        out["curl_to_file"] = size_mib / (time.perf_counter() - t0)
        t0, digest, buf = time.perf_counter(), hashlib.sha256(), memoryview(bytearray(8 * MIB))
        with open(dest, "rb", buffering=0) as fh:
            while n := fh.readinto(buf):
                digest.update(buf[:n])
        out["hash_file"] = size_mib / (time.perf_counter() - t0)
        dest.unlink()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--fetchers", default="curl,httpx", help="COVE_MIRROR_FETCHER of each mirror, compared in "
                    "the same run; the first one is the headline")
    ap.add_argument("--json", default=str(HERE / "results" / "mirror.json"))
    a = ap.parse_args()
    fetchers = a.fetchers.split(",")
    root = Path(tempfile.mkdtemp(prefix="cove-bench-mirror-"))
    up, mirrors = None, {}
    try:
        up, up_url = serve(root / "up")
        cli(root / "up", "user", "add", "bench")
        token = cli(root / "up", "token", "create", "bench", "--role", "write")
        os.environ["HF_HUB_DISABLE_XET"] = "1"
        from huggingface_hub import HfApi

        api = HfApi(endpoint=up_url, token=token)
        repo = "bench/files"
        api.create_repo(repo)
        names = {(i, f): f"f{i}-{f}.bin" for i in range(a.reps) for f in fetchers}
        for name in names.values():
            src = root / name
            with open(src, "wb") as fh:
                for _ in range(a.size_mib):
                    fh.write(os.urandom(MIB))
            api.upload_file(path_or_fileobj=str(src), path_in_repo=name, repo_id=repo)
            src.unlink()
        log(f"uploaded {len(names)} x {a.size_mib} MiB")
        for f in fetchers:
            mirrors[f] = serve(root / f"mirror-{f}", COVE_MIRROR_UPSTREAM=up_url, COVE_MIRROR_TOKEN=token,
                               COVE_MIRROR_FETCHER=f)
            httpx.get(f"{mirrors[f][1]}/api/models/{repo}", timeout=60).raise_for_status()  # mirror the history
        s = {f: {"first": [], "direct": [], "cached": [], "plain": [], "cpu_s_per_gib": []} for f in fetchers}
        loads = []
        for i in range(a.reps):
            for k in range(len(fetchers)):
                f = fetchers[(i + k) % len(fetchers)]  # which mirror goes first rotates
                name, (proc, mir_url), x = names[i, f], mirrors[f], s[f]
                up_file, mir_file = f"{up_url}/{repo}/resolve/main/{name}", f"{mir_url}/{repo}/resolve/main/{name}"
                get_mbps(up_file)  # the upstream's page cache warm for both: disks are not what is compared
                if (i + k) % 2:
                    x["direct"].append(get_mbps(up_file))
                c0 = cpu_s(proc.pid)
                x["first"].append(get_mbps(mir_file))
                x["cpu_s_per_gib"].append((cpu_s(proc.pid) - c0) * 1024 / a.size_mib)
                if not (i + k) % 2:
                    x["direct"].append(get_mbps(up_file))
                if (i + k) % 2:
                    x["plain"].append(get_mbps(up_file))
                    x["cached"].append(get_mbps(mir_file))
                else:
                    x["cached"].append(get_mbps(mir_file))
                    x["plain"].append(get_mbps(up_file))
                loads.append(os.getloadavg()[0])
                log(f"{f} {name}: first {x['first'][-1]:.0f} vs direct {x['direct'][-1]:.0f} MiB/s "
                    f"(mirror process {x['cpu_s_per_gib'][-1]:.2f} CPU-s/GiB); cached {x['cached'][-1]:.0f} "
                    f"vs plain {x['plain'][-1]:.0f} MiB/s; load {loads[-1]:.1f}")
        alone = [stages(f"{up_url}/{repo}/resolve/main/{names[0, fetchers[0]]}", root, a.size_mib) for _ in range(3)]
        log(f"stages alone (MiB/s): {alone}")
        med = statistics.median
        per = {f: {
            "first_read_mibps": med(x["first"]), "direct_upstream_mibps": med(x["direct"]),
            "first_read_ratio": med(x["first"]) / med(x["direct"]),
            "first_read_ratio_per_pair": med(a_ / b for a_, b in zip(x["first"], x["direct"], strict=True)),
            "mirror_cpu_s_per_gib": med(x["cpu_s_per_gib"]),
            "cached_read_mibps": med(x["cached"]), "plain_cove_mibps": med(x["plain"]),
            "cached_read_ratio": med(x["cached"]) / med(x["plain"]), "samples": x} for f, x in s.items()}
        head = per[fetchers[0]]
        res = {
            "size_mib": a.size_mib, "reps": a.reps, "cpus": os.cpu_count(), "loadavg": list(os.getloadavg()),
            "load1_during": loads, "fetcher": fetchers[0],
            "stages_alone_mibps": {k: med(x[k] for x in alone) for k in alone[0]},
            **{k: v for k, v in head.items() if k != "samples"}, "fetchers": per,
        }
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
        for f, r in per.items():
            print(f"[{f}] first read through the mirror: {r['first_read_mibps']:.0f} MiB/s vs direct "
                  f"{r['direct_upstream_mibps']:.0f} MiB/s = {r['first_read_ratio']:.2f}x (target >= 0.9); "
                  f"mirror process {r['mirror_cpu_s_per_gib']:.2f} CPU-s/GiB")
            print(f"[{f}] cached read through the mirror: {r['cached_read_mibps']:.0f} MiB/s vs plain Cove "
                  f"{r['plain_cove_mibps']:.0f} MiB/s = {r['cached_read_ratio']:.2f}x (target >= 0.9)")
        print(f"each stage alone: {res['stages_alone_mibps']}")
        print(f"load average (1 min) during the run: {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs")
        return 0
    finally:
        for proc, _ in mirrors.values():
            stop(proc)
        stop(up)
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
