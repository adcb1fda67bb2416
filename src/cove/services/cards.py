"""What the index learns from a commit: the README card's YAML and the config files."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from cove.services.card_meta import read_card

_ARCH_TASKS = (
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("ForMaskedLM", "fill-mask"),
    ("ForSeq2SeqLM", "text2text-generation"),
    ("ForConditionalGeneration", "text2text-generation"),
    ("ForImageClassification", "image-classification"),
    ("ForMultipleChoice", "multiple-choice"),
)


@dataclass
class IndexData:
    card_data: dict = field(default_factory=dict)
    card_error: str | None = None
    pipeline_tag: str | None = None
    library_name: str | None = None
    license: str | None = None
    config: dict | None = None
    tags: list[str] = field(default_factory=list)
    description: str = ""


def parse_card(text: str) -> tuple[dict, str, str | None]:
    """(valid YAML metadata, markdown body, the errors joined or None): see `card_meta.read_card`."""
    card = read_card(text)
    return card.meta, card.body, "; ".join(card.errors) or None


def _load_config(data: bytes) -> dict | None:
    """config.json as a JSON object, or None; never raises."""
    try:
        config = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return config if isinstance(config, dict) else None


def _architectures(config: dict | None) -> list[str]:
    archs = (config or {}).get("architectures")
    return [a for a in archs if isinstance(a, str)] if isinstance(archs, list) else []


def _as_list(v: object) -> list[str]:
    if v is None:
        return []
    if isinstance(v, (list, tuple)):
        return [str(x) for x in v if x is not None]
    return [str(v)]


def derive_index(repo_type: str, files: dict[str, bytes], paths: list[str]) -> IndexData:
    """Index fields from the small files of a commit (`README.md`, `config.json`, ...) and its file list."""
    out = IndexData()
    if "README.md" in files:
        meta, body, err = parse_card(files["README.md"].decode("utf-8", "replace"))
        out.card_data, out.card_error = meta, err
        out.description = body.strip()[:2000]
    meta = out.card_data
    config = _load_config(files["config.json"]) if "config.json" in files else None
    out.config = _slim_config(config) if config else None
    archs = _architectures(config)
    model_type = config.get("model_type") if config else None
    tags: list[str] = []

    library = meta.get("library_name")
    pipeline = meta.get("pipeline_tag")
    if repo_type == "model":
        if not library:
            if "adapter_config.json" in files:
                library = "peft"
            elif "modules.json" in files or "config_sentence_transformers.json" in paths:
                library = "sentence-transformers"
            elif config and ("architectures" in config or "model_type" in config):
                library = "transformers"
            elif any(p.endswith(".gguf") for p in paths):
                library = "gguf"
        if not pipeline and config:
            for arch in archs:
                pipeline = next((t for suffix, t in _ARCH_TASKS if arch.endswith(suffix)), None)
                if pipeline:
                    break
            if not pipeline and library == "sentence-transformers":
                pipeline = "sentence-similarity"
            elif not pipeline and archs and archs[0].endswith("Model"):
                pipeline = "feature-extraction"
        if library:
            tags.append(library)
        if any(p.endswith(".safetensors") for p in paths):
            tags.append("safetensors")
        if any(p.endswith(".gguf") for p in paths):
            tags.append("gguf")
        if isinstance(model_type, str) and model_type:
            tags.append(model_type)
        if pipeline:
            tags.append(pipeline)
        for b in _as_list(meta.get("base_model")):
            tags.append(f"base_model:{b}")
        for d in _as_list(meta.get("datasets")):
            tags.append(f"dataset:{d}")
    elif repo_type == "dataset":
        for t in _as_list(meta.get("task_categories")):
            tags.append(f"task_categories:{t}")
        for t in _as_list(meta.get("task_ids")):
            tags.append(f"task_ids:{t}")
        for t in _as_list(meta.get("size_categories")):
            tags.append(f"size_categories:{t}")
        formats = {p.rsplit(".", 1)[-1] for p in paths if "." in p}
        for fmt in sorted(formats & {"parquet", "csv", "json", "jsonl", "arrow", "txt"}):
            tags.append(f"format:{'json' if fmt == 'jsonl' else fmt}")
        if formats & {"parquet", "csv", "json", "jsonl", "arrow"}:
            tags.append("library:datasets")
    elif repo_type == "space":
        if meta.get("sdk"):
            tags.append(str(meta["sdk"]))
        for m in _as_list(meta.get("models")):
            tags.append(f"model:{m}")
        for d in _as_list(meta.get("datasets")):
            tags.append(f"dataset:{d}")
    tags.extend(_as_list(meta.get("tags")))
    for lang in _as_list(meta.get("language")):
        tags.append(lang if repo_type == "model" else f"language:{lang}")
    lic = meta.get("license")
    if isinstance(lic, list):
        lic = lic[0] if lic else None
    if lic:
        tags.append(f"license:{lic}")
    out.license = str(lic) if lic else None
    out.library_name = str(library) if library else None
    out.pipeline_tag = str(pipeline) if pipeline else None
    seen: set[str] = set()
    out.tags = [t for t in tags if not (t in seen or seen.add(t))][:200]
    return out


#: The slimmed config that repo info shows is left out past this size (its JSON, in characters).
MAX_CONFIG_JSON = 100_000


def _slim_config(config: dict) -> dict | None:
    keys = ("architectures", "model_type", "tokenizer_config", "quantization_config", "task_specific_params")
    slim = {k: config[k] for k in keys if k in config}
    try:  # repo info is strict JSON: no NaN or Infinity
        return slim if len(json.dumps(slim, allow_nan=False)) <= MAX_CONFIG_JSON else None
    except ValueError:
        return None
