"""A real `cove serve` process on a free port, shared by the session; users, tokens and repo factories.

`HF_ENDPOINT` is read by huggingface_hub and datasets at import time, so it is set here, before any test
module imports them.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_ROOT = Path(tempfile.mkdtemp(prefix="cove-test-"))


def _port_candidates() -> Iterator[int]:
    """Ports below the kernel's ephemeral range (32768+), so no client connection can be holding one, in a
    block of 2,000 per xdist worker, so two workers never hand out the same port; random start, no repeats."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    base = 20_000 + 2_000 * (int(worker[2:]) % 6 if worker[2:].isdigit() else 0)
    start = random.randrange(2_000)
    for i in range(2_000):
        yield base + (start + i) % 2_000


_PORTS = _port_candidates()


def free_port() -> int:
    """A loopback port that is free now and that this test session has not handed out before."""
    for port in _PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port left in this worker's block")


PORT = free_port()
ENDPOINT = f"http://127.0.0.1:{PORT}"
DATA = _ROOT / "data"
os.environ.update(
    HF_ENDPOINT=ENDPOINT,
    HF_HOME=str(_ROOT / "hf-home"),
    HF_HUB_DISABLE_TELEMETRY="1",
    HF_HUB_DISABLE_PROGRESS_BARS="1",
    HF_DATASETS_CACHE=str(_ROOT / "datasets-cache"),
    TOKENIZERS_PARALLELISM="false",
    DISABLE_SAFETENSORS_CONVERSION="1",
    # `cove serve` records its data folder in $XDG_CONFIG_HOME/cove/config.toml: the tests' servers write
    # theirs here, never in the real home.
    XDG_CONFIG_HOME=str(_ROOT / "config"),
)
for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_CO_STAGING", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_XET",
            "COVE_CONFIG"):
    os.environ.pop(var, None)
# Every test client is 127.0.0.1, and the matrix and fuzz runs send invalid tokens on purpose: the per-client
# budget of the shared server is raised so they can't block the suite (tests/security/test_auth.py tests the
# throttle on a server of its own, with small budgets).
SERVER_ENV = {**os.environ, "COVE_DATA": str(DATA), "COVE_PORT": str(PORT), "COVE_HOST": "127.0.0.1",
              "COVE_AUTH_CLIENT_FAILURES": "1000000"}


def cove(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the `cove` CLI against the test server's data folder."""
    return subprocess.run([sys.executable, "-m", "cove", *args], env=SERVER_ENV, capture_output=True, text=True,
                          check=check)


@dataclass
class User:
    name: str
    token: str
    read_token: str


@dataclass
class Server:
    endpoint: str
    data: Path
    proc: subprocess.Popen
    log: Path


def _wait(endpoint: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"cove serve exited:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{endpoint}/api/agent-harnesses", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"cove serve did not start:\n{log.read_text()[-4000:]}")


def start_server(data: Path, port: int, **env: str) -> Server:
    """Start `cove serve` on `port` with its own data folder; the caller stops it (`stop_server`)."""
    data.mkdir(parents=True, exist_ok=True)
    log = data.parent / f"server-{port}.log"
    full_env = {**SERVER_ENV, "COVE_DATA": str(data), "COVE_PORT": str(port), **env}
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "cove", "serve", "--log-level", "warning"], env=full_env,
                                stdout=fh, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait(endpoint, proc, log)
    except BaseException:
        stop_server(proc)
        raise
    return Server(endpoint, data, proc, log)


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def server() -> Server:
    srv = start_server(DATA, PORT)
    try:
        yield srv
    finally:
        stop_server(srv.proc)


def _make_user(name: str) -> User:
    cove("user", "add", name, "--password", f"{name}-password")
    write = cove("token", "create", name, "--role", "write", "--name", "tests-write").stdout.strip()
    read = cove("token", "create", name, "--role", "read", "--name", "tests-read").stdout.strip()
    return User(name, write, read)


@pytest.fixture(scope="session")
def alice(server: Server) -> User:
    return _make_user("alice")


@pytest.fixture(scope="session")
def bob(server: Server) -> User:
    return _make_user("bob")


@pytest.fixture(scope="session")
def acme(alice: User, bob: User) -> str:
    """An org where alice writes; bob is not a member."""
    cove("org", "add", "acme", "--owner", "alice")
    return "acme"


@pytest.fixture
def api(alice: User):
    from huggingface_hub import HfApi

    return HfApi(endpoint=ENDPOINT, token=alice.token)


@pytest.fixture
def bob_api(bob: User):
    from huggingface_hub import HfApi

    return HfApi(endpoint=ENDPOINT, token=bob.token)


@pytest.fixture
def anon_api(server: Server):
    from huggingface_hub import HfApi

    return HfApi(endpoint=ENDPOINT, token=False)


@pytest.fixture
def no_xet(monkeypatch):
    """Force the classic LFS path for this test (as HF_HUB_DISABLE_XET=1 would)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")


@pytest.fixture
def hf_token(monkeypatch, alice: User) -> str:
    """Make alice's token the implicit token (as `HF_TOKEN=...` would) for transformers/datasets/peft."""
    monkeypatch.setenv("HF_TOKEN", alice.token)
    return alice.token


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "hf-cache"


@pytest.fixture
def repo_factory(api):
    """Create uniquely named repos; delete them afterwards."""
    made: list[tuple[str, str]] = []

    def make(prefix: str = "repo", *, repo_type: str = "model", private: bool = False, owner: str | None = None,
             **kw) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        repo_id = f"{owner or 'alice'}/{name}"
        api.create_repo(repo_id, repo_type=repo_type, private=private, **kw)
        made.append((repo_id, repo_type))
        return repo_id

    yield make
    for repo_id, repo_type in made:
        with contextlib.suppress(Exception):  # cleanup must not mask the test result
            api.delete_repo(repo_id, repo_type=repo_type, missing_ok=True)
