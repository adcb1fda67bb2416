"""Tiny models, tokenizers and data for the client tests, built from configs: no downloads, ~100 KB each."""

from __future__ import annotations

import csv
import random
from pathlib import Path

TWITTER = Path(__file__).resolve().parents[3] / "shared" / "data" / "twitter_financial_news_sentiment"
if not TWITTER.is_dir():
    TWITTER = Path("/work/shared/data/twitter_financial_news_sentiment")
LABELS = ["Bearish", "Bullish", "Neutral"]

# A fixed WordPiece vocabulary: specials, a few finance words, letters and their ## continuations.
_WORD_TEXT = (
    "the a an of to in on for and is are was stock stocks market markets shares price prices earnings "
    "revenue profit loss up down rise rises fall falls gain gains drop drops bank banks fed rate rates "
    "buy sell strong weak growth outlook beat miss record high low quarter year oil tech inflation "
    "bullish bearish neutral news company companies investors trading analyst analysts upgrade downgrade"
)


def twitter_rows(n: int = 30, split: str = "train", seed: int = 0) -> list[dict[str, object]]:
    """``n`` rows of the MIT-licensed Twitter financial news sentiment set (label 0/1/2), a fixed sample."""
    name = "sent_train.csv" if split == "train" else "sent_valid.csv"
    with (TWITTER / name).open(encoding="utf-8") as fh:
        rows = [{"text": r["text"], "label": int(r["label"])} for r in csv.DictReader(fh)]
    random.Random(seed).shuffle(rows)
    return rows[:n]


def write_wordpiece_vocab(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789$.,!?-':/")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens = [*specials, *_WORD_TEXT.split(), *letters, *(f"##{c}" for c in letters)]
    path = folder / "vocab.txt"
    path.write_text("\n".join(dict.fromkeys(tokens)) + "\n", encoding="utf-8")
    return path


def build_bert_classifier(folder: Path, *, seed: int = 0):  # noqa: ANN201
    """(model, tokenizer): a 2-layer, 32-wide BERT sequence classifier over the 3 sentiment labels."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    vocab = write_wordpiece_vocab(folder)
    tokenizer = BertTokenizerFast(vocab=str(vocab), do_lower_case=True, model_max_length=64)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=3,
        id2label=dict(enumerate(LABELS)), label2id={name: i for i, name in enumerate(LABELS)},
    )
    model = BertForSequenceClassification(config).eval()
    return model, tokenizer


def build_gpt2(folder: Path, texts: list[str], *, seed: int = 0):  # noqa: ANN201
    """(model, tokenizer): a 2-layer, 32-wide GPT-2 with a tiny byte-level BPE trained on ``texts``."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=300, min_frequency=1, show_progress=False,
                            special_tokens=["<|endoftext|>"])
    bpe.save_model(str(folder))
    tokenizer = GPT2TokenizerFast(vocab=str(folder / "vocab.json"),
                                  merges=str(folder / "merges.txt"), model_max_length=64)
    torch.manual_seed(seed)
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=64,
                        bos_token_id=eos, eos_token_id=eos)
    model = GPT2LMHeadModel(config).eval()
    return model, tokenizer
