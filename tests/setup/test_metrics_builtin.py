"""The `evaluate-metric/*` Spaces exist on every hub from its first start: `evaluate.load("accuracy")` works
against a plain `cove serve` (no `cove demo`), a restart adds no commit, and a changed metric is restored."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, HfApi

from tests.conftest import free_port, start_server, stop_server

pytest.importorskip("evaluate")

LOAD = ("import evaluate\n"
        "acc = evaluate.load('accuracy').compute(predictions=[0, 1, 1], references=[0, 1, 0])\n"
        "print(round(acc['accuracy'], 3))\n")


def _evaluate_load(endpoint: str, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_HOME")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(home))  # anonymous and with an empty cache, as a new user
    return subprocess.run([sys.executable, "-c", LOAD], env=env, capture_output=True, text=True, timeout=300)


def test_evaluate_load_on_a_plain_serve(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server(data, free_port(), COVE_CONFIG=str(tmp_path / "config.toml"))
    try:
        run = _evaluate_load(srv.endpoint, tmp_path / "hf1")
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.stdout.strip().splitlines()[-1] == "0.667"
        anon = HfApi(endpoint=srv.endpoint, token=False)
        names = {s.id for s in anon.list_spaces(author="evaluate-metric")}
        assert {"evaluate-metric/accuracy", "evaluate-metric/f1", "evaluate-metric/seqeval"} <= names
        commits = len(anon.list_repo_commits("evaluate-metric/accuracy", repo_type="space"))
    finally:
        stop_server(srv.proc)

    # An admin of the hub changes the metric; the next start puts Cove's version back, and adds nothing else.
    env = {**os.environ, "COVE_DATA": str(data), "COVE_CONFIG": str(tmp_path / "config.toml")}
    subprocess.run([sys.executable, "-m", "cove", "user", "add", "root", "--admin"], env=env, check=True)
    tok = subprocess.run([sys.executable, "-m", "cove", "token", "create", "root", "--role", "write"], env=env,
                         capture_output=True, text=True, check=True).stdout.strip().split()[-1]
    srv = start_server(data, free_port(), COVE_CONFIG=str(tmp_path / "config.toml"))
    try:
        anon = HfApi(endpoint=srv.endpoint, token=False)
        assert len(anon.list_repo_commits("evaluate-metric/accuracy", repo_type="space")) == commits
        HfApi(endpoint=srv.endpoint, token=tok).create_commit(
            "evaluate-metric/accuracy", repo_type="space", commit_message="break it",
            operations=[CommitOperationAdd("accuracy.py", b"raise RuntimeError('broken')\n")])
    finally:
        stop_server(srv.proc)
    srv = start_server(data, free_port(), COVE_CONFIG=str(tmp_path / "config.toml"))
    try:
        run = _evaluate_load(srv.endpoint, tmp_path / "hf2")
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.stdout.strip().splitlines()[-1] == "0.667"
    finally:
        stop_server(srv.proc)
