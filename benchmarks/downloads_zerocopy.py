"""Issue 16 item 4: download bytes at nginx's cost. Cove (zero-copy on), Cove with COVE_ZEROCOPY=0 (Python
reads and writes every byte: the code before) and nginx serving the same blob file, in one run:

    python benchmarks/downloads_zerocopy.py [--size-mib 1024] [--reps 3] [--duration 5] [--connections 32]

1. GETs of the big LFS file through `/resolve` with curl to /dev/null (`--gets` in a row per sample): MB/s
   and the server process's CPU seconds per GiB sent (psutil cpu_times around the curls);
2. GETs of a 4 MiB LFS file at c=32 on keep-alive connections (bodies dropped): req/s, p99, server CPU.
Repeats are interleaved (cove, cove-nozc, nginx, cove, ...); medians, ranges and the load average go to JSON.
Targets: CPU/GiB <= 1.5x nginx's; 4 MiB req/s >= 0.8x nginx's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bytes_common import (  # noqa: E402
    MIB,
    Bench,
    bench_args,
    cpu_around,
    finish,
    free_port,
    load_get,
    loadavg,
    log,
    summary,
    wait_http,
)

REPO = "bench/core"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--gets", type=int, default=3, help="single-stream GETs per CPU sample (default 3)")
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--json", default="benchmarks/results/downloads_zerocopy.json")
    a = p.parse_args(argv)
    bench = Bench(bench_args(size_mib=a.size_mib, reps=a.reps, duration=a.duration, connections=a.connections))
    procs = []
    res: dict = {"config": vars(a), "loadavg_start": loadavg()}
    try:
        os.environ.update(HF_HOME=str(bench.root / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
                          HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_XET="1")
        from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_url

        constants.HF_HUB_DISABLE_XET = True
        big_size = a.size_mib * MIB
        log(f"generating {a.size_mib} MiB + 4 MiB")
        big, big_oid = bench.make_file("big.bin", big_size)
        small, small_oid = bench.make_file("small.bin", 4 * MIB)
        bench.start_cove()
        bench.cli("user", "add", "bench", "--password", "bench-password-1")
        token = bench.cli("token", "create", "bench", "--role", "write", "--name", "bench").splitlines()[-1]
        api = HfApi(endpoint=bench.endpoint, token=token)
        api.create_repo(REPO)
        log("uploading (classic LFS)")
        api.upload_file(path_or_fileobj=str(small), path_in_repo="small.bin", repo_id=REPO)
        api.upload_file(path_or_fileobj=str(big), path_in_repo="big.bin", repo_id=REPO)
        commit = get_hf_file_metadata(hf_hub_url(REPO, "big.bin", endpoint=bench.endpoint)).commit_hash
        from cove.storage.blobs_local import LocalBlobStore

        blobs = LocalBlobStore(bench.data / "blobs")
        files = {n: (Path(blobs.local_path(f"lfs/{o}")), o, s)
                 for n, o, s in (("big.bin", big_oid, big_size), ("small.bin", small_oid, 4 * MIB))}
        nginx = bench.start_nginx(files, commit)
        # The code before: the same server with zero-copy off, on the same data.
        port = free_port()
        env = {**bench.env, "COVE_PORT": str(port), "COVE_ZEROCOPY": "0"}
        logf = bench.root / "cove-nozc.log"
        with open(logf, "ab") as fh:
            nozc = subprocess.Popen([sys.executable, "-m", "cove", "serve", "--log-level", "warning"], env=env,
                                    stdout=fh, stderr=subprocess.STDOUT)
        procs.append(nozc)
        wait_http(f"http://127.0.0.1:{port}/api/agent-harnesses", nozc, logf)
        targets = {"cove": (bench.endpoint, bench.cove_proc.pid), "cove_nozc": (f"http://127.0.0.1:{port}", nozc.pid),
                   "nginx": (nginx, bench.nginx_proc.pid)}
        url = {k: f"{e}/{REPO}/resolve/main/" for k, (e, _) in targets.items()}
        for k in targets:  # warm the page cache and each server
            subprocess.run(["curl", "-sf", "-o", "/dev/null", url[k] + "big.bin"], check=True)
        single = {k: [] for k in targets}
        many = {k: [] for k in targets}
        order = list(targets)
        for rep in range(a.reps):
            order = order[1:] + order[:1]  # who goes first rotates
            for k in order:
                pid = targets[k][1]
                # `--gets` GETs per sample: psutil's CPU times tick in 10 ms, nginx spends ~50 ms per GiB.
                _, wall, cpu = cpu_around(pid, lambda k=k: [subprocess.run(
                    ["curl", "-sf", "-o", "/dev/null", url[k] + "big.bin"], check=True) for _ in range(a.gets)],
                    f"single_{k}_{rep}")
                sent = big_size * a.gets
                single[k].append({"MBps": sent / wall / 1e6, "cpu_s_per_GiB": cpu * (1 << 30) / sent,
                                  "wall_s": wall, "load1": os.getloadavg()[0]})
            for k in order:
                pid = targets[k][1]
                client0 = time.process_time()
                out, _, cpu = cpu_around(pid, lambda k=k: load_get(url[k] + "small.bin", a.connections, a.duration),
                                         f"get4_{k}_{rep}")
                out["cpu_ms_per_request"] = cpu * 1000 / max(out["requests"], 1)
                # The load generator's own CPU (Python, on the same 2 cores): when it nears `duration`, the
                # client, not the server, sets the req/s.
                out["client_cpu_s"] = time.process_time() - client0
                out["load1"] = os.getloadavg()[0]
                many[k].append(out)
            log(f"rep {rep + 1}/{a.reps}: " + ", ".join(
                f"{k} {single[k][-1]['MBps']:.0f} MB/s {single[k][-1]['cpu_s_per_GiB']:.2f} s/GiB "
                f"{many[k][-1]['rps']:.0f} req/s" for k in targets))
            time.sleep(0.5)
        res["single_stream"] = {k: summary(v) for k, v in single.items()}
        res["get_4mib_c32"] = {k: summary(v) for k, v in many.items()}
        res["loadavg_end"] = loadavg()
        s, m = res["single_stream"], res["get_4mib_c32"]
        res["ratios"] = {
            "cpu_per_GiB_vs_nginx": s["cove"]["median_cpu_s_per_GiB"] / s["nginx"]["median_cpu_s_per_GiB"],
            "cpu_per_GiB_vs_nginx_before": s["cove_nozc"]["median_cpu_s_per_GiB"]
            / s["nginx"]["median_cpu_s_per_GiB"],
            "single_MBps_vs_nginx": s["cove"]["median_MBps"] / s["nginx"]["median_MBps"],
            "get_4mib_rps_vs_nginx": m["cove"]["median_rps"] / m["nginx"]["median_rps"],
            "get_4mib_rps_vs_nginx_before": m["cove_nozc"]["median_rps"] / m["nginx"]["median_rps"],
        }
        res["targets"] = {"cpu_per_GiB_vs_nginx": "<= 1.5", "get_4mib_rps_vs_nginx": ">= 0.8"}
    finally:
        for proc in procs:
            from bytes_common import stop

            stop(proc)
        bench.close()
    print(f"load average {res['loadavg_start']} -> {res['loadavg_end']}")
    for k in ("cove", "cove_nozc", "nginx"):
        s, m = res["single_stream"][k], res["get_4mib_c32"][k]
        print(f"{k:10} 1 stream: {s['median_MBps']:7.0f} MB/s  {s['median_cpu_s_per_GiB']:.3f} CPU s/GiB   "
              f"4 MiB c={a.connections}: {m['median_rps']:6.0f} req/s  p99 {m['median_p99_ms']} ms  "
              f"{m['median_cpu_ms_per_request']:.2f} CPU ms/req")
    return finish(res, a.json, 32)


if __name__ == "__main__":
    sys.exit(main())
