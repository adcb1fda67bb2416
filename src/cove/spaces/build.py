"""A Space's Python environment: ``uv venv`` + ``uv pip install`` of its requirements and its SDK.

Environments are keyed by a hash of what goes in them (Python, requirements, SDK and version, index), so a
rebuild with unchanged requirements reuses the one built before (seconds), and Spaces with the same needs share
one. Builds run as the unprivileged build uid with the shared ``uv`` cache (only builds may write it); a finished
environment is handed to root and made read-only for the apps, so one app can't change another's packages.
"""

from __future__ import annotations

import configparser
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from cove.settings import Settings
from cove.spaces.config import SpaceConfig
from cove.spaces.sandbox import Limits, chown_tree, limiter, scrubbed_env

#: Held while an environment is picked for reuse or collected, so a reused one is never removed under a deploy.
_envs_lock = threading.Lock()
#: Seconds `prune_cache` may take (waiting for builds that hold uv's cache lock included).
PRUNE_TIMEOUT = 1800
#: The file in an environment whose mtime says when a Space last used it.
USED = ".cove-used"


class BuildFailed(Exception):
    """The environment could not be built; the message says why (the log tail)."""


def _pip_config() -> dict[str, str]:
    """pip's index options on this machine: pip.conf files (global, then user), then ``PIP_*`` variables."""
    files = ["/etc/pip.conf", "/etc/xdg/pip/pip.conf", str(Path.home() / ".pip/pip.conf"),
             str(Path.home() / ".config/pip/pip.conf")]
    if os.environ.get("PIP_CONFIG_FILE"):
        files.append(os.environ["PIP_CONFIG_FILE"])
    cp = configparser.ConfigParser()
    out: dict[str, str] = {}
    for f in files:
        try:
            cp.read(f)
        except (configparser.Error, OSError):
            continue
    for section in ("global", "install"):
        if cp.has_section(section):
            for k in ("index-url", "extra-index-url", "find-links"):
                if cp.has_option(section, k):
                    out[k] = " ".join(cp.get(section, k).split())
    for k in ("index-url", "extra-index-url", "find-links"):
        v = os.environ.get("PIP_" + k.upper().replace("-", "_"))
        if v:
            out[k] = " ".join(v.split())
    return out


def index_env(settings: Settings) -> dict[str, str]:
    """``UV_*`` variables naming the package index: the `spaces_index_*` settings, else pip's config."""
    pip = _pip_config()
    index = settings.spaces_index_url or pip.get("index-url")
    extra = settings.spaces_extra_index_urls if settings.spaces_extra_index_urls is not None \
        else pip.get("extra-index-url")
    links = settings.spaces_find_links if settings.spaces_find_links is not None else pip.get("find-links")
    env = {}
    if index:
        env["UV_DEFAULT_INDEX"] = index
    if extra:
        env["UV_INDEX"] = extra
        env["UV_INDEX_STRATEGY"] = "unsafe-best-match"  # as pip: the best version across every index
    if links:
        env["UV_FIND_LINKS"] = ",".join(links.split())
    return env


def python_for(settings: Settings, version: str | None) -> str:
    """The interpreter for an environment: ``python<version>`` when this machine has it, else the setting."""
    if version:
        for d in ("/usr/bin", "/usr/local/bin"):
            p = Path(d) / f"python{version}"
            if p.is_file():
                return str(p)
    return settings.spaces_python or ("/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable)


def requirements_for(config: SpaceConfig) -> str:
    """requirements.txt plus the SDK (pinned to `sdk_version` when the README gives one)."""
    extra = {"gradio": "gradio", "streamlit": "streamlit"}.get(config.sdk)
    lines = [config.requirements.rstrip("\n")] if config.requirements.strip() else []
    if extra:
        lines.append(f"{extra}=={config.sdk_version}" if config.sdk_version else extra)
    return "\n".join(lines) + "\n"


def env_key(python: str, requirements: str, index: dict[str, str]) -> str:
    h = hashlib.sha256()
    for part in (python, requirements, repr(sorted(index.items()))):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:32]


def sweep(root: Path) -> None:
    """Remove what builds left behind (half-built and set-aside environments); no app runs at this point."""
    for p in (root / "envs").glob(".*"):
        shutil.rmtree(p, ignore_errors=True)


def touch(env: Path) -> None:
    """Note that a Space uses `env` now (built, reused, or running from it)."""
    with contextlib.suppress(OSError):
        (env / USED).touch()


def collect(root: Path, in_use: set[str], ttl: float) -> list[str]:
    """Remove the environments no Space has used for `ttl` seconds (by their `USED` mark, else their age), except
    those named in `in_use`; answers the keys removed. They are rebuilt on demand (from the wheel cache)."""
    removed = []
    now = time.time()
    envs = root / "envs"
    for env in sorted(envs.iterdir()) if envs.is_dir() else []:
        if env.name.startswith(".") or env.name in in_use:
            continue
        with _envs_lock:
            try:
                used = max((env / USED).stat().st_mtime if (env / USED).exists() else 0, env.stat().st_mtime)
            except OSError:
                continue
            if now - used < ttl:
                continue
            aside = env.with_name(f".gc-{env.name}-{uuid.uuid4().hex[:8]}")
            try:
                env.rename(aside)  # gone for any later reuse at once; removed outside the lock
            except OSError:
                continue
        shutil.rmtree(aside, ignore_errors=True)
        removed.append(env.name)
    return removed


def cache_dir(settings: Settings) -> Path:
    """uv's wheel cache, shared by every build (`spaces_cache`, else ``<spaces root>/cache``)."""
    return Path(settings.spaces_cache).resolve() if settings.spaces_cache else settings.spaces_dir / "cache"


def prune_cache(settings: Settings) -> str | None:
    """``uv cache prune`` on the wheel cache, as the build uid (it owns the cache): removes what nothing in the
    cache refers to any more (unpacked archives no wheel entry names, buckets of older uv versions, stale
    source-build entries). Wheels still indexed stay, so later builds stay warm; environments are copies
    (``UV_LINK_MODE=copy``) and lose nothing. uv's cache lock makes it wait for builds using the cache. Answers
    uv's summary (``Removed N files (...)``), or None when there is no cache or uv failed."""
    cache = cache_dir(settings)
    if not cache.is_dir():
        return None
    uid = settings.spaces_uid_base
    env = {**scrubbed_env(home=str(cache)), "UV_CACHE_DIR": str(cache), "UV_NO_CONFIG": "1"}
    try:
        proc = subprocess.run([str(uv_binary(settings.spaces_dir)), "cache", "prune"], cwd="/", env=env,
                              user=uid, group=uid, extra_groups=[], stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=PRUNE_TIMEOUT, process_group=0)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (proc.stdout + proc.stderr).decode("utf-8", "replace").strip().splitlines()
    return (lines[-1] if lines else "") if proc.returncode == 0 else None


def uv_binary(root: Path) -> Path:
    """A copy of the ``uv`` binary the build uid may run (the one in Cove's venv may be under /root)."""
    from uv import find_uv_bin

    src = Path(find_uv_bin())
    dst = root / "bin" / "uv"
    if not dst.exists() or dst.stat().st_size != src.stat().st_size:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".uv.{uuid.uuid4().hex}")
        shutil.copy2(src, tmp)
        tmp.chmod(0o755)
        tmp.replace(dst)
    return dst


def ensure_env(settings: Settings, config: SpaceConfig, log, *, fresh: bool = False) -> Path:  # noqa: ANN001
    """The environment for `config` (built now unless one exists); `log(text)` gets the build output.
    ``fresh``: build anew and without the cache (a factory reboot). Raises `BuildFailed`."""
    root = settings.spaces_dir
    python = python_for(settings, config.python_version)
    reqs = requirements_for(config)
    index = index_env(settings)
    constraints = Path(settings.spaces_constraints).read_text() if settings.spaces_constraints else ""
    key = env_key(python, reqs + ("\0" + constraints if constraints else ""), index)
    env = root / "envs" / key
    with _envs_lock:
        reuse = (env / ".cove-ok").exists() and not fresh
        if reuse:
            touch(env)
    if reuse:
        log(f"Reusing the environment {key} (requirements unchanged).\n")
        return env
    uv = uv_binary(root)
    uid = settings.spaces_uid_base
    cache = cache_dir(settings)
    cache.mkdir(parents=True, exist_ok=True)
    os.chown(cache, uid, uid)
    cache.chmod(0o700)
    work = root / "envs" / f".build-{key}-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)
    (work / "requirements.txt").write_text(reqs)
    if constraints:  # the administrator's pins (e.g. a CPU torch), applied to every build
        (work / "constraints.txt").write_text(constraints)
        venv_extra = {"UV_CONSTRAINT": str(work / "constraints.txt")}
    else:
        venv_extra = {}
    chown_tree(work, uid)
    target = work / "venv"
    venv_env = {**scrubbed_env(home=str(work)), "UV_CACHE_DIR": str(cache), "UV_PYTHON_DOWNLOADS": "never",
                "UV_NO_CONFIG": "1", "UV_LINK_MODE": "copy", "VIRTUAL_ENV": str(target), **index, **venv_extra}
    if fresh:
        venv_env["UV_NO_CACHE"] = "1"
    log(f"Python: {python}\nRequirements:\n{reqs}" + (f"Constraints:\n{constraints}" if constraints else ""))
    limits = Limits(memory=settings.spaces_memory, nproc=settings.spaces_nproc, cpu_seconds=0, nice=10)
    deadline = time.monotonic() + settings.spaces_build_timeout
    for cmd in ([str(uv), "venv", "--quiet", "--relocatable", "--python", python, str(target)],
                [str(uv), "pip", "install", "--python", str(target / "bin" / "python"), "-r",
                 str(work / "requirements.txt")]):
        log("$ " + " ".join(Path(c).name if c == str(uv) else c for c in cmd) + "\n")
        try:
            proc = subprocess.run(cmd, cwd=work, env=venv_env, user=uid, group=uid, extra_groups=[],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  preexec_fn=limiter(limits), timeout=max(1, deadline - time.monotonic()),
                                  process_group=0)
        except subprocess.TimeoutExpired as exc:
            shutil.rmtree(work, ignore_errors=True)
            raise BuildFailed(f"The build took more than {settings.spaces_build_timeout} s") from exc
        out = proc.stdout.decode("utf-8", "replace")
        log(out)
        if proc.returncode != 0:
            shutil.rmtree(work, ignore_errors=True)
            tail = "\n".join(out.strip().splitlines()[-15:])
            raise BuildFailed(f"Build failed ({Path(cmd[1]).name} exited with {proc.returncode}):\n{tail}")
    chown_tree(target, 0, mode_off=0o022)
    (target / ".cove-ok").write_text(reqs)
    if env.exists():  # a fresh build replaces it: set the old one aside (an app may still run from it)
        with contextlib.suppress(OSError):
            env.rename(env.with_name(f".old-{key}-{uuid.uuid4().hex[:8]}"))
    with contextlib.suppress(OSError):  # another build of the same key won the race: use it
        target.rename(env)
    shutil.rmtree(work, ignore_errors=True)
    env.chmod(0o755)
    touch(env)
    log("Environment ready.\n")
    return env
