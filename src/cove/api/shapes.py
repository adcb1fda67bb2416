"""JSON shapes the clients parse: dates, URLs, repo info, tree entries."""

from __future__ import annotations

from datetime import UTC, datetime

from cove.db.tables import Repo
from cove.storage.git_repos import Entry

PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
PLURAL = {"model": "models", "dataset": "datasets", "space": "spaces"}


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def repo_url(endpoint: str, repo_type: str, repo_id: str) -> str:
    return f"{endpoint}/{PREFIX[repo_type]}{repo_id}"


def entry_json(e: Entry, *, xet_hash: str | None = None) -> dict:
    if e.type == "directory":
        return {"type": "directory", "oid": e.oid, "size": 0, "path": e.path}
    out: dict = {"type": "file", "oid": e.oid, "size": e.size, "path": e.path}
    if e.is_lfs:
        out["lfs"] = {"oid": e.lfs_oid, "size": e.size, "pointerSize": e.lfs_pointer_size}
        if xet_hash:
            out["xetHash"] = xet_hash
    return out


_ALWAYS = ("id", "_id")


def repo_info_json(
    repo: Repo,
    *,
    sha: str | None,
    siblings: list[dict] | None,
    expand: list[str] | None,
    full: bool = True,
    card: bool = True,
    runtime: dict | None = None,
) -> dict:
    """Info object for `model_info`/`dataset_info`/`space_info` and the listing endpoints."""
    card_data = repo.card_data or {}
    info: dict = {
        "_id": f"{repo.id:024x}",
        "id": repo.repo_id,
        "author": repo.namespace,
        "sha": sha,
        "lastModified": iso(repo.last_modified),
        "createdAt": iso(repo.created_at),
        "private": repo.private,
        "gated": repo.gated or False,
        "disabled": repo.disabled,
        "downloads": repo.downloads,
        "downloadsAllTime": repo.downloads_all_time,
        "likes": repo.likes,
        "tags": list(repo.tags or []),
        "usedStorage": repo.used_storage,
        "trendingScore": 0,
        "xetEnabled": False,
    }
    if repo.type == "model":
        info["pipeline_tag"] = repo.pipeline_tag
        info["library_name"] = repo.library_name
        if repo.config:
            info["config"] = repo.config
        if "model-index" in card_data:
            info["model-index"] = card_data["model-index"]
        info["modelId"] = repo.repo_id
    elif repo.type == "dataset":
        info["description"] = None
        info["citation"] = None
        info["paperswithcode_id"] = None
    elif repo.type == "space":
        info["sdk"] = repo.sdk
        info["runtime"] = runtime
        info["subdomain"] = repo.repo_id.replace("/", "-").lower()
        info["models"] = card_data.get("models") or []
        info["datasets"] = card_data.get("datasets") or []
    if card:
        info["cardData"] = card_data
    if siblings is not None:
        info["siblings"] = siblings
    if expand:
        keep = set(expand) | set(_ALWAYS)
        if "cardData" in keep:
            info["cardData"] = card_data
        if "siblings" in keep and "siblings" not in info:
            info["siblings"] = []
        return {k: v for k, v in info.items() if k in keep}
    if not full:
        for k in ("config", "usedStorage", "downloadsAllTime"):
            info.pop(k, None)
    return info
