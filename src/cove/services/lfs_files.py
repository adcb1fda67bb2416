"""A repo's LFS objects: list them (`list_lfs_files`) and delete them for good (`permanently_delete_lfs_files`).

Blobs are content-addressed and shared: deleting takes this repo's record of the object (so no route of this
repo serves it any more); the bytes of `lfs/<oid>` go only when no other repo holds the object. Xet chunks may
be shared with other files by dedup: an unlinked Xet file and its chunks go at the next `cove gc`.
With `rewriteHistory`, every branch and tag is rewritten first so that no commit keeps a pointer to them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import pygit2
from sqlalchemy import select
from sqlalchemy.orm import Session

from cove.backends import Backends
from cove.db.tables import LfsObject, Repo
from cove.errors import BadRequest, Conflict
from cove.services import access, repos
from cove.services.accounts import Actor
from cove.storage.git_repos import RefConflict, _blob_entry

_OID = re.compile(r"^[0-9a-f]{64}$")
#: Most oids one delete request may name (the client sends batches of 1000).
MAX_BATCH = 1000
#: Commits walked to find a name for an object that no branch or tag head has any more.
HISTORY_WALK = 5000


@dataclass(frozen=True)
class LfsFile:
    oid: str
    size: int
    pushed_at: datetime
    xet_hash: str | None
    filename: str | None
    ref: str | None


def _ordered_refs(bk: Backends, repo: Repo) -> list[tuple[str, str]]:
    """(ref, commit) with main first, then branches, tags and pull requests."""
    refs = bk.repos.refs(repo.storage_key)

    def rank(name: str) -> tuple[int, str]:
        order = ("refs/heads/main", "refs/heads/", "refs/tags/", "refs/pr/")
        return next((i for i, p in enumerate(order) if name == p or (p.endswith("/") and name.startswith(p))),
                    len(order)), name

    return [(name, refs[name]) for name in sorted(refs, key=rank)]


def _names(bk: Backends, repo: Repo, wanted: set[str]) -> dict[str, tuple[str, str]]:
    """oid -> (a path that holds it, the ref it was seen on): ref heads first, then their history."""
    store = bk.repos
    git = store.repo(repo.storage_key)
    found: dict[str, tuple[str, str]] = {}
    seen: set[pygit2.Oid] = set()

    def scan(tree: pygit2.Tree, prefix: str, ref: str) -> None:
        if tree.id in seen:
            return
        seen.add(tree.id)
        for e in tree:
            path = f"{prefix}{e.name}"
            if e.type_str == "tree":
                scan(git[e.id], f"{path}/", ref)
            elif e.type_str == "blob":
                oid = _blob_entry(store, git, path, str(e.id)).lfs_oid
                if oid in wanted and oid not in found:
                    found[oid] = (path, ref)

    refs = _ordered_refs(bk, repo)
    for ref, sha in refs:
        scan(git[sha].peel(pygit2.Commit).tree, "", ref)
    if len(found) < len(wanted) and refs:
        walker = git.walk(None, pygit2.enums.SortMode.TIME)
        for _ref, sha in refs:
            walker.push(pygit2.Oid(hex=sha))
        for n, commit in enumerate(walker):
            if n >= HISTORY_WALK or len(found) == len(wanted):
                break
            scan(commit.tree, "", refs[0][0])  # an object only older commits hold: named on the first ref
    return found


def list_files(db: Session, bk: Backends, actor: Actor, repo: Repo, *, skip: int, limit: int
               ) -> tuple[list[LfsFile], bool]:
    """One page of the repo's objects, newest first; True when more follow. Repo writers only."""
    access.require_write(db, actor, repo)
    rows = list(db.scalars(select(LfsObject).where(LfsObject.repo_pk == repo.id)
                           .order_by(LfsObject.created_at.desc(), LfsObject.oid).offset(skip).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    names = _names(bk, repo, {r.oid for r in rows}) if rows else {}
    return [LfsFile(r.oid, r.size, r.created_at, r.xet_hash, *names.get(r.oid, (None, None))) for r in rows], more


def delete_files(db: Session, bk: Backends, actor: Actor, repo: Repo, shas: object, *,
                 rewrite_history: bool) -> list[str]:
    """Drop the repo's record of these objects (after rewriting history, if asked). Admins of the repo only,
    as deleting the repo is. Returns the oids whose bytes may now go (`purge_unreferenced`, after commit).
    Oids the repo does not hold are ignored."""
    access.require_admin(db, actor, repo)
    if not isinstance(shas, list) or not all(isinstance(s, str) and _OID.match(s) for s in shas):
        raise BadRequest("'deletions.sha' must be a list of sha256 object ids")
    if len(shas) > MAX_BATCH:
        raise BadRequest(f"At most {MAX_BATCH} objects per request")
    rows = [r for r in (db.get(LfsObject, (repo.id, oid)) for oid in dict.fromkeys(shas)) if r is not None]
    doomed = {r.oid for r in rows}
    if rewrite_history and doomed:
        rewrite_without(db, bk, repo, doomed)
    for r in rows:
        db.delete(r)
    db.flush()
    return sorted(doomed)


def purge_unreferenced(bk: Backends, oids: list[str]) -> list[str]:
    """Delete the stored bytes of each object no repo holds any more; returns the oids whose bytes went."""
    gone = []
    for oid in oids:
        with bk.db.session() as db:
            if db.scalar(select(LfsObject.oid).where(LfsObject.oid == oid).limit(1)) is not None:
                continue  # another repo holds it: its bytes stay
        key = f"lfs/{oid}"
        if bk.blobs.exists(key):
            bk.blobs.delete(key)
            gone.append(oid)
    return gone


def rewrite_without(db: Session, bk: Backends, repo: Repo, oids: set[str]) -> None:
    """Rewrite every branch, tag and pull-request ref so that no commit has a pointer to `oids` (each commit
    keeps its author, date and message; one that changes gets a new id). Refs move by compare-and-swap: if one
    moved meanwhile, no further ref moves and the caller gets 409 with no object deleted."""
    store = bk.repos
    key = repo.storage_key
    git = store.repo(key)
    trees: dict[pygit2.Oid, pygit2.Oid | None] = {}

    def clean(tree: pygit2.Tree) -> pygit2.Oid | None:
        """The tree without the pointers (None: nothing left in it)."""
        if tree.id in trees:
            return trees[tree.id]
        builder, changed, kept = git.TreeBuilder(), False, 0
        for e in tree:
            oid: pygit2.Oid | None = e.id
            if e.type_str == "tree":
                oid = clean(git[e.id])
            elif e.type_str == "blob" and _blob_entry(store, git, e.name, str(e.id)).lfs_oid in oids:
                oid = None
            if oid is None:
                changed = True
                continue
            changed |= oid != e.id
            builder.insert(e.name, oid, e.filemode)
            kept += 1
        out = (builder.write() if changed else tree.id) if kept else None
        trees[tree.id] = out
        return out

    refs = _ordered_refs(bk, repo)
    if not refs:
        return
    walker = git.walk(None, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE)
    for _ref, sha in refs:
        walker.push(pygit2.Oid(hex=sha))
    mapped: dict[pygit2.Oid, pygit2.Oid] = {}
    for c in walker:
        tree = clean(c.tree)
        if tree is None:
            tree = git.TreeBuilder().write()
        parents = [mapped.get(p, p) for p in c.parent_ids]
        if tree == c.tree_id and parents == list(c.parent_ids):
            mapped[c.id] = c.id
            continue
        mapped[c.id] = git.create_commit(None, c.author, c.committer, c.raw_message.decode("utf-8", "replace"),
                                         tree, parents)
    for ref, sha in refs:
        target = git.references[ref].target
        if not isinstance(target, pygit2.Oid):  # a symbolic ref follows the one it names
            continue
        if str(git[target].peel(pygit2.Commit).id) != sha:
            raise Conflict(f"{ref} moved while its history was rewritten; retry")
        new = _retarget(git, target, mapped)
        if new == target:
            continue
        try:
            store.update_ref(key, ref, str(new), str(target))
        except RefConflict as exc:
            raise Conflict(f"{ref} moved while its history was rewritten; retry") from exc
    head = store.head(key)
    if head and head != repo.sha:
        repos.reindex(db, bk, repo, head)


def _retarget(git: pygit2.Repository, target: pygit2.Oid, mapped: dict[pygit2.Oid, pygit2.Oid]) -> pygit2.Oid:
    """The ref's new target: the rewritten commit, or an annotated tag re-written to point at it."""
    obj = git[target]
    if obj.type != pygit2.enums.ObjectType.TAG:
        return mapped.get(target, target)
    commit = obj.target
    new_commit = mapped.get(commit, commit)
    if new_commit == commit or git[commit].type != pygit2.enums.ObjectType.COMMIT:
        return target  # untouched, or a tag of a tag (left as it is)
    _type, raw = git.odb.read(target)
    raw = raw.replace(f"object {obj.target}".encode(), f"object {new_commit}".encode(), 1)
    return git.odb.write(pygit2.enums.ObjectType.TAG, raw)


def duplicate_to(db: Session, bk: Backends, actor: Actor, src: Repo, target: Repo, files: object) -> list[dict]:
    """Let `target` hold objects `src` holds, by reference (no bytes copied): what a cross-repo
    `CommitOperationCopy` asks before its commit. The caller reads `src` (gating included) and may contribute
    to `target`. Only a sha256 the server has computed crosses repos (a Xet claim is confirmed first). Returns
    the failures, `{sha256, error}` each."""
    from cove.services import gating, uploads

    gating.require_file_access(db, actor, src, "", bk.settings.public_endpoint)
    access.require_contribute(db, actor, target)
    if not isinstance(files, list) or not all(isinstance(f, dict) and isinstance(f.get("sha256"), str)
                                              for f in files):
        raise BadRequest("'files' must be a list of {sha256, xetHash, filename}")
    if len(files) > MAX_BATCH:
        raise BadRequest(f"At most {MAX_BATCH} files per request")
    failed = []
    for f in files:
        oid = f["sha256"]
        row = uploads.held(db, src, oid) if _OID.match(oid) else None
        if row is None:
            failed.append({"sha256": oid, "error": "File not found in the source repository"})
        elif f.get("xetHash") and row.xet_hash and f["xetHash"] != row.xet_hash:
            failed.append({"sha256": oid, "error": "xetHash does not match the source file"})
        elif not row.sha256_verified and not uploads.confirm_sha256(db, bk, row):
            failed.append({"sha256": oid, "error": "The source file's sha256 could not be verified"})
        else:
            uploads.adopt(db, target, oid, row.size, row.xet_hash, verified=True)
    return failed
