"""Pull-through mirror throughput (issue 18, docs/mirror.md), two `cove serve` processes in one run:

- first read: a never-read LFS file through the mirror (fetched from the upstream while streamed to the client and
  stored) vs the same file downloaded straight from the upstream, in the same run (target >= 0.9x);
- cached read: the file again through the mirror (an ordinary stored blob now) vs a plain Cove download of it
  from the upstream (target >= 0.9x).

Two CPU models, interleaved in the same run on the same processes (each thread's affinity is switched):

- ``pinned`` (the headline): the upstream and the client share one CPU set, the mirror has the other, as when
  they are different machines (the client and the upstream on one set keeps the direct download's own cost
  where it was: the mirror's CPU is what a deployment adds, on a box of its own);
- ``apart``: the client alone on one set, the upstream and the mirror on the other: every download, direct or
  not, crosses between the sets once on its way to the client (in ``pinned`` the direct one never does, and a
  loopback transfer within one CPU's caches is cheaper for the client than one from another CPU), and the
  mirror's CPU is still not the client's;
- ``shared``: all three on every CPU, as before: every CPU-second the mirror spends is taken from the client.

Each mirror fetches with one ``COVE_MIRROR_FETCHER`` (``auto``: spliced for this plain-HTTP upstream; ``curl``;
``httpx``), all interleaved, with the mirror process's CPU seconds per GiB of first read (its curl children
included): on a loaded host the ratio measures the CPU left, the CPU cost does not depend on the load.

Files are random bytes uploaded as classic LFS, one per repeat and CPU model, read first by every mirror; the
client streams each GET and discards the body. Which mirror, which model and which of the pair goes first
rotate; medians. Blobs are deleted from disk once measured (the box's disk is small).

    python benchmarks/mirror.py [--size-mib 256] [--reps 5] [--fetchers auto,curl] [--modes pinned,apart,shared]
                                [--pin 0:1] [--nice -10]

On a box that other work loads, pinning alone does not give either side a CPU of its own (the other work runs on
both sets): ``--nice -10`` (root) puts the benchmark's processes ahead of it, for the direct and the mirrored reads
alike, so that the pinned model approaches machines of their own. Record which was used.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
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


def pin(pid: int, cpus: set[int], nice: int | None = None) -> None:
    """Every thread of `pid` onto `cpus`, and to `nice` if given (threads and children it starts later inherit
    both from the thread that starts them)."""
    import psutil

    for t in psutil.Process(pid).threads():
        with contextlib.suppress(ProcessLookupError):  # a thread that just ended
            os.sched_setaffinity(t.id, cpus)
            if nice is not None:
                os.setpriority(os.PRIO_PROCESS, t.id, nice)


def drop_blob(data: Path, oid: str) -> None:
    """Remove a measured file's stored blob (benchmark-only: the box's disk is small)."""
    for p in data.rglob(oid):
        p.unlink(missing_ok=True)


def stages(url: str, folder: Path, size_mib: int) -> dict[str, float]:
    """What each stage manages alone, MiB/s: curl from the upstream into a file (the curl fetcher's receive +
    store), hashing that file back (the check), and the benchmark's client alone (its read)."""
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


def summary(x: dict[str, list[float]]) -> dict:
    med = statistics.median
    return {
        "first_read_mibps": med(x["first"]), "direct_upstream_mibps": med(x["direct"]),
        "first_read_ratio": med(x["first"]) / med(x["direct"]),
        "first_read_ratio_per_pair": med(a / b for a, b in zip(x["first"], x["direct"], strict=True)),
        "mirror_cpu_s_per_gib": med(x["cpu_s_per_gib"]),
        "cached_read_mibps": med(x["cached"]), "plain_cove_mibps": med(x["plain"]),
        "cached_read_ratio": med(x["cached"]) / med(x["plain"]),
        "cached_read_ratio_per_pair": med(a / b for a, b in zip(x["cached"], x["plain"], strict=True)),
        "samples": x,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--fetchers", default="auto,curl", help="COVE_MIRROR_FETCHER of each mirror, compared in "
                    "the same run; the first one is the headline")
    ap.add_argument("--modes", default="pinned,apart,shared", help="CPU models, interleaved; the first is the "
                    "headline")
    ap.add_argument("--pin", default="", help="the two CPU sets of the pinned model, 'upstream+client:mirror', "
                    "e.g. '0:1' or '0-3:4-7' (default: this process's CPUs split in halves)")
    ap.add_argument("--nice", type=int, default=None, help="run the upstream, the mirrors and the client at this "
                    "nice value (e.g. -10, needs root): on a box other work loads, so that the CPU sets model "
                    "machines of their own; the same for the direct and the mirrored reads")
    ap.add_argument("--json", default=str(HERE / "results" / "mirror.json"))
    a = ap.parse_args()
    fetchers, modes = a.fetchers.split(","), a.modes.split(",")
    every = sorted(os.sched_getaffinity(0))
    if a.pin:
        def cpus(spec: str) -> set[int]:
            out: set[int] = set()
            for part in spec.split(","):
                lo, _, hi = part.partition("-")
                out.update(range(int(lo), int(hi or lo) + 1))
            return out

        side, mside = (cpus(s) for s in a.pin.split(":"))
    else:
        half = max(1, len(every) // 2)
        side, mside = set(every[:half]), set(every[half:]) or set(every)
    # (the client, the upstream, the mirror)
    affinity = {"pinned": (side, side, mside), "apart": (side, mside, mside), "shared": (set(every),) * 3}
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
        api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=repo)
        for f in fetchers:
            mirrors[f] = serve(root / f"mirror-{f}", COVE_MIRROR_UPSTREAM=up_url, COVE_MIRROR_TOKEN=token,
                               COVE_MIRROR_FETCHER=f, COVE_MIRROR_TTL="1")
        s = {m: {f: {"first": [], "direct": [], "cached": [], "plain": [], "cpu_s_per_gib": []} for f in fetchers}
             for m in modes}
        loads: list[float] = []
        for i in range(a.reps):
            names, oids, sha = {}, {}, ""
            for m in modes:  # one new file per repeat and model, uploaded before anything is measured
                names[m] = f"f{i}-{m}.bin"
                src, digest = root / names[m], hashlib.sha256()
                with open(src, "wb") as fh:
                    for _ in range(a.size_mib):
                        block = os.urandom(MIB)
                        digest.update(block)
                        fh.write(block)
                oids[m] = digest.hexdigest()
                sha = api.upload_file(path_or_fileobj=str(src), path_in_repo=names[m], repo_id=repo).oid
                src.unlink()
            time.sleep(1.2)  # past the mirrors' TTL: their next read by branch name gets the new commit
            for _, mir_url in mirrors.values():
                r = httpx.get(f"{mir_url}/api/models/{repo}/revision/main", timeout=60)
                r.raise_for_status()
                assert r.json()["sha"] == sha, (r.json()["sha"], sha)
            combos = [(m, f) for m in modes for f in fetchers]
            for k in range(len(combos)):
                m, f = combos[(i + k) % len(combos)]  # which model and mirror go first rotate
                at_client, at_up, at_mirror = affinity[m]
                (proc, mir_url), x = mirrors[f], s[m][f]
                pin(os.getpid(), at_client, a.nice)  # the client (this process)
                pin(up.pid, at_up, a.nice)
                for p_, _ in mirrors.values():
                    pin(p_.pid, at_mirror, a.nice)
                name = names[m]
                # by commit, as a pinned download does (and no branch-head check on the way)
                up_file, mir_file = f"{up_url}/{repo}/resolve/{sha}/{name}", f"{mir_url}/{repo}/resolve/{sha}/{name}"
                get_mbps(up_file)  # the upstream's page cache warm for both: disks are not what is compared
                odd = (i + k) % 2
                if odd:
                    x["direct"].append(get_mbps(up_file))
                c0 = cpu_s(proc.pid)
                x["first"].append(get_mbps(mir_file))
                x["cpu_s_per_gib"].append((cpu_s(proc.pid) - c0) * 1024 / a.size_mib)
                if not odd:
                    x["direct"].append(get_mbps(up_file))
                if odd:
                    x["plain"].append(get_mbps(up_file))
                    x["cached"].append(get_mbps(mir_file))
                else:
                    x["cached"].append(get_mbps(mir_file))
                    x["plain"].append(get_mbps(up_file))
                drop_blob(root / f"mirror-{f}", oids[m])
                loads.append(os.getloadavg()[0])
                log(f"{m} {f} {name}: first {x['first'][-1]:.0f} vs direct {x['direct'][-1]:.0f} MiB/s "
                    f"(mirror {x['cpu_s_per_gib'][-1]:.2f} CPU-s/GiB); cached {x['cached'][-1]:.0f} "
                    f"vs plain {x['plain'][-1]:.0f} MiB/s; load {loads[-1]:.1f}")
            for oid in oids.values():
                drop_blob(root / "up", oid)
        os.sched_setaffinity(0, set(every))
        pin(up.pid, set(every))
        alone = []
        for _ in range(3):
            name = "stage.bin"
            if not alone:
                src = root / name
                with open(src, "wb") as fh:
                    for _ in range(a.size_mib):
                        fh.write(os.urandom(MIB))
                api.upload_file(path_or_fileobj=str(src), path_in_repo=name, repo_id=repo)
                src.unlink()
            alone.append(stages(f"{up_url}/{repo}/resolve/main/{name}", root, a.size_mib))
        log(f"stages alone (MiB/s): {alone}")
        med = statistics.median
        per = {m: {f: summary(x) for f, x in by.items()} for m, by in s.items()}
        head = per[modes[0]][fetchers[0]]
        res = {
            "size_mib": a.size_mib, "reps": a.reps, "cpus": len(every), "loadavg_end": list(os.getloadavg()),
            "load1_during": loads, "load1_median": med(loads), "mode": modes[0], "fetcher": fetchers[0],
            "cpu_sets": {"a": sorted(side), "b": sorted(mside), "pinned": "client+upstream on a, mirror on b",
                         "apart": "client on a, upstream+mirror on b", "shared": "all on every CPU"},
            "nice": a.nice,
            "stages_alone_mibps": {k: med(x[k] for x in alone) for k in alone[0]},
            **{k: v for k, v in head.items() if k != "samples"}, "modes": per,
        }
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
        for m, by in per.items():
            for f, r in by.items():
                print(f"[{m} {f}] first read: {r['first_read_mibps']:.0f} MiB/s vs direct "
                      f"{r['direct_upstream_mibps']:.0f} MiB/s = {r['first_read_ratio']:.2f}x (target >= 0.9); "
                      f"mirror {r['mirror_cpu_s_per_gib']:.2f} CPU-s/GiB; cached {r['cached_read_mibps']:.0f} vs "
                      f"plain {r['plain_cove_mibps']:.0f} MiB/s = {r['cached_read_ratio']:.2f}x")
        print(f"each stage alone: {res['stages_alone_mibps']}")
        print(f"CPU sets a={sorted(side)} b={sorted(mside)} (pinned: client+upstream on a, mirror on b; apart: client "
              f"on a, upstream+mirror on b); nice {a.nice}; load average (1 min) "
              f"during the run: {min(loads):.1f}-{max(loads):.1f} (median {med(loads):.1f}) on {len(every)} CPUs")
        return 0
    finally:
        for proc, _ in mirrors.values():
            stop(proc)
        stop(up)
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
