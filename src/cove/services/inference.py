"""Which model answers an inference request: access (as `/resolve`), the settings, the revision, the task."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sqlalchemy import select

from cove.backends import Backends
from cove.db.tables import Repo
from cove.errors import BadRequest, Forbidden, HubError, NotFound
from cove.inference import LOAD_KIND
from cove.inference import snapshot as snap
from cove.services import access, files, gating
from cove.services.accounts import Actor

#: Tasks a model may be asked on the routes, and those `/v1/models` lists.
TASKS = tuple(LOAD_KIND)


@dataclass(frozen=True)
class Target:
    key: tuple[int, str, str]  # (repo pk, commit, load kind): one loaded model
    path: Path
    task: str
    repo_id: str
    sha: str
    storage_key: str = ""  # the git repo, and the revision asked (`cove.api.inference_front` checks it again)
    rev: str = "main"


class NotInstalled(HubError):
    status = 501
    code = "NotImplemented"


@cache
def _installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))


def enabled(bk: Backends) -> None:
    if not bk.settings.inference_enabled:
        raise NotFound("Inference is turned off on this hub (COVE_INFERENCE_ENABLED)")
    if not _installed():
        raise NotInstalled("Inference needs torch and transformers on the server: pip install 'cove[inference]'")


def _namespace_allowed(bk: Backends, namespace: str) -> bool:
    allowed = bk.settings.inference_namespaces
    if not allowed:
        return True
    return namespace in {n.strip() for n in allowed.split(",") if n.strip()}


def target(bk: Backends, actor: Actor, repo_id: str, revision: str | None, task: str | None) -> Target:
    """The model to run for `repo_id` at `revision` (default: main), its files on disk and its task (`task`,
    else the card's `pipeline_tag`, else one guessed from config.json). A repo the caller may not read is
    missing (404); a gated one needs accepted access, as its files do."""
    enabled(bk)
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, "model", repo_id)
        if repo.gated:
            gating.require_file_access(db, actor, repo, "", bk.settings.public_endpoint)
        if not _namespace_allowed(bk, repo.namespace):
            raise Forbidden(f"Inference is not enabled for the models of {repo.namespace} on this hub")
        sha = files.resolve_revision(bk, repo, revision or "main")
        path = snap.materialize(bk, db, repo, sha)
        task = task or repo.pipeline_tag or snap.guess_task(path)
        pk, full_id, storage_key = repo.id, repo.repo_id, repo.storage_key
    if not (path / "config.json").is_file() and not any(path.rglob("*.gguf")):
        raise BadRequest(f"{full_id} holds no model to run at this revision (no config.json, no .gguf file)")
    if not task:
        raise BadRequest(f"{full_id} names no pipeline_tag in its card: ask a task with /pipeline/{{task}}")
    if task not in LOAD_KIND:
        raise BadRequest(f"Task {task} is not supported by this hub's inference (supported: "
                         f"{', '.join(TASKS)})")
    return Target((pk, sha, LOAD_KIND[task]), path, task, full_id, sha, storage_key, revision or "main")


def listed_models(bk: Backends, actor: Actor, limit: int = 1000) -> list[tuple[str, str, int]]:
    """(repo id, pipeline tag, created timestamp) of the models the caller may run, newest first."""
    enabled(bk)
    out = []
    with bk.db.session() as db:
        q = (select(Repo).where(Repo.type == "model", Repo.pipeline_tag.in_(TASKS))
             .order_by(Repo.id.desc()).limit(limit * 4))
        for repo in db.scalars(q):
            if not _namespace_allowed(bk, repo.namespace) or not access.can_read(db, actor, repo):
                continue
            if repo.gated and not gating.has_access(db, actor, repo):
                continue
            created = repo.created_at.timestamp() if getattr(repo, "created_at", None) else 0
            out.append((repo.repo_id, repo.pipeline_tag, int(created)))
            if len(out) >= limit:
                break
    return out
