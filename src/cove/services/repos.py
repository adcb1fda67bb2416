"""Repo lifecycle (create, delete, move, settings) and the index row that info and search read."""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta

import yaml
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cove import lifespan
from cove.backends import Backends
from cove.db.tables import Repo, RepoRedirect, RepoTag, utcnow
from cove.errors import BadRequest, Conflict, RepoNotFound, RevisionNotFound
from cove.services import access, webhooks
from cove.services.accounts import NAME_RULE, Actor, get_namespace
from cove.services.cards import IndexData, derive_index

_REPO_NAME_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?$")  # the Hub's rule
INDEX_FILES = ("README.md", "config.json", "adapter_config.json", "modules.json")
SPACE_SDKS = ("gradio", "streamlit", "docker", "static")


def validate_repo_id(repo_id: str) -> tuple[str, str]:
    ns, sep, name = repo_id.partition("/")
    if not sep or "/" in name:
        raise BadRequest(f"Invalid repo id {repo_id!r}: expected 'namespace/name'")
    for part in (ns, name):
        if not _REPO_NAME_RE.match(part) or "--" in part or ".." in part or part.endswith(".git"):
            raise BadRequest(f"Invalid repo id {repo_id!r}: {NAME_RULE}, nor end with '.git'")
    return ns, name


def create(
    db: Session,
    bk: Backends,
    actor: Actor,
    *,
    repo_type: str,
    namespace: str | None,
    name: str,
    private: bool | None = None,
    sdk: str | None = None,
) -> tuple[Repo, bool]:
    """Create a repo (with an initial commit holding `.gitattributes`). Returns (repo, created)."""
    if repo_type not in access.REPO_TYPES:
        raise BadRequest(f"Invalid repo type {repo_type!r}")
    namespace = namespace or actor.name
    if namespace is None:
        from cove.errors import Unauthorized

        raise Unauthorized("You must be authenticated to create a repo")
    validate_repo_id(f"{namespace}/{name}")
    owner = get_namespace(db, namespace)
    namespace = owner.name if owner is not None else namespace  # names are case-insensitive: the row's casing
    existing = access.find_repo(db, repo_type, f"{namespace}/{name}")
    if existing is not None and access.can_read(db, actor, existing):
        return existing, False
    access.require_namespace_write(db, actor, namespace)
    if existing is not None:
        raise Conflict(f"You already created this {repo_type} repo")
    if owner is None:
        raise BadRequest(f"Namespace {namespace!r} does not exist")
    if repo_type == "space" and sdk not in SPACE_SDKS:
        raise BadRequest(f"Spaces need an sdk, one of {', '.join(SPACE_SDKS)}")
    if private is None:  # no visibility asked for: the org's default (`cove org set --private-by-default`)
        from cove.services import orgs

        private = orgs.private_by_default(db, namespace)
    key = secrets.token_hex(16)
    repo = Repo(type=repo_type, namespace=namespace, name=name, storage_key=key, private=private,
                sdk=sdk if repo_type == "space" else None, tags=[])
    db.add(repo)
    _take_name(db, repo, f"You already created this {repo_type} repo")
    # A new Space starts with a README.md carrying its sdk in the front matter, as on the Hub.
    files = {"README.md": space_readme(name, str(sdk))} if repo_type == "space" else None
    sha = bk.repos.create(key, author=actor.name or "cove", files=files)
    reindex(db, bk, repo, sha)
    webhooks.repo_event(db, repo, "create")
    return repo, True


def space_readme(name: str, sdk: str) -> bytes:
    """The card of a new Space (the Hub's template): its title and sdk in the YAML header."""
    meta = {"title": name, "emoji": "🚀", "colorFrom": "blue", "colorTo": "purple", "sdk": sdk, "pinned": False}
    if sdk in ("gradio", "streamlit"):
        meta["app_file"] = "app.py"
    header = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    body = "Check out the configuration reference at https://huggingface.co/docs/hub/spaces-config-reference\n"
    return f"---\n{header}---\n\n{body}".encode()


def delete_repo(db: Session, bk: Backends, actor: Actor, repo: Repo) -> None:
    access.require_admin(db, actor, repo)
    key = repo.storage_key
    webhooks.repo_event(db, repo, "delete")
    db.delete(repo)
    db.flush()
    bk.repos.delete(key)


def move(db: Session, bk: Backends, actor: Actor, repo: Repo, to_repo_id: str) -> Repo:
    """Rename or transfer: admin of the repo's namespace, and allowed to create repos in the new one."""
    access.require_admin(db, actor, repo)
    ns, name = validate_repo_id(to_repo_id)
    access.require_namespace_write(db, actor, ns)
    owner = get_namespace(db, ns)
    ns = owner.name if owner is not None else ns
    other = access.find_repo(db, repo.type, f"{ns}/{name}")
    if other is not None and other.id != repo.id:  # another casing of its own name is a rename
        raise Conflict(f"A {repo.type} repository called {to_repo_id} already exists")
    webhooks.repo_moved(db, repo, f"{ns}/{name}")
    old_ns, old_name, old_id = repo.namespace, repo.name, repo.repo_id
    repo.namespace, repo.name = ns, name
    repo.search_text = repo.repo_id.lower() + repo.search_text[len(old_id):]
    if old_id.lower() != repo.repo_id.lower():  # the old id redirects here (`access.readable_repo`)
        db.add(RepoRedirect(type=repo.type, namespace=old_ns, name=old_name, repo_pk=repo.id))
    _take_name(db, repo, f"A {repo.type} repository called {to_repo_id} already exists")
    return repo


def _take_name(db: Session, repo: Repo, conflict: str) -> None:
    """Write the repo's (new) name; a redirect from that id is dropped (the repo there wins). Two repos whose
    ids differ only in case cannot both be written (`ux_repos_type_lower_id`): the later answers 409."""
    try:
        db.execute(delete(RepoRedirect).where(*access.redirect_filter(repo.type, repo.repo_id)))
        db.flush()
    except IntegrityError as exc:
        raise Conflict(conflict) from exc


def update_settings(db: Session, actor: Actor, repo: Repo, *, private: bool | None, gated: object) -> None:
    """Visibility and gating: the namespace's admins only."""
    access.require_admin(db, actor, repo)
    if private is not None and private != repo.private:
        repo.private = private
        webhooks.repo_event(db, repo, "update", "repo.config")
    if gated is not None:
        if gated is False or gated in ("false", "False"):
            repo.gated = None
        elif gated in ("auto", "manual"):
            repo.gated = str(gated)
        else:
            raise BadRequest("gated must be 'auto', 'manual' or false")


def set_default_branch(db: Session, bk: Backends, actor: Actor, repo: Repo, branch: str) -> None:
    """Make `branch` (an existing one) the default: git HEAD, reads without a revision, the index, the PR
    base, the branch that cannot be deleted. The namespace's admins only."""
    access.require_admin(db, actor, repo)
    if not branch or not bk.repos.is_branch(repo.storage_key, branch):
        raise RevisionNotFound(f"Invalid rev id: {branch}")
    if branch == bk.repos.default_branch(repo.storage_key):
        return
    bk.repos.set_default_branch(repo.storage_key, branch)
    reindex(db, bk, repo)
    webhooks.repo_event(db, repo, "update", "repo.config")


def _read_index(bk: Backends, repo: Repo, sha: str) -> tuple[IndexData, int, datetime]:
    """What the index row holds for commit `sha`, read from git; touches no row."""
    entries = bk.repos.list_tree(repo.storage_key, sha, recursive=True) or []
    files = {e.path for e in entries if e.type == "file"}
    small = {}
    for name in INDEX_FILES:
        e = bk.repos.entry(repo.storage_key, sha, name)
        if e and e.type == "file" and not e.is_lfs and e.size < 1_000_000:
            small[name] = bk.repos.read_blob(repo.storage_key, e.oid)
    idx = derive_index(repo.type, small, sorted(files))
    info = bk.repos.commit_info(repo.storage_key, sha)
    return idx, sum(e.size for e in entries if e.type == "file"), info.date.astimezone(UTC).replace(tzinfo=None)


def reindex(db: Session, bk: Backends, repo: Repo, sha: str | None = None, *, _depth: int = 0) -> bool:
    """Refresh the index row from the head of the default branch (the card, the config files, the file list).

    Never raises for what the repo holds: a commit that cannot be indexed (unreadable objects...) is logged
    and leaves the row as it was (False), so a commit or push that has landed is never failed by its index.
    """
    sha = sha or bk.repos.head(repo.storage_key)
    if sha is None:
        return True
    try:
        idx, used_storage, when = _read_index(bk, repo, sha)
    except Exception:
        logging.getLogger("cove").exception("repo %s/%s: cannot index commit %s; the index keeps %s",
                                            repo.type, repo.repo_id, sha, repo.sha)
        return False
    if idx.card_error:
        logging.getLogger("cove").info("repo %s/%s: invalid card metadata at %s: %s",
                                       repo.type, repo.repo_id, sha, idx.card_error)
    repo.sha = sha
    repo.card_data = idx.card_data
    repo.pipeline_tag = idx.pipeline_tag
    repo.library_name = idx.library_name
    repo.license = idx.license
    repo.config = idx.config
    repo.tags = idx.tags
    if repo.type == "space" and idx.card_data.get("sdk"):
        repo.sdk = str(idx.card_data["sdk"])
    repo.used_storage = used_storage
    repo.search_text = f"{repo.namespace}/{repo.name} {idx.description[:500]}".lower()
    now = utcnow()
    # Git dates are whole seconds: a commit made just now gets the current time, so that edits within
    # one second sort in order and a new repo's lastModified is not before its createdAt.
    repo.last_modified = now if timedelta(0) <= now - when < timedelta(seconds=2) else when
    db.execute(delete(RepoTag).where(RepoTag.repo_pk == repo.id))
    db.add_all(RepoTag(repo_pk=repo.id, tag=t) for t in idx.tags)
    db.flush()
    # Another writer may have moved the default branch while this ran: index its head instead of recording an older one.
    latest = bk.repos.head(repo.storage_key)
    if latest and latest != sha and _depth < 5:
        return reindex(db, bk, repo, latest, _depth=_depth + 1)
    return True


def ensure_fresh(db: Session, bk: Backends, repo: Repo) -> str:
    """Current head of the default branch; re-derives the index if a commit landed without it (e.g. a crash)."""
    head = bk.repos.head(repo.storage_key)
    if head and head != repo.sha:
        reindex(db, bk, repo, head)
    return head or ""


def repo_by_id(db: Session, actor: Actor, repo_type: str, repo_id: str) -> Repo:
    return access.readable_repo(db, actor, repo_type, repo_id)


def reindex_all(db: Session, bk: Backends) -> int:
    """Re-derive stale index rows (start-up); a repo that cannot be read or indexed is logged and skipped."""
    import pygit2

    n = 0
    for repo in db.scalars(select(Repo)).all():
        try:
            head = bk.repos.head(repo.storage_key)
        except pygit2.GitError:
            logging.getLogger("cove").error("repo %s/%s: git folder missing or unreadable", repo.type, repo.repo_id)
            continue
        if head and head != repo.sha:
            if reindex(db, bk, repo, head):
                n += 1
            else:
                logging.getLogger("cove").error("repo %s/%s: skipped, its index could not be rebuilt",
                                                repo.type, repo.repo_id)
    return n


def heal_stale(bk: Backends, stop: threading.Event | None = None, *, batch: int = 500, duty: float = 1.0) -> int:
    """Re-derive stale index rows, walking the repo table in id order a batch at a time (never the whole table
    in memory); returns how many were rebuilt. After each batch it rests `duty` times as long as the batch
    took (the background thread leaves the interpreter to requests half the time by default). A repo whose
    git folder cannot be read is logged (the first few) and skipped, as `reindex_all` does."""
    import pygit2

    log = logging.getLogger("cove")
    stop = stop or threading.Event()
    last, healed, unreadable = 0, 0, 0
    while not stop.is_set():
        began = time.monotonic()
        with bk.db.session() as db:
            rows = db.execute(select(Repo.id, Repo.storage_key, Repo.sha, Repo.type, Repo.namespace, Repo.name)
                              .where(Repo.id > last).order_by(Repo.id).limit(batch)).all()
        if not rows:
            break
        last = rows[-1][0]
        for rid, key, sha, kind, ns, name in rows:
            if stop.is_set():
                break
            try:
                head = bk.repos.branch_head(key)  # the ref files only: no repository opened
            except (pygit2.GitError, OSError, KeyError):
                unreadable += 1
                if unreadable <= 10:
                    log.error("repo %s/%s/%s: git folder %s missing or unreadable", kind, ns, name, key)
                continue
            if head and head != sha:
                with bk.db.session() as db:
                    repo = db.get(Repo, rid)
                    if repo is not None and reindex(db, bk, repo, head):
                        healed += 1
        stop.wait(duty * (time.monotonic() - began))
    if unreadable > 10:
        log.error("%d repos in all have a git folder missing or unreadable", unreadable)
    if healed:
        log.info("index: %d stale repo rows rebuilt from git", healed)
    return healed


#: Seconds after start-up before `heal_in_background` begins (the first requests go first).
HEAL_DELAY_S = 1.0
#: In the data folder: written at a graceful shutdown whose index had no stale row left, removed at start-up.
CLEAN_MARK = "index-clean"


def heal_in_background(app, bk: Backends) -> None:  # noqa: ANN001
    """Start-up does no per-repo work: unless the last shutdown was graceful (`CLEAN_MARK`), `heal_stale` runs
    once in a daemon thread during the app's lifetime. (A row left stale otherwise, e.g. by a process of a
    scale-out group that crashed while another shut down cleanly, is healed on its next read, `ensure_fresh`.)"""
    mark = bk.settings.data / CLEAN_MARK

    @contextlib.asynccontextmanager
    async def healing(_a):  # noqa: ANN001, ANN202
        stop, done = threading.Event(), threading.Event()
        try:
            clean = mark.exists()
            mark.unlink(missing_ok=True)
        except OSError:
            clean = False

        def run() -> None:
            if not clean:
                if stop.wait(HEAL_DELAY_S):
                    return
                try:
                    heal_stale(bk, stop)
                except Exception:  # noqa: BLE001 - reads heal their repo anyway (`ensure_fresh`)
                    logging.getLogger("cove").exception("background index healing stopped")
                    return
                if stop.is_set():
                    return
            done.set()

        try:
            async with lifespan.thread_running("cove-index-heal", run, stop):
                yield
        finally:
            if done.is_set():
                with contextlib.suppress(OSError):
                    mark.touch()

    lifespan.alongside(app, healing)


def now() -> datetime:
    return utcnow()


__all__ = ["RepoNotFound", "create", "delete_repo", "move", "update_settings", "reindex", "ensure_fresh"]
