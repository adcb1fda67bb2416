"""Upload temp files that outlived their request (a killed server, a client that vanished): swept away.

Uploads are written to temp files first (`blobs/.tmp`, `tmp/` and its `tmp/multipart/<oid>/` parts) and
renamed into place once verified; a process killed mid-upload leaves them behind. Each serving process
holds a shared lock on `data/serve.lock`. At start-up, a process that can take that lock exclusively
knows no other server uses the data folder, and removes every temp file; otherwise, and then every
`tmp_sweep_interval` seconds, only those untouched for `tmp_max_age` seconds go, swept by one process at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import IO

from cove.settings import Settings

log = logging.getLogger("cove.tempfiles")

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: age-based sweeps only
    fcntl = None  # type: ignore[assignment]


def temp_roots(settings: Settings) -> list[Path]:
    """Folders that hold nothing but temp files."""
    return [settings.blobs_dir / ".tmp", settings.data / "tmp"]


def sweep(settings: Settings, cutoff: float) -> tuple[int, int]:
    """Remove temp files last modified before `cutoff` (a `time.time()`), and the folders they leave empty;
    (files removed, bytes freed)."""
    files = freed = 0
    for root in temp_roots(settings):
        if not root.is_dir():
            continue
        for folder, dirs, names in os.walk(root, topdown=False):
            for name in names:
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove
                    st = os.lstat(path)
                    if st.st_mtime < cutoff:
                        os.unlink(path)
                        files += 1
                        freed += st.st_size
            for name in dirs:
                with contextlib.suppress(OSError):  # not empty: still in use
                    os.rmdir(os.path.join(folder, name))
    if files:
        log.warning("removed %d leftover upload temp file(s), %d bytes", files, freed)
    return files, freed


def startup_sweep(settings: Settings) -> IO | None:
    """Sweep at start-up and return the held `serve.lock` (keep it open while serving; None: no locking)."""
    started = time.time()
    if fcntl is None:
        sweep(settings, started - settings.tmp_max_age)
        return None
    settings.data.mkdir(parents=True, exist_ok=True)
    lock = open(settings.data / "serve.lock", "a+b")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        alone = True
    except OSError:
        alone = False
    # Alone: whatever is in the temp folders was left by a process that is gone. Files made after
    # `started` can only be this process's own (none yet) or a server that started after us.
    sweep(settings, started if alone else started - settings.tmp_max_age)
    _share(lock, settings.startup_lock_timeout_s)  # from now on, others starting up know we are here
    return lock


def _share(lock: IO, timeout: float) -> None:
    """Take the shared lock, waiting at most `timeout` seconds for a process doing its start-up sweep (which holds
    it exclusively); past that, start anyway and take it in the background as soon as the sweep ends (files
    made from now on are newer than that sweep's cutoff, so it leaves them alone)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
    log.warning("%s is held by another process's start-up sweep for more than %g s: starting anyway",
                lock.name, timeout)
    threading.Thread(target=fcntl.flock, args=(lock, fcntl.LOCK_SH), name="cove-serve-lock", daemon=True).start()


def sweep_alone(settings: Settings) -> tuple[int, int] | None:
    """`sweep` of files older than `tmp_max_age`, by one process of those sharing the data folder at a time
    (`flock` of `tmp-sweep.lock`, not waited for); None: another process is sweeping."""
    if fcntl is None:
        return sweep(settings, time.time() - settings.tmp_max_age)
    with open(settings.data / "tmp-sweep.lock", "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        return sweep(settings, time.time() - settings.tmp_max_age)


async def sweep_forever(settings: Settings) -> None:
    """Every `tmp_sweep_interval` seconds, remove temp files older than `tmp_max_age` (`sweep_alone`)."""
    while True:
        await asyncio.sleep(settings.tmp_sweep_interval)
        try:
            await asyncio.to_thread(sweep_alone, settings)
        except Exception:  # noqa: BLE001 - a failed sweep must not stop the next one
            log.exception("temp file sweep failed")
