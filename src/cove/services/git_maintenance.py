"""Git maintenance off the request path: `git gc` (pack-refs, repack into one pack, unreachable objects into a
cruft pack, prune past a grace period) for repos that gathered loose objects or packs.

- Exactly one process of a fleet runs a pass at a time: the job is a lease row (`cove.services.leases`), due
  every `git_maintenance_interval` seconds fleet-wide; a pass renews its claim as it goes.
- Never while a commit, ref update or push holds the repo: a repo is maintained only under
  `GitRepoStore.maintenance_lock` (exclusive, non-blocking; writers hold it shared); a busy repo is skipped
  until the next pass, and writers arriving during its gc wait for it.
- Objects written just before their ref moves (a commit in progress) are younger than `git_prune_grace_s`,
  so they are never pruned.
- Each repo's loose objects, packs and dangling commits are counted before and after (the pass's report).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from cove import lifespan
from cove.services import leases

if TYPE_CHECKING:
    from cove.backends import Backends

log = logging.getLogger("cove.git")
JOB = "git-maintenance"
#: Seconds a pass's claim lasts without renewal (a holder that died frees the job after this).
LEASE_TTL = 300.0


@dataclass
class RepoStats:
    """What one bare repo holds, as `git count-objects -v`, `git for-each-ref` and `git fsck` count it."""

    loose_objects: int = 0
    loose_kib: int = 0
    packs: int = 0
    packed_objects: int = 0
    pack_kib: int = 0
    refs: int = 0
    dangling_commits: int | None = None  # None: not counted


def _git(path: Path, *args: str, timeout: float | None = None) -> str:
    return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, check=True,
                          timeout=timeout, env={**os.environ, "GIT_DIR": str(path)}).stdout


def repo_stats(path: Path, *, dangling: bool = True) -> RepoStats:
    """Count a repo's objects and refs (`dangling`: also the commits no ref reaches, a `git fsck`)."""
    counts = dict(line.split(": ", 1) for line in _git(path, "count-objects", "-v").splitlines() if ": " in line)
    st = RepoStats(loose_objects=int(counts.get("count", 0)), loose_kib=int(counts.get("size", 0)),
                   packs=int(counts.get("packs", 0)), packed_objects=int(counts.get("in-pack", 0)),
                   pack_kib=int(counts.get("size-pack", 0)))
    st.refs = len(_git(path, "for-each-ref", "--format=%(refname)").splitlines())
    if dangling:
        out = subprocess.run(["git", "fsck", "--connectivity-only", "--dangling", "--no-reflogs", "--no-progress"],
                             cwd=path, capture_output=True, text=True, env={**os.environ, "GIT_DIR": str(path)})
        st.dangling_commits = sum(1 for line in out.stdout.splitlines() if line.startswith("dangling commit "))
    return st


def needs_maintenance(path: Path, *, loose_objects: int, max_packs: int) -> bool:
    """About `loose_objects` loose objects or more, estimated as `git gc --auto` does (one of the 256 object
    folders, times 256), or more than `max_packs` packs. `loose_objects` 0: any loose object (an exact count)."""
    objects = path / "objects"
    with contextlib.suppress(OSError):
        if sum(1 for n in os.listdir(objects / "pack") if n.endswith(".pack")) > max_packs:
            return True
    if loose_objects <= 0:
        for sub in (f"{i:02x}" for i in range(256)):
            with contextlib.suppress(OSError):
                if any(True for _ in os.scandir(objects / sub)):
                    return True
        return False
    try:
        sample = sum(1 for n in os.listdir(objects / "17") if len(n) == 38)
    except OSError:
        return False
    return sample * 256 >= loose_objects


def maintain_repo(path: Path, store: Any, key: str, *, prune_grace_s: float,  # noqa: ANN401
                  count: bool = True, timeout: float | None = 3600) -> dict[str, Any]:
    """`git gc` on one repo under its maintenance lock; {"busy": True} when a writer holds it."""
    with store.maintenance_lock(key) as held:
        if not held:
            return {"busy": True}
        _clear_stale_packed_refs_lock(path, getattr(store, "stale_lock_s", 30.0))
        before = repo_stats(path, dangling=count)
        began = time.monotonic()
        prune = "now" if prune_grace_s <= 0 else f"{int(prune_grace_s)}.seconds.ago"
        _git(path, "-c", "gc.autoDetach=false", "-c", "gc.cruftPacks=true", "-c", "gc.writeCommitGraph=true",
             "gc", "--quiet", f"--prune={prune}", timeout=timeout)
        seconds = time.monotonic() - began
        after = repo_stats(path, dangling=count)
    return {"busy": False, "seconds": round(seconds, 3), "before": asdict(before), "after": asdict(after)}


def _clear_stale_packed_refs_lock(path: Path, max_age: float) -> None:
    """A `packed-refs.lock` left by a killed gc or ref deletion would fail every later one; under the exclusive
    maintenance lock no Cove writer is running, so one older than `max_age` is left by a crash."""
    lock = path / "packed-refs.lock"
    with contextlib.suppress(FileNotFoundError):
        age = time.time() - lock.stat().st_mtime
        if age > max_age:
            lock.unlink()
            log.warning("cleared stale git lock %s (%.0f s old)", lock, age)


@dataclass
class PassReport:
    repos: int = 0
    maintained: int = 0
    busy: int = 0
    failed: int = 0
    seconds: float = 0.0
    before: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)

    def add(self, r: dict[str, Any]) -> None:
        for side in ("before", "after"):
            total = getattr(self, side)
            for k, v in r[side].items():
                total[k] = total.get(k, 0) + (v or 0)


def run_pass(bk: Backends, *, stop: threading.Event | None = None, force: bool = False,
             on_progress: Any = None, batch: int = 500, duty: float | None = None) -> PassReport:  # noqa: ANN401
    """Maintain every repo that needs it (`force`: every repo), walking the repo table in id order a batch at a
    time; after each repo it rests `duty` times as long as the repo took (the git work yields to requests)."""
    from cove.db.tables import Repo

    s = bk.settings
    duty = s.git_maintenance_duty if duty is None else duty
    stop = stop or threading.Event()
    report, began, last = PassReport(), time.monotonic(), 0
    while not stop.is_set():
        with bk.db.session() as db:
            rows = db.execute(select(Repo.id, Repo.storage_key).where(Repo.id > last)
                              .order_by(Repo.id).limit(batch)).all()
        if not rows:
            break
        last = rows[-1][0]
        for _, key in rows:
            if stop.is_set():
                break
            report.repos += 1
            path = bk.repos.path(key)
            if not path.is_dir() or not (force or needs_maintenance(
                    path, loose_objects=s.git_gc_loose_objects, max_packs=s.git_max_packs)):
                continue
            t0 = time.monotonic()
            try:
                r = maintain_repo(path, bk.repos, key, prune_grace_s=s.git_prune_grace_s)
            except (OSError, subprocess.SubprocessError) as exc:
                report.failed += 1
                log.error("git maintenance of %s failed: %s", path, getattr(exc, "stderr", None) or exc)
                continue
            if r["busy"]:
                report.busy += 1
                continue
            report.maintained += 1
            report.add(r)
            log.info("git maintenance of %s: loose objects %d → %d, packs %d → %d, dangling commits %s → %s (%.2f s)",
                     path, r["before"]["loose_objects"], r["after"]["loose_objects"], r["before"]["packs"],
                     r["after"]["packs"], r["before"]["dangling_commits"], r["after"]["dangling_commits"],
                     r["seconds"])
            if on_progress is not None:
                on_progress()
            stop.wait(duty * (time.monotonic() - t0))
    report.seconds = round(time.monotonic() - began, 3)
    return report


def run_once(bk: Backends, *, stop: threading.Event | None = None, due: bool = True, force: bool = False,
             duty: float | None = None) -> PassReport | None:
    """One pass if this process wins the job (None: another process holds it, or it is not due yet)."""
    holder = leases.holder_name()
    if not leases.claim(bk.db, JOB, holder, ttl=LEASE_TTL, due=due):
        return None
    renewed = [time.monotonic()]

    def keep() -> None:
        if time.monotonic() - renewed[0] > LEASE_TTL / 5:
            leases.renew(bk.db, JOB, holder, ttl=LEASE_TTL)
            renewed[0] = time.monotonic()

    report = None
    try:
        report = run_pass(bk, stop=stop, force=force, on_progress=keep, duty=duty)
        return report
    finally:
        leases.release(bk.db, JOB, holder, next_in=bk.settings.git_maintenance_interval,
                       report=asdict(report) if report is not None else None)


def run_with(app: Any, bk: Backends) -> None:  # noqa: ANN401
    """For the app's lifetime, look every min(interval, 60 s) whether the fleet's next pass is due and, if this
    process wins the lease, run it in a background thread. `git_maintenance_interval` 0: never."""
    interval = float(bk.settings.git_maintenance_interval)
    if interval <= 0:
        return
    poll = min(interval, 60.0)

    @contextlib.asynccontextmanager
    async def maintaining(_a: Any):  # noqa: ANN202, ANN401
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(poll):
                try:
                    report = run_once(bk, stop=stop)
                except Exception:  # noqa: BLE001 - the next poll tries again
                    log.exception("git maintenance pass stopped")
                    continue
                if report is not None and report.maintained:
                    log.info("git maintenance pass: %d of %d repos maintained, %d busy, %d failed, "
                             "loose objects %d → %d (%.1f s)", report.maintained, report.repos, report.busy,
                             report.failed, report.before.get("loose_objects", 0),
                             report.after.get("loose_objects", 0), report.seconds)

        async with lifespan.thread_running("cove-git-maintenance", loop, stop):
            yield

    lifespan.alongside(app, maintaining)


def _percentiles(values: list[int]) -> dict[str, int]:
    if not values:
        return {"p50": 0, "p90": 0, "p99": 0, "max": 0, "total": 0}
    v = sorted(values)

    def at(q: float) -> int:
        return v[min(len(v) - 1, int(q * len(v)))]

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": v[-1], "total": sum(v)}


def survey(bk: Backends, *, dangling: bool = False) -> dict[str, Any]:
    """What the hub's git repos hold (every `*.git` folder under the repos root): how many repos, and per repo
    refs, objects (loose and packed), packs and disk use, as percentiles and totals."""
    began = time.monotonic()
    per: dict[str, list[int]] = {k: [] for k in ("refs", "objects", "loose_objects", "packs", "kib")}
    dangling_total, unreadable = 0, 0
    for path in sorted(bk.repos.root.glob("*/*.git")):
        try:
            st = repo_stats(path, dangling=dangling)
        except (OSError, subprocess.SubprocessError):
            unreadable += 1
            continue
        per["refs"].append(st.refs)
        per["objects"].append(st.loose_objects + st.packed_objects)
        per["loose_objects"].append(st.loose_objects)
        per["packs"].append(st.packs)
        per["kib"].append(st.loose_kib + st.pack_kib)
        dangling_total += st.dangling_commits or 0
    out: dict[str, Any] = {"repos": len(per["refs"]), "unreadable": unreadable,
                           **{k: _percentiles(v) for k, v in per.items()}}
    if dangling:
        out["dangling_commits"] = dangling_total
    out["seconds"] = round(time.monotonic() - began, 2)
    return out
