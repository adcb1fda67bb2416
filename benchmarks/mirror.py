"""Pull-through mirror throughput (issue 18, docs/mirror.md), two `cove serve` processes in one run:

- first read: a never-read LFS file through the mirror (fetched from the upstream while streamed to the client and
  stored) vs the same-sized file downloaded straight from the upstream, in the same run (target >= 0.9x);
- cached read: the file again through the mirror (an ordinary stored blob now) vs a plain Cove download of it
  from the upstream (target >= 0.9x).

Files are random bytes uploaded as classic LFS; the client streams each GET and discards the body. Runs
interleave (which goes first alternates) and report medians. Writes benchmarks/results/mirror.json.

    python benchmarks/mirror.py [--size-mib 256] [--reps 3]
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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", default=str(HERE / "results" / "mirror.json"))
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cove-bench-mirror-"))
    up = mir = None
    try:
        up, up_url = serve(root / "up")
        cli(root / "up", "user", "add", "bench")
        token = cli(root / "up", "token", "create", "bench", "--role", "write")
        os.environ["HF_HUB_DISABLE_XET"] = "1"
        from huggingface_hub import HfApi

        api = HfApi(endpoint=up_url, token=token)
        repo = "bench/files"
        api.create_repo(repo)
        names = [f"f{i}.bin" for i in range(2 * a.reps)]
        for name in names:
            src = root / name
            with open(src, "wb") as fh:
                for _ in range(a.size_mib):
                    fh.write(os.urandom(MIB))
            api.upload_file(path_or_fileobj=str(src), path_in_repo=name, repo_id=repo)
            src.unlink()
        log(f"uploaded {len(names)} x {a.size_mib} MiB")
        mir, mir_url = serve(root / "mirror", COVE_MIRROR_UPSTREAM=up_url, COVE_MIRROR_TOKEN=token)
        httpx.get(f"{mir_url}/api/models/{repo}", timeout=60).raise_for_status()  # mirror the history
        first, direct, cached, plain = [], [], [], []
        for i in range(a.reps):
            for j, name in enumerate(names[2 * i: 2 * i + 2]):
                up_file, mir_file = f"{up_url}/{repo}/resolve/main/{name}", f"{mir_url}/{repo}/resolve/main/{name}"
                get_mbps(up_file)  # the upstream's page cache warm for both: disks are not what is compared
                if (i + j) % 2:
                    direct.append(get_mbps(up_file))
                    first.append(get_mbps(mir_file))
                else:
                    first.append(get_mbps(mir_file))
                    direct.append(get_mbps(up_file))
                if (i + j) % 2:
                    plain.append(get_mbps(up_file))
                    cached.append(get_mbps(mir_file))
                else:
                    cached.append(get_mbps(mir_file))
                    plain.append(get_mbps(up_file))
                log(f"{name}: first {first[-1]:.0f} vs direct {direct[-1]:.0f} MiB/s; "
                    f"cached {cached[-1]:.0f} vs plain {plain[-1]:.0f} MiB/s")
        med = statistics.median
        res = {
            "size_mib": a.size_mib, "reps": a.reps, "cpus": os.cpu_count(), "loadavg": list(os.getloadavg()),
            "first_read_mibps": med(first), "direct_upstream_mibps": med(direct),
            "first_read_ratio": med(first) / med(direct),
            "cached_read_mibps": med(cached), "plain_cove_mibps": med(plain),
            "cached_read_ratio": med(cached) / med(plain),
            "samples": {"first": first, "direct": direct, "cached": cached, "plain": plain},
        }
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
        print(f"first read through the mirror: {res['first_read_mibps']:.0f} MiB/s vs direct "
              f"{res['direct_upstream_mibps']:.0f} MiB/s = {res['first_read_ratio']:.2f}x (target >= 0.9)")
        print(f"cached read through the mirror: {res['cached_read_mibps']:.0f} MiB/s vs plain Cove "
              f"{res['plain_cove_mibps']:.0f} MiB/s = {res['cached_read_ratio']:.2f}x (target >= 0.9)")
        return 0
    finally:
        stop(mir)
        stop(up)
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
