"""`LocalRunner`: each app a process group on this machine, under its own uid, with limits (see `sandbox`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx

from cove.settings import Settings
from cove.spaces import build, netns
from cove.spaces.runner import AppSpec, Log, Runner, RunningApp
from cove.spaces.sandbox import Limits, chown_tree, limiter, scrubbed_env

#: Ports of stopped apps, kept from reuse for `PORT_COOLDOWN` seconds: a proxy that remembered one briefly
#: (`cove.api.spaces.ANON_TTL`) must find nothing there, never another Space's app.
PORT_COOLDOWN = 120.0
_released: dict[int, float] = {}


def free_port() -> int:
    now = time.monotonic()
    for port, at in list(_released.items()):
        if now - at > PORT_COOLDOWN:
            del _released[port]
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _released:
            return port


def _close(isolation: list) -> None:
    """Close an app's network namespace fd and forwarders (`LocalApp.isolation`)."""
    for item in isolation:
        with contextlib.suppress(OSError):
            os.close(item) if isinstance(item, int) else item.close()


class LocalApp(RunningApp):
    def __init__(self, proc: subprocess.Popen, port: int, sha: str, strip_prefix: bool, workdir: Path,
                 log: Log, isolation: list | None = None) -> None:
        self.proc = proc
        self.isolation = isolation or []  # the app's network namespace fd and Cove's forwarders into/out of it
        self.port = port
        self.upstream = f"http://127.0.0.1:{port}"
        self.sha = sha
        self.strip_prefix = strip_prefix
        self.workdir = workdir
        self._reader = threading.Thread(target=self._read, args=(log,), daemon=True, name=f"space-log-{port}")
        self._reader.start()

    def _read(self, log: Log) -> None:
        assert self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, b""):
            log(line.decode("utf-8", "replace"))

    def exit_code(self) -> int | None:
        return self.proc.poll()

    def stop(self, timeout: float = 10) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        _close(self.isolation)
        self.isolation = []
        with contextlib.suppress(ProcessLookupError, PermissionError):  # what its group left behind
            os.killpg(self.proc.pid, signal.SIGKILL)
        _released[self.port] = time.monotonic()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def memory(self) -> int | None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None


class LocalRunner(Runner):
    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def uid(self, spec: AppSpec) -> int:
        return self.settings.spaces_uid_base + 1 + spec.repo_pk

    def build(self, spec: AppSpec, log: Log, *, fresh: bool = False) -> object:
        if spec.config.sdk == "static":
            return None
        return build.ensure_env(self.settings, spec.config, log, fresh=fresh)

    def start(self, spec: AppSpec, built: object, log: Log) -> RunningApp:
        uid = self.uid(spec)
        root = self.settings.spaces_dir / "apps" / str(spec.repo_pk)
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o711)
        workdir = root / f"{spec.sha[:12]}-{os.urandom(3).hex()}"
        shutil.copytree(spec.files, workdir / "app", symlinks=True)
        (workdir / "home").mkdir()
        chown_tree(workdir, uid)
        workdir.chmod(0o700)
        port = free_port()
        env_dir = Path(str(built))
        python = str(env_dir / "bin" / "python")
        env = {**scrubbed_env(home=str(workdir / "home")), **spec.env, "PORT": str(port),
               "VIRTUAL_ENV": str(env_dir), "PATH": f"{env_dir}/bin:/usr/local/bin:/usr/bin:/bin"}
        if spec.config.sdk == "gradio":
            env.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), GRADIO_ROOT_PATH=spec.prefix,
                       GRADIO_ANALYTICS_ENABLED="False", GRADIO_TEMP_DIR=str(workdir / "home" / "gradio"))
            cmd = [python, spec.config.app_file]
            strip = True
        else:  # streamlit
            cmd = [python, "-m", "streamlit", "run", spec.config.app_file, "--server.port", str(port),
                   "--server.address", "127.0.0.1", "--server.headless", "true",
                   "--server.baseUrlPath", spec.prefix.strip("/"), "--browser.gatherUsageStats", "false",
                   "--server.enableXsrfProtection", "false", "--server.enableCORS", "false"]
            strip = False
        s = self.settings
        limits = Limits(memory=s.spaces_memory, nproc=s.spaces_nproc, cpu_seconds=s.spaces_cpu_seconds,
                        nice=s.spaces_nice)
        log(f"===== Application Startup ({spec.sha[:7]}) =====\n")
        if s.spaces_network != "isolated":
            proc = subprocess.Popen(cmd, cwd=workdir / "app", env=env, user=uid, group=uid, extra_groups=[],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    preexec_fn=limiter(limits), process_group=0, close_fds=True)
            return LocalApp(proc, port, spec.sha, strip, workdir, log)
        return self._start_isolated(cmd, workdir, env, uid, limits, port, spec, strip, log)

    def _start_isolated(self, cmd: list[str], workdir: Path, env: dict[str, str], uid: int, limits: Limits,
                        port: int, spec: AppSpec, strip: bool, log: Log) -> LocalApp:
        """Start the app in a network namespace of its own (`netns`): Cove's 127.0.0.1:port is relayed to the app's,
        and the app's 127.0.0.1:<Cove's port> to Cove (``HF_ENDPOINT``); nothing else is reachable from it."""
        s = self.settings
        cove_host = "127.0.0.1" if s.host in ("0.0.0.0", "::", "localhost") else s.host
        inside_port = s.port
        public = httpx.URL(s.public_endpoint)
        if public.host in ("127.0.0.1", "localhost") and public.port:
            inside_port = public.port
        else:  # a public name is not reachable from the namespace: the app reaches Cove on its own loopback
            env["HF_ENDPOINT"] = f"http://127.0.0.1:{inside_port}"
        limit = limiter(limits)

        def enter() -> None:
            netns.enter_new_netns()
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            limit()

        into = netns.listener("127.0.0.1", port)
        isolation: list = []
        try:
            proc = subprocess.Popen(cmd, cwd=workdir / "app", env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=enter,
                                    process_group=0, close_fds=True)
            try:
                ns_fd = os.open(f"/proc/{proc.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                isolation.append(ns_fd)
                out = netns.in_netns(ns_fd, lambda: netns.listener("127.0.0.1", inside_port))
                isolation.append(netns.Forwarder(out, netns.Connector(None, cove_host, s.port), f"space-out-{port}"))
                isolation.append(netns.Forwarder(into, netns.Connector(ns_fd, "127.0.0.1", port), f"space-in-{port}"))
            except BaseException:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
        except BaseException:
            into.close()
            _close(isolation)
            raise
        return LocalApp(proc, port, spec.sha, strip, workdir, log, isolation)

    def healthy(self, app: RunningApp, spec: AppSpec) -> bool:
        path = "/" if app.strip_prefix else f"{spec.prefix}/_stcore/health"
        try:
            r = httpx.get(app.upstream + path, timeout=2)
        except httpx.HTTPError:
            return False
        return r.status_code < 500
