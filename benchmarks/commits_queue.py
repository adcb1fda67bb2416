"""Issue 16 item 6: commits as fast as the git CLI, and writers to one branch that queue. In one run:

    python benchmarks/commits_queue.py [--commits 100] [--threads 8] [--reps 3]

- the reference: a `git add` + `git commit` loop (one small file per commit) in a local repository;
- Cove, sequential: `HfApi.create_commit` of one small file, one after the other, on `main`;
- Cove, concurrent: the same number of commits from `--threads` threads to one branch; every commit must land
  and `cove_commit_retries_total` (commits rebuilt because the branch moved) is reported.
Repeats interleaved; commits/s medians and ranges, the server's CPU per commit and the load average go to JSON.
Targets: sequential >= 1x the git loop; concurrent >= sequential, with no retries.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bytes_common import Bench, bench_args, cpu_around, finish, loadavg, log, summary  # noqa: E402

REPO = "bench/commits"


def git_loop(folder: Path, n: int, tag: str) -> float:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@x"}
    if not (folder / ".git").exists():
        subprocess.run(["git", "init", "-q", str(folder)], check=True)
    t = time.perf_counter()
    for i in range(n):
        (folder / f"{tag}-{i}.txt").write_text(f"{tag} {i}\n")
        subprocess.run(["git", "add", f"{tag}-{i}.txt"], cwd=folder, check=True, env=env)
        subprocess.run(["git", "commit", "-q", "-m", f"{tag} {i}"], cwd=folder, check=True, env=env)
    return n / (time.perf_counter() - t)


def retries(endpoint: str) -> float:
    import httpx

    m = re.search(r"^cove_commit_retries_total ([0-9.e+]+)$", httpx.get(f"{endpoint}/metrics").text, re.M)
    return float(m.group(1)) if m else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--commits", type=int, default=100)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--json", default="benchmarks/results/commits_queue.json")
    a = p.parse_args(argv)
    bench = Bench(bench_args())
    res: dict = {"config": vars(a), "loadavg_start": loadavg()}
    try:
        os.environ.update(HF_HOME=str(bench.root / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
                          HF_HUB_DISABLE_PROGRESS_BARS="1")
        from huggingface_hub import CommitOperationAdd, HfApi

        bench.start_cove()
        pid = bench.cove_proc.pid
        bench.cli("user", "add", "bench", "--password", "bench-password-1")
        token = bench.cli("token", "create", "bench", "--role", "write", "--name", "bench").splitlines()[-1]
        api = HfApi(endpoint=bench.endpoint, token=token)
        api.create_repo(REPO)
        api.create_branch(REPO, branch="conc")

        def one(tag: str, i: int, branch: str = "main") -> str:
            return api.create_commit(REPO, operations=[CommitOperationAdd(f"{tag}-{i}.txt", f"{tag} {i}\n".encode())],
                                     commit_message=f"{tag} {i}", revision=branch).oid

        one("warm", 0)
        runs: dict[str, list] = {"git_cli": [], "cove_sequential": [], "cove_concurrent": []}
        landed = 0
        for rep in range(a.reps):
            runs["git_cli"].append({"commits_per_s": git_loop(bench.root / "gitloop", a.commits, f"r{rep}")})
            _, wall, cpu = cpu_around(pid, lambda rep=rep: [one(f"s{rep}", i) for i in range(a.commits)],
                                      "commit_sequential")
            runs["cove_sequential"].append({"commits_per_s": a.commits / wall, "server_cpu_ms_per_commit":
                                            cpu * 1000 / a.commits})
            r0 = retries(bench.endpoint)

            def conc(rep: int = rep) -> list[str]:
                with ThreadPoolExecutor(a.threads) as pool:
                    return list(pool.map(lambda i: one(f"c{rep}", i, "conc"), range(a.commits)))

            oids, wall, cpu = cpu_around(pid, conc, "commit_concurrent")
            landed += len(set(oids))
            runs["cove_concurrent"].append({"commits_per_s": a.commits / wall, "server_cpu_ms_per_commit":
                                            cpu * 1000 / a.commits, "retries": retries(bench.endpoint) - r0})
            log(f"rep {rep + 1}/{a.reps}: " + ", ".join(f"{k} {v[-1]['commits_per_s']:.1f}/s" for k, v in runs.items()))
        history = api.list_repo_commits(REPO, revision="conc")
        res["concurrent_all_landed"] = landed == a.commits * a.reps and len(history) == a.commits * a.reps + 1
        res["runs"] = {k: summary(v) for k, v in runs.items()}
        res["loadavg_end"] = loadavg()
        g = res["runs"]["git_cli"]["median_commits_per_s"]
        s = res["runs"]["cove_sequential"]["median_commits_per_s"]
        c = res["runs"]["cove_concurrent"]["median_commits_per_s"]
        res["ratios"] = {"sequential_vs_git_cli": s / g, "concurrent_vs_git_cli": c / g,
                         "concurrent_vs_sequential": c / s}
        res["targets"] = {"sequential_vs_git_cli": ">= 1", "concurrent_vs_sequential": ">= 1", "retries": "0"}
    finally:
        bench.close()
    print(f"load average {res['loadavg_start']} -> {res['loadavg_end']}")
    for k, v in res["runs"].items():
        extra = f"  server {v['median_server_cpu_ms_per_commit']:.1f} CPU ms/commit" if k != "git_cli" else ""
        print(f"{k:16} {v['median_commits_per_s']:6.1f} commits/s{extra}")
    print(f"retries (concurrent): {[r['retries'] for r in res['runs']['cove_concurrent']['runs']]}; "
          f"all landed: {res['concurrent_all_landed']}")
    return finish(res, a.json, 26)


if __name__ == "__main__":
    sys.exit(main())
