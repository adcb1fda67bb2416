"""`cove bundle export` / `cove bundle import`: repos carried across an air gap in one signed file, arriving
with the same commit ids (docs/bundles.md).

The file is a tar whose members are, in order: ``git/<n>.bundle`` (a real `git bundle` per repo that has
commits to carry), ``lfs/<sha256>`` (every LFS or Xet file those commits point at, once each, as its bytes),
``manifest.json`` (the repos, their refs and metadata, and the sha256 and size of every member before it)
and ``bundle.sig``: an Ed25519 signature of the structure hash, the sha256 of every byte before that member's
header except the data of the members the manifest hashes (so of every header, every padding byte and the
manifest). Each byte is hashed once, by the manifest or by the structure hash; the signature member's header
and the archive's end are checked to be exactly what `export` writes: one changed byte anywhere refuses it.

Import verifies the signature and every member's hash after extracting into ``<data>/tmp/bundle-*``, then
checks every ref against the hub (refs only fast-forward; a diverged branch or a moved tag refuses the whole
bundle) before anything is visible; only then blobs are published to the blob store, repos are created and
their ``LfsObject`` rows written, objects unbundled and refs moved by compare-and-swap, and the index is
re-derived: the order every commit and push keeps (blob, row, ref).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cove.backends import Backends
from cove.errors import BadRequest, EntryNotFound, HubError, RepoNotFound, RevisionNotFound
from cove.services.accounts import Actor
from cove.storage.git_repos import POINTER_MAX, ZERO, RefConflict, parse_lfs_pointer

FORMAT = 1
MANIFEST = "manifest.json"
SIGNATURE = "bundle.sig"
_SIG_CONTEXT = b"cove-bundle/1\0"
_MEMBER_RE = re.compile(r"^(git/[0-9]{1,6}\.bundle|lfs/[0-9a-f]{64})$")
_REF_RE = re.compile(r"^refs/(heads|tags)/[^\0\s]+$")
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_BLOCK = 1 << 20

Echo = Callable[[str], None]


class BundleRefused(BadRequest):
    """The bundle is not imported: a bad signature or hash, or it does not apply to this hub."""


@dataclass(frozen=True)
class RepoSpec:
    repo_type: str
    repo_id: str
    rev: str | None = None


def parse_spec(text: str) -> RepoSpec:
    """``[datasets/|spaces/]ns/name[@REV]`` → a `RepoSpec`."""
    body, _, rev = text.partition("@")
    repo_type = "model"
    for prefix, t in (("datasets/", "dataset"), ("spaces/", "space"), ("models/", "model")):
        if body.startswith(prefix):
            repo_type, body = t, body[len(prefix):]
            break
    return RepoSpec(repo_type, body, rev or None)


# -- git plumbing ------------------------------------------------------------------------------


def _git(cwd: Path, *args: str, stdin: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, check=False)
    if check and proc.returncode != 0:
        raise BundleRefused(f"git {args[0]}: {proc.stderr.decode(errors='replace').strip()}")
    return proc


def _raw_refs(repo_dir: Path) -> dict[str, str]:
    """Branches and tags → the object each names (a tag object for an annotated tag), read at one instant."""
    out = _git(repo_dir, "for-each-ref", "--format=%(objectname) %(refname)", "refs/heads", "refs/tags").stdout
    refs = {}
    for line in out.decode().splitlines():
        sha, _, ref = line.partition(" ")
        refs[ref] = sha
    return refs


def _scratch_repo(path: Path, alternate: Path | None) -> Path:
    """A bare repo that sees `alternate`'s objects without copying them (git's alternates)."""
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True, capture_output=True)
    if alternate is not None:
        (path / "objects" / "info" / "alternates").write_text(str((alternate / "objects").resolve()) + "\n")
    return path


def _is_ancestor(cwd: Path, a: str, b: str) -> bool:
    return _git(cwd, "merge-base", "--is-ancestor", a, b, check=False).returncode == 0


def _lfs_pointers(cwd: Path, tips: list[str], since: str | None) -> dict[str, int]:
    """LFS pointers among the blobs reachable from `tips` and not from `since`: {sha256: size}."""
    args = ["rev-list", "--objects", "--stdin"]
    listing = _git(cwd, *args, stdin=("\n".join(tips + ([f"^{since}"] if since else [])) + "\n").encode()).stdout
    oids = [line.split(b" ", 1)[0].decode() for line in listing.splitlines() if line]
    if not oids:
        return {}
    checked = _git(cwd, "cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)",
                   stdin=("\n".join(oids) + "\n").encode()).stdout.decode()
    small = [o for o, kind, size in (ln.split() for ln in checked.splitlines())
             if kind == "blob" and int(size) < POINTER_MAX]
    if not small:
        return {}
    data = _git(cwd, "cat-file", "--batch", stdin=("\n".join(small) + "\n").encode()).stdout
    found: dict[str, int] = {}
    pos = 0
    while pos < len(data):
        nl = data.index(b"\n", pos)
        size = int(data[pos:nl].split()[2])
        parsed = parse_lfs_pointer(data[nl + 1:nl + 1 + size])
        if parsed:
            found[parsed[0]] = parsed[1]
        pos = nl + 1 + size + 1
    return found


# -- the archive -------------------------------------------------------------------------------


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    """Every member's header is the same but for name and size: the file depends on its contents only."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = size, 0, 0o644, 0, 0, "", ""
    return info


def _sig_header() -> bytes:
    return _tarinfo(SIGNATURE, 64).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _signed_message(prefix_len: int, digest: bytes) -> bytes:
    return _SIG_CONTEXT + prefix_len.to_bytes(8, "big") + digest


class _HashingWriter:
    """The output file, hashing its structure: every byte written except the data of the members the manifest
    hashes (`skip`, an absolute [start, end) set before each is added), so each byte is hashed once. tarfile
    asks `tell`."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh, self.digest, self.n, self.skip = fh, hashlib.sha256(), 0, (0, 0)

    def write(self, data: bytes) -> int:
        self.fh.write(data)
        start, end = self.n, self.n + len(data)
        a, b = max(start, self.skip[0]), min(end, self.skip[1])
        if a >= b:
            self.digest.update(data)
        else:
            self.digest.update(memoryview(data)[:a - start])
            self.digest.update(memoryview(data)[b - start:])
        self.n = end
        return len(data)

    def tell(self) -> int:
        return self.n


class _HashingReader:
    """A source read once into the archive, hashed on the way; from a file or from an iterator of blocks."""

    def __init__(self, src: BinaryIO | Iterator[bytes]) -> None:
        self.src, self.digest, self.n, self._buf = src, hashlib.sha256(), 0, b""

    def read(self, size: int = -1) -> bytes:
        if hasattr(self.src, "read"):
            data = self.src.read(size)  # type: ignore[union-attr]
        else:
            while size < 0 or len(self._buf) < size:
                block = next(self.src, b"")  # type: ignore[call-overload]
                if not block:
                    break
                self._buf += block
            data, self._buf = (self._buf, b"") if size < 0 else (self._buf[:size], self._buf[size:])
        self.digest.update(data)
        self.n += len(data)
        return data


@dataclass
class _Member:
    sha256: str
    size: int


@dataclass
class ExportReport:
    path: Path
    repos: list[dict] = field(default_factory=list)
    lfs_files: int = 0
    lfs_bytes: int = 0
    size: int = 0


def export(bk: Backends, specs: list[RepoSpec], out: Path, key: Ed25519PrivateKey, *, since: str | None = None,
           echo: Echo = lambda line: None) -> ExportReport:
    """Write one signed bundle of `specs` to `out` (replaced only once complete)."""
    from cove.services import access, files, mirror, mirror_lfs

    if not specs:
        raise BadRequest("Name at least one repo to export")
    work = (bk.settings.data / "tmp" / f"bundle-export-{secrets.token_hex(6)}").resolve()
    work.mkdir(parents=True)
    tmp_out = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    report = ExportReport(out)
    members: dict[str, _Member] = {}
    try:
        plans, blobs = [], {}  # blobs: oid → (size, where to read it)
        with bk.db.session() as db:
            chosen: dict[int, tuple] = {}  # one entry per repo: REPO@a REPO@b carry both refs
            for spec in specs:
                repo = access.find_repo(db, spec.repo_type, spec.repo_id)
                if repo is None:
                    raise RepoNotFound(f"No {spec.repo_type} repo {spec.repo_id} on this hub")
                refs = _select_refs(bk, repo.storage_key, _raw_refs(bk.repos.path(repo.storage_key)), spec)
                chosen.setdefault(repo.id, (repo, {}))[1].update(refs)
            for i, (repo, refs) in enumerate(chosen.values()):
                src = bk.repos.path(repo.storage_key)
                base = None
                if since:
                    base = bk.repos.resolve(repo.storage_key, since)
                    if base is None:
                        raise RevisionNotFound(f"--since {since}: no such revision in {repo.repo_id}")
                scratch = _scratch_repo(work / f"{i}.git", src)
                for ref, sha in refs.items():
                    _git(scratch, "update-ref", ref, sha)
                tips = sorted(set(refs.values()))
                new = int(_git(scratch, "rev-list", "--count", *tips, *([f"^{base}"] if base else [])).stdout)
                bundle_name = None
                if new:
                    bundle_name = f"git/{i}.bundle"
                    _git(scratch, "bundle", "create", "-q", str(work / f"{i}.bundle"), "--all",
                         *([f"^{base}"] if base else []))
                pointers = _lfs_pointers(scratch, tips, base)
                lfs = []
                for oid, size in sorted(pointers.items()):
                    try:
                        loc = files.lfs_location(db, bk, repo, oid)
                        # a mirror's object nobody read yet: fetched from the upstream now, then carried
                        mirror_lfs.fetch_now(db, bk, repo, oid, size)
                    except EntryNotFound as exc:
                        if mirror.lfs_source(bk, repo.storage_key) is not None:
                            raise BadRequest(f"{repo.repo_id}: LFS object {oid} is not stored here and could not "
                                             f"be fetched from the upstream ({exc.message}); export with the "
                                             "server's COVE_MIRROR_* settings while the upstream is reachable"
                                             ) from exc
                        echo(f"{repo.repo_id}: {oid} looks like an LFS pointer but the repo holds no such object; "
                             "skipped")
                        continue
                    blobs.setdefault(oid, (size, loc))
                    lfs.append([oid, size])
                plans.append({"type": repo.type, "id": repo.repo_id, "private": bool(repo.private),
                              "gated": repo.gated, "sdk": repo.sdk, "card_data": repo.card_data or {},
                              "refs": refs, "since": base, "bundle": bundle_name, "lfs": lfs, "commits": new})
        with open(tmp_out, "wb") as fh:
            writer = _HashingWriter(fh)
            with tarfile.open(fileobj=writer, mode="w", format=tarfile.PAX_FORMAT,
                              copybufsize=_BLOCK) as tar:  # type: ignore[arg-type]
                for i, plan in enumerate(plans):
                    if plan["bundle"]:
                        path = work / f"{i}.bundle"
                        with open(path, "rb") as src_fh:
                            members[plan["bundle"]] = _add(tar, writer, plan["bundle"], src_fh, path.stat().st_size)
                for oid, (size, loc) in sorted(blobs.items()):
                    source = (bk.blobs.open(loc.key) if loc.kind == "lfs" else _xet_stream(bk, loc.key, size))
                    try:
                        m = members[f"lfs/{oid}"] = _add(tar, writer, f"lfs/{oid}", source, size)
                    finally:
                        if hasattr(source, "close"):
                            source.close()
                    if m.sha256 != oid:
                        raise BadRequest(f"The stored bytes of LFS object {oid} hash to {m.sha256}; run `cove fsck`")
                    report.lfs_files += 1
                    report.lfs_bytes += size
                manifest = {"format": FORMAT, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                            "since": since, "repos": plans,
                            "members": {k: {"sha256": v.sha256, "size": v.size} for k, v in members.items()}}
                body = json.dumps(manifest, indent=1, sort_keys=True).encode()
                tar.addfile(_tarinfo(MANIFEST, len(body)), io.BytesIO(body))
                prefix_len, digest = writer.n, writer.digest.digest()
                signature = key.sign(_signed_message(prefix_len, digest))
                tar.addfile(_tarinfo(SIGNATURE, len(signature)), io.BytesIO(signature))
            fh.flush()
        tmp_out.replace(out)
        report.size = out.stat().st_size
        report.repos = [{"type": p["type"], "id": p["id"], "refs": p["refs"], "commits": p["commits"],
                         "lfs": len(p["lfs"])} for p in plans]
        return report
    finally:
        tmp_out.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def _select_refs(bk: Backends, key: str, refs: dict[str, str], spec: RepoSpec) -> dict[str, str]:
    """All branches and tags; or the branch or tag REV names; or, for a commit id, `main` at that commit."""
    if spec.rev is None:
        if not refs:
            raise RevisionNotFound(f"{spec.repo_id} has no branch or tag")
        return refs
    for ref in (spec.rev, f"refs/heads/{spec.rev}", f"refs/tags/{spec.rev}"):
        if ref in refs:
            return {ref: refs[ref]}
    sha = bk.repos.resolve(key, spec.rev)
    if sha is None:
        raise RevisionNotFound(f"Invalid rev id: {spec.rev} (in {spec.repo_id})")
    return {"refs/heads/main": sha}


def _xet_stream(bk: Backends, xet_hash: str, size: int) -> Iterator[bytes]:
    from cove.services import xet as xet_service

    return xet_service.stream_file(bk, xet_hash, 0, size) if size else iter(())


def _add(tar: tarfile.TarFile, writer: _HashingWriter, name: str, src: BinaryIO | Iterator[bytes],
         size: int) -> _Member:
    """A member whose data the manifest hashes (and the structure hash leaves out)."""
    reader = _HashingReader(src)
    info = _tarinfo(name, size)
    start = writer.n + len(info.tobuf(tar.format, tar.encoding, tar.errors))
    writer.skip = (start, start + size)
    try:
        tar.addfile(info, reader)  # type: ignore[arg-type]
    except OSError as exc:  # tarfile's "unexpected end of data": the source had fewer bytes than its size
        raise BadRequest(f"{name}: {exc} (read {reader.n} of {size} bytes); run `cove fsck`") from None
    writer.skip = (0, 0)
    if reader.n != size:
        raise BadRequest(f"{name}: read {reader.n} bytes, expected {size}")
    return _Member(reader.digest.hexdigest(), size)


# -- verification --------------------------------------------------------------------------------


def verify(path: Path, key: Ed25519PublicKey, dest: Path) -> dict:
    """Check the signature and every member's sha256 and size, extracting the members into `dest` in one read
    of the file; the manifest. Raises `BundleRefused` on any mismatch (`dest` is the caller's to drop).

    The signature covers the structure hash: every byte before the signature member's header except the data
    of the members the manifest hashes (which the manifest, inside the structure, covers): so every byte once."""
    from cove.services.bundle_keys import verify as verify_signature

    try:
        with tarfile.open(path, "r:") as tar:  # headers only: members' offsets and sizes
            infos = tar.getmembers()
    except (OSError, tarfile.TarError) as exc:
        raise BundleRefused(f"{path} is not a Cove bundle: {exc}") from None
    names = [i.name for i in infos]
    if len(infos) < 2 or names[-1] != SIGNATURE or names[-2] != MANIFEST:
        raise BundleRefused(f"{path} is not a Cove bundle (no manifest and signature at its end)")
    if len(set(names)) != len(names) or any(not i.isreg() for i in infos) or not all(
            _MEMBER_RE.match(n) for n in names[:-2]):
        raise BundleRefused(f"{path} holds members a Cove bundle never has")
    sig = infos[-1]
    structure, got, body = hashlib.sha256(), {}, b""
    with open(path, "rb") as fh:

        def copy(n: int, *sinks) -> None:  # noqa: ANN002 - hashers and files
            while n > 0:
                block = fh.read(min(_BLOCK, n))
                if not block:
                    raise BundleRefused(f"{path} is truncated")
                for sink in sinks:
                    sink.update(block) if hasattr(sink, "update") else sink.write(block)
                n -= len(block)

        pos = 0
        for info in infos[:-2]:
            copy(info.offset_data - pos, structure)
            target = dest / info.name
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with open(target, "wb") as out:
                copy(info.size, digest, out)
            got[info.name] = (digest.hexdigest(), info.size)
            pos = info.offset_data + info.size
        copy(infos[-2].offset_data - pos, structure)
        body = fh.read(infos[-2].size)
        structure.update(body)
        copy(sig.offset - infos[-2].offset_data - len(body), structure)
        header = fh.read(sig.offset_data - sig.offset)
        signature = fh.read(64)
        rest = fh.read()
    expected_end = -(-(sig.offset_data + 512 + 1024) // tarfile.RECORDSIZE) * tarfile.RECORDSIZE
    if (header != _sig_header() or sig.size != 64 or rest.strip(b"\0")
            or sig.offset_data + 64 + len(rest) != expected_end):
        raise BundleRefused("The bundle was changed after it was signed (its signature block is not intact)")
    if not verify_signature(key, signature, _signed_message(sig.offset, structure.digest())):
        raise BundleRefused("The bundle's signature does not match this public key, or the bundle was changed "
                            "after it was signed")
    try:
        manifest = json.loads(body)
    except ValueError as exc:
        raise BundleRefused(f"The bundle's manifest is not JSON: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BundleRefused(f"Bundle format {manifest.get('format')!r} is not supported (this Cove reads {FORMAT})")
    listed = manifest.get("members", {})
    if set(listed) != set(got):
        raise BundleRefused("The bundle's members are not the ones its manifest lists")
    for name, (sha, size) in got.items():
        if size != listed[name]["size"] or sha != listed[name]["sha256"] or (
                name.startswith("lfs/") and sha != name[4:]):
            raise BundleRefused(f"{name}: its bytes do not match the manifest's sha256")
    return manifest


# -- import -----------------------------------------------------------------------------------------


@dataclass
class _RefAction:
    ref: str
    old: str | None
    new: str
    kind: str  # create | fast-forward | same | behind


@dataclass
class _RepoPlan:
    meta: dict
    scratch: Path
    bundle: Path | None
    exists: bool
    actions: list[_RefAction]


def import_bundle(bk: Backends, path: Path, key: Ed25519PublicKey, actor: Actor, *,
                  echo: Echo = lambda line: None) -> list[str]:
    """Verify, check that every ref applies, then publish; one line per repo of what changed."""
    work = (bk.settings.data / "tmp" / f"bundle-import-{secrets.token_hex(6)}").resolve()
    work.mkdir(parents=True)
    try:
        manifest = verify(path, key, work / "members")
        echo(f"Signature and {len(manifest['members'])} member hashes verified.")
        plans = _plan(bk, manifest, work)
        _publish_blobs(bk, manifest, work / "members")
        return [_apply(bk, plan, actor, work / "members") for plan in plans]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _plan(bk: Backends, manifest: dict, work: Path) -> list[_RepoPlan]:
    """Every repo's ref updates, checked against the hub; refuses the whole bundle when one does not apply."""
    from cove.services import access, repos
    from cove.services.accounts import get_namespace

    plans: list[_RepoPlan] = []
    problems: list[str] = []
    with bk.db.session() as db:
        for i, meta in enumerate(manifest["repos"]):
            label = f"{meta['type']} {meta['id']}"
            refs = meta.get("refs") or {}
            if meta["type"] not in access.REPO_TYPES or not all(
                    _REF_RE.match(r) and _SHA_RE.match(s) for r, s in refs.items()):
                raise BundleRefused(f"{label}: the manifest names refs Cove cannot take")
            repos.validate_repo_id(meta["id"])
            if meta.get("bundle") and meta["bundle"] not in manifest["members"]:
                raise BundleRefused(f"{label}: its git bundle {meta['bundle']} is not in the bundle")
            for oid, size in meta.get("lfs", []):
                member = manifest["members"].get(f"lfs/{oid}")
                if member is None or member["size"] != size:
                    raise BundleRefused(f"{label}: LFS file {oid} is not in the bundle (or has another size)")
            repo = access.find_repo(db, meta["type"], meta["id"])
            if repo is None and get_namespace(db, meta["id"].partition("/")[0]) is None:
                problems.append(f"{label}: the namespace {meta['id'].partition('/')[0]} does not exist on this hub; "
                                "create it first (`cove user add` or `cove org add`)")
                continue
            local = bk.repos.path(repo.storage_key) if repo is not None else None
            scratch = _scratch_repo(work / f"{i}.git", local)
            bundle = work / "members" / meta["bundle"] if meta.get("bundle") else None
            if bundle is not None:
                check = _git(scratch, "bundle", "verify", str(bundle), check=False)
                if check.returncode != 0:
                    problems.append(f"{label}: this hub lacks the commits the bundle was made after "
                                    f"({meta.get('since')}); import the earlier bundle first")
                    continue
                heads = {}
                for line in _git(scratch, "bundle", "list-heads", str(bundle)).stdout.decode().splitlines():
                    sha, _, ref = line.partition(" ")
                    if ref.startswith(("refs/heads/", "refs/tags/")):
                        heads[ref] = sha
                if any(refs.get(ref) != sha for ref, sha in heads.items()):
                    raise BundleRefused(f"{label}: the git bundle's refs are not the manifest's")
                _git(scratch, "bundle", "unbundle", str(bundle))
            have = _raw_refs(local) if local is not None else {}
            actions = []
            for ref, new in sorted(refs.items()):
                if _git(scratch, "cat-file", "-e", new, check=False).returncode != 0:
                    problems.append(f"{label}: {ref} needs commit {new}, which neither the bundle nor this hub has")
                    continue
                old = have.get(ref)
                if old is None:
                    actions.append(_RefAction(ref, None, new, "create"))
                elif old == new:
                    actions.append(_RefAction(ref, old, new, "same"))
                elif ref.startswith("refs/tags/"):
                    problems.append(f"{label}: tag {ref[10:]} is {old[:12]} here and {new[:12]} in the bundle "
                                    "(tags never move)")
                elif _is_ancestor(scratch, old, new):
                    actions.append(_RefAction(ref, old, new, "fast-forward"))
                elif _is_ancestor(scratch, new, old):
                    actions.append(_RefAction(ref, old, new, "behind"))
                else:
                    problems.append(f"{label}: branch {ref[11:]} has diverged: {old[:12]} here, {new[:12]} in the "
                                    "bundle, neither contains the other")
            plans.append(_RepoPlan(meta, scratch, bundle, repo is not None, actions))
    if problems:
        raise BundleRefused("Nothing was imported:\n" + "\n".join(f"  {p}" for p in problems))
    return plans


def _publish_blobs(bk: Backends, manifest: dict, members: Path) -> None:
    """Verified LFS files into the blob store (content-addressed: what is there already is left alone)."""
    publish = getattr(bk.blobs, "publish_file", None)
    for name, m in manifest["members"].items():
        if not name.startswith("lfs/") or bk.blobs.exists(name):
            continue
        if publish is not None:
            publish(name, members / name)
        else:
            with open(members / name, "rb") as fh:
                bk.blobs.put_verified(name, fh, sha256=m["sha256"], size=m["size"])


def _apply(bk: Backends, plan: _RepoPlan, actor: Actor, members: Path) -> str:
    """Create the repo if needed, write its LFS rows, bring its objects in and move its refs."""
    from cove.services import access, repos, uploads, webhooks

    meta = plan.meta
    label = f"{meta['type']} {meta['id']}"
    ns, _, name = meta["id"].partition("/")
    placeholder = None
    with bk.db.session() as db:
        repo = access.find_repo(db, meta["type"], meta["id"])
        if repo is None:
            repo, _ = repos.create(db, bk, actor, repo_type=meta["type"], namespace=ns, name=name,
                                   private=bool(meta.get("private")), sdk=meta.get("sdk"))
            repo.gated = meta.get("gated") if meta.get("gated") in ("auto", "manual") else None
            placeholder = repo.sha
        for oid, size in meta.get("lfs", []):
            uploads.adopt(db, repo, oid, int(size), verified=True)
        key = repo.storage_key
    moving = [a for a in plan.actions if a.kind in ("create", "fast-forward")]
    if placeholder is not None:  # a repo made here: its first commit gives way to the bundle's main
        for a in moving:
            if a.ref == "refs/heads/main":
                a.old = placeholder
    before = bk.repos.refs(key)
    if moving and plan.bundle is not None:
        _git(bk.repos.path(key), "bundle", "unbundle", str(plan.bundle))
    bk.repos.forget(key)
    for a in moving:
        with bk.repos.ref_lock(key, a.ref):
            try:
                bk.repos.update_ref(key, a.ref, a.new, a.old or ZERO)
            except RefConflict as exc:
                raise HubError(f"{label}: {a.ref} moved while importing ({exc}); import again") from None
    bk.repos.forget(key)
    after = bk.repos.refs(key)
    with bk.db.session() as db:
        repo = access.find_repo(db, meta["type"], meta["id"])
        head = after.get(f"refs/heads/{bk.repos.default_branch(key)}")
        if head and head != repo.sha:
            repos.reindex(db, bk, repo, head)
        elif after != before:
            repo.last_modified = repos.now()
        if after != before:
            webhooks.repo_event(db, repo, "update", "repo.content", refs=webhooks.refs_changed(before, after))
    done = [f"{a.ref} {a.kind} {a.new[:12]}" for a in plan.actions if a.kind != "same"]
    state = "created" if placeholder is not None else ("updated" if moving else "up to date")
    return f"{label}: {state}" + (f" ({', '.join(done)})" if done else "") + f"; {len(meta.get('lfs', []))} LFS files"
