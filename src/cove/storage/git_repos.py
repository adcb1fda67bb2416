"""Bare git repositories through libgit2 (pygit2); ref updates by compare-and-swap (git's lockfile protocol).

Objects are written first; a commit becomes visible only when its branch ref moves, atomically,
from the expected old id to the new one. A crash at any point leaves at most unreachable objects.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache, wraps
from pathlib import Path
from typing import ParamSpec, TypeVar

import pygit2

LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
_POINTER_RE = re.compile(rb"^version https://git-lfs\.github\.com/spec/v1\noid sha256:([0-9a-f]{64})\nsize (\d+)\n")
_SHA_RE = re.compile(r"^[0-9a-f]{4,40}$")
ZERO = "0" * 40

DEFAULT_GITATTRIBUTES = "\n".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text"
    for pattern in (
        "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib",
        "*.lfs.*", "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot",
        "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors",
        "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip",
        "*.zst", "*tfevents*", "*.gguf", "*.png", "*.jpg", "*.jpeg", "*.webp",
    )
) + "\n"


def lfs_pointer(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


#: git-lfs pointers are ~130 bytes; a blob this size or larger is never read as one.
POINTER_MAX = 1024


def parse_lfs_pointer(data: bytes) -> tuple[str, int] | None:
    """(oid, size) when `data` is a git-lfs pointer (the one rule reads, pushes and commits share)."""
    if len(data) >= POINTER_MAX:
        return None
    m = _POINTER_RE.match(data)
    return (m.group(1).decode(), int(m.group(2))) if m else None


@dataclass(frozen=True)
class Entry:
    """A file or folder in a commit's tree."""

    path: str
    type: str  # "file" | "directory"
    oid: str  # git blob/tree id
    size: int  # real file size (LFS size for LFS files)
    lfs_oid: str | None = None
    lfs_pointer_size: int | None = None

    @property
    def is_lfs(self) -> bool:
        return self.lfs_oid is not None


@dataclass(frozen=True)
class CommitInfo:
    id: str
    title: str
    message: str
    author: str
    date: datetime
    parents: tuple[str, ...]


@dataclass
class FileOp:
    """One change to a tree: ``data`` (or ``blob``, a blob already written) set → write; neither → delete
    (``folder`` for a prefix)."""

    path: str
    data: bytes | None = None
    folder: bool = False
    blob: str | None = None


def lookup_ref(repo: pygit2.Repository, name: str) -> pygit2.Reference | None:
    """The reference, or None; also None for a name git cannot hold (thousands of characters, a lone
    surrogate), which pygit2 answers with ValueError or UnicodeError."""
    try:
        return repo.references.get(name)
    except (ValueError, UnicodeError):
        return None


def _read_ref(root: Path, ref: str) -> str | None:
    """A ref's commit id as git stores it: the loose file, else `packed-refs`; None if absent or symbolic."""
    try:
        text = (root / ref).read_text().strip()
        return text if _FULL_SHA_RE.match(text) else None
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        pass
    try:
        with open(root / "packed-refs") as fh:
            for line in fh:
                sha, _, name = line.rstrip("\n").partition(" ")
                if name == ref and _FULL_SHA_RE.match(sha):
                    return sha
    except FileNotFoundError:
        pass
    return None


_FULL_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_ref_locks: dict[str, threading.Lock] = {}
_ref_locks_guard = threading.Lock()
_log = logging.getLogger("cove.git")
_HOST = socket.gethostname()
#: What Cove writes into a `<ref>.lock` it creates, until the new id replaces it: who holds it.
_OWNER = f"cove pid={os.getpid()} host={_HOST}\n"
_OWNER_RE = re.compile(r"^cove pid=(\d+) host=(\S+)$")


def _stale_reason(lock: Path, st: os.stat_result, max_age: float) -> str | None:
    """Why the lock file `lock` is stale, or None while its owner may still hold it."""
    try:
        m = _OWNER_RE.match(lock.read_text(errors="replace").strip())
    except OSError:
        m = None
    if m and m.group(2) == _HOST and not _alive(int(m.group(1))):
        return f"its owner, pid {m.group(1)} of this host, is gone"
    age = time.time() - st.st_mtime
    if age > max_age:
        return f"{age:.0f} s old, owner {m.group(0) if m else 'unknown'}"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


def _lock_file(root: Path, name: str, flags: int) -> int:
    """`os.open` of `<repo>/cove-locks/<name>`; the folder is made only when it is missing (its first use, or a
    repo restored without it), not on every ref update."""
    path = root / "cove-locks" / name
    try:
        return os.open(path, flags, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(exist_ok=True)  # the repo itself missing still raises FileNotFoundError
        return os.open(path, flags, 0o644)


class RefConflict(Exception):
    """The ref moved between read and update (compare-and-swap failed)."""


class GitObjectMissing(Exception):
    """An object a ref reaches is missing or unreadable: the repo's storage is damaged (`cove fsck` says what)."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"git repo {key}: {detail}")
        self.key = key


_P = ParamSpec("_P")
_R = TypeVar("_R")


@contextmanager
def intact(key: str, errors: tuple[type[Exception], ...] = (KeyError,)) -> Iterator[None]:
    """pygit2 reads of repo `key`: its KeyError (or one of `errors`) for an object that should be there is
    `GitObjectMissing`."""
    try:
        yield
    except errors as err:  # pygit2's NotFoundError is a KeyError too
        raise GitObjectMissing(key, str(err).strip("'\"")) from None


def _intact(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """A read by (store, key, …), `intact`."""

    @wraps(method)
    def read(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with intact(str(args[1])):
            return method(*args, **kwargs)

    return read


class GitRepoStore:
    """All bare repositories under one root, addressed by an opaque storage key."""

    def __init__(self, root: str | Path, *, stale_lock_s: float = 30.0, open_repos: int = 64,
                 open_pack_files: int | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.stale_lock_s = stale_lock_s
        #: Repository handles each thread keeps open, least recently used evicted first (a handle holds
        #: file descriptors: pack files, their indexes).
        self.open_repos = max(1, open_repos)
        if open_pack_files is not None:  # process-wide: libgit2 closes the least recently used pack past it
            pygit2.settings.mwindow_file_limit = max(1, open_pack_files)

    # -- repositories -------------------------------------------------------------------
    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.git"

    def repo(self, key: str) -> pygit2.Repository:
        """This thread's handle on repo `key` (pygit2 handles are not shared between threads); at most
        `open_repos` per thread stay open, the least recently used closed first."""
        cache: OrderedDict[str, pygit2.Repository] | None = getattr(self._local, "repos", None)
        if cache is None:
            cache = self._local.repos = OrderedDict()
        repo = cache.get(key)
        if repo is None:
            repo = cache[key] = pygit2.Repository(str(self.path(key)))
            while len(cache) > self.open_repos:
                _, old = cache.popitem(last=False)
                old.free()  # its pack files and indexes now; a caller still holding it reopens them lazily
        else:
            cache.move_to_end(key)
        return repo

    def open_handles(self) -> int:
        """Repository handles this thread holds."""
        return len(getattr(self._local, "repos", ()))

    def forget(self, key: str) -> None:
        getattr(self._local, "repos", {}).pop(key, None)

    def branch_head(self, key: str, branch: str | None = None) -> str | None:
        """The commit id `refs/heads/<branch>` (default: the default branch) holds, read from the ref files
        without opening the repository (no libgit2 handle, no pack file); None if absent or symbolic.
        FileNotFoundError: no such repo."""
        root = self.path(key)
        if not root.is_dir():
            raise FileNotFoundError(root)
        return _read_ref(root, f"refs/heads/{branch or self.default_branch(key)}")

    # -- maintenance exclusion ---------------------------------------------------------------
    @contextmanager
    def writing(self, key: str) -> Iterator[None]:
        """Held (shared) by whoever writes refs of repo `key`, across processes: git maintenance
        (`maintenance_lock`) never runs while a commit, ref update or push is in progress."""
        fd = self._maintenance_fd(key)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    @contextmanager
    def maintenance_lock(self, key: str) -> Iterator[bool]:
        """Exclusive hold on repo `key` for repack/gc, without waiting: yields False (and holds nothing) while
        any writer holds `writing`; writers arriving meanwhile wait until the maintenance is done."""
        fd = self._maintenance_fd(key)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def _maintenance_fd(self, key: str) -> int:
        return _lock_file(self.path(key), "maintenance", os.O_RDWR | os.O_CREAT)

    def create(self, key: str, *, author: str, message: str = "initial commit",
               files: dict[str, bytes] | None = None) -> str:
        """A bare repo whose first commit on `main` holds `.gitattributes` and `files` (top-level names)."""
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        repo = pygit2.init_repository(str(p), bare=True, initial_head="main")
        cfg = repo.config
        cfg["http.receivepack"] = True
        cfg["uploadpack.allowAnySHA1InWant"] = True
        cfg["receive.denyDeleteCurrent"] = True
        blob = repo.create_blob(DEFAULT_GITATTRIBUTES.encode())
        tb = repo.TreeBuilder()
        tb.insert(".gitattributes", blob, pygit2.GIT_FILEMODE_BLOB)
        for name, data in (files or {}).items():
            tb.insert(name, repo.create_blob(data), pygit2.GIT_FILEMODE_BLOB)
        sig = _signature(author)
        sha = repo.create_commit(None, sig, sig, message, tb.write(), [])
        self.update_ref(key, "refs/heads/main", str(sha), ZERO)
        return str(sha)

    def delete(self, key: str) -> None:
        self.forget(key)
        shutil.rmtree(self.path(key), ignore_errors=True)

    # -- refs -----------------------------------------------------------------------------
    @contextmanager
    def ref_lock(self, key: str, ref: str) -> Iterator[None]:
        """Hold `ref` of repo `key` for one writer at a time, in this process (a lock per ref) and across
        processes (`flock` on a file beside the repo): writers queue instead of racing the compare-and-swap.
        `git push` does not take it; its own ref lock still makes `update_ref` fail, never lose a push."""
        name = hashlib.sha1(f"{key}\0{ref}".encode(), usedforsecurity=False).hexdigest()
        with _ref_locks_guard:
            lock = _ref_locks.setdefault(name, threading.Lock())
        with lock, self.writing(key):
            fd = _lock_file(self.path(key), name, os.O_RDWR | os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock

    def update_ref(self, key: str, ref: str, new: str, old: str | None) -> None:
        """Move ``ref`` from ``old`` to ``new`` atomically (``ZERO`` old: must not exist; new ZERO: delete)."""
        with self.writing(key):
            self._update_ref(key, ref, new, old)

    def _update_ref(self, key: str, ref: str, new: str, old: str | None) -> None:
        self.clear_stale_lock(key, ref)
        if new == ZERO:  # git rewrites packed-refs to delete a ref: a crash's packed-refs.lock would wedge it
            self.clear_stale_lock(key, "packed-refs")
        if new != ZERO and old not in (None, ZERO) and pygit2.reference_is_valid_name(ref):
            self._move_ref(key, ref, new, old)
            return
        args = ["git", "update-ref"]
        if new == ZERO:
            args += ["-d", ref] + ([old] if old else [])
        else:
            args += [ref, new] + ([old] if old is not None else [])
        proc = subprocess.run(args, cwd=self.path(key), capture_output=True, text=True)
        if proc.returncode != 0:
            raise RefConflict(proc.stderr.strip())

    def _move_ref(self, key: str, ref: str, new: str, old: str) -> None:
        """`git update-ref ref new old` for a ref that exists, without a fork: git's own protocol (the
        `<ref>.lock` file created exclusively, the current value compared, the new value fsynced and renamed
        into place). The lock holds its owner from the moment it exists to the moment it goes (it is linked
        into place already written, and the new value is staged in a file of its own), so a process killed at
        any step leaves a lock `clear_stale_lock` recognises at once as its own, never an anonymous one."""
        root = self.path(key)
        target = root / ref
        lock = root / f"{ref}.lock"
        folder = root / "cove-locks"  # outside refs/: nothing here is ever read as a ref
        owner = folder / f"owner-{uuid.uuid4().hex}"
        fd = _lock_file(root, owner.name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            os.write(fd, _OWNER.encode())
        finally:
            os.close(fd)
        try:
            if not lock.parent.is_dir():  # a ref only in packed-refs may have no folder of its own yet
                lock.parent.mkdir(parents=True, exist_ok=True)
            os.link(owner, lock)
        except (FileExistsError, FileNotFoundError, NotADirectoryError) as exc:
            raise RefConflict(f"cannot lock ref '{ref}': {exc}") from None
        finally:
            owner.unlink(missing_ok=True)
        staged = folder / f"ref-{uuid.uuid4().hex}"
        try:
            current = _read_ref(root, ref)
            if current != old:
                raise RefConflict(f"cannot lock ref '{ref}': is at {current} but expected {old}")
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, f"{new}\n".encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(staged, target)
        finally:
            staged.unlink(missing_ok=True)
            lock.unlink(missing_ok=True)

    def clear_stale_lock(self, key: str, ref: str) -> bool:
        """Remove `<ref>.lock` left by a crash, so the branch is not wedged: stale when Cove wrote it from a
        process of this host that is gone, or when older than `stale_lock_s` (whoever wrote it; git holds a ref
        lock for milliseconds). Cleared by rename-then-unlink under a flock, and only if the file renamed is
        the one judged stale, so two clearers can't both win nor remove a fresh lock. True if one was removed."""
        root = self.path(key)
        lock = root / f"{ref}.lock"
        try:
            st = lock.stat()
        except OSError:
            return False
        reason = _stale_reason(lock, st, self.stale_lock_s)
        if reason is None:
            return False
        folder = root / "cove-locks"
        fd = _lock_file(root, "clearing", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                now = lock.stat()
            except OSError:
                return False  # another clearer (or its owner) got there first
            if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):
                return False  # a new lock since: judge it on a later call
            aside = folder / f"stale-{uuid.uuid4().hex}"
            try:
                os.rename(lock, aside)
            except FileNotFoundError:
                return False
            moved = aside.stat()
            if (moved.st_ino, moved.st_dev) != (st.st_ino, st.st_dev):  # replaced between stat and rename
                with suppress(FileExistsError):
                    os.link(aside, lock)  # put it back, unless yet another lock is there now
                aside.unlink(missing_ok=True)
                return False
            aside.unlink(missing_ok=True)
        finally:
            os.close(fd)
        _log.warning("cleared stale git lock %s (%s)", lock, reason)
        return True

    def refs(self, key: str) -> dict[str, str]:
        """All refs → target commit ids (annotated tags peeled)."""
        repo = self.repo(key)
        out: dict[str, str] = {}
        for name in repo.references:
            try:
                ref = repo.references[name].resolve()
                out[name] = str(ref.peel(pygit2.Commit).id)
            except (KeyError, ValueError, pygit2.GitError):
                continue
        return out

    def resolve(self, key: str, rev: str) -> str | None:
        """Branch, tag, ``refs/...``, full or short sha → commit id, or None."""
        repo = self.repo(key)
        candidates = [rev] if rev.startswith("refs/") else [f"refs/heads/{rev}", f"refs/tags/{rev}"]
        for name in candidates:
            ref = lookup_ref(repo, name)
            if ref is not None:
                try:
                    return str(ref.resolve().peel(pygit2.Commit).id)
                except (ValueError, pygit2.GitError):
                    return None
        if _SHA_RE.match(rev) and len(rev) >= 7:
            try:
                obj = repo.revparse_single(rev)
                return str(obj.peel(pygit2.Commit).id)
            except (KeyError, ValueError, pygit2.GitError):
                return None
        if rev == "main" and (default := self.default_branch(key)) != "main":
            # The stock clients send `main` for "no revision" (hf_hub_download, list_repo_tree): with no
            # branch of that name, it means the repo's default branch.
            return self.resolve(key, default)
        return None

    def default_branch(self, key: str) -> str:
        """The branch HEAD names: what `git clone` checks out and what a read without a revision uses."""
        try:
            text = (self.path(key) / "HEAD").read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            return "main"
        return text[16:] if text.startswith("ref: refs/heads/") and len(text) > 16 else "main"

    def head(self, key: str) -> str | None:
        """The default branch's commit id (None for an empty repo)."""
        return self.resolve(key, self.default_branch(key))

    def set_default_branch(self, key: str, branch: str) -> None:
        """Point HEAD at `refs/heads/{branch}` (written aside and renamed, so readers never see half a file)."""
        p = self.path(key)
        tmp = p / f"HEAD.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(f"ref: refs/heads/{branch}\n")
        os.replace(tmp, p / "HEAD")
        self.forget(key)

    def is_branch(self, key: str, name: str) -> bool:
        return lookup_ref(self.repo(key), f"refs/heads/{name}") is not None

    # -- trees ----------------------------------------------------------------------------
    @_intact
    def entry(self, key: str, commit: str, path: str) -> Entry | None:
        return _cached_entry(self, key, commit, path.strip("/"))

    def _entry(self, key: str, commit: str, path: str) -> Entry | None:
        repo = self.repo(key)
        tree = repo[commit].peel(pygit2.Tree)
        if not path:
            return Entry("", "directory", str(tree.id), 0)
        try:
            obj = tree[path]
        except KeyError:
            return None
        if obj.type not in (pygit2.GIT_OBJECT_TREE, pygit2.GIT_OBJECT_BLOB):
            return None  # a gitlink (submodule) names a commit of another repository: nothing is stored here
        return self._to_entry(repo, path, obj)

    def _to_entry(self, repo: pygit2.Repository, path: str, obj: pygit2.Object) -> Entry:
        if obj.type == pygit2.GIT_OBJECT_TREE:
            return Entry(path, "directory", str(obj.id), 0)
        return _blob_entry(self, repo, path, str(obj.id))

    @_intact
    def list_tree(self, key: str, commit: str, path: str = "", *, recursive: bool = False) -> list[Entry] | None:
        """Entries under ``path`` (None if ``path`` is not a folder)."""
        repo = self.repo(key)
        tree = repo[commit].peel(pygit2.Tree)
        path = path.strip("/")
        if path:
            try:
                tree = tree[path]
            except KeyError:
                return None
            if tree.type != pygit2.GIT_OBJECT_TREE:
                return None
            tree = repo[tree.id]
        out: list[Entry] = []
        self._walk(repo, tree, path, recursive, out)
        return out

    def _walk(self, repo, tree, prefix: str, recursive: bool, out: list[Entry]) -> None:  # noqa: ANN001
        for obj in tree:
            p = f"{prefix}/{obj.name}" if prefix else obj.name
            if obj.type == pygit2.GIT_OBJECT_TREE:
                out.append(Entry(p, "directory", str(obj.id), 0))
                if recursive:
                    self._walk(repo, repo[obj.id], p, True, out)
            elif obj.type == pygit2.GIT_OBJECT_BLOB:
                out.append(_blob_entry(self, repo, p, str(obj.id)))

    @_intact
    def read_blob(self, key: str, oid: str) -> bytes:
        return self.repo(key)[oid].data

    # -- history --------------------------------------------------------------------------
    @_intact
    def commit_info(self, key: str, sha: str) -> CommitInfo:
        c = self.repo(key)[sha].peel(pygit2.Commit)
        return _commit_info(c)

    @_intact
    def log(self, key: str, sha: str, *, skip: int = 0, limit: int = 50, path: str | None = None) -> list[CommitInfo]:
        repo = self.repo(key)
        out: list[CommitInfo] = []
        n = 0
        for c in repo.walk(sha, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.TIME):
            if path is not None and not _touches(repo, c, path):
                continue
            if n >= skip:
                out.append(_commit_info(c))
                if len(out) >= limit:
                    break
            n += 1
        return out

    @_intact
    def count_commits(self, key: str, sha: str) -> int:
        return sum(1 for _ in self.repo(key).walk(sha))

    @_intact
    def last_commit_for(self, key: str, sha: str, path: str, max_walk: int = 2000) -> CommitInfo | None:
        repo = self.repo(key)
        for i, c in enumerate(repo.walk(sha, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.TIME)):
            if i > max_walk:
                return None
            if _touches(repo, c, path):
                return _commit_info(c)
        return None

    # -- writes ---------------------------------------------------------------------------
    def write_commit(
        self,
        key: str,
        *,
        parent: str | None,
        ops: list[FileOp],
        author: str,
        message: str,
        base_tree_of: str | None = None,
    ) -> str:
        """Write blobs, tree and commit objects (no ref moves). Returns the new commit id."""
        repo = self.repo(key)
        index = pygit2.Index()
        tree_src = base_tree_of or parent
        if tree_src:
            index.read_tree(repo[tree_src].peel(pygit2.Tree))
        for op in ops:
            if op.data is None and op.blob is None:
                if op.folder:
                    index.remove_directory(op.path.strip("/"))
                else:
                    index.remove(op.path)
                continue
            # A file replacing a folder, or a folder path replacing a file, drops what was in the way.
            index.remove_directory(op.path)
            parts = op.path.split("/")
            for i in range(1, len(parts)):
                parent_path = "/".join(parts[:i])
                if parent_path in index:
                    index.remove(parent_path)
            oid = pygit2.Oid(hex=op.blob) if op.blob else repo.create_blob(op.data)
            index.add(pygit2.IndexEntry(op.path, oid, pygit2.GIT_FILEMODE_BLOB))
        tree = index.write_tree(repo)
        sig = _signature(author)
        return str(repo.create_commit(None, sig, sig, message, tree, [parent] if parent else []))

    def write_blob(self, key: str, data: bytes) -> str:
        """Store one blob (reachable only once a commit that names it is on a ref)."""
        return str(self.repo(key).create_blob(data))

    @_intact
    def tree_id(self, key: str, sha: str) -> str:
        return str(self.repo(key)[sha].peel(pygit2.Tree).id)

    def commit_with_tree(self, key: str, *, tree_of: str, parents: list[str], author: str, message: str) -> str:
        repo = self.repo(key)
        sig = _signature(author)
        tree = repo[tree_of].peel(pygit2.Tree).id
        return str(repo.create_commit(None, sig, sig, message, tree, parents))

    @_intact
    def path_exists_as_file(self, key: str, commit: str, path: str) -> bool:
        e = self.entry(key, commit, path)
        return e is not None and e.type == "file"

    def iter_lfs_oids(self, key: str, commit: str) -> Iterator[tuple[str, int]]:
        for e in self.list_tree(key, commit, recursive=True) or []:
            if e.lfs_oid:
                yield e.lfs_oid, e.size

    @_intact
    def diff_paths(self, key: str, a: str, b: str) -> list[tuple[str, str]]:
        """(status, path) for every file that differs between commits ``a`` and ``b``."""
        repo = self.repo(key)
        # Their trees, peeled here: a missing tree is then pygit2's KeyError (`_intact`), not a TypeError.
        diff = repo.diff(repo[a].peel(pygit2.Tree), repo[b].peel(pygit2.Tree))
        status = {pygit2.enums.DeltaStatus.ADDED: "added", pygit2.enums.DeltaStatus.DELETED: "removed"}
        out = []
        for d in diff.deltas:
            path = d.new_file.path if d.status != pygit2.enums.DeltaStatus.DELETED else d.old_file.path
            out.append((status.get(d.status, "modified"), path))
        return out


# Blob classification is immutable per blob id: cache it across requests.
_blob_cache: dict[str, tuple[int, str | None]] = {}
_blob_lock = threading.Lock()


def _blob_entry(store: GitRepoStore, repo: pygit2.Repository, path: str, oid: str) -> Entry:
    meta = _blob_cache.get(oid)
    if meta is None:
        blob = repo[oid]
        size = blob.size
        lfs = None
        if size < POINTER_MAX:
            data = blob.data
            if data.startswith(LFS_POINTER_PREFIX):
                parsed = parse_lfs_pointer(data)
                if parsed:
                    lfs = parsed
        meta = (size, lfs[0] if lfs else None, lfs[1] if lfs else None)  # type: ignore[assignment]
        with _blob_lock:
            if len(_blob_cache) > 500_000:
                _blob_cache.clear()
            _blob_cache[oid] = meta  # type: ignore[assignment]
    size, lfs_oid, lfs_size = meta  # type: ignore[misc]
    if lfs_oid:
        return Entry(path, "file", oid, lfs_size, lfs_oid, size)  # type: ignore[arg-type]
    return Entry(path, "file", oid, size)


@lru_cache(maxsize=100_000)
def _cached_entry(store: GitRepoStore, key: str, commit: str, path: str) -> Entry | None:
    """Commits are immutable, so (repo, commit, path) → entry never changes."""
    return store._entry(key, commit, path)


def _touches(repo: pygit2.Repository, c: pygit2.Commit, path: str) -> bool:
    def lookup(tree: pygit2.Tree) -> str | None:
        try:
            return str(tree[path].id)
        except KeyError:
            return None

    mine = lookup(c.tree)
    if not c.parents:
        return mine is not None
    return any(lookup(p.tree) != mine for p in c.parents)


def _signature(author: str) -> pygit2.Signature:
    return pygit2.Signature(author, f"{author}@users.noreply.cove")


def _commit_info(c: pygit2.Commit) -> CommitInfo:
    msg = c.message or ""
    title, _, rest = msg.partition("\n")
    return CommitInfo(
        id=str(c.id),
        title=title.strip(),
        message=rest.strip(),
        author=c.author.name,
        date=datetime.fromtimestamp(c.commit_time, UTC),
        parents=tuple(str(p) for p in c.parent_ids),
    )
