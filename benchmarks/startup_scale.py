"""Issue 16 item 2: `cove serve` start-up (spawn to first answer) and an admin command at 1k and 100k repos,
against references started the same way in the same run (interleaved): a bare uvicorn app (raw ASGI), a
FastAPI hello under uvicorn, the same hello with a SQLAlchemy session at start-up (`stack_hello.py`: the
floor of the mandated stack), and the bare cost of `python -c "import fastapi, sqlalchemy.orm"`.

    python benchmarks/startup_scale.py [--sizes 1000 100000] [--repeats 5] [--src OLD/src] [--before-src OLD/src]
                                       [--label after]

Every process runs with a bytecode cache (`PYTHONPYCACHEPREFIX` in the run's folder, written by the untimed
first starts), as an installed package has its `.pyc` files; `cove_serve_nopyc_*` is the same start-up with
`PYTHONDONTWRITEBYTECODE=1` and no cache for Cove's own source (every module compiled at each start, as in
a checkout where nothing may write bytecode). `--before-src` also times `cove serve` from that source (the
code before a change) on the same data, in the same rounds. Repos are seeded through the database layer
(perf16_common.seed_repos), not HTTP. Target: `cove serve` at 100k repos answers within 1.5x the bare app's
start-up. Writes benchmarks/results/startup-scale[-LABEL].json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from perf16_common import HERE, PY, cove, env_for, free_port, loadavg, median, seed_repos, stop, write_json


def until_answer(cmd: list[str], env: dict, url: str, cwd: str | None = None,
                 timeout: float = 900) -> tuple[float, float]:
    """Seconds from spawning `cmd` to the first HTTP answer on `url` (polled every 10 ms), and the CPU seconds
    the process (and its children) had used by then: the start-up's own work, which other jobs on a loaded
    machine inflate far less than the wall time."""
    import httpx
    import psutil

    t0 = time.perf_counter()
    log = Path(tempfile.mkstemp(prefix="cove-bench16-", suffix=".log")[1])
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
    try:
        while time.perf_counter() - t0 < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd} exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url, timeout=1).status_code < 500:
                    wall = time.perf_counter() - t0
                    me = psutil.Process(proc.pid)
                    cpu = sum(p.cpu_times().user + p.cpu_times().system for p in [me, *me.children(recursive=True)])
                    return wall, cpu
            except httpx.HTTPError:
                time.sleep(0.01)
        raise RuntimeError(f"{cmd} did not answer in {timeout} s")
    finally:
        stop(proc)


def app_start(app: str) -> tuple[float, float]:
    """Spawn to first answer of `uvicorn APP` (a reference app in benchmarks/)."""
    port = free_port()
    env = env_for(Path("/nonexistent"), port)
    return until_answer([PY, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning"],
                        env, f"http://127.0.0.1:{port}/", cwd=str(HERE))


def run_s(code: str) -> tuple[float, float]:
    """Spawn to exit of `python -c CODE`, and its CPU seconds."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([PY, "-c", code], cwd=str(HERE))
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"python -c {code!r} exited {proc.returncode}")
    return time.perf_counter() - t0, usage.ru_utime + usage.ru_stime


#: The references, each timed once per round: spawn to first answer (or to exit, for the imports).
REFERENCES = {
    "python_s": lambda: run_s("pass"),
    "import_fastapi_sqlalchemy_s": lambda: run_s("import fastapi, sqlalchemy.orm"),
    "bare_uvicorn_s": lambda: app_start("hub_core:bare_app"),
    "fastapi_hello_s": lambda: app_start("fastapi_hello:app"),
    "stack_hello_s": lambda: app_start("stack_hello:app"),
}


def cove_start(data: Path, src: str | None, pyc: bool = True) -> tuple[float, float]:
    port = free_port()
    env = env_for(data, port, src)
    if not pyc:
        env.pop("PYTHONPYCACHEPREFIX", None)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return until_answer([PY, "-m", "cove", "serve", "--log-level", "warning"], env,
                        f"http://127.0.0.1:{port}/api/models?limit=1")


def admin(data: Path, src: str | None) -> float:
    t0 = time.perf_counter()
    cove(data, "user", "list", src=src)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--src")
    ap.add_argument("--before-src", help="also time `cove serve` from this source, in the same rounds")
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cove-bench16-start-"))
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # every child: bytecode cached, as installed
    os.environ["PYTHONPYCACHEPREFIX"] = str(root / "pyc")
    res: dict = {"src": a.src or "this checkout", "before_src": a.before_src, "loadavg_start": loadavg(),
                 "sizes": a.sizes, "runs": []}
    datas = {}
    for n in a.sizes:
        data = root / f"hub-{n}"
        data.mkdir()
        cove(data, "init", src=a.src)
        t0 = time.perf_counter()
        seed_repos(data, n, src=a.src)
        print(f"seeded {n} repos in {time.perf_counter() - t0:.1f} s", flush=True)
        cove_start(data, a.src)  # the first start after seeding (migrations, caches) is not timed
        datas[n] = data
    for ref in REFERENCES.values():
        ref()  # untimed: writes their bytecode
    if a.before_src:
        for data in datas.values():
            cove_start(data, a.before_src)  # its first start is not timed either
    for _ in range(a.repeats):  # interleaved
        run: dict = {"loadavg": loadavg()}

        def put(key: str, measured: tuple[float, float]) -> None:
            run[key], run[key[:-2] + "_cpu_s"] = measured  # noqa: B023 - called at once

        for k, ref in REFERENCES.items():
            put(k, ref())
        for n, data in datas.items():
            put(f"cove_serve_{n}_s", cove_start(data, a.src))
            if n == max(a.sizes):
                put(f"cove_serve_nopyc_{n}_s", cove_start(data, a.src, pyc=False))
            if a.before_src:
                put(f"cove_serve_before_{n}_s", cove_start(data, a.before_src))
            run[f"cove_user_list_{n}_s"] = admin(data, a.src)
        res["runs"].append(run)
        print({k: round(v, 3) for k, v in run.items() if isinstance(v, float)}, flush=True)
    keys = [k for k in res["runs"][0] if k.endswith("_s")]
    res["median_s"] = {k: median([r[k] for r in res["runs"]]) for k in keys}
    res["range_s"] = {k: [min(r[k] for r in res["runs"]), max(r[k] for r in res["runs"])] for k in keys}
    med = res["median_s"]
    serve = {k: v for k, v in med.items() if k.startswith("cove_serve") and not k.endswith("_cpu_s")}
    serve_cpu = {k: v for k, v in med.items() if k.startswith("cove_serve") and k.endswith("_cpu_s")}
    for ref in ("bare_uvicorn_s", "fastapi_hello_s", "stack_hello_s"):
        res[f"ratio_vs_{ref[:-2]}"] = {k: v / med[ref] for k, v in serve.items()}
        res[f"cpu_ratio_vs_{ref[:-2]}"] = {k: v / med[ref[:-2] + "_cpu_s"] for k, v in serve_cpu.items()}
    res["ratio_vs_bare"] = res["ratio_vs_bare_uvicorn"]
    # The mandated stack alone, against the target: importing FastAPI + SQLAlchemy (less the interpreter's own
    # start) next to 1.5x the whole bare uvicorn start-up.
    res["stack_import_s"] = med["import_fastapi_sqlalchemy_s"] - med["python_s"]
    res["target_s"] = 1.5 * med["bare_uvicorn_s"]
    res["stack_import_cpu_s"] = med["import_fastapi_sqlalchemy_cpu_s"] - med["python_cpu_s"]
    res["target_cpu_s"] = 1.5 * med["bare_uvicorn_cpu_s"]
    out = write_json(f"startup-scale{'-' + a.label if a.label else ''}.json", res)
    print(f"medians {med}")
    print(f"cove serve / bare uvicorn {res['ratio_vs_bare']} (target <= 1.5 at 100k); / FastAPI hello "
          f"{res['ratio_vs_fastapi_hello']}; / FastAPI+SQLAlchemy hello {res['ratio_vs_stack_hello']}; "
          f"importing FastAPI+SQLAlchemy alone {res['stack_import_s']:.3f} s vs the target {res['target_s']:.3f} s; "
          f"CPU: / bare {res['cpu_ratio_vs_bare_uvicorn']}, / stack hello {res['cpu_ratio_vs_stack_hello']}, "
          f"import {res['stack_import_cpu_s']:.3f} vs target {res['target_cpu_s']:.3f} s; "
          f"load {res['loadavg_start']} -> {res['loadavg_end']}; {out}")


if __name__ == "__main__":
    main()
