"""The seed's story: "model versioning is real git versioning: you can checkout specific commits, diff
configurations, and roll back" — with git, git-lfs, the Hub API and transformers against one live Cove."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.git.conftest import ENDPOINT, repo_url

pytestmark = pytest.mark.train


def _save_tiny_bert(folder, hidden_size: int) -> None:
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(hidden_size)
    config = BertConfig(vocab_size=99, hidden_size=hidden_size, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)


def test_push_change_checkout_diff_revert_and_load(git, api, alice, repo_factory, tmp_path):
    pytest.importorskip("transformers")
    from transformers import AutoConfig, AutoModel

    repo_id = repo_factory("tiny-bert")
    work = tmp_path / "work"
    git("clone", "-q", repo_url(repo_id, user=alice), work)

    # 1. Push a model (config.json in git, model.safetensors through git-lfs).
    _save_tiny_bert(work, 32)
    first = git.commit_all(work, "Tiny BERT, hidden_size 32")
    git("push", "-q", "origin", "main", cwd=work)
    assert "model.safetensors" in git.out("lfs", "ls-files", "--name-only", cwd=work).splitlines()

    # 2. Change hidden_size in config.json (and the weights that go with it), push again.
    _save_tiny_bert(work, 64)
    assert json.loads((work / "config.json").read_text())["hidden_size"] == 64
    second = git.commit_all(work, "hidden_size 64")
    git("push", "-q", "origin", "main", cwd=work)
    assert api.model_info(repo_id).sha == second
    assert api.model_info(repo_id).config["model_type"] == "bert"

    # 3. Clone, check out the first commit, diff the two configs.
    clone = tmp_path / "clone"
    git("clone", "-q", repo_url(repo_id), clone)
    assert json.loads((clone / "config.json").read_text())["hidden_size"] == 64
    git("checkout", "-q", first, cwd=clone)
    assert json.loads((clone / "config.json").read_text())["hidden_size"] == 32
    local = AutoModel.from_pretrained(clone)  # the weights of the first commit, smudged by git-lfs
    assert local.config.hidden_size == 32 and local.embeddings.word_embeddings.weight.shape[1] == 32
    diff = git.out("diff", first, second, "--", "config.json", cwd=clone)
    assert '-  "hidden_size": 32,' in diff and '+  "hidden_size": 64,' in diff
    # The compare endpoint tells the same story.
    cmp = httpx.get(f"{ENDPOINT}/api/models/{repo_id}/compare/{first}...{second}").json()
    changed = {f["path"]: f for f in cmp["files"]}
    assert set(changed) == {"config.json", "model.safetensors"}
    assert '+  "hidden_size": 64,' in changed["config.json"]["diff"]

    # 4. Roll back through the API: a new commit with the first commit's files; history intact.
    r = httpx.post(f"{ENDPOINT}/api/models/{repo_id}/revert/main", json={"commit": first},
                   headers={"Authorization": f"Bearer {alice.token}"})
    assert r.status_code == 200, r.text
    reverted = r.json()["commitOid"]
    assert [c.commit_id for c in api.list_repo_commits(repo_id)][:3] == [reverted, second, first]
    git("checkout", "-q", "main", cwd=clone)
    git("pull", "-q", "--ff-only", cwd=clone)
    assert json.loads((clone / "config.json").read_text())["hidden_size"] == 32

    # 5. from_pretrained at each revision.
    cache = tmp_path / "hf-cache"
    for revision, size in ((first, 32), (second, 64), (reverted, 32), ("main", 32)):
        assert AutoConfig.from_pretrained(repo_id, revision=revision, cache_dir=cache).hidden_size == size
        model = AutoModel.from_pretrained(repo_id, revision=revision, cache_dir=cache)
        assert model.embeddings.word_embeddings.weight.shape == (99, size)
