"""``cove import``: put a local model folder, a data file/folder, or a cached hub repo onto the hub."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi

from .hub import endpoint
from .recipe import RecipeError

DATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet", ".txt", ".arrow")
IGNORE = [".git/*", "**/.git/*", "__pycache__/*", "**/__pycache__/*", ".cache/*", "*.pyc", ".DS_Store"]


@dataclass
class Imported:
    """Where an import landed."""

    repo_id: str
    repo_type: str
    url: str
    commit: str


def _api(api: HfApi | None) -> HfApi:
    return api or HfApi()


def import_model(
    path: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    api: HfApi | None = None,
    message: str | None = None,
) -> Imported:
    """Upload a local model folder (config.json, weights, tokenizer...) as a model repo."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise RecipeError(f"{str(folder)!r} is not a folder; cove import model takes a saved model folder")
    if not any(folder.glob("config.json")) and not any(folder.glob("adapter_config.json")):
        raise RecipeError(f"{str(folder)!r} has no config.json or adapter_config.json; is it a saved model?")
    client = _api(api)
    client.create_repo(repo_id, private=private, exist_ok=True)
    info = client.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        ignore_patterns=IGNORE,
        commit_message=message or f"Import {folder.name}",
    )
    return Imported(repo_id, "model", f"{endpoint()}/{repo_id}", info.oid)


def import_dataset(
    path: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    api: HfApi | None = None,
    message: str | None = None,
) -> Imported:
    """Upload a data file (as ``data/<name>``) or a dataset folder as a dataset repo."""
    source = Path(path).expanduser()
    client = _api(api)
    if source.is_file():
        if source.suffix.lower() not in DATA_SUFFIXES:
            raise RecipeError(f"{source.name!r}: not a data file datasets can read; use one of {DATA_SUFFIXES}")
        client.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        info = client.upload_file(
            path_or_fileobj=str(source),
            path_in_repo=f"data/{source.name}",
            repo_id=repo_id,
            repo_type="dataset",
            commit_message=message or f"Import {source.name}",
        )
    elif source.is_dir():
        client.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        info = client.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=source,
            ignore_patterns=IGNORE,
            commit_message=message or f"Import {source.name}",
        )
    else:
        raise RecipeError(f"{str(source)!r} does not exist")
    return Imported(repo_id, "dataset", f"{endpoint()}/datasets/{repo_id}", info.oid)


def import_cached(
    source_id: str,
    repo_id: str | None = None,
    *,
    repo_type: str = "model",
    private: bool = False,
    api: HfApi | None = None,
    cache_dir: str | Path | None = None,
) -> Imported:
    """Upload the newest snapshot of a repo from the local HF cache (``~/.cache/huggingface/hub``)."""
    from huggingface_hub import scan_cache_dir

    cache = scan_cache_dir(cache_dir)
    found = [r for r in cache.repos if r.repo_id == source_id and r.repo_type == repo_type]
    if not found or not found[0].revisions:
        have = sorted(r.repo_id for r in cache.repos if r.repo_type == repo_type)
        raise RecipeError(f"{repo_type} {source_id!r} is not in the HF cache ({cache.repos and have or 'empty'})")
    snapshot = max(found[0].revisions, key=lambda r: r.last_modified)
    target = repo_id or source_id
    client = _api(api)
    client.create_repo(target, repo_type=repo_type, private=private, exist_ok=True)
    info = client.upload_folder(
        repo_id=target,
        repo_type=repo_type,
        folder_path=snapshot.snapshot_path,
        ignore_patterns=IGNORE,
        commit_message=f"Import {source_id}@{snapshot.commit_hash} from the HF cache",
    )
    prefix = "" if repo_type == "model" else f"{repo_type}s/"
    return Imported(target, repo_type, f"{endpoint()}/{prefix}{target}", info.oid)
