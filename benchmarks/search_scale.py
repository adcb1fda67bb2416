"""Issue 16 item 3: repo info against a FastAPI hello, and list/search p50 at 1k and 100k repos (SQLite, and
PostgreSQL with --pg), the web listing included.

    python benchmarks/search_scale.py [--sizes 1000 100000] [--repeats 3] [--pg] [--src OLD/src] [--label after]

Repos are seeded through the database layer (perf16_common.seed_repos). Targets: repo info >= 0.5x the hello's
req/s (c=16); each list/search p50 at 100k <= 2x its p50 at 1k. Writes benchmarks/results/search-scale[-LABEL].json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from perf16_common import (
    HERE,
    PY,
    ROOT,
    env_for,
    free_port,
    load_get_raw,
    loadavg,
    median,
    seed_repos,
    stop,
    wait_http,
    write_json,
)

QUERIES = {
    "list": "/api/models?limit=20",
    "list_by_downloads": "/api/models?limit=20&sort=downloads",
    "search_1_in_1000": "/api/models?limit=20&search=user7/",  # ~0.1 % of the repos match
    "search_common": "/api/models?limit=20&search=llama-bert",  # ~1 % match
    "search_rare": "/api/models?limit=20&search=-4242",  # a handful at most
    "web_listing": "/models",
    "web_search": "/models?search=llama-bert",
}


WORDS = ["bert", "gpt2", "llama", "t5", "roberta", "whisper", "vit", "clip", "mistral", "phi"]  # as seed_repos
#: Distinct ~1 % terms (`w1-w2`): each asked once, so no answer cache can help (a first search's cost).
COLD_TERMS = [f"{a}-{b}" for a in WORDS for b in WORDS if a != b and f"{a}-{b}" != "llama-bert"]


def cold_p50(base: str, terms: list[str]) -> dict:
    """p50/max of sequential first-time searches, one term each (one keep-alive connection)."""
    import httpx

    lat = []
    with httpx.Client() as c:
        for t in terms:
            t0 = time.perf_counter()
            r = c.get(f"{base}/api/models", params={"limit": 20, "search": t})
            lat.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, r.text
    lat.sort()
    return {"rps": len(lat) / (sum(lat) / 1000), "p50_ms": round(lat[len(lat) // 2], 3), "max_ms": round(lat[-1], 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2)
    ap.add_argument("--pg", action="store_true", help="PostgreSQL (a throwaway cluster) instead of SQLite")
    ap.add_argument("--src")
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cove-bench16-search-"))
    res: dict = {"src": a.src or "this checkout", "db": "postgresql" if a.pg else "sqlite", "sizes": a.sizes,
                 "loadavg_start": loadavg(), "runs": []}
    cluster = None
    extra: dict[str, dict[str, str]] = {n: {} for n in a.sizes}
    if a.pg:
        sys.path.insert(0, str(ROOT))
        from tests.storage.pg import PgCluster

        cluster = PgCluster(free_port())
        cluster.start()
        for n in a.sizes:
            extra[n] = {"COVE_DATABASE_URL": cluster.create_database(f"bench{n}"), "COVE_SECRET": f"bench-{n}"}
    procs = []
    try:
        urls = {}
        for n in a.sizes:
            data = root / f"hub-{n}"
            data.mkdir()
            env = env_for(data, 0, a.src, **extra[n])
            subprocess.run([PY, "-m", "cove", "init"], env=env, check=True, capture_output=True)
            t0 = time.perf_counter()
            seed_repos(data, n, src=a.src, **extra[n])
            print(f"seeded {n} repos in {time.perf_counter() - t0:.1f} s", flush=True)
            port = free_port()
            log = root / f"serve-{n}.log"
            with open(log, "wb") as fh:
                procs.append(subprocess.Popen([PY, "-m", "cove", "serve", "--log-level", "warning"],
                                              env=env_for(data, port, a.src, **extra[n]), stdout=fh,
                                              stderr=subprocess.STDOUT))
            urls[n] = f"http://127.0.0.1:{port}"
            wait_http(urls[n] + "/healthz", procs[-1], log, timeout=900)
        hello_port = free_port()
        log = root / "hello.log"
        with open(log, "wb") as fh:
            procs.append(subprocess.Popen([PY, "-m", "uvicorn", "fastapi_hello:app", "--port", str(hello_port),
                                           "--log-level", "warning"], cwd=str(HERE), stdout=fh,
                                          stderr=subprocess.STDOUT))
        hello = f"http://127.0.0.1:{hello_port}/"
        wait_http(hello, procs[-1], log)
        for n in a.sizes:  # warm-up
            for q in QUERIES.values():
                load_get_raw(urls[n] + q, 1, 0.3)
        per = len(COLD_TERMS) // a.repeats
        for i in range(a.repeats):  # interleaved
            run: dict = {"hello": load_get_raw(hello, 16, a.seconds)}
            for n in a.sizes:
                run[f"info_{n}"] = load_get_raw(urls[n] + "/api/models/seed/real", 16, a.seconds)
                for name, q in QUERIES.items():
                    run[f"{name}_{n}"] = load_get_raw(urls[n] + q, 1, a.seconds)
                run[f"search_common_cold_{n}"] = cold_p50(urls[n], COLD_TERMS[i * per:(i + 1) * per])
            run["loadavg"] = loadavg()
            res["runs"].append(run)
            print({k: (round(v["rps"]), v["p50_ms"]) for k, v in run.items() if isinstance(v, dict)}, flush=True)
    finally:
        for p in procs:
            stop(p)
        if cluster is not None:
            cluster.stop()
    med = lambda key, f: median([r[key][f] for r in res["runs"]])  # noqa: E731
    res["median"] = {k: {"rps": med(k, "rps"), "p50_ms": med(k, "p50_ms")} for k in res["runs"][0] if k != "loadavg"}
    lo, hi = min(a.sizes), max(a.sizes)
    res["info_vs_hello"] = {n: res["median"][f"info_{n}"]["rps"] / res["median"]["hello"]["rps"] for n in a.sizes}
    p50 = {k: v["p50_ms"] for k, v in res["median"].items()}
    res["p50_ratio_big_vs_small"] = {name: p50[f"{name}_{hi}"] / p50[f"{name}_{lo}"]
                                     for name in [*QUERIES, "search_common_cold"]}
    out = write_json(f"search-scale-{res['db']}{'-' + a.label if a.label else ''}.json", res)
    print(f"repo info / FastAPI hello: {res['info_vs_hello']} (target >= 0.5)")
    print(f"p50 at {hi} / p50 at {lo}: {res['p50_ratio_big_vs_small']} (target <= 2)")
    print(f"load {res['loadavg_start']} -> {res['loadavg_end']}; {out}")


if __name__ == "__main__":
    main()
