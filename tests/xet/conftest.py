from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from capture import Captured, CaptureServer, upload_with_hf_xet  # noqa: E402


@dataclass
class RealUpload:
    payloads: list[bytes]
    infos: list[object]  # hf_xet.XetFileInfo per payload
    captured: Captured


def make_payloads() -> list[bytes]:
    import numpy as np

    rng = random.Random(1234)
    return [
        rng.randbytes(3_000_000),
        b"hello world\n",
        bytes(300_000),
        np.random.default_rng(5).random(100_000).astype("float32").tobytes(),
        b"",
        bytes(i % 251 for i in range(1_000_000)),
    ]


@pytest.fixture(scope="session")
def real_upload(tmp_path_factory: pytest.TempPathFactory) -> RealUpload:
    """Bytes produced by the real hf_xet client, captured by a dumb local CAS."""
    saved = {k: os.environ.get(k) for k in ("HF_XET_CACHE", "HF_XET_TELEMETRY_ENABLED")}
    os.environ["HF_XET_CACHE"] = str(tmp_path_factory.mktemp("xet-cache"))
    os.environ["HF_XET_TELEMETRY_ENABLED"] = "0"
    server = CaptureServer()
    try:
        payloads = make_payloads()
        infos = upload_with_hf_xet(server, payloads)
        return RealUpload(payloads, infos, server.captured)
    finally:
        server.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
