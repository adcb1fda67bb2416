"""The scale-out stack as an operator runs it (docs/scale-out.md): PostgreSQL + SeaweedFS (S3, SigV4) + N
`cove serve` processes on one shared `COVE_DATA` and one `COVE_SECRET`, nginx round robin in front, and
`COVE_ENDPOINT` the balancer's URL.

nginx writes one access-log line per request naming the process that answered it (`$upstream_addr`) and the
bytes both ways, so a test can assert that the steps of one flow landed on different processes and a
benchmark can count the bytes that crossed the API tier.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import User, _wait, free_port
from tests.fleet.seaweed import SeaweedS3
from tests.storage import pg as pgmod

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def unavailable() -> str | None:
    """Why the fleet cannot run here, or None."""
    from tests.fleet import seaweed

    if not os.path.exists(NGINX):
        return "nginx is not installed"
    return pgmod.unavailable() or seaweed.unavailable()


@dataclass
class Hit:
    """One request as nginx saw it."""

    upstream: str  # "127.0.0.1:PORT" of the process that answered ("a, b" when nginx tried two)
    method: str
    uri: str
    status: int
    sent: int  # body bytes nginx sent to the client
    received: int  # request bytes (line, headers, body)


_LOG_FORMAT = "'$upstream_addr\\t$request_method\\t$uri\\t$status\\t$body_bytes_sent\\t$request_length'"


def nginx_conf(folder: Path, port: int, upstreams: list[int], read_timeout_s: int,
               complete_timeout_ms: int | None = None) -> str:
    """nginx in front of `upstreams`, round robin; `complete_timeout_ms`: LFS multipart completions (only
    them) get that long to answer before nginx gives up with 504, as a balancer's timeout would."""
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in upstreams)
    temps = "\n".join(f"    {k}_temp_path {folder}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    proxy = """            proxy_pass http://cove;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_send_timeout {t};
            proxy_read_timeout {t};"""
    complete = "" if complete_timeout_ms is None else f"""
        location ~ ^/lfs/objects/[^/]+/complete$ {{
{proxy.format(t=f"{complete_timeout_ms}ms")}
        }}"""
    return f"""{"user root;" if os.geteuid() == 0 else ""}
daemon off;
worker_processes 2;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format fleet {_LOG_FORMAT};
    access_log {folder}/access.log fleet;
{temps}
    upstream cove {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
{proxy.format(t=f"{read_timeout_s}s")}
        }}{complete}
    }}
}}
"""


@dataclass
class Fleet:
    """A running fleet. `endpoint` is the balancer; `direct(i)` one process; `kill/stop/start(i)` one process."""

    root: Path
    endpoint: str
    env: dict[str, str]  # the fleet's environment (COVE_*, AWS_*), as every process and admin command gets it
    s3: SeaweedS3
    bucket: str
    db_url: str
    ports: list[int]
    procs: list[subprocess.Popen | None]
    nginx: subprocess.Popen | None = None
    users: dict[str, User] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return Path(self.env["COVE_DATA"])

    @property
    def access_log(self) -> Path:
        return self.root / "nginx" / "access.log"

    def direct(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    def log(self, i: int) -> Path:
        return self.root / f"cove-{i}.log"

    # -- processes --------------------------------------------------------------------------------

    def _popen(self, i: int, extra: dict[str, str]) -> subprocess.Popen:
        env = {**self.env, "COVE_PORT": str(self.ports[i]), "COVE_HOST": "127.0.0.1", **extra}
        with open(self.log(i), "ab") as fh:
            return subprocess.Popen([sys.executable, "-m", "cove", "serve", "--log-level", "warning"], env=env,
                                    stdout=fh, stderr=subprocess.STDOUT)

    def start(self, *which: int, **extra: str) -> None:
        """Start processes `which` (all that are down when none is named) and wait until each answers.
        `extra` is added to their environment (e.g. PYTHONPATH of another release)."""
        which = which or tuple(i for i, p in enumerate(self.procs) if p is None or p.poll() is not None)
        for i in which:
            self.procs[i] = self._popen(i, extra)
        with ThreadPoolExecutor(len(which) or 1) as pool:
            list(pool.map(lambda i: _wait(self.direct(i), self.procs[i], self.log(i), 120), which))

    def wait_in_rotation(self, i: int, timeout: float = 30) -> None:
        """Wait until the balancer sends requests to process `i` again, as a rolling restart waits for a health
        check before stopping the next process: nginx keeps a process it saw refuse a connection out of rotation
        for `fail_timeout`, and stopping the other one meanwhile leaves no live upstream (502)."""
        port, deadline = self.ports[i], time.monotonic() + timeout
        while True:
            mark = self.mark()
            httpx.get(f"{self.endpoint}/api/models", params={"limit": 1}, timeout=10)
            if any(self.port_of(h) == port and h.status < 500 for h in self.hits(mark)):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"process {i} not back in the balancer's rotation after {timeout} s")
            time.sleep(0.2)

    def kill(self, i: int) -> None:
        """SIGKILL process i, as a crash or an OOM kill would: no clean-up of any kind."""
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def stop(self, i: int) -> None:
        """A graceful stop (SIGTERM, as a rolling restart sends)."""
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def set_complete_timeout(self, ms: int | None) -> None:
        """Reload nginx so that it gives LFS multipart completions `ms` milliseconds (None: the usual timeout)."""
        folder = self.root / "nginx"
        port = int(self.endpoint.rsplit(":", 1)[1])
        (folder / "nginx.conf").write_text(nginx_conf(folder, port, self.ports, 300, ms))
        self.nginx.send_signal(signal.SIGHUP)
        time.sleep(1.0)  # new workers up; old ones finish what they have

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p is not None and p.poll() is None]

    # -- clients ----------------------------------------------------------------------------------

    def cli(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "cove", *args], env=self.env, capture_output=True, text=True,
                              check=True).stdout.strip()

    def user(self, name: str, read_token: bool = True) -> User:
        """A user with a write token (and a read token unless `read_token=False`: one CLI run less)."""
        if name not in self.users:
            self.cli("user", "add", name, "--password", f"{name}-password")
            write = self.cli("token", "create", name, "--role", "write", "--name", "fleet-write")
            read = self.cli("token", "create", name, "--role", "read", "--name", "fleet-read") if read_token else ""
            self.users[name] = User(name, write, read)
        return self.users[name]

    def api(self, token: str | None = None, endpoint: str | None = None):  # noqa: ANN201 - HfApi
        from huggingface_hub import HfApi

        return HfApi(endpoint=endpoint or self.endpoint, token=token)

    # -- what nginx saw ---------------------------------------------------------------------------

    def mark(self) -> int:
        """A position in the access log; `hits(mark)` returns the requests after it."""
        return self.access_log.stat().st_size if self.access_log.exists() else 0

    def hits(self, since: int = 0) -> list[Hit]:
        time.sleep(0.05)  # nginx writes the line after the response
        with open(self.access_log, "rb") as fh:
            fh.seek(since)
            lines = fh.read().decode().splitlines()
        out = []
        for line in lines:
            up, method, rest = line.split("\t", 2)
            uri, status, sent, received = rest.rsplit("\t", 3)  # a decoded $uri may hold a tab
            out.append(Hit(up, method, uri, int(status), int(sent), int(received)))
        return out

    def port_of(self, hit: Hit) -> int | None:
        last = hit.upstream.split(",")[-1].strip()
        return int(last.rsplit(":", 1)[1]) if ":" in last else None

    # -- life cycle -------------------------------------------------------------------------------

    def close(self) -> None:
        for i in range(len(self.procs)):
            self.stop(i)
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.terminate()
            self.nginx.wait(10)
        keep = os.environ.get("FLEET_KEEP_LOGS")
        if keep:
            dest = Path(keep) / self.root.name
            dest.mkdir(parents=True, exist_ok=True)
            for f in [*self.root.glob("cove-*.log"), *(self.root / "nginx").glob("*.log")]:
                shutil.copy(f, dest / f.name)
        shutil.rmtree(self.root, ignore_errors=True)  # the shared volume, logs, nginx's folder


def start_nginx(folder: Path, port: int, upstreams: list[int], read_timeout_s: int = 300) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "nginx.conf"
    conf.write_text(nginx_conf(folder, port, upstreams, read_timeout_s))
    proc = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited:\n{(folder / 'error.log').read_text()[-2000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except httpx.HTTPError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def start_fleet(pg: pgmod.PgCluster, s3: SeaweedS3, n: int = 2, *, root: Path | None = None,
                read_timeout_s: int = 300, **extra_env: str) -> Fleet:
    """N `cove serve` processes on a fresh database and bucket, started at the same moment (their start-up
    migrations race), behind a fresh nginx. The caller closes it (`Fleet.close`)."""
    root = root or Path(tempfile.mkdtemp(prefix="cove-fleet-"))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    bucket = s3.new_bucket()
    base = {k: v for k, v in os.environ.items() if not k.startswith("COVE_")}
    env = {**s3.env(base), "COVE_DATA": str(root / "shared"), "COVE_DATABASE_URL":
           pg.create_database(f"cove_fleet_{uuid.uuid4().hex[:8]}"), "COVE_BLOB_BACKEND": "s3",
           "COVE_S3_BUCKET": bucket, "COVE_S3_ENDPOINT_URL": s3.endpoint, "COVE_SECRET": uuid.uuid4().hex * 2,
           "COVE_ENDPOINT": endpoint, "COVE_AUTH_CLIENT_FAILURES": "1000000", **extra_env}
    ports = [free_port() for _ in range(n)]
    fleet = Fleet(root, endpoint, env, s3, bucket, env["COVE_DATABASE_URL"], ports, [None] * n)
    try:
        fleet.start()
        fleet.nginx = start_nginx(root / "nginx", port, ports, read_timeout_s)
    except BaseException:
        fleet.close()
        raise
    return fleet
