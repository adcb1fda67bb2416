"""Hub core benchmark: Cove against plain baselines, in one run, on this machine.

    python benchmarks/hub_core.py [--size-mib 1024] [--workers 1] [--json results.json]

Measures, against a real `cove serve` (SQLite, local blob store) started here on a free loopback port:

1. download of a 1 GiB LFS file with `hf_hub_download` from Cove, against nginx (Debian package, started
   here with a minimal config) serving the *same blob file* at the same `/resolve` URL with the headers
   `hf_hub_download` needs, so the identical client code path (HEAD + streaming GET + write to the cache)
   runs against both; plus a raw streaming GET that discards the bytes (the server-bound number);
2. `HEAD /resolve` requests per second against Cove (anonymous and with a token) against a bare ASGI app
   that answers the same headers, run by uvicorn with the same settings (a built-in uvloop load generator
   on keep-alive connections, bounded in time and count; `--load hey` for the Debian `hey` tool);
3. the peak memory (PSS, and RSS) of the Cove process tree while uploading and downloading 1 GiB versus 1 MiB.

Prints a table, checks the targets (download >= 0.9 of nginx, HEAD >= 0.5 of the bare endpoint, memory
flat in file size) and writes JSON. Exit status 0 even when a target is missed (it is a report), 2 when
the set-up fails. Loopback only, every load bounded in time and count. Not part of the test suite.
"""

from __future__ import annotations

import json
import os

# -- the bare ASGI endpoint (imported by uvicorn in its own process: keep this part stdlib-only) ----------

_BARE_HEADERS = [(k.encode("latin-1"), v.encode("latin-1"))
                 for k, v in json.loads(os.environ.get("COVE_BENCH_BARE_HEADERS", "[]"))]


async def bare_app(scope, receive, send) -> None:  # noqa: ANN001
    """The baseline: a trivial ASGI app answering every request with Cove's HEAD /resolve headers."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["method"] != "HEAD":  # only HEAD is measured; anything else gets an empty answer
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": _BARE_HEADERS})
    await send({"type": "http.response.body", "body": b""})


# -- the benchmark --------------------------------------------------------------------------------------

import argparse  # noqa: E402
import contextlib  # noqa: E402
import hashlib  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024
GIB = 1024 * MIB
REPO = "bench/core"
BIG, SMALL = "big.bin", "small.bin"
TARGET_DOWNLOAD = 0.9
TARGET_HEAD = 0.5
#: "Flat": the peak PSS while moving the big file exceeds the peak for 1 MiB by at most this much.
TARGET_MEMORY_GROWTH_MIB = 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its descendants so far."""
    import psutil

    total = 0.0
    root = psutil.Process(pid)
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


class RssSampler:
    """Samples the memory of a process and its descendants in a thread, every `interval` seconds.

    `peak` (what the check uses) is the summed PSS: each page shared between processes of the tree counts
    once. The summed RSS (`peak_rss`) counts a shared page in every process, so a server that forks a
    child (`git update-ref` at the end of an upload) briefly "doubles" for as long as the child runs
    before exec. Both in bytes.
    """

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = self.peak_rss = self.start = self.start_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> tuple[int, int]:
        import psutil

        pss = rss = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                m = p.memory_full_info()
                pss += m.pss
                rss += m.rss
        return pss, rss

    def _take(self) -> None:
        pss, rss = self.sample()
        self.peak, self.peak_rss = max(self.peak, pss), max(self.peak_rss, rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._take()
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self.start, self.start_rss = self.peak, self.peak_rss = self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self._stop.set()
        self._thread.join()
        self._take()

    def result(self) -> dict:
        return {"start_mib": self.start / MIB, "peak_mib": self.peak / MIB,
                "start_rss_mib": self.start_rss / MIB, "peak_rss_mib": self.peak_rss / MIB}


def load_head_raw(url: str, headers: dict[str, str], connections: int, duration: float,
                  max_requests: int = 2_000_000) -> dict:
    """HEAD load generator: `connections` keep-alive HTTP/1.1 connections on uvloop, one request in
    flight on each, bounded by `duration` seconds and `max_requests`.

    Raw sockets, not an HTTP client library: it only finds the end of each response head (HEAD has no
    body), so a single core drives a bare uvicorn app hard. (wrk 4.1 waits for a body after HEAD
    responses that carry Content-Length, so it cannot be used here; `hey` works but needs more CPU.)
    """
    import asyncio
    from urllib.parse import urlsplit

    import uvloop

    u = urlsplit(url)
    host, port = u.hostname, u.port or 80
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"HEAD {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\n{extra}\r\n".encode()
    stats = {"done": 0, "bad": 0, "reconnects": 0}
    latencies: list[float] = []
    clock = time.perf_counter

    async def run() -> float:
        loop = asyncio.get_running_loop()
        deadline = clock() + duration

        class Conn(asyncio.Protocol):
            def __init__(self) -> None:
                self.buf = b""
                self.sent = 0.0
                self.closed = loop.create_future()

            def connection_made(self, transport) -> None:  # noqa: ANN001
                self.transport = transport
                self.send()

            def send(self) -> None:
                self.sent = clock()
                self.transport.write(request)

            def data_received(self, data: bytes) -> None:
                self.buf += data
                while (i := self.buf.find(b"\r\n\r\n")) >= 0:
                    now = clock()
                    if not self.buf.startswith(b"HTTP/1.1 2"):
                        stats["bad"] += 1
                    self.buf = self.buf[i + 4:]
                    stats["done"] += 1
                    latencies.append(now - self.sent)
                    if now < deadline and stats["done"] < max_requests:
                        self.send()
                    else:
                        self.transport.close()

            def connection_lost(self, exc) -> None:  # noqa: ANN001
                if not self.closed.done():
                    self.closed.set_result(None)

        async def one() -> None:
            while clock() < deadline and stats["done"] < max_requests:
                _, conn = await loop.create_connection(Conn, host, port)
                await conn.closed
                if clock() < deadline and stats["done"] < max_requests:
                    stats["reconnects"] += 1  # the server closed a keep-alive connection

        t = clock()
        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(connections))), duration + 30)
        return clock() - t

    elapsed = uvloop.run(run())
    latencies.sort()

    def pct(q: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 3) if latencies else None

    return {"tool": "raw-uvloop", "rps": stats["done"] / elapsed, "requests": stats["done"],
            "non_2xx": stats["bad"], "reconnects": stats["reconnects"], "p50_ms": pct(0.5), "p99_ms": pct(0.99)}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="cove-bench-", dir=args.tmp))
        self.data = self.root / "data"
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "COVE_DATA": str(self.data), "COVE_PORT": str(self.port),
                    "COVE_HOST": "127.0.0.1", "COVE_WORKERS": str(args.workers)}
        for var in ("COVE_ENDPOINT", "COVE_DATABASE_URL", "COVE_BLOB_BACKEND"):
            self.env.pop(var, None)
        self.cove_proc: subprocess.Popen | None = None
        self.procs: list[subprocess.Popen] = []
        self.results: dict = {"config": {"size_mib": args.size_mib, "workers": args.workers,
                                         "connections": args.connections, "duration_s": args.duration,
                                         "head_reps": args.head_reps,
                                         "reps": args.reps, "cpus": os.cpu_count()}}
        self.token = ""
        # Downloads land in RAM (tmpfs) when there is room: the disk's write-back stalls would otherwise
        # decide which run is fastest. The write itself (a copy into the page cache) still happens.
        self.cache_root = self.root
        if args.download_dir:
            self.cache_root = Path(tempfile.mkdtemp(prefix="cove-bench-dl-", dir=args.download_dir))
        elif os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free > 3 * args.size_mib * MIB:
            self.cache_root = Path(tempfile.mkdtemp(prefix="cove-bench-dl-", dir="/dev/shm"))
        self.results["config"]["download_dir"] = str(self.cache_root)

    # -- processes ----------------------------------------------------------------------------------
    def cli(self, *argv: str) -> str:
        out = subprocess.run([sys.executable, "-m", "cove", *argv], env=self.env, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"cove {' '.join(argv)} failed:\n{out.stderr[-3000:]}")
        return out.stdout.strip()

    def start_cove(self) -> None:
        stop(self.cove_proc)
        self.data.mkdir(parents=True, exist_ok=True)
        log = self.root / "cove.log"
        with open(log, "ab") as fh:
            self.cove_proc = subprocess.Popen([sys.executable, "-m", "cove", "serve", "--log-level", "warning"],
                                              env=self.env, stdout=fh, stderr=subprocess.STDOUT)
        wait_http(f"{self.endpoint}/api/agent-harnesses", self.cove_proc, log)

    def start_bare(self, headers: list[tuple[str, str]]) -> str:
        port = free_port()
        log = self.root / "bare.log"
        env = {**os.environ, "COVE_BENCH_BARE_HEADERS": json.dumps(headers)}
        # The same uvicorn settings as `cove serve`: loop/http "auto" (uvloop, httptools), no access log,
        # keep-alive 30 s, the same worker count.
        with open(log, "ab") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "hub_core:bare_app", "--app-dir", str(HERE),
                 "--host", "127.0.0.1", "--port", str(port), "--workers", str(self.args.workers),
                 "--log-level", "warning", "--no-access-log", "--timeout-keep-alive", "30"],
                env=env, stdout=fh, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self.bare_proc = proc
        wait_http(f"http://127.0.0.1:{port}/", proc, log)
        return f"http://127.0.0.1:{port}"

    def start_nginx(self, files: dict[str, tuple[Path, str, int]], commit: str, repo: str = REPO) -> str:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(nginx).exists():
            raise RuntimeError("nginx not found: apt-get install -y nginx-light")
        port = free_port()
        conf_dir = self.root / "nginx"
        conf_dir.mkdir()
        locations = []
        for name, (path, oid, size) in files.items():
            locations.append(f"""
        location = /{repo}/resolve/main/{name} {{
            alias {path};
            add_header X-Repo-Commit {commit};
            add_header X-Linked-Etag '"{oid}"';
            add_header X-Linked-Size {size};
        }}""")
        user = "user root;" if os.geteuid() == 0 else ""
        temps = "\n".join(f"    {k}_temp_path {conf_dir}/{k};" for k in ("client_body", "proxy", "fastcgi",
                                                                          "uwsgi", "scgi"))
        (conf_dir / "nginx.conf").write_text(f"""{user}
worker_processes {self.args.workers};
daemon off;
pid {conf_dir}/nginx.pid;
error_log {conf_dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temps}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30;
    server {{
        listen 127.0.0.1:{port};
{''.join(locations)}
    }}
}}
""")
        log = self.root / "nginx.log"
        with open(log, "ab") as fh:
            proc = subprocess.Popen([nginx, "-p", str(conf_dir), "-c", str(conf_dir / "nginx.conf"),
                                     "-e", str(conf_dir / "error.log")], stdout=fh, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self.nginx_proc = proc
        wait_http(f"http://127.0.0.1:{port}/", proc, log)
        return f"http://127.0.0.1:{port}"

    def close(self) -> None:
        stop(self.cove_proc)
        for p in self.procs:
            stop(p)
        if self.cache_root != self.root:
            shutil.rmtree(self.cache_root, ignore_errors=True)
        if not self.args.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- set-up -------------------------------------------------------------------------------------
    def make_file(self, name: str, size: int) -> tuple[Path, str]:
        path = self.root / "src" / name
        path.parent.mkdir(exist_ok=True)
        digest = hashlib.sha256()
        with open(path, "wb") as fh:
            left = size
            while left:
                block = os.urandom(min(left, 8 * MIB))
                digest.update(block)
                fh.write(block)
                left -= len(block)
        return path, digest.hexdigest()

    def upload(self, api, path: Path, name: str) -> float:  # noqa: ANN001
        t = time.perf_counter()
        api.upload_file(path_or_fileobj=str(path), path_in_repo=name, repo_id=REPO)
        return time.perf_counter() - t

    # -- measurements -------------------------------------------------------------------------------
    def hf_download(self, endpoint: str, name: str, token: str | bool, size: int) -> float:
        from huggingface_hub import hf_hub_download

        cache = self.cache_root / "dl-cache"
        shutil.rmtree(cache, ignore_errors=True)
        t = time.perf_counter()
        out = hf_hub_download(REPO, name, endpoint=endpoint, token=token, cache_dir=cache)
        dt = time.perf_counter() - t
        got = os.path.getsize(out)
        shutil.rmtree(cache, ignore_errors=True)
        if got != size:
            raise RuntimeError(f"downloaded {got} bytes from {endpoint}, expected {size}")
        return dt

    def raw_get(self, url: str, headers: dict, size: int) -> float:
        """The same client (huggingface_hub's httpx session), streaming GET, bytes discarded."""
        from huggingface_hub import constants, get_session

        t = time.perf_counter()
        n = 0
        with get_session().stream("GET", url, headers=headers, timeout=60) as r:
            r.raise_for_status()
            for chunk in r.iter_bytes(chunk_size=constants.DOWNLOAD_CHUNK_SIZE):
                n += len(chunk)
        dt = time.perf_counter() - t
        if n != size:
            raise RuntimeError(f"GET {url}: {n} bytes, expected {size}")
        return dt

    def load_head(self, url: str, headers: dict[str, str], server_pid: int) -> dict:
        """One load run; also the server's CPU time per request, which contention on a busy machine
        barely moves (unlike requests per second)."""
        if self.args.load == "hey":
            before = tree_cpu(server_pid)
            out = self._hey(url, headers)
        else:
            load_head_raw(url, headers, self.args.connections, 1.0)  # warm-up
            before = tree_cpu(server_pid)
            out = load_head_raw(url, headers, self.args.connections, self.args.duration)
        out["server_cpu_us_per_request"] = (tree_cpu(server_pid) - before) * 1e6 / max(out["requests"], 1)
        return out

    def _hey(self, url: str, headers: dict[str, str]) -> dict:
        hey = shutil.which("hey")
        if not hey:
            raise RuntimeError("hey not found: apt-get install -y hey")
        hdrs = [x for k, v in headers.items() for x in ("-H", f"{k}: {v}")]
        base = [hey, "-m", "HEAD", "-c", str(self.args.connections), *hdrs]
        subprocess.run(base + ["-z", "1s", url], capture_output=True, text=True, timeout=60)  # warm-up
        out = subprocess.run(base + ["-z", f"{self.args.duration}s", url], capture_output=True, text=True,
                             timeout=self.args.duration + 60).stdout
        codes = {int(c): int(n) for c, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)}
        return {"tool": "hey", "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
                "requests": sum(codes.values()), "non_2xx": sum(n for c, n in codes.items() if c >= 300)}

    # -- the run ------------------------------------------------------------------------------------
    def run(self) -> dict:
        args, res = self.args, self.results
        os.environ.update(HF_HOME=str(self.root / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
                          HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_XET="1", HF_ENDPOINT=self.endpoint)
        for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
            os.environ.pop(var, None)
        from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_url

        constants.HF_HUB_DISABLE_XET = True  # classic LFS path for the set-up upload and the downloads

        big_size, small_size = args.size_mib * MIB, MIB
        t0 = time.perf_counter()
        log(f"work dir {self.root}; generating {args.size_mib} MiB of random bytes")
        big, big_oid = self.make_file(BIG, big_size)
        small, small_oid = self.make_file(SMALL, small_size)

        log(f"starting cove serve on {self.endpoint} (workers={args.workers})")
        self.start_cove()
        self.cli("user", "add", "bench", "--password", "bench-password-1")
        self.token = self.cli("token", "create", "bench", "--role", "write", "--name", "bench").splitlines()[-1]
        api = HfApi(endpoint=self.endpoint, token=self.token)
        api.create_repo(REPO)

        # (3a) memory while uploading 1 MiB, then the big file (the set-up upload, classic LFS).
        mem: dict = {}
        with RssSampler(self.cove_proc.pid) as s:
            up_small = self.upload(api, small, SMALL)
        mem["upload_small"] = s.result()
        log(f"uploading {args.size_mib} MiB through LFS (HF_HUB_DISABLE_XET=1)")
        with RssSampler(self.cove_proc.pid) as s:
            up_big = self.upload(api, big, BIG)
        mem["upload_big"] = s.result()
        res["upload"] = {"big_s": up_big, "big_MBps": big_size / up_big / 1e6, "small_s": up_small}

        # A fresh server for the downloads: RSS an earlier phase left behind must not count.
        self.start_cove()
        meta = get_hf_file_metadata(hf_hub_url(REPO, BIG, endpoint=self.endpoint), token=self.token)
        commit = meta.commit_hash
        from cove.storage.blobs_local import LocalBlobStore

        blobs = LocalBlobStore(self.data / "blobs")
        files = {}
        for name, oid, size in ((BIG, big_oid, big_size), (SMALL, small_oid, small_size)):
            path = blobs.local_path(f"lfs/{oid}")
            if path is None or os.path.getsize(path) != size:
                raise RuntimeError(f"blob for {name} not found in the local blob store")
            files[name] = (Path(path), oid, size)
        nginx = self.start_nginx(files, commit)

        # (3b) memory while downloading 1 MiB, then the big file (this also warms the page cache).
        with RssSampler(self.cove_proc.pid) as s:
            self.hf_download(self.endpoint, SMALL, self.token, small_size)
        mem["download_small"] = s.result()
        with RssSampler(self.cove_proc.pid) as s:
            self.hf_download(self.endpoint, BIG, self.token, big_size)
        mem["download_big"] = s.result()
        res["memory"] = mem
        self.hf_download(nginx, BIG, False, big_size)  # warm nginx too

        # (1) downloads, alternating, best and median of `reps`.
        log(f"downloads: {args.reps} x hf_hub_download and raw GET, Cove vs nginx")
        keys = ("cove_hf", "nginx_hf", "cove_raw", "nginx_raw")
        timings: dict[str, list[float]] = {k: [] for k in keys}
        cpu: dict[str, list[float]] = {k: [] for k in keys}  # server CPU seconds (user + system) per run
        servers = {"cove": self.cove_proc.pid, "nginx": self.nginx_proc.pid}
        auth = {"Authorization": f"Bearer {self.token}"}
        for i in range(args.reps):
            order = [("cove", self.endpoint, self.token), ("nginx", nginx, False)]
            for who, ep, tok in (order if i % 2 == 0 else order[::-1]):
                url = f"{ep}/{REPO}/resolve/main/{BIG}"
                for kind, fetch in (("hf", lambda: self.hf_download(ep, BIG, tok, big_size)),  # noqa: B023
                                    ("raw", lambda: self.raw_get(url, auth if tok else {}, big_size))):  # noqa: B023
                    before = tree_cpu(servers[who])
                    timings[f"{who}_{kind}"].append(fetch())
                    cpu[f"{who}_{kind}"].append(tree_cpu(servers[who]) - before)
        dl = {}
        for k, v in timings.items():
            dl[k] = {"best_MBps": big_size / min(v) / 1e6, "median_MBps": big_size / statistics.median(v) / 1e6,
                     "runs_s": v, "server_cpu_s_per_GiB": statistics.median(cpu[k]) * GIB / big_size}
        res["download"] = dl

        # (2) HEAD /resolve req/s: Cove anonymous, Cove with a token, the bare ASGI endpoint.
        log(f"HEAD /resolve: {args.connections} connections, {args.duration} s each")
        import httpx

        r = httpx.head(f"{self.endpoint}/{REPO}/resolve/main/{BIG}", headers=auth)
        r.raise_for_status()
        same = [(k, v) for k, v in r.headers.items() if k.lower() not in ("date", "server")]
        bare = self.start_bare(same)
        path = f"/{REPO}/resolve/main/{BIG}"
        cove_pid = self.cove_proc.pid
        targets = {"bare": (bare + path, {}, self.bare_proc.pid),
                   "cove_anonymous": (self.endpoint + path, {}, cove_pid),
                   "cove_token": (self.endpoint + path, auth, cove_pid)}
        runs: dict[str, list[dict]] = {k: [] for k in targets}
        for i in range(args.head_reps):  # interleaved; the best run of each counts (noise only slows)
            for who in (list(targets) if i % 2 == 0 else list(targets)[::-1]):
                runs[who].append(self.load_head(*targets[who]))
        res["head"] = {}
        for who, rs in runs.items():
            best = max(rs, key=lambda r: r["rps"])
            res["head"][who] = {**best, "non_2xx": sum(r["non_2xx"] for r in rs),
                                "runs_rps": [round(r["rps"]) for r in rs],
                                "server_cpu_us_per_request": statistics.median(r["server_cpu_us_per_request"]
                                                                               for r in rs)}
        res["elapsed_s"] = time.perf_counter() - t0
        return res


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def verdict(res: dict) -> dict:
    dl, head, mem = res["download"], res["head"], res["memory"]
    checks = {}
    ratio = dl["cove_hf"]["best_MBps"] / dl["nginx_hf"]["best_MBps"]
    checks["download_vs_nginx"] = {"ratio": ratio, "target": TARGET_DOWNLOAD, "ok": ratio >= TARGET_DOWNLOAD}
    raw = dl["cove_raw"]["best_MBps"] / dl["nginx_raw"]["best_MBps"]
    checks["raw_get_vs_nginx"] = {"ratio": raw, "target": None, "ok": None}
    for who in ("cove_token", "cove_anonymous"):
        r = head[who]["rps"] / head["bare"]["rps"]
        clean = head[who]["non_2xx"] == 0
        checks[f"head_{who}_vs_bare"] = {"ratio": r, "target": TARGET_HEAD, "ok": r >= TARGET_HEAD and clean}
        cpu = head["bare"]["server_cpu_us_per_request"] / head[who]["server_cpu_us_per_request"]
        checks[f"head_{who}_cpu_vs_bare"] = {"ratio": cpu, "target": None, "ok": None}
    for op in ("download", "upload"):
        growth = mem[f"{op}_big"]["peak_mib"] - mem[f"{op}_small"]["peak_mib"]
        checks[f"memory_{op}_growth_mib"] = {"ratio": growth, "target": TARGET_MEMORY_GROWTH_MIB,
                                             "ok": growth <= TARGET_MEMORY_GROWTH_MIB}
    return checks


def report(res: dict) -> str:
    dl, head, mem = res["download"], res["head"], res["memory"]
    size = res["config"]["size_mib"]
    rows = [("measure", "cove", "baseline", "ratio", "target", "ok")]

    def ok(v: bool | None) -> str:
        return "-" if v is None else ("yes" if v else "NO")

    c = res["checks"]
    rows.append((f"hf_hub_download {size} MiB, MB/s (best)", f"{dl['cove_hf']['best_MBps']:.0f}",
                 f"{dl['nginx_hf']['best_MBps']:.0f} nginx", f"{c['download_vs_nginx']['ratio']:.2f}",
                 f">= {TARGET_DOWNLOAD}", ok(c["download_vs_nginx"]["ok"])))
    rows.append((f"hf_hub_download {size} MiB, MB/s (median)", f"{dl['cove_hf']['median_MBps']:.0f}",
                 f"{dl['nginx_hf']['median_MBps']:.0f} nginx",
                 f"{dl['cove_hf']['median_MBps'] / dl['nginx_hf']['median_MBps']:.2f}", "", ""))
    rows.append(("server CPU s per GiB (hf_hub_download)", f"{dl['cove_hf']['server_cpu_s_per_GiB']:.2f}",
                 f"{dl['nginx_hf']['server_cpu_s_per_GiB']:.2f} nginx", "", "", ""))
    rows.append((f"raw GET {size} MiB discarded, MB/s (best)", f"{dl['cove_raw']['best_MBps']:.0f}",
                 f"{dl['nginx_raw']['best_MBps']:.0f} nginx", f"{c['raw_get_vs_nginx']['ratio']:.2f}", "", ""))
    for who, label in (("cove_token", "with token"), ("cove_anonymous", "anonymous")):
        rows.append((f"HEAD /resolve req/s, {label}", f"{head[who]['rps']:.0f}", f"{head['bare']['rps']:.0f} bare",
                     f"{c[f'head_{who}_vs_bare']['ratio']:.2f}", f">= {TARGET_HEAD}",
                     ok(c[f"head_{who}_vs_bare"]["ok"])))
    for who, label in (("cove_token", "with token"), ("cove_anonymous", "anonymous")):
        rows.append((f"HEAD server CPU us/request, {label}", f"{head[who]['server_cpu_us_per_request']:.0f}",
                     f"{head['bare']['server_cpu_us_per_request']:.0f} bare",
                     f"{c[f'head_{who}_cpu_vs_bare']['ratio']:.2f}", "", ""))
    for op in ("download", "upload"):
        small, big = mem[f"{op}_small"], mem[f"{op}_big"]
        rows.append((f"peak PSS MiB, {op} {size} MiB vs 1 MiB", f"{big['peak_mib']:.0f}",
                     f"{small['peak_mib']:.0f} (1 MiB)", f"+{c[f'memory_{op}_growth_mib']['ratio']:.1f} MiB",
                     f"<= +{TARGET_MEMORY_GROWTH_MIB} MiB", ok(c[f"memory_{op}_growth_mib"]["ok"])))
    for op in ("download", "upload"):
        small, big = mem[f"{op}_small"], mem[f"{op}_big"]
        rows.append((f"peak RSS sum MiB, {op} (info)", f"{big['peak_rss_mib']:.0f}",
                     f"{small['peak_rss_mib']:.0f} (1 MiB)", f"+{big['peak_rss_mib'] - small['peak_rss_mib']:.1f} MiB",
                     "", ""))
    return format_table(rows)


def format_table(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns, the first row a header underlined with dashes."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mib", type=int, default=1024, help="size of the big file (default 1024)")
    p.add_argument("--workers", type=int, default=int(os.environ.get("COVE_WORKERS", "1")),
                   help="uvicorn workers for Cove and the bare app, nginx worker_processes (default 1)")
    p.add_argument("--reps", type=int, default=3, help="download repetitions per target (default 3)")
    p.add_argument("--duration", type=int, default=4, help="seconds per HEAD load run (default 4)")
    p.add_argument("--head-reps", type=int, default=3, help="HEAD load runs per target (default 3)")
    p.add_argument("--connections", type=int, default=16, help="concurrent HEAD connections (default 16)")
    p.add_argument("--load", choices=("raw", "hey"), default="raw",
                   help="HEAD load generator: the built-in raw uvloop one (default) or hey (Debian package)")
    p.add_argument("--download-dir", default=None,
                   help="where hf_hub_download writes (default: /dev/shm when it has room, else the work dir)")
    p.add_argument("--tmp", default=None, help="where the work folder goes (default: the system temp dir)")
    p.add_argument("--json", default="benchmarks/results/hub_core.json", help="where to write the results")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    args = p.parse_args(argv)

    return run_and_report(Bench(args), verdict, report, args.json)


def run_and_report(bench: Bench, verdict, report, json_path: str) -> int:  # noqa: ANN001
    """Run a benchmark, print its report and write its JSON; 2 when the set-up fails."""
    try:
        res = bench.run()
    except Exception as exc:  # noqa: BLE001 - report the set-up failure and clean up
        log(f"FAILED: {exc}")
        return 2
    finally:
        bench.close()
    res["checks"] = verdict(res)
    print(report(res))
    out = Path(json_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    log(f"results written to {out} ({res['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
