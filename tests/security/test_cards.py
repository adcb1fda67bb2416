"""Card metadata (issue 10, findings 3 and 7): one bad README value must not brick a repo or the server.

Invalid metadata is refused up front on the commit API (400 "Invalid metadata in README.md", as the Hub does)
and by `/api/validate-yaml`; a `git push` lands and is indexed as far as it is valid, the errors shown on the
repo page; the server starts with a repo whose index cannot be rebuilt; YAML aliases cannot blow up a card.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import ENDPOINT, SERVER_ENV, free_port, start_server, stop_server

BAD_CARDS = {
    "list-pipeline": "---\npipeline_tag: [a, b]\n---\n# x\n",
    "date-license": "---\nlicense: 2020-01-01\n---\n# x\n",
    "set": "---\ntags: !!set {a, b}\n---\n# x\n",
    "binary": "---\nthumbnail: !!binary aGVsbG8=\n---\n# x\n",
    "recursive": "---\ntags: &a [*a]\n---\n# x\n",
    "nan": "---\nmodel-index: [{name: m, results: [{task: {type: t}, metrics: [{type: acc, value: .nan}]}]}]\n---\n",
    "int-keys": "---\n1: one\nlibrary_name: {a: b}\n---\n# x\n",
    "not-a-mapping": "---\n- a\n- b\n---\n# x\n",
}

#: ~300 bytes of YAML that expands tenfold per level (a "billion laughs").
BOMB = "---\n" + "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 6)
) + "---\n# bomb\n"


def _hdr(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _ndjson_commit(endpoint: str, token: str, repo_id: str, files: dict[str, bytes]) -> httpx.Response:
    lines = [{"key": "header", "value": {"summary": "card"}}]
    lines += [{"key": "file", "value": {"path": p, "content": base64.b64encode(d).decode(), "encoding": "base64"}}
              for p, d in files.items()]
    body = "\n".join(json.dumps(x) for x in lines)
    return httpx.post(f"{endpoint}/api/models/{repo_id}/commit/main", content=body, timeout=60,
                      headers={**_hdr(token), "content-type": "application/x-ndjson"})


def _head(endpoint: str, token: str, repo_id: str) -> str:
    r = httpx.get(f"{endpoint}/api/models/{repo_id}/revision/main", headers=_hdr(token), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["sha"]


@pytest.mark.parametrize("case", sorted(BAD_CARDS))
def test_bad_card_refused_up_front_and_repo_stays_usable(api, alice, repo_factory, case):
    """Finding 3: the commit API answers 400 before the branch moves; the repo's info keeps working."""
    repo_id = repo_factory("card")
    before = _head(ENDPOINT, alice.token, repo_id)
    r = _ndjson_commit(ENDPOINT, alice.token, repo_id, {"README.md": BAD_CARDS[case].encode()})
    assert r.status_code == 400, (r.status_code, r.text)
    assert "Invalid metadata in README.md" in r.headers.get("x-error-message", ""), r.headers
    assert _head(ENDPOINT, alice.token, repo_id) == before  # nothing landed
    info = api.model_info(repo_id)
    assert info.sha == before

    # The stock client asks /api/validate-yaml first and raises the Hub's ValueError.
    with pytest.raises(ValueError, match="Invalid metadata in README.md"):
        api.upload_file(path_or_fileobj=BAD_CARDS[case].encode(), path_in_repo="README.md", repo_id=repo_id)
    assert api.model_info(repo_id).sha == before


def test_validate_yaml_lists_the_errors(server):
    r = httpx.post(f"{ENDPOINT}/api/validate-yaml", json={"content": BAD_CARDS["list-pipeline"], "repoType": "model"})
    assert r.status_code == 400
    errors = r.json()["errors"]
    assert errors and any("pipeline_tag" in e["message"] for e in errors), errors
    ok = httpx.post(f"{ENDPOINT}/api/validate-yaml",
                    json={"content": "---\nlicense: mit\ntags: [a, b]\nlanguage: en\n---\n# ok\n", "repoType": "model"})
    assert ok.status_code == 200 and ok.json()["errors"] == []
    # `RepoCard.validate` asks for text/plain and raises it as is.
    from huggingface_hub import RepoCard

    with pytest.raises(ValueError, match="pipeline_tag"):
        RepoCard(BAD_CARDS["list-pipeline"]).validate(repo_type="model")


def test_good_card_still_indexed(api, alice, repo_factory):
    repo_id = repo_factory("card")
    card = "---\nlicense: mit\npipeline_tag: text-classification\nlibrary_name: transformers\ntags: [t1]\n---\n# m\n"
    r = _ndjson_commit(ENDPOINT, alice.token, repo_id, {"README.md": card.encode()})
    assert r.status_code == 200, r.text
    info = api.model_info(repo_id)
    assert info.pipeline_tag == "text-classification" and info.library_name == "transformers"
    assert "license:mit" in info.tags and "t1" in info.tags
    assert info.card_data["license"] == "mit"


@pytest.mark.parametrize("config", ['{"architectures": 5}', '{"model_type": {}}', '{"architectures": [5, null]}',
                                    '{"architectures": [], "model_type": [1]}', '[1, 2]', '{"architectures": "X"}'])
def test_odd_config_never_breaks_indexing(api, alice, repo_factory, config):
    repo_id = repo_factory("cfg")
    r = _ndjson_commit(ENDPOINT, alice.token, repo_id, {"config.json": config.encode()})
    assert r.status_code == 200, r.text
    info = api.model_info(repo_id)
    assert info.sha == r.json()["commitOid"]


def _git_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", LC_ALL="C",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com")
    return env


def _git(env: dict[str, str], *args: str | Path, cwd: Path | None = None) -> str:
    proc = subprocess.run(["git", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"git {args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout.strip()


def _push_files(tmp_path: Path, endpoint: str, user, repo_id: str, files: dict[str, str]) -> str:  # noqa: ANN001
    env = _git_env(tmp_path)
    host = endpoint.removeprefix("http://")
    work = tmp_path / f"w-{uuid.uuid4().hex[:6]}"
    _git(env, "clone", "-q", f"http://{user.name}:{user.token}@{host}/{repo_id}", work)
    for path, text in files.items():
        (work / path).write_text(text)
    _git(env, "add", "-A", cwd=work)
    _git(env, "commit", "-q", "-m", "card", cwd=work)
    _git(env, "push", "-q", "origin", "HEAD:main", cwd=work)
    return _git(env, "rev-parse", "HEAD", cwd=work)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_push_of_bad_card_lands_and_is_indexed_as_far_as_valid(api, alice, repo_factory, tmp_path):
    """Finding 3 over git: the push lands, info answers, valid fields are indexed, the page shows the errors."""
    repo_id = repo_factory("push-card")
    card = ("---\nlicense: mit\nlibrary_name: mylib\npipeline_tag: [a, b]\ntags: !!set {x}\n"
            "thumbnail: !!binary aGVsbG8=\n---\n# pushed\n")
    sha = _push_files(tmp_path, ENDPOINT, alice, repo_id,
                      {"README.md": card, "config.json": '{"architectures": 5, "model_type": {}}'})
    info = api.model_info(repo_id)
    assert info.sha == sha
    assert info.library_name == "mylib" and "license:mit" in info.tags
    assert info.pipeline_tag is None
    raw = httpx.get(f"{ENDPOINT}/api/models/{repo_id}", headers=_hdr(alice.token), timeout=30).json()
    assert raw["cardData"] == {"license": "mit", "library_name": "mylib"}, raw["cardData"]
    page = httpx.get(f"{ENDPOINT}/{repo_id}", headers=_hdr(alice.token), timeout=30)
    assert page.status_code == 200
    assert "Invalid metadata in README.md" in page.text and "pipeline_tag" in page.text
    # Listing and search keep answering too.
    assert any(m.id == repo_id for m in api.list_models(author="alice", search=repo_id.split("/")[1]))


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_alias_bomb_is_capped(api, alice, repo_factory, tmp_path):
    """Finding 7: ~300 bytes of YAML aliases must not become megabytes of card JSON (nor take long)."""
    assert len(BOMB) < 400
    t0 = time.monotonic()
    r = httpx.post(f"{ENDPOINT}/api/validate-yaml", json={"content": BOMB, "repoType": "model"}, timeout=30)
    assert r.status_code == 400 and len(r.content) < 10_000, (r.status_code, len(r.content))
    repo_id = repo_factory("bomb")
    r = _ndjson_commit(ENDPOINT, alice.token, repo_id, {"README.md": BOMB.encode()})
    assert r.status_code == 400 and "Invalid metadata in README.md" in r.headers.get("x-error-message", "")
    _push_files(tmp_path, ENDPOINT, alice, repo_id, {"README.md": BOMB})
    raw = httpx.get(f"{ENDPOINT}/api/models/{repo_id}", headers=_hdr(alice.token), timeout=30)
    assert raw.status_code == 200 and len(raw.content) < 20_000, len(raw.content)
    assert time.monotonic() - t0 < 30
    # Deep nesting is capped too: no RecursionError, no huge answer.
    deep = "---\ntags: " + "[" * 5000 + "]" * 5000 + "\n---\n"
    r = httpx.post(f"{ENDPOINT}/api/validate-yaml", json={"content": deep, "repoType": "model"}, timeout=30)
    assert r.status_code == 400


def _cli(data: Path, *args: str) -> str:
    env = {**SERVER_ENV, "COVE_DATA": str(data)}
    proc = subprocess.run([sys.executable, "-m", "cove", *args], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _write_straight_into_repo(git_dir: Path, env: dict[str, str], files: dict[str, str], *, missing: str = "") -> None:
    """A commit on main made behind the server's back (as after a crash), optionally naming a missing blob."""
    env = {**env, "GIT_DIR": str(git_dir)}
    head = _git(env, "rev-parse", "refs/heads/main")
    lines = [line for line in _git(env, "ls-tree", head).splitlines()]
    for path, text in files.items():
        oid = subprocess.run(["git", "hash-object", "-w", "--stdin"], input=text, env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
        lines.append(f"100644 blob {oid}\t{path}")
    if missing:
        lines.append(f"100644 blob {'ab' * 20}\t{missing}")
    tree = subprocess.run(["git", "mktree", "--missing"], input="\n".join(lines) + "\n", env=env,
                          capture_output=True, text=True, check=True).stdout.strip()
    commit = _git(env, "commit-tree", tree, "-p", head, "-m", "behind the server's back")
    _git(env, "update-ref", "refs/heads/main", commit, head)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_server_starts_with_repos_it_cannot_index(tmp_path):
    """Finding 3 at start-up: a bad card indexes as far as valid; a repo that cannot be read is skipped and logged."""
    from huggingface_hub import HfApi

    data = tmp_path / "data"
    port = free_port()
    srv = start_server(data, port)
    try:
        _cli(data, "user", "add", "carol", "--password", "carol-password")
        token = _cli(data, "token", "create", "carol", "--role", "write", "--name", "t")
        api = HfApi(endpoint=srv.endpoint, token=token)
        bad, broken = "carol/bad-card", "carol/broken"
        api.create_repo(bad)
        api.create_repo(broken)
    finally:  # a crash: the next start heals stale rows in the background (after a clean stop, on read)
        srv.proc.kill()
        srv.proc.wait()
    with sqlite3.connect(data / "cove.db") as db:
        keys = dict(db.execute("select namespace || '/' || name, storage_key from repos"))
    env = _git_env(tmp_path)
    _write_straight_into_repo(data / "repos" / keys[bad][:2] / f"{keys[bad]}.git", env, {
        "README.md": "---\nlicense: 2020-01-01\nlibrary_name: lib\npipeline_tag: [a, b]\ntags: !!set {a}\n"
                     "thumbnail: !!binary aGVsbG8=\n---\n# x\n",
        "config.json": '{"architectures": 5}'})
    _write_straight_into_repo(data / "repos" / keys[broken][:2] / f"{keys[broken]}.git", env, {},
                              missing="README.md")
    srv = start_server(data, port)
    try:
        api = HfApi(endpoint=srv.endpoint, token=token)
        info = api.model_info(bad)
        assert info.library_name == "lib" and info.pipeline_tag is None
        assert info.card_data.to_dict() == {"library_name": "lib"}
        assert {m.id for m in api.list_models(author="carol")} == {bad, broken}  # its stale row still lists
        deadline = time.monotonic() + 30
        while broken not in (log := srv.log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert broken in log, log
    finally:
        stop_server(srv.proc)
