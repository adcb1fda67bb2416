"""Fixtures for the storage tests: a moto S3 server, both blob stores, a live `cove serve` on S3."""

from __future__ import annotations

import os
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

from tests.conftest import Server, User, _wait, free_port  # noqa: F401 - free_port is re-exported

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_AWS_DROP = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
             "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


def aws_env_for(base: dict[str, str]) -> dict[str, str]:
    """``base`` with fake credentials and without anything that could point boto3 at a real account."""
    return {**{k: v for k, v in base.items() if k not in _AWS_DROP}, **S3_ENV}


def wait_http(endpoint: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    """Wait until `cove serve` answers."""
    _wait(endpoint, proc, log, timeout)


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited:\n{log.read_text()[-4000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}:\n{log.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class S3:
    endpoint: str

    def client(self):  # noqa: ANN201
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def new_bucket(self) -> str:
        name = f"cove-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3]:
    """A moto S3 server in its own process on a free loopback port."""
    pytest.importorskip("boto3")
    pytest.importorskip("moto.server")
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="cove-moto-")) / "moto.log"
    env = aws_env_for(dict(os.environ))
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc, log)
        yield S3(f"http://127.0.0.1:{port}")
    finally:
        _stop(proc)


@pytest.fixture
def aws_env(monkeypatch) -> None:
    """Fake credentials for boto3 in this process (never real ones)."""
    for k in _AWS_DROP:
        monkeypatch.delenv(k, raising=False)
    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def s3_store(s3_server: S3, aws_env, tmp_path: Path):  # noqa: ANN201
    from cove.storage.blobs_s3 import S3BlobStore

    return S3BlobStore(bucket=s3_server.new_bucket(), prefix="blobs", endpoint_url=s3_server.endpoint,
                       tmp_dir=tmp_path / "s3-tmp")


@pytest.fixture
def local_store(tmp_path: Path):  # noqa: ANN201
    from cove.storage.blobs_local import LocalBlobStore

    return LocalBlobStore(tmp_path / "blobs")


@pytest.fixture(params=["local", "s3"])
def store(request):  # noqa: ANN001, ANN201
    """Each contract test runs against both implementations."""
    return request.getfixturevalue(f"{request.param}_store")


# -- a live `cove serve` on S3 ---------------------------------------------------------------------


def start_cove(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    with open(log, "ab") as fh:
        return subprocess.Popen([sys.executable, "-m", "cove", "serve", "--log-level", "warning"],
                                env={**env, "COVE_PORT": str(port), "COVE_HOST": "127.0.0.1"},
                                stdout=fh, stderr=subprocess.STDOUT)


def cove_cli(env: dict[str, str], *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "cove", *args], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def make_user(env: dict[str, str], name: str) -> User:
    cove_cli(env, "user", "add", name, "--password", f"{name}-password")
    write = cove_cli(env, "token", "create", name, "--role", "write", "--name", "tests-write")
    read = cove_cli(env, "token", "create", name, "--role", "read", "--name", "tests-read")
    return User(name, write, read)


@dataclass
class S3Hub:
    server: Server
    bucket: str
    s3: S3
    user: User
    env: dict[str, str]


@pytest.fixture(scope="session")
def s3_hub(s3_server: S3) -> Iterator[S3Hub]:
    """`cove serve` with COVE_BLOB_BACKEND=s3 on the moto server: own process, port and data folder."""
    root = Path(tempfile.mkdtemp(prefix="cove-s3hub-"))
    bucket = s3_server.new_bucket()
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("COVE_")}
    env = {**aws_env_for(base), "COVE_DATA": str(root / "data"), "COVE_BLOB_BACKEND": "s3",
           "COVE_S3_BUCKET": bucket, "COVE_S3_ENDPOINT_URL": s3_server.endpoint, "COVE_S3_PREFIX": "hub/",
           "COVE_PORT": str(port), "COVE_HOST": "127.0.0.1"}
    log = root / "server.log"
    proc = start_cove(env, port, log)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_http(endpoint, proc, log)
        user = make_user(env, "carol")
        yield S3Hub(Server(endpoint, root / "data", proc, log), bucket, s3_server, user, env)
    finally:
        _stop(proc)


# -- PostgreSQL ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg():  # noqa: ANN201
    """A PostgreSQL cluster for the session; skips cleanly where the binaries are absent."""
    from tests.storage import pg as pgmod

    why = pgmod.unavailable()
    if why:
        pytest.skip(why)
    with pgmod.running() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg) -> str:  # noqa: ANN001
    """A fresh, empty database."""
    return pg.create_database(f"cove_{uuid.uuid4().hex[:10]}")
