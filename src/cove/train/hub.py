"""Talking to the hub through ``HF_ENDPOINT`` with the stock clients: endpoint, revisions, licenses."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, constants
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

HF_CO = "https://huggingface.co"


def endpoint() -> str:
    """The hub every client talks to (``HF_ENDPOINT``, read by huggingface_hub)."""
    return constants.ENDPOINT.rstrip("/")


def is_huggingface_co() -> bool:
    """Whether the endpoint is the public Hugging Face Hub."""
    return endpoint() == HF_CO


def is_local(repo_or_path: str) -> bool:
    """Whether a model/dataset reference is a local path rather than a hub repo id."""
    return repo_or_path.startswith((".", "/", "~")) or Path(repo_or_path).expanduser().exists()


def hash_files(path: Path) -> str:
    """A sha256 over a local file or folder's relative names and contents (a local 'revision')."""
    path = path.expanduser()
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        rel = file.name if path.is_file() else file.relative_to(path).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        digest.update(rel.encode() + b"\0")
        with file.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Resolved:
    """A model or dataset reference pinned to an exact revision."""

    id: str
    revision: str
    sha: str
    local: bool
    license: str | None = None
    card_data: dict[str, Any] | None = None


def _local_card(path: Path) -> dict[str, Any]:
    readme = path / "README.md" if path.is_dir() else None
    if readme is None or not readme.is_file():
        return {}
    from huggingface_hub import ModelCard

    return ModelCard.load(readme).data.to_dict()


def _not_found(kind: str, repo_id: str, revision: str, err: Exception) -> Exception:
    from .recipe import RecipeError

    if isinstance(err, RevisionNotFoundError):
        return RecipeError(f"{kind} {repo_id!r} has no revision {revision!r} on {endpoint()}; fix {kind}.revision")
    return RecipeError(
        f"{kind} {repo_id!r} not found on {endpoint()} (or not visible with this token); fix {kind}.id, "
        f"log in, or upload it with `cove import {kind} PATH {repo_id}`"
    )


def resolve_model(repo_id: str, revision: str, *, api: HfApi | None = None) -> Resolved:
    """Pin a model to a commit SHA (``HfApi.model_info``); local folders are pinned by content hash."""
    if is_local(repo_id):
        path = Path(repo_id).expanduser()
        card = _local_card(path)
        return Resolved(repo_id, revision, "sha256:" + hash_files(path), True, card.get("license"), card)
    try:
        info = (api or HfApi()).model_info(repo_id, revision=revision)
    except (RepositoryNotFoundError, RevisionNotFoundError) as err:
        raise _not_found("model", repo_id, revision, err) from err
    card = info.card_data.to_dict() if info.card_data else {}
    return Resolved(repo_id, revision, info.sha or revision, False, card.get("license"), card)


def resolve_dataset(repo_id: str, revision: str, *, api: HfApi | None = None) -> Resolved:
    """Pin a dataset to a commit SHA (``HfApi.dataset_info``) and read its license from the card."""
    if is_local(repo_id):
        path = Path(repo_id).expanduser()
        card = _local_card(path)
        return Resolved(repo_id, revision, "sha256:" + hash_files(path), True, card.get("license"), card)
    try:
        info = (api or HfApi()).dataset_info(repo_id, revision=revision)
    except (RepositoryNotFoundError, RevisionNotFoundError) as err:
        raise _not_found("dataset", repo_id, revision, err) from err
    card = info.card_data.to_dict() if info.card_data else {}
    return Resolved(repo_id, revision, info.sha or revision, False, card.get("license"), card)


def sync_evaluate_endpoint() -> None:
    """Point ``evaluate`` at the same hub as huggingface_hub and stop its download-count pings.

    ``evaluate`` reads ``HF_ENDPOINT`` once at import; this keeps it on the endpoint in effect now, so
    ``evaluate.load("accuracy")`` fetches ``{endpoint}/spaces/evaluate-metric/accuracy/resolve/...``.
    """
    import evaluate.config as ev_config

    ep = endpoint()
    ev_config.HF_ENDPOINT = ep
    ev_config.HF_LIST_ENDPOINT = ep + "/api/spaces?filter={type}"
    ev_config.HUB_EVALUATE_URL = ep + "/spaces/{path}/resolve/{revision}/{name}"
    ev_config.HF_UPDATE_DOWNLOAD_COUNTS = False  # otherwise evaluate HEADs an S3 bucket on every load


def token() -> str | None:
    """The token the stock clients would use (``HF_TOKEN`` or the saved login)."""
    from huggingface_hub import get_token

    return os.environ.get("HF_TOKEN") or get_token()
