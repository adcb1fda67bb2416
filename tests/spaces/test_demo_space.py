"""`cove demo` seeds a Gradio Space (issue 13 item 8): `demo/sentiment-demo` loads the demo model with a
`transformers.pipeline` from this hub, and the hub starts building it in the background (off the seeding path)."""

from __future__ import annotations

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

pytestmark = [
    pytest.mark.spaces,
    pytest.mark.skipif(os.geteuid() != 0, reason="running Spaces needs root (each app runs under its own uid)"),
]

SPACE, MODEL = "demo/sentiment-demo", "sentence-transformers/all-MiniLM-L6-v2"


def test_demo_seeds_a_gradio_space_that_starts_building(tmp_path: Path) -> None:
    data = tmp_path / "data"
    spaces = Path(f"/tmp/cove-spaces-test-{uuid.uuid4().hex[:8]}")  # reachable by the apps' uids
    spaces.mkdir(mode=0o755)
    env = {"COVE_SPACES_ROOT": str(spaces), "COVE_SPACES_POLL_INTERVAL": "0.5", "COVE_SCAN_INTERVAL": "0"}
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
            while time.monotonic() - started < 60:
                stage = api.get_space_runtime(SPACE).stage
                if stage in ("BUILDING", "APP_STARTING", "RUNNING"):
                    break
                time.sleep(0.5)
            assert stage in ("BUILDING", "APP_STARTING", "RUNNING"), api.get_space_runtime(SPACE).raw
        finally:
            stop_server(srv.proc)
    finally:
        shutil.rmtree(spaces, ignore_errors=True)
