"""The local sandbox: a uid of its own, resource limits, no new privileges, a scrubbed environment.

Cove runs as root (or a user allowed to change uid); each app runs as ``spaces_uid_base + repo id`` with no
supplementary groups, so it can read only what is readable by everyone, its own working copy (mode 0700) and the
environments (read-only). The data folder is made 0700, so no app can read Cove's database, repos or secrets.
"""

from __future__ import annotations

import ctypes
import os
import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_PDEATHSIG = 1
#: The only variables an app inherits from Cove's environment.
_KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")


@dataclass(frozen=True)
class Limits:
    memory: int  # bytes of address space (0: none)
    nproc: int  # processes and threads of the uid (0: none)
    cpu_seconds: int  # 0: none
    nice: int = 0


def limiter(limits: Limits) -> Callable[[], None]:
    """A `preexec_fn` that applies `limits`, sets no-new-privileges and dies with its parent."""

    def apply() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        libc.prctl(_PR_SET_PDEATHSIG, 15, 0, 0, 0)  # SIGTERM if Cove dies
        if limits.memory:
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory, limits.memory))
        if limits.nproc:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.nproc, limits.nproc))
        if limits.cpu_seconds:
            resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if limits.nice:
            os.nice(limits.nice)

    return apply


def scrubbed_env(*, home: str) -> dict[str, str]:
    """A minimal environment: a few locale/certificate variables from Cove's, nothing else (no COVE_*, tokens)."""
    env = {k: os.environ[k] for k in _KEEP if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(HOME=home, USER="space", LOGNAME="space", TMPDIR=home, PYTHONUNBUFFERED="1")
    return env


def chown_tree(path: Path, uid: int, *, mode_off: int = 0) -> None:
    """chown -R `path` to uid:uid (not following links); ``mode_off`` bits are cleared from each entry."""
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames, None]:
            p = dirpath if name is None else os.path.join(dirpath, name)
            os.lchown(p, uid, uid)
            if mode_off and not os.path.islink(p):
                st = os.lstat(p)
                os.chmod(p, st.st_mode & ~mode_off & 0o7777)


def can_sandbox() -> str | None:
    """None when this process may run apps as other uids; else why not."""
    if os.geteuid() != 0:
        return "Cove must run as root (or with CAP_SETUID) to run Spaces under their own uids."
    return None


def reachable(path: Path) -> bool:
    """Every folder above `path` lets others through (an app's uid must reach its working copy)."""
    for p in [*reversed(path.parents)]:
        try:
            if not os.stat(p).st_mode & 0o001:
                return False
        except OSError:
            return False
    return True
