"""`cove demo` seeds a Gradio Space (issue 13 item 8): `demo/sentiment-demo` loads the demo model with a
`transformers.pipeline` from this hub; the hub builds it in the background (off the seeding path), it reaches
RUNNING and classifies text through `gradio_client`. The build uses the Spaces tests' shared, warm uv cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from tests.conftest import SERVER_ENV, free_port, start_server, stop_server
from tests.spaces.test_spaces_run import GRADIO_CALL, WARM_CACHE

pytestmark = [
    pytest.mark.spaces,
    pytest.mark.skipif(os.geteuid() != 0, reason="running Spaces needs root (each app runs under its own uid)"),
]

SPACE, MODEL = "demo/sentiment-demo", "sentence-transformers/all-MiniLM-L6-v2"


def cpu_torch() -> str | None:
    """The version of a CPU-only torch wheel in pip's find-links on this machine, if there is one."""
    from cove.spaces.build import _pip_config

    for folder in _pip_config().get("find-links", "").split():
        for wheel in sorted(Path(folder.removeprefix("file://")).glob("torch-*+cpu-*.whl")):
            return wheel.name.split("-")[1]
    return None


def test_demo_seeds_a_gradio_space_that_runs_and_classifies_text(tmp_path: Path) -> None:
    data = tmp_path / "data"
    spaces = Path(f"/tmp/cove-spaces-test-{uuid.uuid4().hex[:8]}")  # reachable by the apps' uids
    spaces.mkdir(mode=0o755)
    env = {"COVE_SPACES_ROOT": str(spaces), "COVE_SPACES_POLL_INTERVAL": "0.5", "COVE_SCAN_INTERVAL": "0",
           "COVE_SPACES_CACHE": WARM_CACHE, "COVE_SPACES_START_TIMEOUT": "300"}
    cpu = cpu_torch()
    if cpu:  # as an administrator would: keep the gigabytes of a CUDA torch out of the Space's build
        (tmp_path / "constraints.txt").write_text(f"torch=={cpu}\n")
        env["COVE_SPACES_CONSTRAINTS"] = str(tmp_path / "constraints.txt")
    try:
        seeded = subprocess.run([sys.executable, "-m", "cove", "demo", "--seed-only"], capture_output=True,
                                text=True, timeout=600,
                                env={**SERVER_ENV, **env, "COVE_DATA": str(data), "COVE_PORT": str(free_port())})
        assert seeded.returncode == 0, seeded.stderr[-3000:]
        assert f"/spaces/{SPACE}" in seeded.stderr  # the banner points at it
        srv = start_server(data, free_port(), **env)
        try:
            api = HfApi(endpoint=srv.endpoint, token=(data / "demo-token").read_text().strip())
            info = api.space_info(SPACE)
            assert info.card_data.sdk == "gradio" and info.card_data.models == [MODEL]
            app = Path(api.hf_hub_download(SPACE, "app.py", repo_type="space")).read_text()
            assert f"MODEL = {MODEL!r}" in app and "pipeline(TASK, model=MODEL)" in app and "Bearish" in app
            reqs = Path(api.hf_hub_download(SPACE, "requirements.txt", repo_type="space")).read_text().split()
            assert reqs == ["transformers", "torch"]
            started, stage = time.monotonic(), None
            while time.monotonic() - started < 900:
                stage = api.get_space_runtime(SPACE).stage
                if stage not in ("NO_APP_FILE", "BUILDING", "APP_STARTING"):
                    break
                time.sleep(0.5)
            assert stage == "RUNNING", api.get_space_runtime(SPACE).raw
            build = [line for line in api.fetch_space_logs(SPACE, build=True) if "Build done" in line]
            print(f"cove demo's Space: RUNNING {time.monotonic() - started:.1f} s after the server started; {build}")
            call = subprocess.run([sys.executable, "-c", GRADIO_CALL, SPACE, "Profits rose sharply this quarter", ""],
                                  env={**os.environ, "HF_ENDPOINT": srv.endpoint}, capture_output=True, text=True,
                                  timeout=180)
            out = json.loads(call.stdout.strip().splitlines()[-1])
            scores = out.get("ok")
            assert isinstance(scores, dict) and set(scores) == {"Bearish", "Bullish", "Neutral"}, out
        finally:
            stop_server(srv.proc)
    finally:
        shutil.rmtree(spaces, ignore_errors=True)
