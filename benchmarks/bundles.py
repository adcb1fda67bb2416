"""`cove bundle export` / `import` throughput (issue 18 item 5), against plain baselines in the same run.

Starts `cove serve` on a fresh data folder, uploads LFS files (classic LFS) and one Xet file (hf_xet) of random
bytes, then times, in this process, the bundle service the CLI calls (no interpreter start-up counted):

- export: the whole repo into one signed bundle (git bundle, every file read from the blob store or
  reconstructed from Xet, hashed, written, signed);
- import: into a second, empty hub (verify signature and every hash into its temp area, publish, move refs);
- baselines: `cp` of the bundle file (what the disk does) and `sha256sum` of it (one hash pass).

MB/s are of the file bytes carried (LFS + Xet). Writes `benchmarks/results/bundles.json`; exit 0 always
(2 when the set-up fails).

    python benchmarks/bundles.py                # ~512 MiB: 2 x 224 MiB LFS + 64 MiB Xet
    python benchmarks/bundles.py --lfs-mib 64 --xet-mib 16    # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from hub_core import MIB, free_port, log, stop, wait_http  # noqa: E402


def _cli(env: dict, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "cove", *args], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def _random_file(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 8 * MIB)
            fh.write(os.urandom(n))
            left -= n
    return path


def _timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfs-mib", type=int, default=224, help="size of each of the two LFS files")
    ap.add_argument("--xet-mib", type=int, default=64, help="size of the Xet file")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", default=str(HERE / "results" / "bundles.json"))
    ap.add_argument("--tmp", default=None, help="work folder (default: a new temp folder, removed after)")
    args = ap.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="cove-bench-bundles-", dir=args.tmp))
    src, port = root / "src", free_port()
    env = {**os.environ, "COVE_DATA": str(src), "COVE_PORT": str(port), "COVE_HOST": "127.0.0.1",
           "XDG_CONFIG_HOME": str(root / "config"), "HF_HOME": str(root / "hf-home"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    proc = None
    try:
        with open(root / "cove.log", "wb") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "cove", "serve", "--log-level", "warning"], env=env,
                                    stdout=fh, stderr=subprocess.STDOUT)
        endpoint = f"http://127.0.0.1:{port}"
        wait_http(f"{endpoint}/api/agent-harnesses", proc, root / "cove.log")
        _cli(env, "user", "add", "bench")
        token = _cli(env, "token", "create", "bench", "--role", "write")
        from huggingface_hub import HfApi, constants

        api = HfApi(endpoint=endpoint, token=token)
        repo = "bench/carry"
        api.create_repo(repo)
        log(f"uploading 2 x {args.lfs_mib} MiB (LFS) + {args.xet_mib} MiB (Xet)")
        constants.HF_HUB_DISABLE_XET = True
        for i in range(2):
            api.upload_file(path_or_fileobj=_random_file(root / f"l{i}.bin", args.lfs_mib * MIB),
                            path_in_repo=f"lfs-{i}.bin", repo_id=repo)
        constants.HF_HUB_DISABLE_XET = False
        api.upload_file(path_or_fileobj=_random_file(root / "x.bin", args.xet_mib * MIB),
                        path_in_repo="model.safetensors", repo_id=repo)
        for f in root.glob("*.bin"):
            f.unlink()
    except Exception as exc:  # noqa: BLE001 - a benchmark reports its set-up failure and exits 2
        log(f"set-up failed: {exc}")
        stop(proc)
        shutil.rmtree(root, ignore_errors=True)
        return 2

    os.environ.update(COVE_DATA=str(src), XDG_CONFIG_HOME=str(root / "config"))
    from cove.backends import build_backends
    from cove.services import bundle_keys, bundles, repos, uploads, webhooks  # noqa: F401 - loaded before timing
    from cove.services.accounts import Actor
    from cove.settings import Settings

    carried = (2 * args.lfs_mib + args.xet_mib) * MIB
    key, _ = bundle_keys.keygen(root / "keys" / "k")
    private, public = bundle_keys.load_private(key), bundle_keys.load_public(bundle_keys.public_path(key))
    src_bk = build_backends(Settings())
    out = root / "carry.cove"
    res: dict = {"config": {"lfs_mib": args.lfs_mib, "xet_mib": args.xet_mib, "carried_mib": carried / MIB,
                            "reps": args.reps, "cpus": os.cpu_count(), "loadavg_before": list(os.getloadavg())}}
    exports, imports, copies, hashes = [], [], [], []
    try:
        for rep in range(args.reps):
            t0 = time.perf_counter()
            bundles.export(src_bk, [bundles.parse_spec(repo)], out, private)
            exports.append(time.perf_counter() - t0)
            copies.append(_timed(["cp", str(out), str(root / "copy.cove")]))
            (root / "copy.cove").unlink()
            hashes.append(_timed(["sha256sum", str(out)]))
            dest = root / f"dest{rep}"
            env2 = {**env, "COVE_DATA": str(dest)}
            _cli(env2, "init")
            _cli(env2, "user", "add", "bench")
            os.environ["COVE_DATA"] = str(dest)
            dest_bk = build_backends(Settings())
            t0 = time.perf_counter()
            bundles.import_bundle(dest_bk, out, public, Actor(0, "cove-admin", "write", None, True))
            imports.append(time.perf_counter() - t0)
            dest_bk.db.engine.dispose()
            shutil.rmtree(dest, ignore_errors=True)
            log(f"rep {rep + 1}: export {exports[-1]:.2f}s, import {imports[-1]:.2f}s, cp {copies[-1]:.2f}s, "
                f"sha256sum {hashes[-1]:.2f}s")
        size = out.stat().st_size
    finally:
        stop(proc)

    def rate(times: list[float], nbytes: int) -> float:
        return round(nbytes / MIB / statistics.median(times), 1)

    res["bundle_mib"] = round(size / MIB, 1)
    res["export_mib_s"] = rate(exports, carried)
    res["import_mib_s"] = rate(imports, carried)
    res["cp_mib_s"] = rate(copies, size)
    res["sha256sum_mib_s"] = rate(hashes, size)
    res["loadavg_after"] = list(os.getloadavg())
    res["seconds"] = {"export": exports, "import": imports, "cp": copies, "sha256sum": hashes}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    print(f"carried {carried / MIB:.0f} MiB in a {res['bundle_mib']} MiB bundle (median of {args.reps}):")
    for name in ("export", "import", "cp", "sha256sum"):
        print(f"  {name:10s} {res[f'{name}_mib_s']:8.1f} MiB/s")
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
