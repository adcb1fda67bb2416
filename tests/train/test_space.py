"""`cove train --space` (issue 13 item 8): the pushed model gets a Gradio Space `{repo_id}-demo` serving it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.train
pytest.importorskip("transformers")


def _cove(*args: str, token: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_TOKEN": token, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    out = subprocess.run([sys.executable, "-m", "cove", *args], env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"cove {' '.join(args)} failed ({out.returncode}):\n{out.stderr[-4000:]}"
    return out


def test_train_space_creates_a_gradio_demo_of_the_pushed_model(api, alice, seeded_metrics, tiny_bert: Path,
                                                               tiny_data: Path, tmp_path: Path) -> None:
    repo_id = f"alice/tiny-space-{uuid.uuid4().hex[:6]}"
    space_id = f"{repo_id}-demo"
    recipe = {"model": str(tiny_bert), "dataset": {"id": str(tiny_data)}, "method": {"name": "full"},
              "training": {"num_train_epochs": 1}, "push": {"repo_id": repo_id, "private": True}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    try:
        plain = _cove("train", str(path), "--output-dir", str(tmp_path / "run"), "--space", token=alice.token)
        assert plain.stdout.split() == [f"{api.endpoint}/{repo_id}", f"{api.endpoint}/spaces/{space_id}"]
        info = api.space_info(space_id)
        assert info.card_data.sdk == "gradio" and info.card_data.models == [repo_id]
        assert info.private  # the model is private: so is its demo (the runtime gives it its owner's read token)
        assert {"app.py", "requirements.txt", "README.md"} <= set(api.list_repo_files(space_id, repo_type="space"))
        app = Path(api.hf_hub_download(space_id, "app.py", repo_type="space")).read_text()
        assert f"MODEL = {repo_id!r}" in app and "TASK = 'text-classification'" in app and "pipeline(TASK" in app
        compile(app, "app.py", "exec")
        reqs = Path(api.hf_hub_download(space_id, "requirements.txt", repo_type="space")).read_text().split()
        assert reqs == ["transformers", "torch"]

        # again with --json: the same Space, its URL in the result; the app didn't change, so no new commit
        again = json.loads(_cove("train", str(path), "--output-dir", str(tmp_path / "run2"), "--space", "--json",
                                 token=alice.token).stdout)
        assert again["space_url"] == f"{api.endpoint}/spaces/{space_id}"
        assert len(api.list_repo_commits(space_id, repo_type="space")) == 2  # created, the app
    finally:
        api.delete_repo(space_id, repo_type="space", missing_ok=True)  # stops its build on the shared server
        api.delete_repo(repo_id, missing_ok=True)
