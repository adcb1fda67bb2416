"""Issue 17 items 9-10: what Cove's git repos hold, what maintenance does to them, and what a commit costs the
git volume (the numbers behind docs/scale-out.md's capacity model and git storage design).

    python benchmarks/git_storage.py [--repos 1000] [--no-demo] [--label NAME]

One data folder: `cove demo --seed-only` (a real model, dataset, Spaces), then `--repos` repos made through
`huggingface_hub` with Hub-like shapes (most with one or two commits, a few busy ones with PRs and tags, 1% with
100 commits from 8 racing threads). It reports `cove git stats` before and after `cove git maintain --all`, the
issue's scenario (200 commits from 8 threads on one repo: loose objects and dangling commits, then maintained),
and per commit: the server's read/write syscalls and CPU (/proc/<pid>/io, /proc/<pid>/stat) and the files it
adds to the git volume, on a loose repo and on a packed one. Writes benchmarks/results/git-storage[-LABEL].json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from perf16_common import PY, cove, env_for, free_port, loadavg, median, serve, stop, token_for, write_json


def _proc(pid: int) -> dict[str, float]:
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return {"syscr": int(io["syscr"]), "syscw": int(io["syscw"]), "cpu_s": cpu}


def _files(path: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(path))


def _key_of(data: Path, head: str) -> Path:
    for p in (data / "repos").glob("*/*.git"):
        ref = p / "refs" / "heads" / "main"
        if ref.exists() and ref.read_text().strip() == head:
            return p
    raise RuntimeError(f"no repo with head {head}")


def _commits(api, repo_id: str, n: int, threads: int = 1, prefix: str = "f") -> float:  # noqa: ANN001
    """n small commits (8 files rotating), `threads` at once; seconds."""
    def one(i: int) -> None:
        api.upload_file(path_or_fileobj=f"{prefix} {i} {uuid.uuid4().hex}\n".encode(),
                        path_in_repo=f"{prefix}{i % 8}.txt", repo_id=repo_id, commit_message=f"c{i}")

    t0 = time.perf_counter()
    if threads == 1:
        for i in range(n):
            one(i)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(n)))
    return time.perf_counter() - t0


def _seed(api, user: str, n: int) -> dict[str, int]:  # noqa: ANN001
    """n repos with Hub-like shapes; how many of each."""
    rnd = random.Random(17)
    shapes = {"one": 0, "few": 0, "busy": 0, "hot": 0}

    def make(i: int) -> None:
        r = rnd.random()
        repo_id = f"{user}/seed-{i:05d}"
        api.create_repo(repo_id)
        readme = f"---\nlicense: mit\ntags: [seed]\n---\n# seed {i}\n".encode()
        api.upload_file(path_or_fileobj=readme, path_in_repo="README.md", repo_id=repo_id)
        if r < 0.75:
            shapes["one"] += 1
            return
        if r < 0.95:
            shapes["few"] += 1
            _commits(api, repo_id, 4)
            return
        if r < 0.99:
            shapes["busy"] += 1
            _commits(api, repo_id, 18)
            api.create_tag(repo_id, tag="v1")
            api.upload_file(path_or_fileobj=b"pr\n", path_in_repo="pr.txt", repo_id=repo_id, create_pr=True)
            return
        shapes["hot"] += 1
        _commits(api, repo_id, 100, threads=8)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(make, range(n)))
    return shapes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repos", type=int, default=1000)
    ap.add_argument("--no-demo", action="store_true")
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    from huggingface_hub import HfApi

    result: dict = {"config": vars(args), "loadavg_start": loadavg(), "cpus": os.cpu_count()}
    root = Path(tempfile.mkdtemp(prefix="cove-gitstore-"))
    data = root / "data"
    data.mkdir()
    if not args.no_demo:
        port = free_port()
        t0 = time.perf_counter()
        subprocess.run([PY, "-m", "cove", "demo", "--seed-only", "--port", str(port)], env=env_for(data, port),
                       check=True, capture_output=True, timeout=1800)
        result["demo_seed_s"] = round(time.perf_counter() - t0, 1)
    token = token_for(data, "gs")
    proc, url, _log = serve(data, COVE_GIT_MAINTENANCE_INTERVAL="0")
    try:
        api = HfApi(endpoint=url, token=token)
        t0 = time.perf_counter()
        result["seed_shapes"] = _seed(api, "gs", args.repos)
        result["seed_s"] = round(time.perf_counter() - t0, 1)

        # The scenario: 200 commits from 8 racing threads on one repo.
        api.create_repo("gs/racing")
        result["racing_200_s"] = round(_commits(api, "gs/racing", 200, threads=8), 2)
        racing = _key_of(data, api.list_repo_commits("gs/racing")[0].commit_id)

        # Per commit, on a loose repo: syscalls, CPU and files added to the git volume.
        api.create_repo("gs/cost")
        cost_path = _key_of(data, api.list_repo_commits("gs/cost")[0].commit_id)
        per_commit = {}
        for phase in ("loose", "packed"):
            if phase == "packed":
                subprocess.run(["git", "gc", "-q", "--prune=now"], cwd=cost_path, check=True)
            runs = []
            for _ in range(3):
                files0, p0 = _files(cost_path), _proc(proc.pid)
                secs = _commits(api, "gs/cost", 30, prefix=f"{phase}{len(runs)}")
                p1, files1 = _proc(proc.pid), _files(cost_path)
                runs.append({"commits_per_s": 30 / secs, "syscr": (p1["syscr"] - p0["syscr"]) / 30,
                             "syscw": (p1["syscw"] - p0["syscw"]) / 30,
                             "cpu_ms": (p1["cpu_s"] - p0["cpu_s"]) * 1000 / 30, "files_added": (files1 - files0) / 30})
            per_commit[phase] = {k: median([r[k] for r in runs]) for k in runs[0]}
        result["per_commit_server"] = per_commit

        stats = json.loads(cove(data, "git", "stats", "--dangling"))
        result["stats_before"] = stats
        racing_before = json.loads(subprocess.run(
            [PY, "-c", "import json,sys; from dataclasses import asdict; from cove.services.git_maintenance import "
             f"repo_stats; print(json.dumps(asdict(repo_stats(__import__('pathlib').Path('{racing}')))))"],
            capture_output=True, text=True, check=True).stdout)
        files_before = _files(data / "repos")
        t0 = time.perf_counter()
        result["maintain_all"] = json.loads(cove(data, "git", "maintain", "--all"))
        result["maintain_all_s"] = round(time.perf_counter() - t0, 1)
        result["files_in_repos"] = {"before": files_before, "after": _files(data / "repos")}
        racing_after = json.loads(subprocess.run(
            [PY, "-c", "import json,sys; from dataclasses import asdict; from cove.services.git_maintenance import "
             f"repo_stats; print(json.dumps(asdict(repo_stats(__import__('pathlib').Path('{racing}')))))"],
            capture_output=True, text=True, check=True).stdout)
        result["racing_200"] = {"before": racing_before, "after_maintain_grace_1h": racing_after}
        result["stats_after"] = json.loads(cove(data, "git", "stats", "--dangling"))
    finally:
        stop(proc)
    result["data"] = str(data)
    out = write_json(f"git-storage{'-' + args.label if args.label else ''}.json", result)
    print(out)
    print(json.dumps({k: result[k] for k in ("seed_shapes", "racing_200", "per_commit_server", "maintain_all_s")},
                     indent=1))


if __name__ == "__main__":
    main()
