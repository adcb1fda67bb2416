"""Pull-through mirror of an upstream hub (docs/mirror.md).

A read of a repo Cove does not hold (`access.readable_repo` misses) fetches it from `COVE_MIRROR_UPSTREAM`
when the policy allows: its git history by a real ``git fetch`` of the upstream's smart-HTTP repo into an
ordinary bare repo (same commit ids), an ordinary `Repo` row marked by a `MirroredRepo` row (read-only here).
LFS/Xet file contents come later, on first read (`cove.services.mirror_lfs`). Branch heads (and the refs that
move as they do: ``refs/pr/N``, ``refs/convert/*``) are checked again after `COVE_MIRROR_TTL`; tags and shas
never. The upstream's discussions are copied off the request path (a background thread per process), so a
read waits on the ref check at most, never on discussions. When the upstream cannot be reached, a circuit
breaker keeps it untried for `COVE_MIRROR_RETRY_AFTER` seconds: what was fetched is served, what was not answers
as a miss.
The upstream token stays here: it is sent to the upstream only, by this module and `mirror_lfs`.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import httpx
import pygit2
from sqlalchemy import select
from sqlalchemy.orm import Session

from cove import lifespan
from cove.backends import Backends
from cove.db.tables import MirroredRepo, MirrorPattern, Repo, utcnow
from cove.errors import BadRequest, Forbidden, RepoNotFound
from cove.services import leases

log = logging.getLogger("cove.mirror")
PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
PLURAL = {"model": "models", "dataset": "datasets", "space": "spaces"}
MARKER = "cove-mirror"  # in the bare repo: JSON {type, id, upstream}; its presence makes a storage key a mirror
STAMP = "cove-mirror-checked"  # in the bare repo: its mtime is when the branch heads were last checked
TALK = "cove-mirror-discussions"  # in the bare repo: its mtime is when the discussions were last copied
TALK_FAILED = "cove-mirror-discussions-failed"  # in the bare repo: its mtime is when copying them last failed
#: In a duplicate of a mirror: JSON {type, id, upstream}, the upstream repo its LFS objects not stored yet come from.
LFS_SOURCE = "cove-mirror-lfs"
_SHA = re.compile(r"[0-9a-f]{40}")
#: The lease (`cove.services.leases`) that makes the `cove mirror add` schedule run in one process of a fleet.
SYNC_JOB = "mirror-sync"
#: The upstream refs a mirror copies: branches, tags, pull requests' refs/pr/N and the Hub's conversions
#: (refs/convert/parquet, ...), same commit ids. All but tags move, and are checked again after the TTL.
MIRRORED_REFS = ("refs/heads/", "refs/tags/", "refs/pr/", "refs/convert/")
REFSPECS = tuple(f"+{p}*:{p}*" for p in MIRRORED_REFS)

_bk: Backends | None = None
_down_until = 0.0  # the circuit breaker: time.monotonic() before which the upstream is not tried
_client: httpx.Client | None = None
_markers: dict[str, dict | None] = {}  # storage key -> marker (a key never changes between mirror and not)
_sources: dict[str, dict | None] = {}  # storage key -> its LFS source (`lfs_source`)
_locks: dict[int, threading.Lock] = {}  # lock slot (`single`) -> its thread lock
_locks_guard = threading.Lock()
_misses: dict[tuple[str, str], float] = {}  # (type, lower id) -> time.monotonic() until which it is a known miss
_pools: dict[str, ThreadPoolExecutor] = {}  # off the request path: "talk" (discussion copies), "xet" (chunking)
_talk_queued: dict[str, threading.Event] = {}  # storage key -> set when its queued (or running) copy ends


class Unreachable(Exception):
    """The upstream did not answer (refused, timed out, 5xx)."""


class Refused(Exception):
    """The upstream answered, and refused (4xx): e.g. a gated repo whose terms the token's owner did not accept."""


def install(bk: Backends) -> None:
    """Make this process's backends the ones a lookup miss mirrors into (`cove.app.create_app`)."""
    global _bk
    _bk = bk


def enabled(bk: Backends | None) -> bool:
    return bk is not None and bool(bk.settings.mirror_upstream)


def upstream(bk: Backends) -> str:
    return str(bk.settings.mirror_upstream).rstrip("/")


def shown_upstream(bk: Backends) -> str:
    """The upstream as clients may see it (API `mirror` field, messages): any ``user:password@`` dropped."""
    parts = urlsplit(upstream(bk))
    if not parts.hostname or "@" not in parts.netloc:
        return upstream(bk)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


# -- the circuit breaker and the HTTP client ---------------------------------------------------------


def available() -> bool:
    """Whether the upstream may be tried now (the breaker is closed)."""
    return time.monotonic() >= _down_until


def trip(bk: Backends) -> None:
    global _down_until
    _down_until = time.monotonic() + bk.settings.mirror_retry_after
    log.warning("mirror: upstream %s unreachable; not tried again for %.0f s", shown_upstream(bk),
                bk.settings.mirror_retry_after)


def unreachable_message(bk: Backends, what: str = "Repository not found") -> str:
    return f"{what}: the upstream hub {shown_upstream(bk)} is unreachable, and Cove holds no copy of it"


def client(bk: Backends) -> httpx.Client:
    """One pooled client for the upstream; the token goes to the upstream's origin only (httpx drops
    ``Authorization`` on a redirect to another origin, e.g. the CDN that serves the bytes)."""
    global _client
    if _client is None:
        headers = {"user-agent": "cove-mirror"}
        if bk.settings.mirror_token:
            headers["authorization"] = f"Bearer {bk.settings.mirror_token}"
        timeout = httpx.Timeout(60.0, connect=bk.settings.mirror_connect_timeout)
        _client = httpx.Client(headers=headers, timeout=timeout, follow_redirects=True)
    return _client


def get(bk: Backends, url: str, **kw: object) -> httpx.Response:
    """GET from the upstream; `Unreachable` (and the breaker tripped) when it does not answer."""
    if not available():
        raise Unreachable(upstream(bk))
    try:
        r = client(bk).get(url, **kw)  # type: ignore[arg-type]
    except httpx.TransportError as exc:
        trip(bk)
        raise Unreachable(str(exc)) from exc
    if r.status_code >= 500:
        trip(bk)
        raise Unreachable(f"{url}: {r.status_code}")
    return r


# -- policy ----------------------------------------------------------------------------------------------


def qualified(repo_type: str, repo_id: str) -> str:
    """The name patterns match: ``ns/name``, ``datasets/ns/name``, ``spaces/ns/name``."""
    return PREFIX[repo_type] + repo_id


def split_qualified(name: str) -> tuple[str, str]:
    for repo_type, prefix in PREFIX.items():
        if prefix and name.startswith(prefix):
            return repo_type, name[len(prefix):]
    return "model", name


def patterns(db: Session, bk: Backends) -> list[str]:
    allow = [p.strip() for p in bk.settings.mirror_allow.split(",") if p.strip()]
    return allow + list(db.scalars(select(MirrorPattern.pattern)))


def allowed(db: Session, bk: Backends, repo_type: str, repo_id: str) -> bool:
    name = qualified(repo_type, repo_id).lower()
    return any(fnmatch.fnmatchcase(name, p.lower()) for p in patterns(db, bk))


# -- locks: one fetch at a time per name, in this process and across processes ----------------------------


def _slot(bk: Backends, name: str) -> int:
    """The lock slot of `name`: one of `COVE_MIRROR_LOCK_SLOTS`, by hash (the same in every process)."""
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big") % max(1, bk.settings.mirror_lock_slots)


def _slot_file(bk: Backends, slot: int) -> int:
    """`os.open` of the lock file of `slot` under ``<data>/mirror-locks``; the folder made only when missing."""
    path = bk.settings.data / "mirror-locks" / f"{slot:05d}"
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


@contextlib.contextmanager
def single(bk: Backends, name: str) -> Iterator[None]:
    """Hold `name` (one fetch of a repo, its refs, its discussions, an LFS object) in this process and across
    processes. Names share a fixed set of slots (a thread lock and an ``flock``'ed file each), so the names a
    reader can make up (every missing repo id) never grow either: two names in one slot only wait on each other.
    Never nested (two names held at once could deadlock on a shared slot)."""
    slot = _slot(bk, name)
    with _locks_guard:
        lock = _locks.setdefault(slot, threading.Lock())
    with lock:
        fd = _slot_file(bk, slot)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


# -- a miss: mirror the repo ------------------------------------------------------------------------------


def pull_through(db: Session, repo_type: str, repo_id: str) -> Repo | None:
    """The repo `repo_id` of the upstream, mirrored now, when a lookup found none here and the policy allows;
    None when there is none to mirror. `RepoNotFound` saying so when the upstream is unreachable."""
    bk = _bk
    if not enabled(bk) or repo_type not in PREFIX:
        return None
    assert bk is not None
    from cove.services import access
    from cove.services.repos import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except BadRequest:
        return None
    if not allowed(db, bk, repo_type, repo_id):
        return None
    miss = (repo_type, repo_id.lower())
    if _misses.get(miss, 0.0) > time.monotonic():
        return None  # the upstream had none a moment ago (a typo, a crawler): not asked again until the TTL
    made = None
    try:
        with single(bk, f"repo\0{repo_type}\0{repo_id.lower()}"), bk.db.session() as own:
            if access.find_repo(own, repo_type, repo_id) is None:
                made = mirror_repo(own, bk, repo_type, repo_id)
                if made is None:
                    if len(_misses) > 10_000:
                        _misses.clear()
                    _misses[miss] = time.monotonic() + bk.settings.mirror_ttl
                else:
                    made = (made.id, made.storage_key)
    except Unreachable as exc:
        raise RepoNotFound(unreachable_message(bk)) from exc
    if made is not None:  # committed: the discussions follow in the background
        discussions_later(bk, *made)
    return access.find_repo(db, repo_type, repo_id)


def upstream_info(bk: Backends, repo_type: str, repo_id: str) -> dict | None:
    """The upstream's info on a repo, or None if it has none (or only a private one) to give."""
    r = get(bk, f"{upstream(bk)}/api/{PLURAL[repo_type]}/{repo_id}")
    if r.status_code != 200:
        return None
    info = r.json()
    if not isinstance(info, dict) or info.get("private"):
        return None  # only public repos are mirrored: a token's private repos stay upstream
    return info


def mirror_repo(db: Session, bk: Backends, repo_type: str, repo_id: str) -> Repo | None:
    """Create the local mirror of an upstream repo (git history fetched, contents left for first reads). Its
    discussions are not copied here: the caller does, once `db` is committed (`copy_discussions`)."""
    from cove.services import repos

    info = upstream_info(bk, repo_type, repo_id)
    if info is None:
        return None
    canonical = str(info.get("id") or repo_id)
    if canonical.count("/") != 1:
        canonical = repo_id
    ns, name = canonical.split("/")
    key = secrets.token_hex(16)
    path = bk.repos.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    git = pygit2.init_repository(str(path), bare=True, initial_head="main")
    git.config["uploadpack.allowAnySHA1InWant"] = True
    try:
        try:
            fetch(bk, key, repo_type, canonical)
        except Refused:
            shutil.rmtree(path, ignore_errors=True)
            log.info("mirror: the upstream refused git access to %s %s", repo_type, canonical)
            return None
        (path / MARKER).write_text(json.dumps({"type": repo_type, "id": canonical, "upstream": shown_upstream(bk)}))
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    gated = info.get("gated")
    repo = Repo(type=repo_type, namespace=ns, name=name, storage_key=key, private=False,
                gated=gated if gated in ("auto", "manual") else None, tags=[])
    db.add(repo)
    db.flush()
    db.add(MirroredRepo(repo_pk=repo.id, upstream=shown_upstream(bk), synced_at=utcnow()))
    repos.reindex(db, bk, repo, bk.repos.resolve(key, "main"))
    log.info("mirror: %s %s fetched from %s", repo_type, canonical, shown_upstream(bk))
    return repo


def fetch(bk: Backends, key: str, repo_type: str, repo_id: str) -> None:
    """``git fetch`` the upstream's branches, tags, pull requests' and conversions' refs into the bare repo `key`
    (pruned)."""
    url = f"{upstream(bk)}/{PREFIX[repo_type]}{repo_id}.git"
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_LFS_SKIP_SMUDGE": "1",
           "GIT_HTTP_LOW_SPEED_LIMIT": "1", "GIT_HTTP_LOW_SPEED_TIME": "30"}
    if bk.settings.mirror_token:  # in the environment, not argv (ps shows argv)
        env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraHeader",
                   GIT_CONFIG_VALUE_0=f"Authorization: Bearer {bk.settings.mirror_token}")
    if not available():
        raise Unreachable(url)
    cmd = ["git", "--git-dir", str(bk.repos.path(key)), "fetch", "--quiet", "--prune", "--no-tags", url, *REFSPECS]
    try:
        with bk.repos.writing(key):  # a writer, as commits and pushes: git maintenance waits (services.git_maintenance)
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    except subprocess.TimeoutExpired as exc:
        trip(bk)
        raise Unreachable(url) from exc
    if r.returncode != 0:
        err = r.stderr.strip()
        if re.search(r"returned error: 4\d\d", err):  # refused (a gated repo the token may not read): not down
            raise Refused(err)
        if "unable to access" in err or "Failed to connect" in err or "Could not resolve" in err:
            trip(bk)
            raise Unreachable(err)
        raise RuntimeError(f"git fetch {url} failed: {err}")
    bk.repos.forget(key)
    (bk.repos.path(key) / STAMP).touch()


# -- freshness --------------------------------------------------------------------------------------------


def marker(bk: Backends, key: str) -> dict | None:
    """The mirror marker of storage key `key`, or None for an ordinary repo (one stat, then remembered)."""
    if key not in _markers:
        try:
            _markers[key] = json.loads((bk.repos.path(key) / MARKER).read_text())
        except (OSError, ValueError):
            _markers[key] = None
    found = _markers[key]
    if found is None and len(_markers) > 100_000:
        _markers.clear()
    return found


def lfs_source(bk: Backends, key: str) -> dict | None:
    """The upstream repo whose LFS objects storage key `key` fetches on first read ({type, id, upstream}): a
    mirror's own, or, for a duplicate of a mirror (writable, never synced), its source's. None: an ordinary repo."""
    if (found := marker(bk, key)) is not None:
        return found
    if key not in _sources:
        if len(_sources) > 100_000:
            _sources.clear()
        try:
            _sources[key] = json.loads((bk.repos.path(key) / LFS_SOURCE).read_text())
        except (OSError, ValueError):
            _sources[key] = None
    return _sources[key]


def inherit(bk: Backends, src_key: str, dst_key: str) -> None:
    """A duplicate `dst_key` of `src_key`: when the source fetches its LFS objects from an upstream, so does the
    copy (the bytes it references but nobody read yet), by oid through the upstream's LFS batch API."""
    if (source := lfs_source(bk, src_key)) is not None:
        (bk.repos.path(dst_key) / LFS_SOURCE).write_text(json.dumps(source))
        _sources.pop(dst_key, None)


def _checked_age(bk: Backends, key: str) -> float:
    try:
        return time.time() - (bk.repos.path(key) / STAMP).stat().st_mtime
    except OSError:
        return float("inf")


def _moves(bk: Backends, key: str, rev: str) -> bool:
    """Whether `rev` names a ref that moves upstream: a branch, ``refs/pr/N``, ``refs/convert/*``."""
    if rev.startswith(("refs/pr/", "refs/convert/")):
        return True
    return not _SHA.fullmatch(rev) and bk.repos.is_branch(key, rev.removeprefix("refs/heads/"))


def needs_check(bk: Backends, key: str, rev: str) -> bool:
    """Whether resolving `rev` of storage key `key` should first ask the upstream: a mirror's branch (or PR or
    conversion ref) past the TTL, or a revision it does not know (a new ref or commit). A known sha or tag:
    never."""
    if not enabled(bk) or marker(bk, key) is None:
        return False
    if bk.repos.resolve(key, rev) is None:
        return True
    return _moves(bk, key, rev) and _checked_age(bk, key) > bk.settings.mirror_ttl


def refresh(bk: Backends, repo: Repo, rev: str) -> None:
    """Before `rev` is resolved: check the upstream when `needs_check` says so (never blocks past the breaker;
    an unreachable upstream leaves what is here being served). A revision not known here is asked for at once,
    but at most once a second per repo (a typo does not become a stream of upstream requests)."""
    if not needs_check(bk, repo.storage_key, rev) or not available():
        return
    unknown = bk.repos.resolve(repo.storage_key, rev) is None
    sync_repo(bk, repo.id, repo.storage_key, force=False, min_age=1.0 if unknown else None)


def _advertised(bk: Backends, repo_type: str, repo_id: str) -> dict[str, str]:
    """The upstream's refs a mirror copies (tags peeled) from its smart-HTTP ref advertisement."""
    url = f"{upstream(bk)}/{PREFIX[repo_type]}{repo_id}.git/info/refs"
    r = get(bk, url, params={"service": "git-upload-pack"})
    if r.status_code != 200:
        raise Unreachable(f"{url}: {r.status_code}")
    data, refs, i = r.content, {}, 0
    while i + 4 <= len(data):
        n = int(data[i:i + 4], 16)
        if n == 0:
            i += 4
            continue
        line = data[i + 4:i + n].split(b"\0", 1)[0].strip().decode()
        i += n
        sha, _, name = line.partition(" ")
        if name.startswith(MIRRORED_REFS):
            refs[name.removesuffix("^{}")] = sha
    return refs


def sync_repo(bk: Backends, repo_pk: int, key: str, *, force: bool, min_age: float | None = None,
              wait_discussions: bool = False) -> bool:
    """Bring a mirror's refs up to the upstream's (a ref advertisement first: ``git fetch`` only when something
    moved). True when refs changed; the index follows main. Its discussions are copied after, in the background
    unless `wait_discussions` (the scheduled and CLI syncs): a reader never waits on them."""
    m = marker(bk, key)
    if m is None:
        return False
    with single(bk, f"fetch\0{key}"):
        if not force and _checked_age(bk, key) <= (bk.settings.mirror_ttl if min_age is None else min_age):
            return False  # checked recently (maybe by another reader while this one waited)
        try:
            theirs = _advertised(bk, m["type"], m["id"])
            ours = {k: v for k, v in bk.repos.refs(key).items() if k.startswith(MIRRORED_REFS)}
            if theirs == ours:
                (bk.repos.path(key) / STAMP).touch()
            else:
                fetch(bk, key, m["type"], m["id"])
        except (Unreachable, Refused):
            return False
    if wait_discussions:  # past the lock: readers waiting on it may hold database connections, this needs one
        copy_discussions(bk, repo_pk, key, force=force)
    else:
        discussions_later(bk, repo_pk, key)
    if theirs == ours:
        return False
    from cove.services import repos

    with bk.db.session() as db:
        repo = db.get(Repo, repo_pk)
        row = db.get(MirroredRepo, repo_pk)
        if repo is not None:
            repos.ensure_fresh(db, bk, repo)
        if row is not None:
            row.synced_at = utcnow()
    return True


# -- discussions: copied off the request path --------------------------------------------------------------


def _talk_age(bk: Backends, key: str, stamp: str = TALK) -> float:
    try:
        return time.time() - (bk.repos.path(key) / stamp).stat().st_mtime
    except OSError:
        return float("inf")


def _backing_off(bk: Backends, key: str) -> bool:
    """Whether the last copy of a mirror's discussions failed (in any process) less than min(TTL, 30 s) ago."""
    return _talk_age(bk, key, TALK_FAILED) <= min(bk.settings.mirror_ttl, 30.0)


def copy_discussions(bk: Backends, repo_pk: int, key: str, *, force: bool = False) -> bool:
    """Copy the upstream's discussions of a mirror (`mirror_discussions`) unless copied within the TTL (by this
    or another process: one copy at a time per repo), or a copy failed less than min(TTL, 30 s) ago, and not
    `force`; a failure leaves the last copy, and its time (`TALK_FAILED`). True when copied now."""
    from cove.services import mirror_discussions

    path = bk.repos.path(key)
    with single(bk, f"talk\0{key}"):
        if not force and (_talk_age(bk, key) <= bk.settings.mirror_ttl or _backing_off(bk, key)):
            return False
        if not available():
            return False
        try:
            with bk.db.session() as db:
                if (repo := db.get(Repo, repo_pk)) is None:
                    return False
                mirror_discussions.sync(db, bk, repo)
        except Exception as exc:  # noqa: BLE001 - the git history is what a mirror must have; discussions follow later
            if not isinstance(exc, Unreachable | Refused):
                log.exception("mirror: copying the discussions of %s failed", key)
            with contextlib.suppress(OSError):
                (path / TALK_FAILED).touch()
            return False
        (path / TALK).touch()
        (path / TALK_FAILED).unlink(missing_ok=True)
        return True


def discussions_later(bk: Backends, repo_pk: int, key: str) -> threading.Event:
    """Queue a copy of a mirror's discussions in this process's background thread (once per repo at a time);
    the event is set when that copy ends."""
    with _locks_guard:
        if (done := _talk_queued.get(key)) is not None:
            return done
        done = _talk_queued[key] = threading.Event()

    def run() -> None:
        try:
            copy_discussions(bk, repo_pk, key)
        finally:
            with _locks_guard:
                _talk_queued.pop(key, None)
            done.set()

    _background("talk", run)
    return done


def discussions_read(bk: Backends, repo: Repo, db: Session | None = None) -> bool:
    """Before a mirror's discussions are read here (API and pages): past the TTL, a fresh copy is queued in the
    background, and the reader answers from what is stored (as last copied, as offline). Only the first read
    of a mirror never copied waits for that copy, `COVE_MIRROR_DISCUSSIONS_WAIT` seconds at most, after ending
    `db`'s transaction (no connection held meanwhile); True: the copy ended meanwhile (read it in a new
    transaction). A copy that failed is not tried again for min(TTL, 30 s)."""
    if not enabled(bk) or marker(bk, repo.storage_key) is None:
        return False
    pk, key = repo.id, repo.storage_key
    age = _talk_age(bk, key)
    if age <= bk.settings.mirror_ttl or _backing_off(bk, key) or not available():
        return False
    done = discussions_later(bk, pk, key)
    if age != float("inf") or bk.settings.mirror_discussions_wait <= 0:
        return False
    if db is not None:
        db.commit()
    return done.wait(bk.settings.mirror_discussions_wait)


# -- Xet: an upstream Xet file, after its first read, served over Xet here too --------------------------------


def _background(pool: str, job) -> None:  # noqa: ANN001
    """Run `job` in this process's background pool `pool`: two threads for discussion copies, one for Xet
    chunking (at most one core's worth of it, and never in the way of the copies)."""
    with _locks_guard:
        if pool not in _pools:
            _pools[pool] = ThreadPoolExecutor(2 if pool == "talk" else 1, thread_name_prefix=f"cove-mirror-{pool}")
    _pools[pool].submit(job)


def xet_later(bk: Backends, repo_pk: int, oid: str, sha: str | None, path: str | None) -> None:
    """After the first read of a mirror's file has stored it (`mirror_lfs`): when the upstream serves that file
    over Xet, chunk the stored bytes into this Cove's Xet CAS in the background (`COVE_MIRROR_XET`), so that
    `HEAD` then carries the upstream's own `X-Xet-Hash` and Xet clients read it over Xet here too. Until then
    (and for a file the upstream serves as classic LFS) `HEAD` names no Xet hash: clients use plain HTTP."""
    if sha is None or path is None or not bk.settings.mirror_xet:
        return

    def run() -> None:
        from urllib.parse import quote

        from cove.services.xet_maintenance import convert_lfs_object

        m = None
        try:
            with bk.db.session() as db:
                if (repo := db.get(Repo, repo_pk)) is not None:
                    m = lfs_source(bk, repo.storage_key)
            if m is None or not available():
                return
            url = f"{upstream(bk)}/{PREFIX[m['type']]}{m['id']}/resolve/{sha}/{quote(path)}"
            theirs = client(bk).head(url, follow_redirects=False).headers.get("x-xet-hash")
            if not theirs:
                return  # the upstream serves it as classic LFS: so does the mirror
            ours = convert_lfs_object(bk, repo_pk=repo_pk, oid=oid)
            if ours != theirs:
                log.warning("mirror: %s chunked here to Xet hash %s, the upstream's is %s", path, ours, theirs)
        except httpx.TransportError:
            return
        except Exception:  # noqa: BLE001 - the file is served over plain HTTP as before
            log.exception("mirror: serving %s of %s over Xet failed", path, m)

    _background("xet", run)


# -- marks, read-only, listing, the schedule ----------------------------------------------------------------


def mirrored(db: Session, repo: Repo) -> MirroredRepo | None:
    return db.get(MirroredRepo, repo.id)


def refuse_write(db: Session, repo: Repo, what: str) -> None:
    """403 for a local write to what a mirror copies from the upstream (its discussions)."""
    if (row := mirrored(db, repo)) is not None:
        raise Forbidden(f"{repo.repo_id} is a read-only mirror of {row.upstream}: {what} on the upstream hub")


def info_json(db: Session, repo: Repo) -> dict | None:
    """The `mirror` field of a mirrored repo's info (None for an ordinary repo)."""
    row = mirrored(db, repo)
    if row is None:
        return None
    return {"upstream": row.upstream, "syncedAt": row.synced_at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
            if row.synced_at else None}


def add_pattern(db: Session, pattern: str) -> bool:
    if db.get(MirrorPattern, pattern) is not None:
        return False
    db.add(MirrorPattern(pattern=pattern))
    return True


def remove_pattern(db: Session, pattern: str) -> bool:
    row = db.get(MirrorPattern, pattern)
    if row is None:
        return False
    db.delete(row)
    return True


def _upstream_ids(bk: Backends, pattern: str) -> list[tuple[str, str]]:
    """Upstream repos a pattern names: itself when it has no wildcard, else the listing of its namespace."""
    repo_type, rest = split_qualified(pattern)
    if not any(c in rest for c in "*?["):
        return [(repo_type, rest)]
    ns = rest.split("/", 1)[0]
    if any(c in ns for c in "*?["):
        return []
    r = get(bk, f"{upstream(bk)}/api/{PLURAL[repo_type]}", params={"author": ns, "limit": 1000})
    if r.status_code != 200:
        return []
    ids = [str(x.get("id", "")) for x in r.json() if isinstance(x, dict)]
    return [(repo_type, i) for i in ids if fnmatch.fnmatchcase(i.lower(), rest.lower())]


def sync(bk: Backends, only: str | None = None, *, going: Callable[[], bool] | None = None) -> list[str]:
    """Mirror and bring up to date the repos the `cove mirror add` patterns name (or `only`); returns what
    changed. An unreachable upstream ends the pass early, quietly; so does `going()` turning False (checked
    before each repo: the scheduled pass lost its lease, or the process is stopping)."""
    from cove.services import access

    done: list[str] = []
    with bk.db.session() as db:
        pats = [only] if only else list(db.scalars(select(MirrorPattern.pattern)))
        local = [(r.id, r.storage_key, qualified(r.type, r.repo_id)) for r in
                 db.scalars(select(Repo).join(MirroredRepo, MirroredRepo.repo_pk == Repo.id))]
    for pat in pats:
        try:
            for repo_type, repo_id in _upstream_ids(bk, pat):
                if going is not None and not going():
                    return done
                made = None
                with bk.db.session() as db:
                    if access.find_repo(db, repo_type, repo_id) is not None:
                        continue
                    with single(bk, f"repo\0{repo_type}\0{repo_id.lower()}"):
                        if access.find_repo(db, repo_type, repo_id) is None and (
                                repo := mirror_repo(db, bk, repo_type, repo_id)) is not None:
                            made = (repo.id, repo.storage_key)
                            db.commit()
                if made is not None:
                    done.append(qualified(repo_type, repo_id))
                    copy_discussions(bk, *made)
        except Unreachable:
            return done
        for pk, key, name in local:
            if going is not None and not going():
                return done
            if fnmatch.fnmatchcase(name.lower(), pat.lower()) and sync_repo(bk, pk, key, force=True,
                                                                          wait_discussions=True):
                done.append(name)
            if not available():
                return done
    return done


def sync_once(bk: Backends, *, stop: threading.Event | None = None, due: bool = True) -> list[str] | None:
    """One scheduled pass (`sync`) if this process wins the fleet's lease on the schedule (None: another process
    holds it, or the next pass is not due yet). While the pass runs a heartbeat renews the claim every quarter
    of `mirror_sync_lease_ttl`, so a long ``git fetch`` keeps it; a process that dies mid-pass renews no more,
    and another takes the job over once the claim runs out. The next pass is due `mirror_sync_interval` after
    this one ends; a pass cut short (lease lost, `stop` set) leaves it due now, for whichever process is next."""
    s = bk.settings
    holder = leases.holder_name()
    if not leases.claim(bk.db, SYNC_JOB, holder, ttl=s.mirror_sync_lease_ttl, due=due):
        return None
    ended, held = threading.Event(), [True]

    def beat() -> None:
        while not ended.wait(s.mirror_sync_lease_ttl / 4):
            try:
                held[0] = held[0] and leases.renew(bk.db, SYNC_JOB, holder, ttl=s.mirror_sync_lease_ttl)
            except Exception:  # noqa: BLE001 - a database hiccup: the next beat tries again before the claim ends
                log.exception("mirror: renewing the sync lease failed")
            if not held[0]:
                log.warning("mirror: the scheduled sync lost its lease; ending the pass")
                return

    def going() -> bool:
        return held[0] and not (stop is not None and stop.is_set())

    heart = threading.Thread(target=beat, name="cove-mirror-sync-lease", daemon=True)
    heart.start()
    began, done, whole = time.monotonic(), None, False
    try:
        done = sync(bk, going=going)
        whole = going()
        return done
    finally:
        ended.set()
        heart.join(10)
        report = None if done is None else {"changed": done, "seconds": round(time.monotonic() - began, 3),
                                            "whole": whole}
        leases.release(bk.db, SYNC_JOB, holder, next_in=s.mirror_sync_interval if whole else None, report=report)


def run_with(app, bk: Backends) -> None:  # noqa: ANN001
    """Install the miss hook for this process and, with an upstream, run the `cove mirror add` schedule: every
    few seconds (half the interval, 30 s at most) look whether the fleet's next pass is due and, if this
    process wins the lease, run it (`sync_once`) — one process of a fleet syncs at a time, once per interval."""
    install(bk)
    interval = bk.settings.mirror_sync_interval
    if not enabled(bk) or interval <= 0:
        return
    poll = min(interval / 2, 30.0)

    @contextlib.asynccontextmanager
    async def syncing(_a):  # noqa: ANN001, ANN202
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(poll):
                try:
                    sync_once(bk, stop=stop)
                except Exception:  # noqa: BLE001 - the schedule goes on
                    log.exception("mirror: scheduled sync failed")

        async with lifespan.thread_running("cove-mirror-sync", loop, stop):
            yield

    lifespan.alongside(app, syncing)
