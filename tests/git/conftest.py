"""The real `git` and `git-lfs` binaries against the live server: an isolated HOME, URLs with credentials."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ENDPOINT, PORT, User

if shutil.which("git") is None or shutil.which("git-lfs") is None:
    pytest.skip("git and git-lfs are needed for these tests", allow_module_level=True)

PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def repo_url(repo_id: str, *, repo_type: str = "model", user: User | None = None, token: str | None = None,
             suffix: str = "") -> str:
    """``http://[user:token@]host/[datasets/|spaces/]ns/name[.git]``."""
    auth = ""
    if user is not None:
        auth = f"{user.name}:{token or user.token}@"
    return f"http://{auth}127.0.0.1:{PORT}/{PREFIX[repo_type]}{repo_id}{suffix}"


@dataclass
class Git:
    """Runs git with a private HOME (git-lfs installed there) and no prompts."""

    env: dict[str, str]

    def __call__(self, *args: str | Path, cwd: Path | None = None, check: bool = True,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(["git", *map(str, args)], cwd=cwd, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def out(self, *args: str | Path, cwd: Path | None = None) -> str:
        return self(*args, cwd=cwd).stdout.strip()

    def commit_all(self, cwd: Path, message: str) -> str:
        self("add", "-A", cwd=cwd)
        self("commit", "-q", "-m", message, cwd=cwd)
        return self.out("rev-parse", "HEAD", cwd=cwd)


@pytest.fixture(scope="session")
def git_home(tmp_path_factory: pytest.TempPathFactory, server) -> dict[str, str]:
    home = tmp_path_factory.mktemp("git-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.pop("SSH_ASKPASS", None)  # no prompts of any kind: a missing credential fails at once
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), GIT_TERMINAL_PROMPT="0",
               GIT_CONFIG_NOSYSTEM="1", LC_ALL="C")
    git = Git(env)
    git("config", "--global", "user.name", "Test User")
    git("config", "--global", "user.email", "test@example.com")
    git("config", "--global", "init.defaultBranch", "main")
    git("config", "--global", "advice.detachedHead", "false")
    git("lfs", "install")
    return env


@pytest.fixture
def git(git_home: dict[str, str]) -> Git:
    return Git(git_home)


__all__ = ["ENDPOINT", "Git", "repo_url"]
