"""The pre-receive hook on the shared data folder names no process's interpreter (issue 17 item 10): each
`cove serve` passes its own in COVE_HOOK_PYTHON, so processes on other hosts or releases share one script."""

from __future__ import annotations

import sys

from tests.git.conftest import repo_url


def test_hook_runs_the_serving_process_python_and_names_none(git, alice, api, repo_factory, server, tmp_path):
    repo_id = repo_factory("hookpy")
    work = tmp_path / "w"
    git("clone", "-q", repo_url(repo_id, user=alice), work)
    (work / "w.bin").write_text(f"version https://git-lfs.github.com/spec/v1\noid sha256:{'ef' * 32}\nsize 9\n")
    git.commit_all(work, "pointer to nothing")
    proc = git("push", "--no-verify", "origin", "main", cwd=work, check=False)
    assert "never uploaded" in proc.stderr  # the hook ran, with the server's interpreter
    script = (server.data / "git-hooks" / "pre-receive").read_text()
    assert sys.executable not in script and "/" not in script.splitlines()[1].split()[1]
    git("reset", "-q", "--hard", "origin/main", cwd=work)
    (work / "w.txt").write_text("plain\n")
    git.commit_all(work, "plain file")
    git("push", "origin", "main", cwd=work)
    assert "w.txt" in api.list_repo_files(repo_id)
