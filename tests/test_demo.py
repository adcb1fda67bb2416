"""`cove demo`, the README's run command: seeds a fresh data folder through the stock client, and again
without harm; then the dataset loads with `datasets` and the metric Spaces answer `evaluate.load`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from huggingface_hub import HfApi

from tests.conftest import SERVER_ENV, free_port, start_server, stop_server

DATASET = "zeroshot/twitter-financial-news-sentiment"


def _demo(data, port: int) -> subprocess.CompletedProcess:  # noqa: ANN001
    env = {**SERVER_ENV, "COVE_DATA": str(data), "COVE_PORT": str(port)}
    return subprocess.run([sys.executable, "-m", "cove", "demo", "--seed-only"], env=env, capture_output=True,
                          text=True, timeout=600)


def test_demo_seeds_and_reseeds(tmp_path) -> None:  # noqa: ANN001
    data = tmp_path / "data"
    first = _demo(data, free_port())
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Cove demo is ready" in first.stderr
    token = (data / "demo-token").read_text().strip()
    assert f"HF_TOKEN={token}" in first.stderr
    assert oct((data / "demo-token").stat().st_mode & 0o777) == "0o600"

    again = _demo(data, free_port())  # re-running the run command keeps what is there
    assert again.returncode == 0, again.stderr[-3000:]
    assert (data / "demo-token").read_text().strip() == token

    srv = start_server(data, free_port())
    try:
        api = HfApi(endpoint=srv.endpoint, token=token)
        assert api.whoami()["name"] == "demo"
        commits = api.list_repo_commits(DATASET, repo_type="dataset")
        assert len(commits) == 3  # initial + card + splits: the second run added nothing
        files = set(api.list_repo_files(DATASET, repo_type="dataset"))
        assert {"README.md", "SOURCE.md", "data/sent_train.csv", "data/sent_valid.csv"} <= files
        assert api.space_info("evaluate-metric/accuracy").id == "evaluate-metric/accuracy"
        _load_back(srv.endpoint, tmp_path)
    finally:
        stop_server(srv.proc)


def _load_back(endpoint: str, tmp_path) -> None:  # noqa: ANN001
    """`load_dataset` and `evaluate.load`, the seed's calls, in a fresh process pointed at the demo hub."""
    pytest.importorskip("datasets")
    pytest.importorskip("evaluate")
    code = (
        "from datasets import load_dataset\n"
        "import evaluate\n"
        f"ds = load_dataset({DATASET!r})\n"
        "assert set(ds) == {'train', 'validation'} and ds['train'].num_rows > 1000, ds\n"
        "acc = evaluate.load('accuracy').compute(predictions=[0, 1, 1], references=[0, 1, 0])\n"
        "print(round(acc['accuracy'], 3))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}  # anonymous, as a reader would be
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf"))
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "0.667"
