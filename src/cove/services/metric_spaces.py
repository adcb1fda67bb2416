"""The built-in ``evaluate-metric/<name>`` Spaces, ensured on every start of `cove serve`.

``evaluate.load("accuracy")`` fetches ``spaces/evaluate-metric/accuracy/resolve/main/accuracy.py`` from
``HF_ENDPOINT``; every hub has them from its first start, not only one seeded by `cove demo`. A start where
they are current costs one query and a few tree lookups; a missing org, Space or changed file is (re)written
as one commit per Space, through the same commit service the API uses.
"""

from __future__ import annotations

import logging

import pygit2
from sqlalchemy.orm import Session

from cove.backends import Backends
from cove.services import access, accounts, commits, repos
from cove.services.accounts import Actor
from cove.services.commit_payload import ContentSpool

log = logging.getLogger(__name__)

def _system() -> Actor:
    """The hub itself writing its built-in content: admin over every namespace, a user id no row has (None
    would be anonymous)."""
    return Actor(user_id=0, name="cove", role="write", is_admin=True)


def _stale(bk: Backends, repo, files: dict[str, bytes]) -> dict[str, bytes]:  # noqa: ANN001 - Repo
    """The files whose content at the default branch differs from ``files`` (all of them on an empty Space)."""
    head = bk.repos.head(repo.storage_key)
    if head is None:
        return files
    changed = {}
    for path, data in files.items():
        entry = bk.repos.entry(repo.storage_key, head, path)
        if entry is None or entry.type != "file" or entry.oid != str(pygit2.hash(data)):
            changed[path] = data
    return changed


def ensure_metric_spaces(bk: Backends) -> list[str]:
    """Create or refresh the metric Spaces; returns the repo ids that got a commit (empty when current).

    Several processes starting at once (scale-out) may race: the loser retries once, when the winner's rows
    are there; a hub that still refuses gets a warning, not a server that won't start.
    """
    for attempt in (1, 2):
        try:
            return _ensure_all(bk)
        except Exception as exc:  # noqa: BLE001 - the metrics are a convenience, serving is not
            if attempt == 2:
                log.warning("could not ensure the evaluate-metric Spaces: %s", exc)
    return []


def _ensure_all(bk: Backends) -> list[str]:
    from cove.metrics import METRICS, NAMESPACE, space_files

    actor = _system()
    written: list[str] = []
    with bk.db.session() as db:
        if accounts.get_namespace(db, NAMESPACE) is None:
            accounts.add_org(db, NAMESPACE, fullname="Evaluate metrics (built into Cove)")
        for name in METRICS:
            if _ensure_one(db, bk, actor, NAMESPACE, name, space_files(name)):
                written.append(f"{NAMESPACE}/{name}")
    if written:
        log.info("metric Spaces written: %s", ", ".join(written))
    return written


def _ensure_one(db: Session, bk: Backends, actor: Actor, namespace: str, name: str, files: dict[str, bytes]) -> bool:
    repo = access.find_repo(db, "space", f"{namespace}/{name}")
    if repo is None:
        repo, _ = repos.create(db, bk, actor, repo_type="space", namespace=namespace, name=name, sdk="gradio")
    elif repo.private:  # evaluate.load reads anonymously
        return False
    changed = _stale(bk, repo, files)
    if not changed:
        return False
    with ContentSpool(bk.settings) as spool:
        ops = [{"key": "file", "path": path, "content": spool.add(data)} for path, data in changed.items()]
        commits.create_commit(db, bk, actor, repo, revision=bk.repos.default_branch(repo.storage_key), ops=ops,
                              header={"summary": f"Cove's built-in {name} metric"})
    return True
