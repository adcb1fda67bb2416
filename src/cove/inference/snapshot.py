"""A model's files at one commit, laid out on disk for its worker: ``<data>/inference/<repo pk>/<commit>/``.

Written once per commit (a temp folder renamed into place), so a revision pins the weights and a push gives a
new folder. LFS files stored whole on the local disk are symlinked, others copied (object store, Xet).
Files no loader reads (other frameworks' weights, ONNX, images) are left out, and so are pickle weights when
safetensors are there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

from cove.backends import Backends
from cove.db.tables import Repo
from cove.services import files

_SKIP_EXT = (".onnx", ".h5", ".msgpack", ".ot", ".tflite", ".mlmodel", ".png", ".jpg", ".jpeg", ".gif", ".webp",
             ".mp4", ".wav", ".ipynb", ".parquet", ".csv", ".arrow", ".tar", ".zip", ".gz")
_SKIP_DIRS = ("onnx/", "openvino/", "coreml/", "runs/", "checkpoint-", ".git/", "tflite/")
_PICKLE_EXT = (".bin", ".pt", ".pth", ".ckpt")


def root(bk: Backends) -> Path:
    return Path(bk.settings.data) / "inference"


def wanted(paths: list[str]) -> set[str]:
    """The files a loader needs, from a commit's file list."""
    keep = {p for p in paths if not p.endswith(_SKIP_EXT) and not p.startswith(_SKIP_DIRS)}
    if any(p.endswith(".safetensors") for p in keep):
        keep = {p for p in keep if not p.endswith(_PICKLE_EXT)}
    ggufs = sorted(p for p in keep if p.endswith(".gguf"))
    if ggufs and not any(p == "config.json" for p in keep):
        keep -= set(ggufs[1:])  # one GGUF checkpoint (the first by name); the worker picks the smallest of one
    elif ggufs:
        keep -= set(ggufs)
    return keep


def materialize(bk: Backends, db, repo: Repo, sha: str) -> Path:  # noqa: ANN001
    """The folder holding `repo` at commit `sha` (written now unless it is there already)."""
    dest = root(bk) / str(repo.id) / sha
    if (dest / ".complete").is_file():
        with contextlib.suppress(OSError):
            os.utime(dest)  # the most recently used commits are the ones `prune` keeps
        return dest
    entries = [e for e in bk.repos.list_tree(repo.storage_key, sha, recursive=True) or [] if e.type == "file"]
    keep = wanted([e.path for e in entries])
    tmp = dest.with_name(f".{sha}.{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        for e in entries:
            if e.path not in keep:
                continue
            target = tmp / e.path
            if not target.resolve().is_relative_to(tmp.resolve()):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if not e.is_lfs:
                target.write_bytes(bk.repos.read_blob(repo.storage_key, e.oid))
                continue
            loc = files.locate(db, bk, repo, e)
            local = bk.blobs.local_path(loc.key) if loc.kind == "lfs" else None
            if local is not None and Path(local).is_file():
                target.symlink_to(local)
            elif loc.kind == "lfs":
                with bk.blobs.open(loc.key) as src, open(target, "wb") as fh:
                    shutil.copyfileobj(src, fh, 1 << 20)
            else:
                from cove.services import xet as xet_service

                with open(target, "wb") as fh:
                    for block in xet_service.stream_file(bk, loc.key, 0, e.size):
                        fh.write(block)
        (tmp / ".complete").write_text(json.dumps({"repo": repo.repo_id, "sha": sha}))
        try:
            tmp.rename(dest)
        except OSError:  # written meanwhile by another request
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    prune(bk, repo.id)
    return dest


#: Commits of one repo kept on disk (the most recently used); a worker already loaded keeps its weights in memory.
KEEP_COMMITS = 3


def prune(bk: Backends, repo_pk: int, keep: int = KEEP_COMMITS) -> None:
    """Remove this repo's folders but the `keep` most recently used (and temp folders over an hour old)."""
    aged: list[tuple[float, Path]] = []
    try:
        for p in (root(bk) / str(repo_pk)).iterdir():
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile by another prune
                aged.append((p.stat().st_mtime, p))
    except OSError:
        return
    now = time.time()
    done = sorted((a for a in aged if not a[1].name.startswith(".")), key=lambda a: a[0], reverse=True)
    stale = [a for a in aged if a[1].name.startswith(".") and now - a[0] > 3600]
    for _, p in done[keep:] + stale:
        shutil.rmtree(p, ignore_errors=True)


def guess_task(path: Path) -> str | None:
    """A task from config.json's architectures, for a model whose card names no `pipeline_tag`."""
    try:
        archs = json.loads((path / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError):
        archs = []
    if not archs and any(path.rglob("*.gguf")):
        return "text-generation"
    for arch in archs:
        for suffix, task in (("ForSequenceClassification", "text-classification"),
                             ("ForTokenClassification", "token-classification"),
                             ("ForQuestionAnswering", "question-answering"), ("ForMaskedLM", "fill-mask"),
                             ("ForCausalLM", "text-generation"), ("LMHeadModel", "text-generation"),
                             ("ForConditionalGeneration", "text2text-generation"), ("Model", "feature-extraction")):
            if str(arch).endswith(suffix):
                return task
    return None
