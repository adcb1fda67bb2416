"""Wall time of admin CLI calls (`cove user list`, `cove token list`, `cove org list`) against a seeded hub.

Each call is a fresh `python -m cove ...` process, as an operator's shell runs it: interpreter start-up,
imports, the hub lookup, the schema check and the query. Usage:

    python benchmarks/cli_latency.py                # 10 calls of each; JSON in benchmarks/results/
    python benchmarks/cli_latency.py --baseline-src /tmp/old/src   # and an older tree, calls interleaved

The hub is seeded (users, orgs, tokens) through the services layer in a temp folder; `COVE_DATA` names
it. With `--baseline-src`, a second hub is seeded by that tree's code and each call alternates between the
two trees (the baseline's `src` first on `PYTHONPATH`), so the load of the machine weighs on both alike.
Wall time is what an operator waits; CPU time (user + system of the child) is less sensitive to other load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.5
COMMANDS = (("user", "list"), ("token", "list", "user0"), ("org", "list"))


def seed(data: Path, users: int = 20, orgs: int = 5) -> None:
    """A hub with `users` users (two tokens each) and `orgs` orgs, through the services layer."""
    os.environ["COVE_DATA"] = str(data)
    from cove.backends import build_backends
    from cove.db.migrate import upgrade
    from cove.services import accounts
    from cove.settings import Settings

    bk = build_backends(Settings())
    upgrade(bk)
    with bk.db.session() as db:
        for i in range(users):
            accounts.add_user(db, f"user{i}")
            accounts.create_token(db, f"user{i}", role="write", name="laptop")
            accounts.create_token(db, f"user{i}", role="read", name="ci")
        for i in range(orgs):
            accounts.add_org(db, f"org{i}", owner="user0")
    bk.db.engine.dispose()


def one_call(args: tuple[str, ...], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall, cpu) seconds of one `python -m cove ARGS`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cove", *args], env=env, cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def summary(samples: list[tuple[float, float]]) -> dict:
    wall, cpu = [w for w, _ in samples], [c for _, c in samples]
    return {"median_s": round(statistics.median(wall), 3), "min_s": round(min(wall), 3),
            "max_s": round(max(wall), 3), "cpu_median_s": round(statistics.median(cpu), 3), "calls": len(samples)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=10, help="calls of each command (default 10)")
    p.add_argument("--label", default="current", help="a name for this run in the JSON (e.g. before, after)")
    p.add_argument("--json", type=Path, default=None, help="where to write results")
    p.add_argument("--baseline-src", type=Path, default=None, help="an older tree's src folder to compare with")
    p.add_argument("--seed-only", type=Path, default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.seed_only:
        seed(a.seed_only)
        return 0
    trees = {a.label: None} | ({"baseline": a.baseline_src.resolve()} if a.baseline_src else {})
    with tempfile.TemporaryDirectory(prefix="cove-cli-bench-") as tmp:
        envs = {}
        for label, src in trees.items():
            env = {**os.environ, "COVE_DATA": str(Path(tmp) / label), "COVE_CONFIG": str(Path(tmp) / "config.toml")}
            if src is not None:
                env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))
            subprocess.run([sys.executable, __file__, "--seed-only", env["COVE_DATA"]], env=env, check=True)
            one_call(("user", "list"), env, Path(tmp))  # warm the page cache and the .pyc files
            envs[label] = env
        samples: dict[str, dict[str, list]] = {label: {" ".join(c): [] for c in COMMANDS} for label in trees}
        for _ in range(a.n):
            for cmd in COMMANDS:
                for label, env in envs.items():
                    samples[label][" ".join(cmd)].append(one_call(cmd, env, Path(tmp)))
    results = {label: {cmd: summary(s) for cmd, s in per.items()} for label, per in samples.items()}
    out = {"benchmark": "cli_latency", "label": a.label, "target_s": TARGET_S, "python": platform.python_version(),
           "cpus": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()],
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "results": results}
    print(f"{'tree':<10} {'command':<22} {'median':>8} {'min':>8} {'max':>8} {'cpu':>8}")
    for label, per in results.items():
        for cmd, r in per.items():
            ok = "ok" if r["median_s"] < TARGET_S else "over target"
            print(f"{label:<10} cove {cmd:<17} {r['median_s']:>7.3f}s {r['min_s']:>7.3f}s {r['max_s']:>7.3f}s "
                  f"{r['cpu_median_s']:>7.3f}s  {ok}")
    path = a.json or Path(__file__).parent / "results" / f"cli-latency-{a.label}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
