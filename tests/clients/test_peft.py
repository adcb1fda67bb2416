"""peft against a live Cove: a LoRA adapter's push_to_hub and PeftModel.from_pretrained (issue 2, item 8)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from tests.clients.tiny import build_bert_classifier  # noqa: E402

TEXTS = ["the stock market rises on strong earnings", "bank shares fall after weak outlook"]


def _logits(model, tokenizer):  # noqa: ANN001, ANN202
    with torch.no_grad():
        return model(**tokenizer(TEXTS, return_tensors="pt", padding=True)).logits


def test_lora_push_and_from_pretrained(api, repo_factory, transfer, hf_token, tmp_path, cache_dir) -> None:
    from peft import LoraConfig, PeftConfig, PeftModel, get_peft_model
    from transformers import AutoModelForSequenceClassification

    base, tokenizer = build_bert_classifier(tmp_path / "bert")
    base_id = repo_factory("lora-base")
    base.push_to_hub(base_id)
    tokenizer.push_to_hub(base_id)

    model = AutoModelForSequenceClassification.from_pretrained(base_id, cache_dir=cache_dir)
    lora = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8,
                                            target_modules=["query", "value"], init_lora_weights=False))
    lora.eval()
    expected = _logits(lora, tokenizer)
    assert not torch.allclose(expected, _logits(base, tokenizer))  # the adapter changes predictions

    adapter_id = repo_factory("lora")
    lora.push_to_hub(adapter_id)
    files = set(api.list_repo_files(adapter_id))
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= files
    # transformers' push_to_hub writes its own card (library_name: transformers) over peft's.
    assert api.model_info(adapter_id).library_name == "transformers"

    assert PeftConfig.from_pretrained(adapter_id, cache_dir=cache_dir).base_model_name_or_path == base_id
    fresh = AutoModelForSequenceClassification.from_pretrained(base_id, cache_dir=cache_dir)
    loaded = PeftModel.from_pretrained(fresh, adapter_id, cache_dir=cache_dir).eval()
    assert torch.allclose(_logits(loaded, tokenizer), expected, atol=1e-6)

    # save_pretrained + upload_folder keeps peft's own card: the index reads library_name and base_model.
    folder_id = repo_factory("lora-folder")
    lora.save_pretrained(tmp_path / "adapter")
    api.upload_folder(folder_path=tmp_path / "adapter", repo_id=folder_id)
    info = api.model_info(folder_id)
    assert info.library_name == "peft"
    assert info.card_data.base_model == base_id and f"base_model:{base_id}" in info.tags
    again = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(base_id), folder_id)
    assert torch.allclose(_logits(again.eval(), tokenizer), expected, atol=1e-6)

    # The adapter repo alone: its adapter_config.json names the base, which also comes from Cove.
    from peft import AutoPeftModelForSequenceClassification

    auto = AutoPeftModelForSequenceClassification.from_pretrained(adapter_id, cache_dir=cache_dir).eval()
    assert torch.allclose(_logits(auto, tokenizer), expected, atol=1e-6)

    # An adapter revision: a tagged first version stays loadable after a new push.
    api.create_tag(adapter_id, tag="v1")
    lora.base_model.model.classifier.modules_to_save["default"].weight.data.zero_()
    lora.push_to_hub(adapter_id, commit_message="zero the head")
    old = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(base_id), adapter_id,
                                    revision="v1").eval()
    assert torch.allclose(_logits(old, tokenizer), expected, atol=1e-6)
    new = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(base_id), adapter_id)
    assert not torch.allclose(_logits(new.eval(), tokenizer), expected, atol=1e-6)


def test_causal_lm_adapter(api, repo_factory, transfer, hf_token, tmp_path, cache_dir) -> None:
    from peft import AutoPeftModelForCausalLM, LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tests.clients.tiny import build_gpt2, twitter_rows

    gpt, tok = build_gpt2(tmp_path / "gpt2", [r["text"] for r in twitter_rows(100)])
    base_id = repo_factory("gpt2-base")
    gpt.push_to_hub(base_id)
    tok.push_to_hub(base_id)
    base = AutoModelForCausalLM.from_pretrained(base_id, cache_dir=cache_dir)
    lora = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["c_attn"],
                                           init_lora_weights=False)).eval()
    prompt = tok("stocks rise", return_tensors="pt")
    kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=tok.eos_token_id)
    with torch.no_grad():
        want = lora.generate(**prompt, **kw)

    adapter_id = repo_factory("gpt2-lora")
    lora.save_pretrained(tmp_path / "adapter")
    api.upload_folder(folder_path=tmp_path / "adapter", repo_id=adapter_id)
    info = api.model_info(adapter_id)
    assert info.library_name == "peft" and info.pipeline_tag == "text-generation"  # peft's card says so

    loaded = AutoPeftModelForCausalLM.from_pretrained(adapter_id, cache_dir=cache_dir).eval()
    with torch.no_grad():
        assert loaded.generate(**prompt, **kw).tolist() == want.tolist()
