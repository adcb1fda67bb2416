"""Pushes through `git receive-pack`: the pre-receive checks and the work done once a push has landed.

`git http-backend` runs `git receive-pack`, which receives the pack into a quarantine area and then runs
the ``pre-receive`` hook with one ``old new ref`` line per ref to update. Cove points ``core.hooksPath`` at a
folder it manages (`hooks_dir`), whose ``pre-receive`` runs ``python -m cove.services.git_push pre-receive``.
That process sees the quarantined objects through git's own environment, and refuses the whole push
(nothing moves) when:

- a ref outside ``refs/heads/*`` and ``refs/tags/*`` is written, except an existing ``refs/pr/N`` of an open
  pull request (pull requests are opened and closed through the API, never created or deleted by a push);
- the pusher may not write to the repo and updates anything but a ``refs/pr/N`` they opened (any reader with
  a write token may push to their own pull request, as on the Hub; writers to any open one);
- a new tree holds a name the commit API would refuse too (`cove.services.paths`: ``.git`` look-alikes,
  ``.``/``..``, control characters, invalid UTF-8, over-long paths);
- a file larger than the inline limit is not stored through git-lfs;
- an LFS pointer names an object that was never uploaded to this repo (no `LfsObject` row).

Who may push is decided before `git receive-pack` starts (`cove.api.git_http`): writers, and readers with a
write token, whose pushes the hook confines to their own pull requests. The hook needs the repo's primary
key, the database URL, the pusher's name and whether they write, passed in its environment.

Refs move only at the end of `receive-pack`, each by compare-and-swap against the old id the client saw,
exactly like `GitRepoStore.update_ref` for API commits: a push and an API commit never lose one another.
After the push, `after_push` re-derives the index from the new head of ``main``; if the process dies
before that, `repos.ensure_fresh` repairs the index on the next read.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cove.backends import Backends

ZERO = "0" * 40
ENV_REPO_PK = "COVE_PUSH_REPO_PK"
ENV_REPO_ID = "COVE_PUSH_REPO_ID"
ENV_DB_URL = "COVE_PUSH_DB_URL"
ENV_MAX_FILE = "COVE_PUSH_MAX_FILE"
ENV_USER = "COVE_PUSH_USER"
ENV_WRITER = "COVE_PUSH_WRITER"
ENV_PYTHON = "COVE_HOOK_PYTHON"  # the interpreter of the process serving the push
_PR_REF = re.compile(r"^refs/pr/([1-9][0-9]{0,17})$")
#: Pull request statuses a push may update (the Hub's `draft` and `open`).
PUSHABLE_STATUSES = ("open", "draft")
_OID_RE = re.compile(rb"^[0-9a-f]{40}([0-9a-f]{24})?$")


@dataclass(frozen=True)
class RefUpdate:
    old: str
    new: str
    ref: str


@dataclass(frozen=True)
class NewBlob:
    oid: str
    path: str
    size: int


@dataclass(frozen=True)
class NewObject:
    oid: str
    kind: str
    size: int
    path: bytes


# -- set-up (server side) ------------------------------------------------------------------------


def hooks_dir(data: Path) -> Path:
    """The folder `core.hooksPath` points at; its ``pre-receive`` calls this module (written if stale).

    The script is the same for every process sharing the data folder: it runs the interpreter named by
    ``COVE_HOOK_PYTHON``, which each process sets to its own (`receive_env`), so processes on other hosts or
    from another release (a rolling upgrade) never run one another's Python."""
    folder = Path(data).resolve() / "git-hooks"
    script = folder / "pre-receive"
    text = f'#!/bin/sh\nexec "${{{ENV_PYTHON}:-python3}}" -m cove.services.git_push pre-receive\n'
    if not script.exists() or script.read_text() != text:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".pre-receive.{os.getpid()}"
        tmp.write_text(text)
        tmp.chmod(0o755)
        os.replace(tmp, script)
    return folder


def git_config_env(pairs: dict[str, str]) -> dict[str, str]:
    """Config for git and its children (receive-pack, hooks) through ``GIT_CONFIG_COUNT``."""
    env = {"GIT_CONFIG_COUNT": str(len(pairs))}
    for i, (k, v) in enumerate(pairs.items()):
        env[f"GIT_CONFIG_KEY_{i}"] = k
        env[f"GIT_CONFIG_VALUE_{i}"] = v
    return env


def receive_env(*, data: Path, db_url: str, repo_pk: int, repo_id: str, max_file: int, user: str = "",
                writer: bool = True) -> dict[str, str]:
    """Environment for a `git http-backend` that runs receive-pack for this repo; `writer` unset confines the
    push to the `refs/pr/N` that `user` opened."""
    return {
        **git_config_env({
            "core.hooksPath": str(hooks_dir(data)),
            "http.receivepack": "true",
            "receive.denyDeleteCurrent": "true",
            "receive.fsckObjects": "true",
            "receive.advertisePushOptions": "false",
        }),
        ENV_PYTHON: sys.executable,
        ENV_REPO_PK: str(repo_pk),
        ENV_REPO_ID: repo_id,
        ENV_DB_URL: db_url,
        ENV_MAX_FILE: str(max_file),
        ENV_USER: user,
        ENV_WRITER: "1" if writer else "0",
    }


# -- after the push (server side) ----------------------------------------------------------------


def after_push(bk: Backends, repo_pk: int, refs_before: dict[str, str]) -> None:
    """Bring the index up to date with what the push changed (the default branch → full reindex)."""
    from cove.db.tables import Repo
    from cove.services import repos, webhooks

    with bk.db.session() as db:
        repo = db.get(Repo, repo_pk)
        if repo is None:
            return
        refs_after = bk.repos.refs(repo.storage_key)
        if refs_after == refs_before:
            return
        head = refs_after.get(f"refs/heads/{bk.repos.default_branch(repo.storage_key)}")
        if head and head != repo.sha:
            repos.reindex(db, bk, repo, head)
        else:
            repo.last_modified = repos.now()
        webhooks.repo_event(db, repo, "update", "repo.content", refs=webhooks.refs_changed(refs_before, refs_after))


# -- the pre-receive hook (runs inside git receive-pack) -----------------------------------------


def parse_updates(lines: Iterable[str]) -> list[RefUpdate]:
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) == 3:
            out.append(RefUpdate(*parts))
    return out


def _git(*args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(["git", *args], input=stdin, capture_output=True, text=True, check=True)
    return proc.stdout


def new_objects(updates: list[RefUpdate]) -> list[NewObject]:
    """Trees and blobs reachable from the pushed tips and from no existing ref (the quarantine is visible to
    git), each with the first path it was seen at (raw bytes: names are not necessarily UTF-8)."""
    tips = [u.new for u in updates if u.new != ZERO]
    if not tips:
        return []
    listing = subprocess.run(["git", "rev-list", "--objects", "--stdin", "--not", "--all"],
                             input=("\n".join(tips) + "\n").encode(), capture_output=True, check=True).stdout
    paths: dict[str, bytes] = {}
    for line in listing.split(b"\n"):
        oid, _, path = line.partition(b" ")
        # Commits and root trees come without a path. A name with a newline splits its line: the
        # piece is no object id (skipped), and `path_errors` refuses that name anyway.
        if _OID_RE.match(oid):
            paths.setdefault(oid.decode(), path)
    if not paths:
        return []
    checked = _git("cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)",
                   stdin="\n".join(paths) + "\n")
    out = []
    for line in checked.splitlines():
        oid, kind, size = line.split()
        if kind in ("blob", "tree"):
            out.append(NewObject(oid, kind, int(size), paths[oid]))
    return out


def _shown(path: bytes) -> str:
    return path.decode("utf-8", "backslashreplace")


def _tree_names(data: bytes, id_len: int) -> Iterator[bytes]:
    """Entry names of a raw tree object (``<mode> <name>NUL<binary id>``, repeated)."""
    pos = 0
    while pos < len(data):
        nul = data.index(b"\0", pos)
        yield data[data.index(b" ", pos) + 1:nul]
        pos = nul + 1 + id_len


def path_errors(objects: list[NewObject]) -> list[str]:
    """Names in the new trees that `cove.services.paths` refuses (the commit API's rule)."""
    from cove.services.paths import MAX_PATH_BYTES, git_name_problem

    trees = [o for o in objects if o.kind == "tree"]
    raw = read_blobs([t.oid for t in trees])
    bad: list[str] = []
    for tree in trees:
        for name in _tree_names(raw.get(tree.oid, b""), len(tree.oid) // 2):
            full = tree.path + b"/" + name if tree.path else name
            problem = git_name_problem(name) or (
                f"longer than {MAX_PATH_BYTES} bytes" if len(full) > MAX_PATH_BYTES else None)
            if problem:
                bad.append(f"  {full.decode('utf-8', 'surrogateescape')!r}: {problem}")
    if not bad:
        return []
    return ["These paths cannot be stored in a Cove repo:", *bad]


def read_blobs(oids: list[str]) -> dict[str, bytes]:
    """Contents of small blobs through one `git cat-file --batch`."""
    if not oids:
        return {}
    proc = subprocess.run(["git", "cat-file", "--batch"], input=("\n".join(oids) + "\n").encode(),
                          capture_output=True, check=True)
    out, data, pos = {}, proc.stdout, 0
    while pos < len(data):
        nl = data.index(b"\n", pos)
        oid, _kind, size = data[pos:nl].decode().split()
        start = nl + 1
        out[oid] = data[start:start + int(size)]
        pos = start + int(size) + 1
    return out


def ref_errors(updates: list[RefUpdate], *, lookup_pr, user: str, writer: bool, repo_id: str) -> list[str]:  # noqa: ANN001
    """Refs this pusher may not update. ``lookup_pr(num) → (author, status) | None`` for this repo."""
    errors: list[str] = []
    for u in updates:
        pr = _PR_REF.match(u.ref)
        if u.ref.startswith(("refs/heads/", "refs/tags/")):
            if not writer:
                errors.append(f"You don't have the rights to write to {repo_id} ({u.ref}): push to a pull request "
                              "you opened (git push origin HEAD:refs/pr/N), or open one with the API "
                              "(create_pr=True)")
            continue
        if pr is None:
            errors.append(f"{u.ref}: only branches (refs/heads/*) and tags (refs/tags/*) can be pushed, and the "
                          "refs/pr/N of an open pull request")
            continue
        num = int(pr.group(1))
        if u.old == ZERO:
            errors.append(f"{u.ref}: pull requests are opened through the API (HfApi.create_pull_request, or a "
                          "commit with create_pr=True), not by git push; then push to its refs/pr/N")
            continue
        if u.new == ZERO:
            errors.append(f"{u.ref}: a pull request's ref cannot be deleted by git push (close it instead)")
            continue
        found = lookup_pr(num)
        if found is None:
            errors.append(f"{u.ref}: there is no pull request #{num} on {repo_id}")
            continue
        author, status = found
        if status not in PUSHABLE_STATUSES:
            errors.append(f"{u.ref}: pull request #{num} is {status}: only an open pull request can be pushed to")
        elif not writer and author != user:
            errors.append(f"{u.ref}: only the author of pull request #{num} ({author}), or who can write to "
                          f"{repo_id}, can push to it")
    return errors


def check_push(updates: list[RefUpdate], *, lookup_lfs, max_file: int, repo_id: str, lookup_pr=None,  # noqa: ANN001
               user: str = "", writer: bool = True) -> list[str]:
    """Reasons to refuse the push (empty: accept). ``lookup_lfs(oids) → {oid: size}`` for this repo;
    ``lookup_pr``, `user` and `writer` as for `ref_errors` (no ``lookup_pr``: no pull request is pushable)."""
    from cove.storage.git_repos import POINTER_MAX, parse_lfs_pointer

    errors = ref_errors(updates, lookup_pr=lookup_pr or (lambda num: None), user=user, writer=writer,
                        repo_id=repo_id)
    if errors:  # who may push what is decided before any object is read
        return errors
    objects = new_objects(updates)
    errors += path_errors(objects)
    blobs = [NewBlob(o.oid, _shown(o.path), o.size) for o in objects if o.kind == "blob"]
    too_big = [b for b in blobs if b.size > max_file]
    if too_big:
        errors.append(f"These files are larger than {max_file // (1024 * 1024)} MiB and must be stored "
                      "with git-lfs (`git lfs track` them, then commit again):")
        errors += [f"  {b.path} ({b.size} bytes)" for b in too_big]
    small = [b for b in blobs if b.size < POINTER_MAX]
    pointers: dict[str, tuple[str, int]] = {}
    for oid, data in read_blobs([b.oid for b in small]).items():
        parsed = parse_lfs_pointer(data)
        if parsed:
            pointers[oid] = parsed
    if pointers:
        wanted = sorted({p[0] for p in pointers.values()})
        known = lookup_lfs(wanted)
        missing = [(b.path, *pointers[b.oid]) for b in small
                   if b.oid in pointers and known.get(pointers[b.oid][0]) != pointers[b.oid][1]]
        if missing:
            errors.append(f"These files are git-lfs pointers to objects that were never uploaded to {repo_id}:")
            errors += [f"  {path} (sha256:{oid}, {size} bytes)" for path, oid, size in missing]
            errors.append("Upload them with git-lfs (`git lfs install`, then `git lfs push --all origin`) "
                          "and push again.")
    return errors


def _lookup_lfs(db_url: str, repo_pk: int):  # noqa: ANN202
    def lookup(oids: list[str]) -> dict[str, int]:
        from sqlalchemy import select

        from cove.db.session import make_engine
        from cove.db.tables import LfsObject

        engine = make_engine(db_url)
        out: dict[str, int] = {}
        try:
            with engine.connect() as conn:
                for i in range(0, len(oids), 500):
                    rows = conn.execute(select(LfsObject.oid, LfsObject.size).where(
                        LfsObject.repo_pk == repo_pk, LfsObject.oid.in_(oids[i:i + 500])))
                    out.update({oid: size for oid, size in rows})
        finally:
            engine.dispose()
        return out

    return lookup


def _lookup_pr(db_url: str, repo_pk: int):  # noqa: ANN202
    def lookup(num: int) -> tuple[str, str] | None:
        from sqlalchemy import select

        from cove.db.session import make_engine
        from cove.db.tables import Discussion

        engine = make_engine(db_url)
        try:
            with engine.connect() as conn:
                row = conn.execute(select(Discussion.author, Discussion.status).where(
                    Discussion.repo_pk == repo_pk, Discussion.num == num, Discussion.is_pull_request.is_(True))).first()
        finally:
            engine.dispose()
        return (row[0], row[1]) if row else None

    return lookup


def pre_receive(stdin_lines: Iterable[str], env: dict[str, str]) -> int:
    """The hook: 0 accepts the push; otherwise the reasons go to stderr (git shows them as ``remote:``)."""
    if ENV_REPO_PK not in env:
        print("Cove: pushes must go through the Cove server", file=sys.stderr)
        return 1
    updates = parse_updates(stdin_lines)
    errors = check_push(updates, lookup_lfs=_lookup_lfs(env[ENV_DB_URL], int(env[ENV_REPO_PK])),
                        max_file=int(env.get(ENV_MAX_FILE, 10 * 1024 * 1024)), repo_id=env.get(ENV_REPO_ID, ""),
                        lookup_pr=_lookup_pr(env[ENV_DB_URL], int(env[ENV_REPO_PK])),
                        user=env.get(ENV_USER, ""), writer=env.get(ENV_WRITER, "0") == "1")
    if errors:
        print("Cove: push refused.", file=sys.stderr)
        for line in errors:
            print(line, file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] != ["pre-receive"]:
        print("usage: python -m cove.services.git_push pre-receive", file=sys.stderr)
        return 2
    return pre_receive(sys.stdin.read().splitlines(), dict(os.environ))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
