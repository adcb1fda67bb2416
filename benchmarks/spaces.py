"""Spaces: build time cold and warm, time to RUNNING after a push, proxy overhead, memory per idle Space.

    sudo python benchmarks/spaces.py            # about 2 minutes on 2 cores, with PyPI (or a mirror) reachable

It starts `cove serve` on a free port with a fresh data folder and a fresh Spaces folder (so the first build
meets an empty `uv` cache), creates a user with the CLI and pushes a Gradio Space through `HfApi`, then:

- **cold build**: the first push (empty wheel cache): push → BUILDING → APP_STARTING → RUNNING, timed by
  polling the runtime every 0.1 s;
- **warm, unchanged requirements**: a push that changes only `app.py` (the environment is reused);
- **warm cache, new requirements**: a second Space whose `requirements.txt` differs by a comment (a new
  environment, every wheel from the cache);
- **proxy overhead**: requests/s of the app's `GET /config` (Gradio's JSON config, ~10 KB) through Cove's proxy
  (at its path on Cove's host, and on its own origin, ``COVE_SPACES_DOMAIN``, by Host header) vs straight to the
  app's port, in the same run, 16 keep-alive connections, interleaved 3 s rounds, median of 5 (`--rounds`);
- **memory**: resident memory (sum of VmRSS) of each idle running app's processes.

Prints a table and writes `benchmarks/results/spaces.json` (`--json PATH` elsewhere), with the load average
before and after (other work on the machine moves every number). Not part of the suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

APP = 'import gradio as gr\ngr.Interface(lambda s: s.upper(), "text", "text", api_name="predict").launch()\n'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timeline(api, repo_id: str, sha: str, timeout: float = 600) -> dict[str, float]:  # noqa: ANN001
    """Seconds from now until each stage was first seen, until RUNNING at `sha` (or a failure)."""
    start = time.perf_counter()
    seen: dict[str, float] = {}
    while time.perf_counter() - start < timeout:
        rt = api.get_space_runtime(repo_id)
        if rt.stage == "RUNNING" and rt.raw.get("sha") == sha:
            seen["RUNNING"] = round(time.perf_counter() - start, 2)
            return seen
        if rt.stage != "RUNNING":  # (RUNNING at first: the old version, still serving)
            seen.setdefault(rt.stage, round(time.perf_counter() - start, 2))
        if rt.stage in ("BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR"):
            raise SystemExit(f"{repo_id}: {rt.stage}: {rt.raw.get('errorMessage')}")
        time.sleep(0.1)
    raise SystemExit(f"{repo_id}: not RUNNING after {timeout} s")


def build_seconds(data: Path, repo_pk: int) -> float | None:
    """What the build log says the last build took (`Build done in X s`)."""
    text = (data / "space-logs" / str(repo_pk) / "build.log").read_text()
    done = [line for line in text.splitlines() if line.startswith("Build done in ")]
    return float(done[-1].split()[3]) if done else None


async def rate(url: str, seconds: float, conns: int = 16, headers: dict[str, str] | None = None) -> float:
    done = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=conns), timeout=30, headers=headers) as client:
        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                r = await client.get(url)
                r.raise_for_status()
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conns)))
        return done / (time.perf_counter() - start)


def rss_of_uid(uid: int) -> int:
    total = 0
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if p.stat().st_uid != uid:
                continue
            for line in (p / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "spaces.json"))
    ap.add_argument("--round", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root: each app runs under its own uid", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="cove-bench-spaces-"))
    tmp.chmod(0o755)
    data, spaces = tmp / "data", tmp / "spaces"
    port = free_port()
    env = {**os.environ, "COVE_DATA": str(data), "COVE_PORT": str(port), "COVE_HOST": "127.0.0.1",
           "COVE_SPACES_ROOT": str(spaces), "COVE_SPACES_POLL_INTERVAL": "0.2", "COVE_SCAN_INTERVAL": "0",
           "COVE_ACCESS_LOG": "off", "XDG_CONFIG_HOME": str(tmp / "config"), "COVE_SPACES_DOMAIN": "spaces.localhost"}
    load_start = os.getloadavg()
    log = open(tmp / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen([sys.executable, "-m", "cove", "serve", "--log-level", "warning"], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{endpoint}/api/whoami-v2", timeout=1).status_code in (200, 401):
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        cli = [sys.executable, "-m", "cove"]
        subprocess.run([*cli, "user", "add", "bench", "--password", "bench-password"], env=env, check=True,
                       capture_output=True)
        token = subprocess.run([*cli, "token", "create", "bench", "--role", "write"], env=env, check=True,
                               capture_output=True, text=True).stdout.strip()
        from huggingface_hub import CommitOperationAdd, HfApi

        api = HfApi(endpoint=endpoint, token=token)

        def push(repo_id: str, files: dict[str, str]) -> str:
            ops = [CommitOperationAdd(p, c.encode()) for p, c in files.items()]
            return api.create_commit(repo_id, ops, commit_message="bench", repo_type="space").oid

        a, b = f"bench/a-{uuid.uuid4().hex[:6]}", f"bench/b-{uuid.uuid4().hex[:6]}"
        for r in (a, b):
            api.create_repo(r, repo_type="space", space_sdk="gradio")
        db = sqlite3.connect(data / "cove.db")

        def pk(repo_id: str) -> int:
            return db.execute("select id from repos where namespace = ? and name = ?", repo_id.split("/")).fetchone()[0]

        cold = timeline(api, a, push(a, {"app.py": APP, "requirements.txt": "\n"}))
        cold_build = build_seconds(data, pk(a))
        warm = timeline(api, a, push(a, {"app.py": APP.replace("upper", "lower")}))
        warm_build = build_seconds(data, pk(a))
        new_env = timeline(api, b, push(b, {"app.py": APP, "requirements.txt": "# another environment\n"}))
        new_build = build_seconds(data, pk(b))
        rows = {f"{ns}/{name}": (pk, up) for pk, ns, name, up in db.execute(
            "select r.id, r.namespace, r.name, s.upstream from space_states s join repos r on r.id = s.repo_pk")}
        direct = rows[a][1] + "/config"
        proxied = f"{endpoint}/spaces/{a}/app/config"
        own = {"host": f"{a.replace('/', '-')}.spaces.localhost:{port}"}
        expected = httpx.get(direct).json()["dependencies"]
        assert httpx.get(proxied).json()["dependencies"] == expected
        assert httpx.get(f"{endpoint}/config", headers=own).json()["dependencies"] == expected
        runs: dict[str, list[float]] = {"cove": [], "cove_own_origin": [], "direct": []}
        for _ in range(args.rounds):
            for name, url, headers in (("direct", direct, None), ("cove", proxied, None),
                                       ("cove_own_origin", f"{endpoint}/config", own)):
                runs[name].append(asyncio.run(rate(url, args.round, headers=headers)))
        best = {k: statistics.median(v) for k, v in runs.items()}
        time.sleep(3)  # idle
        base = 200_000
        memory = {r: rss_of_uid(base + 1 + rows[r][0]) for r in (a, b)}
        result = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "load_avg_start": [round(x, 2) for x in load_start],
                        "load_avg_end": [round(x, 2) for x in os.getloadavg()]},
            "cold": {"timeline_s": cold, "build_s": cold_build, "push_to_running_s": cold["RUNNING"]},
            "warm_unchanged_requirements": {"timeline_s": warm, "build_s": warm_build,
                                            "push_to_running_s": warm["RUNNING"]},
            "warm_cache_new_environment": {"timeline_s": new_env, "build_s": new_build,
                                           "push_to_running_s": new_env["RUNNING"]},
            "proxy_req_per_s": {k: round(v, 1) for k, v in best.items()},
            "proxy_req_per_s_rounds": {k: [round(x, 1) for x in v] for k, v in runs.items()},
            "proxy_ratio": round(best["cove"] / best["direct"], 3),
            "proxy_ratio_own_origin": round(best["cove_own_origin"] / best["direct"], 3),
            "idle_app_rss_mib": {k: round(v / 2**20, 1) for k, v in memory.items()},
        }
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    print(f"{'':38} {'build s':>8} {'push→RUNNING s':>15}")
    for k in ("cold", "warm_unchanged_requirements", "warm_cache_new_environment"):
        print(f"{k:38} {result[k]['build_s']!s:>8} {result[k]['push_to_running_s']:>15}")
    print(f"proxy req/s (median of {args.rounds}): Cove {result['proxy_req_per_s']['cove']}, on its own origin "
          f"{result['proxy_req_per_s']['cove_own_origin']}, direct {result['proxy_req_per_s']['direct']}; ratios "
          f"{result['proxy_ratio']}, {result['proxy_ratio_own_origin']}")
    print(f"load average: {result['machine']['load_avg_start']} -> {result['machine']['load_avg_end']}")
    print(f"idle app RSS (MiB): {result['idle_app_rss_mib']}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
