"""Shared parts of the issue-16 byte benchmarks (`downloads_zerocopy.py`, `uploads_once.py`,
`commits_queue.py`): a Cove server and nginx from `hub_core.Bench`, a keep-alive GET load generator that
discards bodies, server CPU around a call, medians of interleaved repeats, the load average."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from hub_core import MIB, Bench, free_port, log, stop, tree_cpu, wait_http  # noqa: E402

__all__ = ["MIB", "Bench", "bench_args", "free_port", "log", "stop", "tree_cpu", "wait_http", "cpu_around",
           "median_of", "load_get", "write_json", "loadavg", "finish"]


def bench_args(**kw) -> argparse.Namespace:  # noqa: ANN003
    """The attributes `hub_core.Bench` reads, with defaults."""
    base = dict(size_mib=1024, workers=1, connections=32, duration=5, head_reps=0, reps=3, tmp=None,
                download_dir=None, keep=False, load="raw")
    base.update(kw)
    return argparse.Namespace(**base)


def loadavg() -> list[float]:
    return list(os.getloadavg())


PROFILE_DIR = os.environ.get("COVE_BENCH_PROFILE")  # a folder: py-spy records the server during each measure


def cpu_around(pid: int, fn, name: str = ""):  # noqa: ANN001, ANN201
    """(fn's result, wall seconds, CPU seconds of process `pid` and its children while fn ran). With
    COVE_BENCH_PROFILE set, py-spy records the server meanwhile (raw collapsed stacks, `<name>.txt`)."""
    import subprocess

    spy = None
    if PROFILE_DIR and name:
        Path(PROFILE_DIR).mkdir(parents=True, exist_ok=True)
        spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid), "-r", "200",
                                "-f", "raw", "-o", str(Path(PROFILE_DIR) / f"{name}.txt"), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
    c0, t0 = tree_cpu(pid), time.perf_counter()
    out = fn()
    result = out, time.perf_counter() - t0, tree_cpu(pid) - c0
    if spy is not None:
        import signal

        spy.send_signal(signal.SIGINT)
        spy.wait(30)
    return result


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def summary(runs: list[dict]) -> dict:
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float))]
    return {"runs": runs, **{f"median_{k}": median_of(runs, k) for k in keys},
            **{f"range_{k}": [min(r[k] for r in runs), max(r[k] for r in runs)] for k in keys}}


def load_get(url: str, connections: int, duration: float, headers: dict[str, str] | None = None) -> dict:
    """GET `url` on `connections` keep-alive connections for `duration` s, bodies counted and dropped."""
    from urllib.parse import urlsplit

    import uvloop

    u = urlsplit(url)
    host, port = u.hostname, u.port or 80
    path = u.path + (f"?{u.query}" if u.query else "")
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode()
    stats = {"done": 0, "bad": 0, "bytes": 0}
    latencies: list[float] = []

    async def run() -> float:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + duration

        class Conn(asyncio.Protocol):
            def __init__(self) -> None:
                self.closed = loop.create_future()
                self.buf = b""
                self.left = -1

            def connection_made(self, transport) -> None:  # noqa: ANN001
                self.t = transport
                self.send()

            def send(self) -> None:
                self.start = loop.time()
                self.buf, self.left = b"", -1
                self.t.write(request)

            def data_received(self, data: bytes) -> None:
                if self.left < 0:
                    self.buf += data
                    end = self.buf.find(b"\r\n\r\n")
                    if end < 0:
                        return
                    head = self.buf[:end].decode("latin-1").lower()
                    if not head.startswith("http/1.1 2"):
                        stats["bad"] += 1
                    length = next(int(line.split(":", 1)[1]) for line in head.split("\r\n")
                                  if line.startswith("content-length:"))
                    self.left = length - (len(self.buf) - end - 4)
                    stats["bytes"] += len(self.buf) - end - 4
                    self.buf = b""
                else:
                    self.left -= len(data)
                    stats["bytes"] += len(data)
                if self.left == 0:
                    stats["done"] += 1
                    latencies.append(loop.time() - self.start)
                    if loop.time() < deadline:
                        self.send()
                    else:
                        self.t.close()

            def connection_lost(self, exc) -> None:  # noqa: ANN001
                if not self.closed.done():
                    self.closed.set_result(None)

        t = loop.time()
        conns = [(await loop.create_connection(Conn, host, port))[1] for _ in range(connections)]
        await asyncio.wait_for(asyncio.gather(*(c.closed for c in conns)), duration + 60)
        return loop.time() - t

    elapsed = uvloop.run(run())
    latencies.sort()
    p = (lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)) if latencies \
        else (lambda q: None)
    return {"rps": stats["done"] / elapsed, "requests": stats["done"], "non_2xx": stats["bad"],
            "MBps": stats["bytes"] / elapsed / 1e6, "p50_ms": p(0.5), "p99_ms": p(0.99), "elapsed_s": elapsed}


def write_json(res: dict, path: str) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    log(f"results written to {out}")


def finish(res: dict, path: str, width: int) -> int:
    """Print the run's ratios, write its JSON to `path`; the exit status."""
    for k, v in res["ratios"].items():
        print(f"{k:{width}} {v:.2f}")
    write_json(res, path)
    return 0
