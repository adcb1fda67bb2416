"""Tiny models and datasets for the train tests, built from configs (no downloads)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

TWITTER = Path(__file__).resolve().parents[3] / "shared" / "data" / "twitter_financial_news_sentiment"
TWITTER_FALLBACK = Path("/work/shared/data/twitter_financial_news_sentiment")
LABELS = ["Bearish", "Bullish", "Neutral"]


def twitter_rows(n: int = 60, seed: int = 0) -> list[dict[str, object]]:
    """``n`` rows sampled from the MIT-licensed Twitter financial news set, balanced across the 3 labels."""
    src = TWITTER if TWITTER.is_dir() else TWITTER_FALLBACK
    with (src / "sent_train.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rng = random.Random(seed)
    rng.shuffle(rows)
    picked: list[dict[str, object]] = []
    for label in ("0", "1", "2"):
        picked += [{"text": r["text"], "label": int(r["label"])} for r in rows if r["label"] == label][: n // 3]
    rng.shuffle(picked)
    return picked


def write_dataset(folder: Path, rows: list[dict[str, object]], *, license: str = "mit") -> Path:
    """A local dataset folder: train.csv plus a README.md card that states the license."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "train.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (folder / "README.md").write_text(f"---\nlicense: {license}\n---\n# tiny twitter sentiment\n", encoding="utf-8")
    return folder


def build_tiny_bert(folder: Path, texts: list[str]) -> Path:
    """A 2-layer, 32-wide BERT with a WordPiece vocabulary trained on ``texts``, saved as a base model."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(texts, vocab_size=400, min_frequency=1, show_progress=False)
    tokenizer = BertTokenizerFast(
        tokenizer_object=wp._tokenizer,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    tokenizer.save_pretrained(folder)
    import torch

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny bert\n", encoding="utf-8")
    return folder


def build_tiny_gpt2(folder: Path, texts: list[str]) -> Path:
    """A 2-layer, 32-wide GPT-2 with a byte-level BPE vocabulary trained on ``texts``."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        texts, vocab_size=400, min_frequency=1, show_progress=False, special_tokens=["<|endoftext|>"]
    )
    tokenizer = GPT2TokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_max_length=128,
    )
    tokenizer.save_pretrained(folder)
    import torch

    torch.manual_seed(0)
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=128,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def build_tiny_bart(folder: Path, texts: list[str]) -> Path:
    """A 1+1-layer, 32-wide BART (encoder-decoder) with a byte-level BPE vocabulary trained on ``texts``."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import BartConfig, BartForConditionalGeneration, BartTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=400, min_frequency=1, show_progress=False, special_tokens=specials)
    tokenizer = BartTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<s>",
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=128,
    )
    tokenizer.save_pretrained(folder)
    import torch

    torch.manual_seed(0)
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=128,
        bos_token_id=0,
        pad_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=2,
        forced_eos_token_id=2,
    )
    BartForConditionalGeneration(config).save_pretrained(folder)
    return folder


SHARED = TWITTER_FALLBACK.parent if not TWITTER.is_dir() else TWITTER.parent


def write_wnut(folder: Path, n: int = 40) -> Path:
    """The first ``n`` WNUT-17 training sentences (CC BY 4.0) as JSON lines: tokens + string ner_tags."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    sentences, words, tags = [], [], []
    for line in (SHARED / "wnut17" / "wnut17train.conll").read_text(encoding="utf-8").splitlines():
        line = line.replace("\ufeff", "").strip()
        if not line:
            if words:
                sentences.append({"tokens": words, "ner_tags": tags})
                words, tags = [], []
            if len(sentences) >= n:
                break
            continue
        word, tag = line.split("\t")
        words.append(word)
        tags.append(tag)
    with (folder / "train.jsonl").open("w", encoding="utf-8") as fh:
        for s in sentences:
            fh.write(json.dumps(s) + "\n")
    return folder


def write_xquad(folder: Path, n: int = 40) -> Path:
    """The first ``n`` XQuAD-en questions (CC BY-SA 4.0) flattened to SQuAD-style JSON lines."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    data = json.loads((SHARED / "xquad_en" / "xquad.en.json").read_text(encoding="utf-8"))["data"]
    rows = []
    for article in data:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                answers = {
                    "text": [a["text"] for a in qa["answers"]],
                    "answer_start": [a["answer_start"] for a in qa["answers"]],
                }
                rows.append(
                    {"id": qa["id"], "question": qa["question"], "context": para["context"], "answers": answers}
                )
    with (folder / "train.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows[:n]:
            fh.write(json.dumps(row) + "\n")
    return folder
