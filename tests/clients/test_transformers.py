"""transformers against a live Cove: from_pretrained, push_to_hub, Trainer, pipelines (issue 2, item 7)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.clients.tiny import LABELS, build_bert_classifier, build_gpt2, twitter_rows  # noqa: E402

TEXTS = ["the stock market rises on strong earnings", "bank shares fall after weak outlook",
         "$AAPL price up", "oil prices drop"]


def _logits(model, tokenizer, texts=TEXTS):  # noqa: ANN001, ANN202
    with torch.no_grad():
        return model(**tokenizer(texts, return_tensors="pt", padding=True)).logits


@pytest.fixture
def bert_repo(api, repo_factory, transfer, hf_token, tmp_path):  # noqa: ANN001, ANN201
    """A tiny BERT classifier and its tokenizer pushed with `push_to_hub` to a fresh repo."""
    model, tokenizer = build_bert_classifier(tmp_path / "bert")
    repo_id = repo_factory("bert")
    model.push_to_hub(repo_id)  # the repo exists: create_repo(exist_ok=True) meets a 409 with `url`
    tokenizer.push_to_hub(repo_id)
    return repo_id, model, tokenizer


def test_push_then_auto_from_pretrained(api, bert_repo, cache_dir, transfer) -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    repo_id, model, tokenizer = bert_repo
    files = set(api.list_repo_files(repo_id))
    assert {"config.json", "model.safetensors", "tokenizer_config.json", "tokenizer.json"} <= files
    titles = [c.title for c in api.list_repo_commits(repo_id)]
    assert "Upload BertForSequenceClassification" in titles and "Upload tokenizer" in titles
    weights = next(e for e in api.list_repo_tree(repo_id) if e.path == "model.safetensors")
    assert weights.lfs is not None  # safetensors travel as LFS (or Xet), never inline
    assert (weights.xet_hash is not None) == (transfer == "xet")  # the variant really took that path

    config = AutoConfig.from_pretrained(repo_id, cache_dir=cache_dir)
    assert config.model_type == "bert" and config.id2label[1] == "Bullish"
    tok = AutoTokenizer.from_pretrained(repo_id, cache_dir=cache_dir)
    assert tok("the stock market").input_ids == tokenizer("the stock market").input_ids
    assert tok.tokenize("the stock market") == ["the", "stock", "market"]
    loaded = AutoModelForSequenceClassification.from_pretrained(repo_id, cache_dir=cache_dir).eval()
    assert torch.allclose(_logits(loaded, tok), _logits(model, tokenizer), atol=1e-6)

    info = api.model_info(repo_id)
    assert info.pipeline_tag == "text-classification" and info.library_name == "transformers"
    assert "bert" in info.tags and "safetensors" in info.tags

    # The cache works offline afterwards (refs/main → snapshot by X-Repo-Commit, blobs by ETag).
    offline = AutoModelForSequenceClassification.from_pretrained(repo_id, cache_dir=cache_dir,
                                                                 local_files_only=True).eval()
    assert torch.allclose(_logits(offline, tok), _logits(model, tokenizer), atol=1e-6)
    # Safetensors headers read with byte ranges.
    meta = api.get_safetensors_metadata(repo_id)
    assert meta.parameter_count == {"F32": model.num_parameters()}


def test_from_pretrained_at_revision(api, bert_repo, cache_dir) -> None:
    from transformers import AutoConfig

    repo_id, model, _ = bert_repo
    first = api.list_repo_commits(repo_id)[-2].commit_id  # the model push, before the tokenizer push
    api.create_tag(repo_id, tag="v1", revision=first)
    api.upload_file(path_or_fileobj=b'{"model_type": "bert", "num_labels": 2}', path_in_repo="config.json",
                    repo_id=repo_id, commit_message="break the config")
    for rev in ("v1", first, first[:7]):
        cfg = AutoConfig.from_pretrained(repo_id, revision=rev, cache_dir=cache_dir)
        assert cfg.id2label == model.config.id2label, rev
    assert AutoConfig.from_pretrained(repo_id, cache_dir=cache_dir).num_labels == 2


def test_pipeline_with_and_without_task(bert_repo) -> None:
    from transformers import pipeline

    repo_id, model, tokenizer = bert_repo
    expected = LABELS[int(_logits(model, tokenizer, TEXTS[:1]).argmax())]
    clf = pipeline("text-classification", model=repo_id)
    assert clf(TEXTS[0])[0]["label"] == expected
    # No task: transformers reads pipeline_tag and library_name from model_info.
    auto = pipeline(model=repo_id)
    assert auto.task == "text-classification"
    assert auto(TEXTS[0])[0]["label"] == expected


def _train_set(tokenizer):  # noqa: ANN001, ANN202
    from datasets import Dataset

    ds = Dataset.from_list(twitter_rows(16))
    return ds.map(lambda b: tokenizer(b["text"], truncation=True, padding="max_length", max_length=32),
                  batched=True, remove_columns=["text"]).rename_column("label", "labels")


@pytest.mark.parametrize("strategy", ["steps", "epoch"])
def test_trainer_pushes_on_save_and_at_end(api, repo_factory, transfer, hf_token, tmp_path, cache_dir,
                                            strategy) -> None:
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

    base, tokenizer = build_bert_classifier(tmp_path / "bert")
    base_id = repo_factory("base")
    base.push_to_hub(base_id)
    model = AutoModelForSequenceClassification.from_pretrained(base_id, cache_dir=cache_dir)
    name = f"trained-{strategy}-{tmp_path.name[-6:]}"
    repo_id = f"alice/{name}"
    hub_model_id = name if strategy == "epoch" else repo_id  # without a namespace the server picks alice
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), push_to_hub=True, hub_model_id=hub_model_id, save_strategy=strategy,
        save_steps=2, max_steps=4 if strategy == "steps" else -1, num_train_epochs=2,
        per_device_train_batch_size=8, learning_rate=1e-3, report_to="none", use_cpu=True, logging_steps=1,
        dataloader_num_workers=0, disable_tqdm=True,
    )
    try:
        trainer = Trainer(model=model, args=args, train_dataset=_train_set(tokenizer),
                          processing_class=tokenizer)
        trainer.train()
        trainer.push_to_hub(commit_message="End of training")
        titles = [c.title for c in api.list_repo_commits(repo_id)]
        assert titles[0] == "End of training"
        saves = [t for t in titles if t.startswith("Training in progress")]
        assert saves, titles  # every save pushed (hub_strategy="every_save")
        assert any(("epoch" if strategy == "epoch" else "step") in t for t in saves), titles
        files = set(api.list_repo_files(repo_id))
        assert {"config.json", "model.safetensors", "README.md", "training_args.bin"} <= files
        assert not any(f.startswith("checkpoint-") for f in files)
        info = api.model_info(repo_id)
        assert info.pipeline_tag == "text-classification"
        # Trainer's card names the base model it read from Cove; the index tags it.
        assert info.card_data.base_model == base_id and f"base_model:{base_id}" in info.tags
        loaded = AutoModelForSequenceClassification.from_pretrained(repo_id, cache_dir=cache_dir).eval()
        trained = trainer.model.eval().cpu()
        assert torch.allclose(_logits(loaded, tokenizer), _logits(trained, tokenizer), atol=1e-5)
    finally:
        api.delete_repo(repo_id, missing_ok=True)


def test_gpt2_push_from_pretrained_generate(api, repo_factory, transfer, hf_token, tmp_path,
                                           cache_dir) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    texts = [r["text"] for r in twitter_rows(200)]
    model, tokenizer = build_gpt2(tmp_path / "gpt2", texts)
    repo_id = repo_factory("gpt2")
    model.push_to_hub(repo_id)
    tokenizer.push_to_hub(repo_id)

    tok = AutoTokenizer.from_pretrained(repo_id, cache_dir=cache_dir)
    loaded = AutoModelForCausalLM.from_pretrained(repo_id, cache_dir=cache_dir).eval()
    prompt = tok("stocks rise", return_tensors="pt")
    kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=tok.eos_token_id)
    with torch.no_grad():
        got = loaded.generate(**prompt, **kw)
        want = model.generate(**tokenizer("stocks rise", return_tensors="pt"), **kw)
    assert got.tolist() == want.tolist() and got.shape[1] > prompt.input_ids.shape[1]

    info = api.model_info(repo_id)
    assert info.pipeline_tag == "text-generation" and info.library_name == "transformers"
    gen = pipeline(model=repo_id)
    assert gen.task == "text-generation"
    out = gen("stocks rise", max_new_tokens=4, do_sample=False)[0]["generated_text"]
    assert out.startswith("stocks rise")


def test_push_without_namespace_private_and_pr(api, transfer, hf_token, tmp_path, cache_dir) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from tests.conftest import ENDPOINT

    model, tokenizer = build_bert_classifier(tmp_path / "bert")
    name = f"noname-{tmp_path.name[-6:]}"
    try:
        # No namespace: the server picks the token's user and returns `alice/<name>` in the URL.
        commit = model.push_to_hub(name, private=True)
        assert commit.repo_url.repo_id == f"alice/{name}"
        repo_id = f"alice/{name}"
        assert api.model_info(repo_id).private
        loaded = AutoModelForSequenceClassification.from_pretrained(repo_id, cache_dir=cache_dir)
        assert loaded.config.num_labels == 3
        with pytest.raises(RepositoryNotFoundError):
            HfApi(endpoint=ENDPOINT, token=False).model_info(repo_id)
        with pytest.raises(OSError, match="not a valid model identifier|private or gated"):
            AutoConfig.from_pretrained(repo_id, token=False, cache_dir=tmp_path / "anon")

        # A push as a pull request: main is untouched, the PR ref loads.
        model.config.id2label = {0: "down", 1: "up", 2: "flat"}
        pr = model.push_to_hub(repo_id, create_pr=True, commit_message="Relabel")
        assert pr.pr_url and pr.pr_revision == "refs/pr/1"
        assert AutoConfig.from_pretrained(repo_id, cache_dir=cache_dir).id2label[1] == "Bullish"
        cfg = AutoConfig.from_pretrained(repo_id, revision="refs/pr/1", cache_dir=cache_dir)
        assert cfg.id2label[1] == "up"
        # A push to a new branch (with a slash): create_branch(exist_ok=True), then the commit on it.
        model.config.id2label = {0: "b0", 1: "b1", 2: "b2"}
        model.push_to_hub(repo_id, revision="exp/relabel")
        assert "exp/relabel" in {b.name for b in api.list_repo_refs(repo_id).branches}
        cfg = AutoConfig.from_pretrained(repo_id, revision="exp/relabel", cache_dir=cache_dir)
        assert cfg.id2label[1] == "b1"
    finally:
        api.delete_repo(f"alice/{name}", missing_ok=True)


def test_trainer_checkpoint_strategy(api, acme, transfer, hf_token, tmp_path) -> None:
    from transformers import Trainer, TrainingArguments

    model, tokenizer = build_bert_classifier(tmp_path / "bert")
    name = f"acme/ckpt-{tmp_path.name[-6:]}"  # an org repo
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), push_to_hub=True, hub_model_id=name, hub_strategy="checkpoint",
        save_strategy="steps", save_steps=2, max_steps=2, per_device_train_batch_size=8, report_to="none",
        use_cpu=True, disable_tqdm=True, hub_private_repo=True,
    )
    try:
        trainer = Trainer(model=model, args=args, train_dataset=_train_set(tokenizer), processing_class=tokenizer)
        trainer.train()
        trainer.push_to_hub()
        files = set(api.list_repo_files(name))
        assert {"last-checkpoint/model.safetensors", "last-checkpoint/trainer_state.json",
                "model.safetensors", "README.md"} <= files
        assert api.model_info(name).private
    finally:
        api.delete_repo(name, missing_ok=True)


def test_sharded_subfolder_and_chat_template(api, repo_factory, transfer, hf_token, tmp_path, cache_dir) -> None:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    model, tokenizer = build_bert_classifier(tmp_path / "bert")
    repo_id = repo_factory("sharded")
    model.push_to_hub(repo_id, max_shard_size="100KB")
    files = set(api.list_repo_files(repo_id))
    assert "model.safetensors.index.json" in files
    assert len([f for f in files if f.startswith("model-") and f.endswith(".safetensors")]) > 1
    loaded = AutoModelForSequenceClassification.from_pretrained(repo_id, cache_dir=cache_dir).eval()
    assert torch.allclose(_logits(loaded, tokenizer), _logits(model, tokenizer), atol=1e-6)
    meta = api.get_safetensors_metadata(repo_id)
    assert meta.sharded and meta.parameter_count == {"F32": model.num_parameters()}

    # A model in a subfolder, with a tokenizer carrying a chat template (chat_template.jinja).
    gpt, gtok = build_gpt2(tmp_path / "gpt2", [r["text"] for r in twitter_rows(100)])
    gtok.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    gpt.save_pretrained(tmp_path / "up" / "lm")
    gtok.save_pretrained(tmp_path / "up" / "lm")
    api.upload_folder(folder_path=tmp_path / "up", repo_id=repo_id, commit_message="Add a causal LM")
    assert "lm/chat_template.jinja" in set(api.list_repo_files(repo_id))
    tok = AutoTokenizer.from_pretrained(repo_id, subfolder="lm", cache_dir=cache_dir)
    chat = [{"role": "user", "content": "stocks up"}]
    assert tok.apply_chat_template(chat, tokenize=False) == "user: stocks up\n"
    lm = AutoModelForCausalLM.from_pretrained(repo_id, subfolder="lm", cache_dir=cache_dir)
    assert lm.generation_config.eos_token_id == gtok.eos_token_id
    assert torch.equal(lm.transformer.wte.weight, gpt.transformer.wte.weight)


CUSTOM_CONFIG = '''from transformers import PretrainedConfig


class TinyCustomConfig(PretrainedConfig):
    model_type = "tiny-custom"

    def __init__(self, width=4, **kwargs):
        self.width = width
        super().__init__(**kwargs)
'''

CUSTOM_MODEL = '''import torch
from transformers import PreTrainedModel

from .configuration_tiny_custom import TinyCustomConfig


class TinyCustomModel(PreTrainedModel):
    config_class = TinyCustomConfig

    def __init__(self, config):
        super().__init__(config)
        self.lin = torch.nn.Linear(config.width, 2)
        self.post_init()

    def forward(self, x):
        return self.lin(x)
'''


def test_custom_code_with_trust_remote_code(api, repo_factory, transfer, hf_token, tmp_path, cache_dir,
                                            monkeypatch) -> None:
    import importlib
    import sys

    from transformers import AutoConfig, AutoModel

    pkg = tmp_path / "src" / f"tinycustom_{tmp_path.name[-6:].replace('-', '_')}"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "configuration_tiny_custom.py").write_text(CUSTOM_CONFIG)
    (pkg / "modeling_tiny_custom.py").write_text(CUSTOM_MODEL)
    monkeypatch.syspath_prepend(str(pkg.parent))
    mod = importlib.import_module(f"{pkg.name}.modeling_tiny_custom")
    try:
        mod.TinyCustomConfig.register_for_auto_class()
        mod.TinyCustomModel.register_for_auto_class("AutoModel")
        torch.manual_seed(0)
        model = mod.TinyCustomModel(mod.TinyCustomConfig(width=6)).eval()
        repo_id = repo_factory("custom")
        model.push_to_hub(repo_id)  # copies the two .py files next to config.json
        files = set(api.list_repo_files(repo_id))
        assert {"configuration_tiny_custom.py", "modeling_tiny_custom.py", "config.json"} <= files

        cfg = AutoConfig.from_pretrained(repo_id, trust_remote_code=True, cache_dir=cache_dir)
        assert type(cfg).__name__ == "TinyCustomConfig" and cfg.width == 6
        loaded = AutoModel.from_pretrained(repo_id, trust_remote_code=True, cache_dir=cache_dir).eval()
        x = torch.randn(3, 6)
        with torch.no_grad():
            assert torch.allclose(loaded(x), model(x))
    finally:
        for name in [n for n in sys.modules if n.startswith(pkg.name)]:
            sys.modules.pop(name)
