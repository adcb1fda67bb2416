"""The supervisor: one per data folder (a file lock), started with `cove serve`, off the request path.

Every `spaces_poll_interval` it compares each Space's ``main`` with the commit it last deployed, and deploys a
new one in a worker thread: read the config, build (the old version keeps serving, stage ``RUNNING_BUILDING``),
start, wait until it answers HTTP, then switch the proxy over and stop the old one. A failed build or start
leaves the old version serving and the stage saying why. A crashed app is restarted with backoff; more than
`MAX_CRASHES` within `CRASH_WINDOW` seconds ends in ``RUNTIME_ERROR`` with its log tail. The state lives in
``space_states``, so a restart of Cove brings back the Spaces that were running; API calls (restart, pause, wake)
only write that table, so any worker process may take them.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from cove import lifespan
from cove.backends import Backends
from cove.db.tables import Repo, SpaceState, SpaceVar, utcnow
from cove.spaces import config as cfg
from cove.spaces import secrets
from cove.spaces.build import BuildFailed
from cove.spaces.logs import SpaceLog
from cove.spaces.runner import AppSpec, Runner, RunningApp
from cove.spaces.sandbox import can_sandbox, reachable

log = logging.getLogger("cove.spaces")

#: Built-in Spaces that are served as files only (their apps need the `evaluate` library).
SKIP_NAMESPACES = ("evaluate-metric",)
MAX_CRASHES = 3
CRASH_WINDOW = 300.0
START_TRIES = 3
FAILED = (cfg.BUILD_ERROR, cfg.CONFIG_ERROR, cfg.RUNTIME_ERROR, cfg.NO_APP_FILE)
#: Seconds between clean-ups (`collect`): files of deleted Spaces, environments unused for `spaces_env_ttl`, the
#: wheel cache pruned.
GC_INTERVAL = 600.0


def app_prefix(repo_id: str) -> str:
    """The public path a Space's app is served under."""
    return f"/spaces/{repo_id}/app"


class AppFailed(Exception):
    pass


@dataclass
class Slot:
    repo_pk: int
    repo_id: str
    app: RunningApp | None = None
    spec: AppSpec | None = None
    built: object = None
    target: str | None = None  # the commit the last deploy was for
    busy: bool = False
    crashes: list[float] = field(default_factory=list)


class SpaceManager:
    def __init__(self, bk: Backends, runner: Runner | None = None) -> None:
        from cove.spaces.local import LocalRunner

        self.bk = bk
        self.settings = bk.settings
        self.runner = runner or LocalRunner(bk.settings)
        self.slots: dict[int, Slot] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="space-deploy")
        self.thread: threading.Thread | None = None
        self._lockfile = None
        self.problem: str | None = None
        self._collected = 0.0
        self._pruning: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> bool:
        """Become this data folder's supervisor (False: another process is, or Spaces can't run here)."""
        root = self.settings.spaces_dir
        self.problem = can_sandbox()
        if self.problem is None and not reachable(root):
            self.problem = (f"The Spaces folder {root} is under a folder other users can't enter; set "
                            f"COVE_SPACES_ROOT to a folder the apps' uids can reach.")
        if self.problem:
            log.warning("Spaces will not run: %s", self.problem)
            return False
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        fh = open(root / "supervisor.lock", "w")  # noqa: SIM115 - held for the process's lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        self._lockfile = fh
        data = self.settings.data.resolve()
        if data.stat().st_uid == os.geteuid():
            data.chmod(0o700)  # no app uid may enter the data folder
        for leftover in ("checkouts", "apps"):
            shutil.rmtree(root / leftover, ignore_errors=True)
        from cove.spaces.build import sweep

        sweep(root)
        with self.bk.db.session() as db:
            for st in db.scalars(select(SpaceState).where(SpaceState.upstream.is_not(None))):
                st.upstream = None  # the processes of a previous run are gone
        self.thread = threading.Thread(target=self._loop, name="space-supervisor", daemon=True)
        self.thread.start()
        return True

    def stop(self) -> None:
        """Stop every app (their rows keep `wanted`, so the next start brings them back)."""
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(10)
        self.pool.shutdown(wait=False, cancel_futures=True)
        with self.lock:
            apps = [s.app for s in self.slots.values() if s.app is not None]
        for app in apps:
            with contextlib.suppress(Exception):
                app.stop(5)
        if self._lockfile is not None:
            with contextlib.suppress(Exception), self.bk.db.session() as db:
                for st in db.scalars(select(SpaceState).where(SpaceState.upstream.is_not(None))):
                    st.upstream = None
            self._lockfile.close()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                if time.monotonic() - self._collected > GC_INTERVAL or not self._collected:
                    self._collected = time.monotonic()
                    self.collect()
                self.tick()
            except Exception:  # noqa: BLE001 - the supervisor must outlive any one Space's trouble
                log.exception("Spaces supervisor tick failed")
            self.stopping.wait(self.settings.spaces_poll_interval)

    def collect(self) -> None:
        """Remove the logs and working copies of Spaces that no longer exist, and the environments no Space has
        used for `spaces_env_ttl` seconds (those of running or built Spaces are marked used now); prune the wheel
        cache (`build.prune_cache`, in a thread of its own)."""
        from cove.spaces import build

        with self.bk.db.session() as db:
            spaces = {str(pk) for pk in db.scalars(select(Repo.id).where(Repo.type == "space"))}
        for base in (self.settings.data / "space-logs", self.settings.spaces_dir / "apps"):
            for d in sorted(base.iterdir()) if base.is_dir() else []:
                if d.name not in spaces:
                    shutil.rmtree(d, ignore_errors=True)
        with self.lock:
            in_use = {Path(str(s.built)) for s in self.slots.values() if s.built is not None}
        for env in in_use:
            build.touch(env)
        ttl = self.settings.spaces_env_ttl
        if ttl > 0:
            removed = build.collect(self.settings.spaces_dir, {e.name for e in in_use}, ttl)
            if removed:
                log.info("Spaces: removed %d environments unused for %d s", len(removed), ttl)
        if self._pruning is None or not self._pruning.is_alive():  # the wheel cache: in the background
            self._pruning = threading.Thread(target=self._prune, name="space-uv-prune", daemon=True)
            self._pruning.start()

    def _prune(self) -> None:
        from cove.spaces import build

        summary = build.prune_cache(self.settings)
        if summary:
            log.info("Spaces: uv cache prune: %s", summary)

    def _forget(self, slot: Slot) -> None:
        """A deleted Space: its logs and working copies go, and the read token its app was given (`_owner_token`)
        is revoked."""
        from sqlalchemy import delete

        from cove.db.tables import Namespace, Token

        shutil.rmtree(self.settings.data / "space-logs" / str(slot.repo_pk), ignore_errors=True)
        shutil.rmtree(self.settings.spaces_dir / "apps" / str(slot.repo_pk), ignore_errors=True)
        with self.bk.db.session() as db:
            owner = db.scalar(select(Namespace.id).where(Namespace.name == slot.repo_id.split("/")[0]))
            if owner is not None:
                db.execute(delete(Token).where(Token.user_id == owner, Token.name == f"space {slot.repo_id}"[:100]))

    # -- state ----------------------------------------------------------------------------------------------
    def _set(self, repo_pk: int, **fields) -> None:  # noqa: ANN003
        with self.bk.db.session() as db:
            st = db.get(SpaceState, repo_pk)
            if st is None:
                st = SpaceState(repo_pk=repo_pk, wanted="running", last_visit=utcnow())
                db.add(st)
            for k, v in fields.items():
                setattr(st, k, v)
            st.updated_at = utcnow()

    def _logs(self, repo_pk: int) -> tuple[SpaceLog, SpaceLog]:
        base = self.settings.data / "space-logs" / str(repo_pk)
        cap = self.settings.spaces_log_bytes
        return SpaceLog(base / "build.log", cap), SpaceLog(base / "run.log", cap)

    # -- the tick -------------------------------------------------------------------------------------------
    def tick(self) -> None:
        with self.bk.db.session() as db:
            rows = db.execute(
                select(Repo.id, Repo.namespace, Repo.name, Repo.storage_key, Repo.sdk, SpaceState)
                .outerjoin(SpaceState, SpaceState.repo_pk == Repo.id)
                .where(Repo.type == "space", Repo.namespace.not_in(SKIP_NAMESPACES))).all()
        now = time.time()
        running = []
        present = {r[0] for r in rows}
        with self.lock:
            gone = [s for pk, s in self.slots.items() if pk not in present and not s.busy]
            for s in gone:
                del self.slots[s.repo_pk]
        for s in gone:  # the Space was deleted
            if s.app is not None:
                s.app.stop()
            self._forget(s)
        for pk, ns, name, key, sdk, st in rows:
            repo_id = f"{ns}/{name}"
            with self.lock:
                slot = self.slots.setdefault(pk, Slot(pk, repo_id))
                if slot.busy:
                    continue
            wanted = st.wanted if st is not None else "running"
            if wanted in ("paused", "sleeping"):
                self._halt(slot, cfg.PAUSED if wanted == "paused" else cfg.SLEEPING, st)
                continue
            head = self.bk.repos.head(key)  # the default branch (set_default_branch), not always main
            restart = st.restart if st is not None else None
            if head is None:
                if st is None or st.stage != cfg.NO_APP_FILE:
                    self._halt(slot, cfg.NO_APP_FILE, st)
                continue
            fresh = restart == "factory"
            if restart is None and slot.target == head and slot.repo_id == repo_id:
                if slot.app is not None:
                    self._watch(slot, st, now)
                    if slot.app is not None:
                        running.append((st.last_visit if st is not None else utcnow(), slot))
                continue
            if (restart is None and slot.target is None and st is not None and st.built_sha == head
                    and st.stage in FAILED):
                slot.target = head  # failed before Cove restarted: wait for a push or a restart
                continue
            slot.target, slot.repo_id, slot.busy = head, repo_id, True
            if restart is not None:
                self._set(pk, restart=None)
            self.pool.submit(self._deploy, slot, key, sdk, head, fresh)
        self._cap(running)

    def _halt(self, slot: Slot, stage: str, st: SpaceState | None) -> None:
        if slot.app is not None:
            app, slot.app = slot.app, None
            app.stop()
        slot.target = None
        if st is None or st.stage != stage or st.upstream is not None:
            self._set(slot.repo_pk, stage=stage, upstream=None, message=None)

    def _watch(self, slot: Slot, st: SpaceState | None, now: float) -> None:
        """A running app: restart it when it died, put it to sleep when idle."""
        app = slot.app
        assert app is not None
        code = app.exit_code()
        if code is not None:
            _, run_log = self._logs(slot.repo_pk)
            slot.crashes = [t for t in slot.crashes if now - t < CRASH_WINDOW] + [now]
            slot.app = None
            app.stop()
            if len(slot.crashes) > MAX_CRASHES:
                self._set(slot.repo_pk, stage=cfg.RUNTIME_ERROR, upstream=None,
                          message=f"The app exited with code {code}, {len(slot.crashes)} times in a row:\n"
                                  + run_log.tail(20))
                return
            delay = 2 ** (len(slot.crashes) - 1)
            run_log.write(f"The app exited with code {code}; restarting in {delay} s.\n")
            self._set(slot.repo_pk, stage=cfg.APP_STARTING, upstream=None)
            slot.busy = True
            self.pool.submit(self._restart, slot, delay)
            return
        sleep_after = st.sleep_time if st is not None and st.sleep_time is not None else \
            self.settings.spaces_sleep_after
        if st is not None and sleep_after > 0 and utcnow() - st.last_visit > timedelta(seconds=sleep_after):
            self.sleep(slot.repo_pk)

    def _cap(self, running: list) -> None:  # noqa: ANN001
        cap = self.settings.spaces_max_running
        if cap <= 0 or len(running) <= cap:
            return
        running.sort(key=lambda t: t[0])
        for _, slot in running[: len(running) - cap]:
            log.info("Spaces: %s sleeps (more than %d running)", slot.repo_id, cap)
            self.sleep(slot.repo_pk)

    def sleep(self, repo_pk: int) -> None:
        self._set(repo_pk, wanted="sleeping", stage=cfg.SLEEPING, upstream=None)
        with self.lock:
            slot = self.slots.get(repo_pk)
            app = slot.app if slot is not None else None
            if slot is not None:
                slot.app, slot.target = None, None
        if app is not None:
            app.stop()

    # -- deploying ------------------------------------------------------------------------------------------
    def _files(self, key: str, sha: str, dest: Path, limit: int) -> dict[str, bytes | None]:
        """Check the commit out into `dest`; answers {path: content} for the small top-level files."""
        out: dict[str, bytes | None] = {}
        total = 0
        for e in self.bk.repos.list_tree(key, sha, recursive=True) or []:
            if e.type != "file":
                continue
            target = dest / e.path
            target.parent.mkdir(parents=True, exist_ok=True)
            if e.is_lfs:
                try:
                    with self.bk.blobs.open(f"lfs/{e.lfs_oid}") as src, open(target, "wb") as fh:
                        shutil.copyfileobj(src, fh)
                except KeyError:
                    continue  # stored through Xet only: not checked out (yet)
                total += e.size or 0
            else:
                data = self.bk.repos.read_blob(key, e.oid)
                target.write_bytes(data)
                total += len(data)
                if "/" not in e.path and len(data) < (1 << 20):
                    out[e.path] = data
                    continue
            if total > limit:
                raise cfg.ConfigProblem(cfg.CONFIG_ERROR, f"The Space's files are larger than {limit} bytes")
            out.setdefault(e.path, None)
        return out

    def _env(self, repo_pk: int, repo_id: str) -> dict[str, str]:
        ns, _, name = repo_id.partition("/")
        env = {"HF_ENDPOINT": self.settings.public_endpoint, "SPACE_ID": repo_id, "SPACE_AUTHOR_NAME": ns,
               "SPACE_REPO_NAME": name, "HF_HUB_DISABLE_TELEMETRY": "1",
               "SPACE_HOST": self.settings.public_endpoint.split("://", 1)[-1] + app_prefix(repo_id)}
        from cove.spaces.origin import app_origin

        own = app_origin(self.settings, repo_id)
        if own:  # as on the Hub: the app's own host
            env["SPACE_HOST"] = own.split("://", 1)[-1]
        with self.bk.db.session() as db:
            for v in db.scalars(select(SpaceVar).where(SpaceVar.repo_pk == repo_pk)):
                if v.kind == "secret":
                    value = secrets.decrypt(self.settings.data, v.value)
                    if value is not None:
                        env[v.key] = value
                elif v.kind == "variable":
                    env[v.key] = v.value
            if "HF_TOKEN" not in env:
                token = self._owner_token(db, repo_pk)
                if token:
                    env["HF_TOKEN"] = token
        return env

    def _owner_token(self, db, repo_pk: int) -> str | None:  # noqa: ANN001 - Session
        """For a private Space of a user: a read token of that user (minted once, named after the Space, kept
        encrypted, listed with the user's tokens, replaced when revoked), so the app loads the owner's private
        models as the owner could. None for public Spaces and org Spaces (their owners add an HF_TOKEN secret)."""
        from cove.db.tables import Namespace
        from cove.services.accounts import actor_for_token, create_token

        repo = db.get(Repo, repo_pk)
        owner = db.scalar(select(Namespace).where(Namespace.name == repo.namespace)) if repo is not None else None
        if repo is None or not repo.private or owner is None or owner.kind != "user":
            return None
        row = db.get(SpaceVar, (repo_pk, "system", "HF_TOKEN"))
        if row is not None:
            token = secrets.decrypt(self.settings.data, row.value)
            actor = actor_for_token(db, token) if token else None
            if actor is not None and actor.user_id == owner.id:
                return token
        _, token = create_token(db, owner.name, role="read", name=f"space {repo.repo_id}"[:100])
        if row is None:
            row = SpaceVar(repo_pk=repo_pk, kind="system", key="HF_TOKEN")
            db.add(row)
        row.value, row.updated_at = secrets.encrypt(self.settings.data, token), utcnow()
        return token

    def _deploy(self, slot: Slot, key: str, sdk: str | None, sha: str, fresh: bool) -> None:
        checkout = self.settings.spaces_dir / "checkouts" / f"{slot.repo_pk}-{uuid.uuid4().hex[:8]}"
        build_log, run_log = self._logs(slot.repo_pk)
        serving = slot.app is not None
        try:
            checkout.mkdir(parents=True)
            files = self._files(key, sha, checkout, 2 << 30)
            config = cfg.read_config(files, sdk, allow_packages=self.settings.spaces_allow_packages)
            refused = self.runner.refuses(config)
            if refused:
                raise cfg.ConfigProblem(cfg.CONFIG_ERROR, refused)
            if config.sdk == "static":
                self._switch(slot, None, None, None, sha, f"static:{sha}")
                return
            spec = AppSpec(slot.repo_pk, slot.repo_id, sha, config, checkout, self._env(slot.repo_pk, slot.repo_id),
                           app_prefix(slot.repo_id))
            self._set(slot.repo_pk, stage=cfg.RUNNING_BUILDING if serving else cfg.BUILDING, built_sha=sha,
                      message=None)
            build_log.reset()
            build_log.write(f"===== Build of {sha[:7]} =====\n")
            started = time.monotonic()
            built = self.runner.build(spec, build_log.write, fresh=fresh)
            build_log.write(f"Build done in {time.monotonic() - started:.2f} s\n")
            self._set(slot.repo_pk, stage=cfg.RUNNING_APP_STARTING if serving else cfg.APP_STARTING)
            app = self._start_healthy(spec, built, run_log)
            slot.crashes = []
            self._switch(slot, app, spec, built, sha, app.upstream + ("" if app.strip_prefix else spec.prefix))
        except cfg.ConfigProblem as exc:
            if not serving:
                self._halt(slot, exc.stage, None)
            self._set(slot.repo_pk, stage=exc.stage, message=exc.message, built_sha=sha)
        except BuildFailed as exc:
            build_log.write(str(exc) + "\n")
            self._set(slot.repo_pk, stage=cfg.BUILD_ERROR, message=str(exc))
        except AppFailed as exc:
            self._set(slot.repo_pk, stage=cfg.RUNTIME_ERROR, message=str(exc))
        except Exception as exc:  # noqa: BLE001
            log.exception("Spaces: deploying %s@%s failed", slot.repo_id, sha[:7])
            self._set(slot.repo_pk, stage=cfg.RUNTIME_ERROR, message=f"Internal error while deploying: {exc}")
        finally:
            shutil.rmtree(checkout, ignore_errors=True)
            slot.busy = False

    def _switch(self, slot: Slot, app: RunningApp | None, spec: AppSpec | None, built: object, sha: str,
                upstream: str) -> None:
        with self.lock:
            old, slot.app, slot.spec, slot.built = slot.app, app, spec, built
        self._set(slot.repo_pk, stage=cfg.RUNNING, sha=sha, built_sha=sha, upstream=upstream, message=None)
        if old is not None:
            old.stop()

    def _start_healthy(self, spec: AppSpec, built: object, run_log: SpaceLog) -> RunningApp:
        for attempt in range(START_TRIES):
            app = self.runner.start(spec, built, run_log.write)
            deadline = time.monotonic() + self.settings.spaces_start_timeout
            while time.monotonic() < deadline and not self.stopping.is_set():
                if app.exit_code() is not None:
                    break
                if self.runner.healthy(app, spec):
                    return app
                time.sleep(0.3)
            code = app.exit_code()
            app.stop()
            if code is None:
                raise AppFailed(f"The app did not answer within {self.settings.spaces_start_timeout} s:\n"
                                + run_log.tail(20))
            if attempt + 1 < START_TRIES:
                run_log.write(f"The app exited with code {code}; trying again in {2 ** attempt} s.\n")
                time.sleep(2 ** attempt)
        raise AppFailed(f"The app exited with code {code} on start, {START_TRIES} times:\n" + run_log.tail(20))

    def _restart(self, slot: Slot, delay: float) -> None:
        """Start a crashed app again, from a fresh checkout of the commit it ran (the deploy's is gone)."""
        _, run_log = self._logs(slot.repo_pk)
        checkout = self.settings.spaces_dir / "checkouts" / f"{slot.repo_pk}-{uuid.uuid4().hex[:8]}"
        try:
            time.sleep(delay)
            assert slot.spec is not None
            with self.bk.db.session() as db:
                key = db.scalar(select(Repo.storage_key).where(Repo.id == slot.repo_pk))
            if key is None:
                raise AppFailed("The Space is gone")
            checkout.mkdir(parents=True)
            self._files(key, slot.spec.sha, checkout, 2 << 30)
            spec = replace(slot.spec, files=checkout)
            app = self._start_healthy(spec, slot.built, run_log)
            upstream = app.upstream + ("" if app.strip_prefix else spec.prefix)
            self._switch(slot, app, spec, slot.built, spec.sha, upstream)
        except AppFailed as exc:
            self._set(slot.repo_pk, stage=cfg.RUNTIME_ERROR, message=str(exc))
        except Exception as exc:  # noqa: BLE001
            log.exception("Spaces: restarting %s failed", slot.repo_id)
            self._set(slot.repo_pk, stage=cfg.RUNTIME_ERROR, message=f"Internal error while restarting: {exc}")
        finally:
            shutil.rmtree(checkout, ignore_errors=True)
            slot.busy = False

    def memory(self) -> dict[str, int | None]:
        """Resident bytes per running app (for the benchmarks and /metrics)."""
        with self.lock:
            return {s.repo_id: s.app.memory() for s in self.slots.values() if s.app is not None}


def run_with(app, bk: Backends) -> None:  # noqa: ANN001
    """Run a `SpaceManager` for the app's lifetime (inside its lifespan), and route the Spaces domain's hosts to
    the apps (`install_origin`), unless `spaces_run` is off."""
    if not bk.settings.spaces_run:
        return
    from cove.api.spaces import install_origin

    install_origin(app, bk.settings)

    def make() -> SpaceManager:
        app.state.spaces = SpaceManager(bk)
        return app.state.spaces

    lifespan.run_worker(app, make)
