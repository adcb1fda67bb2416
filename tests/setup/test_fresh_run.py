"""The README's run command on a fresh clone, in a clean virtualenv, as a new user runs it.

`git clone` of this repo's HEAD into a temp folder, `./scripts/run --port <free>`, then: "ready" only once the
seed is in, no CUDA package (nor torch) in the venv it built, the banner's next steps run as printed, `cove
train` on the README's recipe says what to install (not a traceback), and SIGTERM leaves the port free with no
orphan. Slow (a real pip install): `pytest -m slow tests/setup/test_fresh_run.py`. With
`COVE_RECORD_SETUP=1` it writes the wall time and the venv size to `benchmarks/results/setup-run.json`.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.setup.processes import bindable, children, survivors

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RECIPE = "examples/recipes/minilm-twitter-lora.yaml"
CUDA = re.compile(r"^(nvidia-|torch$|triton$|cuda)", re.I)


def _clean_env(tmp: Path, port: int) -> dict[str, str]:
    """No trace of the test venv or the test hub: a shell as a new user has it, with a private HF cache."""
    venv_bin = str(REPO / ".venv" / "bin")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COVE_", "HF_", "HUGGING", "VIRTUAL_ENV", "PYTEST", "PYTHON"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env.update(HOME=str(tmp / "home"), COVE_CONFIG=str(tmp / "home" / "cove.toml"), PYTHONUNBUFFERED="1",
               HF_HUB_DISABLE_TELEMETRY="1")
    if "PIP_CACHE_DIR" not in env:  # the user's pip cache, as on a machine that has used pip before
        env["PIP_CACHE_DIR"] = str(Path.home() / ".cache" / "pip")
    (tmp / "home").mkdir()
    return env


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))


def _banner_steps(log: str) -> str:
    """The shell lines of the banner's `Try:` block, as printed."""
    block = log.split("Cove demo is ready.", 1)[1]
    steps: list[str] = []
    for line in block.splitlines():
        if "Try:" in line:
            steps.append(line.split("Try:", 1)[1].strip())
        elif steps and line.startswith(" " * 13) and line.strip():
            steps.append(line.strip())
        elif steps:
            break
    assert steps, block
    return "\n".join(steps)


def test_fresh_clone_run(tmp_path: Path) -> None:
    clone = tmp_path / "cove"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    port = free_port()
    env = _clean_env(tmp_path, port)
    warm_cache = _has_files(Path(env["PIP_CACHE_DIR"]))
    log_path = tmp_path / "run.log"
    t0 = time.monotonic()
    with open(log_path, "wb") as fh:
        proc = subprocess.Popen(["./scripts/run", "--port", str(port)], cwd=clone, env=env, stdout=fh,
                                stderr=subprocess.STDOUT)
    try:
        while "Cove demo is ready." not in (log := log_path.read_text(errors="replace")):
            assert proc.poll() is None, log[-4000:]
            assert time.monotonic() - t0 < 900, log[-4000:]
            time.sleep(1)
        while "  Stop:" not in (log := log_path.read_text(errors="replace")):
            time.sleep(0.2)
        ready_s = time.monotonic() - t0
        for step in ("[cove] installing Cove", "[cove] installing the MiniLM-L6", "[cove] seeding"):
            assert step in log, log[-4000:]
        assert "sentence-transformers/all-MiniLM-L6-v2" in log.split("Seeded:", 1)[1].splitlines()[0]

        venv_py = clone / ".venv" / "bin" / "python"
        pkgs = json.loads(subprocess.run([str(venv_py), "-m", "pip", "list", "--format=json"], env=env,
                                         capture_output=True, text=True, check=True).stdout)
        assert not [p["name"] for p in pkgs if CUDA.match(p["name"])]

        steps = _banner_steps(log)  # activate, export, load_dataset, hf download
        run = subprocess.run(["bash", "-euc", steps], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=600)
        assert run.returncode == 0, f"{steps}\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
        assert "DatasetDict" in run.stdout and "train" in run.stdout and "validation" in run.stdout, run.stdout

        train = subprocess.run(["bash", "-euc", f". .venv/bin/activate && cove train {RECIPE}"], cwd=clone,
                               env=env, capture_output=True, text=True, timeout=300)
        assert train.returncode == 2 and "Traceback" not in train.stderr, train.stderr[-3000:]
        assert "pip install" in train.stderr and ".[train]" in train.stderr, train.stderr

        venv_size, data_size = (subprocess.run(["du", "-sh", str(clone / folder)], capture_output=True, text=True,
                                               check=True).stdout.split()[0] for folder in (".venv", "cove-data"))
        started = children(proc.pid)
        assert started and not bindable(port)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not survivors(started)
    assert bindable(port)
    if os.environ.get("COVE_RECORD_SETUP"):
        out = REPO / "benchmarks" / "results" / "setup-run.json"
        out.write_text(json.dumps({
            "what": "./scripts/run on a fresh clone until 'Cove demo is ready' (clean venv)",
            "pip_cache": "warm" if warm_cache else "empty",
            "ready_seconds": round(ready_s, 1), "venv_size": venv_size, "data_size": data_size, "cpus": os.cpu_count(),
            "python": platform.python_version(), "packages": len(pkgs),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }, indent=2) + "\n")
    shutil.rmtree(clone, ignore_errors=True)
