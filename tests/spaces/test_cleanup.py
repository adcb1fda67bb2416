"""Spaces clean-up (issue 13): logs are bounded, and environments no Space used for a while are removed. The
supervisor's side (a deleted Space's logs and working copies, a stale environment at start) is in
test_spaces_run.py, against a real `cove serve`."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

from cove.settings import Settings
from cove.spaces.build import USED, cache_dir, collect, prune_cache, touch
from cove.spaces.logs import SpaceLog
from cove.spaces.sandbox import chown_tree


def test_a_log_keeps_its_newest_lines_under_its_cap(tmp_path: Path) -> None:
    log = SpaceLog(tmp_path / "run.log", max_bytes=4096)
    for i in range(2000):
        log.write(f"line {i:05d} of a chatty app\n")
    data = (tmp_path / "run.log").read_bytes()
    assert len(data) <= 4096
    lines = data.decode().splitlines()
    assert lines[-1] == "line 01999 of a chatty app"
    assert all(line.startswith("line ") and line.endswith(" app") for line in lines)  # cut at a line start
    assert "line 00000" not in data.decode()
    assert log.tail(1) == "line 01999 of a chatty app"


def _env(root: Path, key: str, age: float, used: float | None = None) -> Path:
    env = root / "envs" / key
    (env / "bin").mkdir(parents=True)
    (env / ".cove-ok").write_text("gradio\n")
    then = time.time() - age
    if used is not None:
        (env / USED).touch()
        os.utime(env / USED, (time.time() - used, time.time() - used))
    os.utime(env, (then, then))
    return env


def test_environments_unused_for_their_ttl_are_removed(tmp_path: Path) -> None:
    day = 86400
    stale = _env(tmp_path, "a" * 32, age=30 * day, used=20 * day)
    recent = _env(tmp_path, "b" * 32, age=30 * day, used=60)  # built long ago, used a minute ago
    running = _env(tmp_path, "c" * 32, age=30 * day, used=30 * day)  # a Space runs from it
    new = _env(tmp_path, "d" * 32, age=10)  # just built, no use noted yet
    building = tmp_path / "envs" / ".build-x"
    building.mkdir()
    removed = collect(tmp_path, {running.name}, ttl=7 * day)
    assert removed == [stale.name]
    assert not stale.exists() and recent.exists() and running.exists() and new.exists() and building.exists()
    assert not [p for p in (tmp_path / "envs").iterdir() if p.name.startswith(".gc-")]
    touch(running)  # marked used: kept by the next collection even when no longer named in use
    assert collect(tmp_path, set(), ttl=7 * day) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the build uid runs uv")
def test_the_wheel_cache_is_pruned_as_the_build_uid() -> None:
    """`uv cache prune` (the clean-up's) removes what nothing in the cache refers to; the cache stays the build
    uid's."""
    root = Path(f"/tmp/cove-spaces-test-{uuid.uuid4().hex[:8]}")  # reachable by the build uid (not pytest's 0700)
    root.mkdir(mode=0o755)
    try:
        settings = Settings(data=root / "data", spaces_root=root)
        cache = cache_dir(settings)
        dangling = cache / "archive-v0" / "0123456789abcdef"
        dangling.mkdir(parents=True)
        (dangling / "f.py").write_text("x = 1\n")
        chown_tree(cache, settings.spaces_uid_base)
        summary = prune_cache(settings)
        assert summary is not None and summary.startswith("Removed"), summary
        assert not dangling.exists() and cache.is_dir()
        assert cache.stat().st_uid == settings.spaces_uid_base
    finally:
        shutil.rmtree(root, ignore_errors=True)
