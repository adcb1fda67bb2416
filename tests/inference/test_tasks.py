"""Every task through the stock `InferenceClient(model=f"{HF_ENDPOINT}/models/{repo}")`, against `cove serve`,
checked against the same model run in the test process."""

from __future__ import annotations

import math

import httpx
import pytest

from tests.conftest import ENDPOINT

torch = pytest.importorskip("torch")


def _client(pushed, token):  # noqa: ANN001, ANN202
    from huggingface_hub import InferenceClient

    return InferenceClient(model=pushed.url, token=token)


def _softmax(logits):  # noqa: ANN001, ANN202
    return torch.softmax(logits, -1).tolist()


def test_text_classification_private_model(models, alice, bob) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    m = models["classifier"]
    text = "the stock market rises on strong earnings"
    out = _client(m, alice.token).text_classification(text)
    with torch.no_grad():
        probs = _softmax(m.model(**m.tokenizer(text, return_tensors="pt")).logits[0])
    assert [o.label for o in out] == sorted(m.model.config.id2label.values(), key=lambda lab: -probs[
        m.model.config.label2id[lab]])
    for o in out:
        assert o.score == pytest.approx(probs[m.model.config.label2id[o.label]], abs=1e-5)
    top = _client(m, alice.token).text_classification(text, top_k=1)
    assert len(top) == 1 and top[0].label == out[0].label
    # Private: an outsider, or no token, gets what /resolve answers for a missing repo.
    for token in (bob.token, None):
        with pytest.raises(HfHubHTTPError) as err:
            _client(m, token).text_classification(text)
        resolve = httpx.get(f"{ENDPOINT}/{m.repo_id}/resolve/main/config.json",
                            headers={"Authorization": f"Bearer {token}"} if token else {})
        assert err.value.response.status_code == resolve.status_code == 404 or (
            err.value.response.status_code == resolve.status_code == 401)
        assert err.value.response.headers.get("x-error-code") == resolve.headers.get("x-error-code")


def test_token_classification_aggregation(models, alice) -> None:
    m = models["ner"]
    text = "analysts upgrade the bank"
    c = _client(m, alice.token)
    raw = c.token_classification(text, aggregation_strategy="none", ignore_labels=[])
    words = m.tokenizer.tokenize(text)
    assert [e.word for e in raw] == words
    with torch.no_grad():
        logits = m.model(**m.tokenizer(text, return_tensors="pt")).logits[0, 1:-1]
    for e, row in zip(raw, logits, strict=True):
        assert e.entity == m.model.config.id2label[int(row.argmax())]
        assert text[e.start:e.end] == e.word
    grouped = c.token_classification(text, aggregation_strategy="simple", ignore_labels=[])
    assert all(e.entity_group in {"O", "ORG", "PER"} for e in grouped)
    assert all(text[e.start:e.end].lower() == e.word for e in grouped)


def test_fill_mask(models, alice) -> None:
    m = models["mlm"]
    out = _client(m, alice.token).fill_mask("the stock [MASK] rises", top_k=3)
    assert len(out) == 3 and out[0].score >= out[1].score >= out[2].score
    with torch.no_grad():
        enc = m.tokenizer("the stock [MASK] rises", return_tensors="pt")
        pos = int((enc.input_ids[0] == m.tokenizer.mask_token_id).nonzero()[0, 0])
        probs = torch.softmax(m.model(**enc).logits[0, pos], -1)
    assert out[0].token == int(probs.argmax()) and out[0].score == pytest.approx(float(probs.max()), abs=1e-5)
    assert out[0].sequence.startswith("the stock")


def test_question_answering_from_logits(models, alice) -> None:
    """transformers 5 has no QA pipeline: the answer is the best span of the start/end logits."""
    m = models["qa"]
    question, context = "what rises", "the stock market rises on strong earnings"
    out = _client(m, alice.token).question_answering(question=question, context=context)
    assert context[out.start:out.end] == out.answer and out.answer
    enc = m.tokenizer(question, context, return_tensors="pt", return_offsets_mapping=True)
    offsets = enc.pop("offset_mapping")[0].tolist()
    with torch.no_grad():
        res = m.model(**enc)
    start, end = torch.log_softmax(res.start_logits[0], -1), torch.log_softmax(res.end_logits[0], -1)
    ctx = [i for i, s in enumerate(enc.sequence_ids(0)) if s == 1]
    best = max((float(start[a] + end[b]), a, b) for a in ctx for b in ctx if a <= b < a + 15)
    assert (out.start, out.end) == (offsets[best[1]][0], offsets[best[2]][1])
    assert out.score == pytest.approx(math.exp(best[0]), rel=1e-4)


def test_zero_shot_classification(models, alice) -> None:
    m = models["nli"]
    labels = ["finance", "sports", "weather"]
    out = _client(m, alice.token).zero_shot_classification("the stock market rises", candidate_labels=labels)
    assert sorted(o.label for o in out) == labels
    assert sum(o.score for o in out) == pytest.approx(1.0, abs=1e-4)
    multi = _client(m, alice.token).zero_shot_classification("the stock market rises", candidate_labels=labels,
                                                              multi_label=True)
    assert all(0 <= o.score <= 1 for o in multi) and sorted(o.label for o in multi) == labels


def test_text_generation_greedy_stream_details_stop(models, alice) -> None:
    m = models["gpt2"]
    c = _client(m, alice.token)
    prompt = "the stock"
    with torch.no_grad():
        ids = m.tokenizer(prompt, return_tensors="pt").input_ids
        ref = m.model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=m.tokenizer.eos_token_id)
    expected = m.tokenizer.decode(ref[0, ids.shape[1]:], skip_special_tokens=True)
    assert c.text_generation(prompt, max_new_tokens=8) == expected
    streamed = list(c.text_generation(prompt, max_new_tokens=8, stream=True))
    assert "".join(streamed) == expected
    details = c.text_generation(prompt, max_new_tokens=8, details=True)
    assert details.generated_text == expected
    assert details.details.generated_tokens == len(details.details.tokens) <= 8
    assert [t.id for t in details.details.tokens] == ref[0, ids.shape[1]:].tolist()
    events = list(c.text_generation(prompt, max_new_tokens=8, stream=True, details=True))
    assert events[-1].generated_text == expected and events[-1].details.finish_reason in ("length", "eos_token")
    assert c.text_generation(prompt, max_new_tokens=8, return_full_text=True) == prompt + expected
    if len(expected.strip()) > 2:
        stop = expected.strip()[:2]
        stopped = c.text_generation(prompt, max_new_tokens=8, stop=[stop], details=True)
        assert stopped.details.finish_reason == "stop_sequence" and stop in stopped.generated_text
    seeded = [c.text_generation(prompt, max_new_tokens=8, temperature=1.5, seed=7) for _ in range(2)]
    assert seeded[0] == seeded[1]


def test_bad_and_oversize_inputs(models, alice) -> None:
    m = models["classifier"]
    h = {"Authorization": f"Bearer {alice.token}"}
    r = httpx.post(m.url, json={"inputs": 5}, headers=h)
    assert r.status_code == 400 and "inputs" in r.json()["error"]
    r = httpx.post(m.url, content=b"{not json", headers=h)
    assert r.status_code == 400
    r = httpx.post(m.url, json={"inputs": "x" * (2 << 20)}, headers=h)
    assert r.status_code == 413
    r = httpx.post(f"{ENDPOINT}/models/{m.repo_id}/pipeline/image-classification", json={"inputs": "x"}, headers=h)
    assert r.status_code == 400 and "not supported" in r.json()["error"]
    r = httpx.post(m.url, json={"inputs": "x"}, headers=h, params={"revision": "nope"})
    assert r.status_code == 404 and r.headers["x-error-code"] == "RevisionNotFound"


def test_a_repo_without_a_model(api, repo_factory, alice) -> None:
    """A repo with files but no model: 400 before any worker starts (whatever task is asked)."""
    repo_id = repo_factory("inf-nomodel")
    api.upload_file(path_or_fileobj=b"\x00" * 64, path_in_repo="w.bin", repo_id=repo_id)
    r = httpx.post(f"{ENDPOINT}/models/{repo_id}/pipeline/text-classification", json={"inputs": "x"},
                   headers={"Authorization": f"Bearer {alice.token}"})
    assert r.status_code == 400 and "no model" in r.json()["error"]


def test_summarization_translation_text2text(models, alice) -> None:
    m = models["bart"]
    text = "bank shares fall after weak outlook"
    with torch.no_grad():
        ids = m.model.generate(**m.tokenizer([text], return_tensors="pt"), max_new_tokens=10)
    expected = m.tokenizer.decode(ids[0], skip_special_tokens=True)
    c = _client(m, alice.token)
    assert c.summarization(text, generate_parameters={"max_new_tokens": 10}).summary_text == expected
    from huggingface_hub import InferenceClient

    tr = InferenceClient(model=f"{ENDPOINT}/models/{m.repo_id}/pipeline/translation", token=alice.token)
    assert tr.translation(text, generate_parameters={"max_new_tokens": 10}).translation_text == expected
    r = httpx.post(f"{ENDPOINT}/models/{m.repo_id}/pipeline/text2text-generation", headers={
        "Authorization": f"Bearer {alice.token}"}, json={"inputs": [text, text], "parameters": {"max_new_tokens": 10}})
    assert r.json() == [{"generated_text": expected}] * 2


def test_gated_model_answers_as_its_files_do(api, repo_factory, alice, bob, tmp_path) -> None:
    """A gated model runs only for callers whose access was accepted: the others get what /resolve answers."""
    from tests.inference.conftest import _bert, push

    repo_id = repo_factory("inf-gated")
    model, tok = _bert(tmp_path / "g", "BertForMaskedLM")
    push(api, model, tok, tmp_path / "g", repo_id)
    api.update_repo_settings(repo_id, gated="manual")
    for headers in ({"Authorization": f"Bearer {bob.token}"}, {}):
        r = httpx.post(f"{ENDPOINT}/models/{repo_id}", json={"inputs": "the [MASK] rises"}, headers=headers)
        resolve = httpx.get(f"{ENDPOINT}/{repo_id}/resolve/main/config.json", headers=headers)
        assert (r.status_code, r.headers.get("x-error-code")) == (resolve.status_code,
                                                                  resolve.headers.get("x-error-code"))
        assert r.status_code in (401, 403) and r.headers["x-error-code"] == "GatedRepo"
