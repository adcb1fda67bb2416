"""Shared helpers for the issue-16 benchmarks (counted_heads.py, startup_scale.py, search_scale.py).

Loopback only; loads bounded in time; a raw uvloop HTTP/1.1 load generator (HEAD from hub_core.py, GET here)
so the client is not the bottleneck; medians of interleaved repeats, with the load average recorded.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from hub_core import free_port, load_head_raw, stop, wait_http  # noqa: E402

PY = str(ROOT / ".venv" / "bin" / "python")
__all__ = ["free_port", "load_head_raw", "stop", "wait_http", "load_get_raw", "serve", "seed_repos", "loadavg",
           "median", "write_json", "token_for"]


def loadavg() -> list[float]:
    return list(os.getloadavg())


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def env_for(data: Path, port: int, src: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVE_")}
    env.update(COVE_DATA=str(data), COVE_PORT=str(port), COVE_HOST="127.0.0.1", COVE_SCAN_INTERVAL="0",
               COVE_CONFIG=str(data.parent / "cove-config.toml"), **extra)  # never the user's config file
    if src:  # another checkout's source (e.g. the code before a change)
        env["PYTHONPATH"] = src
    return env


def serve(data: Path, src: str | None = None, **extra: str) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    log = data.parent / f"serve-{port}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([PY, "-m", "cove", "serve", "--log-level", "warning"],
                                env=env_for(data, port, src, **extra), stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz", proc, log, timeout=600)
    return proc, url, log


def cove(data: Path, *args: str, src: str | None = None) -> str:
    return subprocess.run([PY, "-m", "cove", *args], env=env_for(data, 0, src), check=True, capture_output=True,
                          text=True).stdout.strip()


def token_for(data: Path, user: str, src: str | None = None) -> str:
    cove(data, "init", src=src)
    cove(data, "user", "add", user, src=src)
    return cove(data, "token", "create", user, "--role", "write", src=src)


def seed_repos(data: Path, n: int, src: str | None = None, **extra: str) -> None:
    """`n` public model rows straight through the database layer, their index current, each git folder a
    symlink to one real repo (so a per-repo check at start-up costs what it would on a real hub). Runs in a
    child so `src` (the code before a change) seeds its own schema."""
    code = f"""
import os, random, secrets
from datetime import datetime, timedelta
from sqlalchemy import insert
from cove.backends import build_backends
from cove.db.migrate import upgrade
from cove.db.tables import Repo
from cove.services import accounts, repos
from cove.services.accounts import Actor
from cove.settings import Settings
bk = build_backends(Settings())
upgrade(bk)
with bk.db.session() as db:  # one real git repo; every seeded row's git folder is a symlink to it
    user = accounts.add_user(db, "seed")
    real, _ = repos.create(db, bk, Actor(user_id=user.id, name="seed", role="write"), repo_type="model",
                           namespace="seed", name="real")
    real_key, real_sha = real.storage_key, real.sha
target = bk.repos.path(real_key)
rnd = random.Random(16)
words = ["bert", "gpt2", "llama", "t5", "roberta", "whisper", "vit", "clip", "mistral", "phi"]
tasks = ["text-classification", "text-generation", "fill-mask", "token-classification", None]
base = datetime(2025, 1, 1)
with bk.db.engine.begin() as conn:
    for start in range(0, {n}, 5000):
        rows, tags = [], []
        for i in range(start, min({n}, start + 5000)):
            ns = f"user{{i % 1000}}"
            name = f"{{rnd.choice(words)}}-{{rnd.choice(words)}}-{{i}}"
            key = secrets.token_hex(16)
            link = bk.repos.path(key)
            link.parent.mkdir(exist_ok=True)
            os.symlink(target, link)
            rows.append(dict(type="model", namespace=ns, name=name, storage_key=key,
                             private=False, created_at=base + timedelta(seconds=i),
                             last_modified=base + timedelta(seconds=i), sha=real_sha,
                             pipeline_tag=tasks[i % 5], library_name="transformers", tags=[],
                             downloads=rnd.randrange(10000), likes=rnd.randrange(100),
                             search_text=f"{{ns}}/{{name}} a model".lower()))
        conn.execute(insert(Repo), rows)
(bk.settings.data / "index-clean").touch()  # the seeded rows are current, as after a graceful shutdown
"""
    subprocess.run([PY, "-c", code], env=env_for(data, 0, src, **extra), check=True)


def load_get_raw(url: str, connections: int, duration: float, headers: dict[str, str] | None = None) -> dict:
    """GET load: `connections` keep-alive connections, one request in flight on each; reads Content-Length."""
    import asyncio
    from urllib.parse import urlsplit

    import uvloop

    u = urlsplit(url)
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    path = u.path + (f"?{u.query}" if u.query else "")
    request = f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\n{extra}\r\n".encode()
    stats = {"done": 0, "bad": 0}
    lat: list[float] = []
    clock = time.perf_counter

    async def run() -> float:
        loop = asyncio.get_running_loop()
        deadline = clock() + duration

        class Conn(asyncio.Protocol):
            def __init__(self) -> None:
                self.buf = b""
                self.need: int | None = None
                self.closed = loop.create_future()

            def connection_made(self, transport) -> None:  # noqa: ANN001
                self.transport = transport
                self.send()

            def send(self) -> None:
                self.sent = clock()
                self.transport.write(request)

            def data_received(self, data: bytes) -> None:
                self.buf += data
                while True:
                    if self.need is None:
                        i = self.buf.find(b"\r\n\r\n")
                        if i < 0:
                            return
                        head = self.buf[:i].lower()
                        if not head.startswith(b"http/1.1 2"):
                            stats["bad"] += 1
                        j = head.find(b"content-length:")
                        n = int(head[j + 15:].split(b"\r\n", 1)[0]) if j >= 0 else 0
                        self.buf, self.need = self.buf[i + 4:], n
                    if len(self.buf) < self.need:
                        return
                    self.buf, self.need = self.buf[self.need:], None
                    now = clock()
                    stats["done"] += 1
                    lat.append(now - self.sent)
                    if now < deadline:
                        self.send()
                    else:
                        self.transport.close()
                        return

            def connection_lost(self, exc) -> None:  # noqa: ANN001
                if not self.closed.done():
                    self.closed.set_result(None)

        async def one() -> None:
            while clock() < deadline:
                _, conn = await loop.create_connection(Conn, u.hostname, u.port)
                await conn.closed

        t = clock()
        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(connections))), duration + 30)
        return clock() - t

    elapsed = uvloop.run(run())
    lat.sort()
    p = (lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 3) if lat else None)  # noqa: E731
    return {"rps": stats["done"] / elapsed, "requests": stats["done"], "non_2xx": stats["bad"], "p50_ms": p(0.5),
            "p99_ms": p(0.99)}


def write_json(name: str, result: dict) -> Path:
    out = HERE / "results" / name
    out.parent.mkdir(exist_ok=True)
    result["loadavg_end"] = loadavg()
    result["when"] = datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
    out.write_text(json.dumps(result, indent=2))
    return out


_unused = (secrets, timedelta)
