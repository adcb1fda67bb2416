"""`cove backup` / `cove restore`: an online, consistent snapshot of a hub, and bringing it back.

Order, and why it is consistent while the server keeps accepting writes:

1. git: every repo is copied with `git clone --mirror --no-local` (upload-pack: the refs as they are at one
   instant, and every object they reach), then its `config`.
2. database: SQLite through its online backup API (`sqlite3.Connection.backup`); PostgreSQL with `pg_dump`.
3. blobs: every LFS object, xorb, shard and staged upload that the database copy names.

Cove writes in this order: blob, then its database row, then the git ref (a commit or push is refused unless
the rows of the LFS objects it points at exist). So every commit in the copied git already had its rows when
the database was copied after it, and every row's blob existed before the row: the backup holds every object
its commits point at. The database copy may be newer than git (a commit that landed between the two steps):
its index row then names a commit the copy lacks, and `cove restore` (as every `cove serve` start) re-derives
index rows from the head of `main`. Blobs are content-addressed and never rewritten, so copying them last
gets exactly the bytes the rows name — unless `cove gc` deletes them meanwhile: don't run it during a backup.
A commit acknowledged before the backup started is in it.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import create_engine, select
from sqlalchemy.engine import URL, make_url

from cove.backends import Backends
from cove.db.tables import LfsObject, Repo
from cove.db.xet_tables import XetShard, XetStagedUpload, XetXorb
from cove.errors import BadRequest
from cove.services.xet import ensure_tables
from cove.storage.blobs_local import LocalBlobStore
from cove.storage.interfaces import BlobVerificationError

MANIFEST = "manifest.json"
FORMAT = 1

Echo = Callable[[str], None]


def _empty_folder(path: Path, what: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BadRequest(f"{what} {path} exists and is not an empty folder")
    path.mkdir(parents=True, exist_ok=True)


def _git(*args: str, cwd: Path | None = None) -> None:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.strip()}")


def copy_repo(src: Path, dest: Path) -> bool:
    """A consistent copy of a bare repo: refs at one instant and the objects they reach, and its config.

    False when the repo was deleted meanwhile."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        _git("clone", "--quiet", "--mirror", "--no-local", "--no-hardlinks", str(src), str(dest))
    except RuntimeError:
        if src.is_dir():
            raise
        shutil.rmtree(dest, ignore_errors=True)
        return False
    shutil.copyfile(src / "config", dest / "config")  # Cove's settings; drops the clone's `origin`
    if (src / "HEAD").is_file():
        shutil.copyfile(src / "HEAD", dest / "HEAD")
    return True


def _pg_bin(name: str) -> str:
    """PostgreSQL's `pg_dump` / `pg_restore`: on PATH, else the newest in /usr/lib/postgresql/<v>/bin (Debian and
    Ubuntu install them there and put only wrappers on PATH, which a bare install or a container may lack)."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                      key=lambda p: int(v) if (v := Path(p).parts[4]).isdigit() else 0)
    if versions:
        return versions[-1]
    raise BadRequest(f"{name} not found on PATH or in /usr/lib/postgresql/*/bin: install PostgreSQL's client "
                     "programs (Debian/Ubuntu: apt-get install postgresql-client)")


def _pg_conn(url: str) -> tuple[str, dict[str, str]]:
    """The libpq URL without its password, and the environment that carries it (`ps` shows argv, not env)."""
    u = make_url(url).set(drivername="postgresql")
    env = dict(os.environ)
    if u.password is not None:
        env["PGPASSWORD"] = str(u.password)
    bare = URL.create(u.drivername, u.username, None, u.host, u.port, u.database, u.query)
    return bare.render_as_string(hide_password=False), env


def _storage_keys(bk: Backends) -> list[str]:
    with bk.db.session() as db:
        return list(db.scalars(select(Repo.storage_key)))


def _named_blobs(engine_url: str) -> Iterator[tuple[str, str | None, bool]]:
    """(key, sha256 to check it against, whether it must exist) of every blob the database at `engine_url` names.

    An LFS object uploaded through Xet has no `lfs/` blob (its Xet file holds it)."""
    engine = create_engine(engine_url)
    try:
        with engine.connect() as conn:
            lfs: dict[str, bool] = {}
            for oid, xet_hash in conn.execute(select(LfsObject.oid, LfsObject.xet_hash)):
                lfs[oid] = lfs.get(oid, False) or xet_hash is None
            for oid, required in lfs.items():
                yield f"lfs/{oid}", oid, required
            for (h,) in conn.execute(select(XetXorb.hash)):
                yield f"xorbs/{h}", None, True
            for (h,) in conn.execute(select(XetShard.sha256)):
                yield f"shards/{h}", h, True
            for (key,) in conn.execute(select(XetStagedUpload.key)):
                yield key, None, False  # recorded before its body lands
    finally:
        engine.dispose()


def backup(bk: Backends, dest: Path, echo: Echo = lambda _: None) -> dict:
    """Write a snapshot of the hub into `dest` (a new or empty folder); returns the manifest."""
    ensure_tables(bk)
    dest = Path(dest)
    _empty_folder(dest, "Backup destination")
    started = time.time()
    # 1. git, before the database (see the module docstring).
    copied: set[str] = set()
    for key in _storage_keys(bk):
        src = bk.repos.path(key)
        if src.is_dir() and copy_repo(src, dest / "repos" / src.relative_to(bk.repos.root)):
            copied.add(key)
    echo(f"git: {len(copied)} repos")
    # 2. the database.
    url = make_url(bk.settings.db_url)
    if url.get_backend_name() == "sqlite":
        db_kind, snapshot = "sqlite", dest / "cove.db"
        with sqlite3.connect(url.database) as src_conn, sqlite3.connect(snapshot) as dst_conn:
            src_conn.backup(dst_conn)
        src_conn.close()
        dst_conn.close()
        names_url = f"sqlite:///{snapshot.resolve()}"
    elif url.get_backend_name() == "postgresql":
        db_kind = "postgresql"
        conn, env = _pg_conn(bk.settings.db_url)
        proc = subprocess.run([_pg_bin("pg_dump"), "--format=custom", "--file", str(dest / "cove.pgdump"),
                               "--dbname", conn], capture_output=True, text=True, check=False, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"pg_dump: {proc.stderr.strip()}")
        names_url = bk.settings.db_url  # rows written after the dump name blobs that exist too: a superset
    else:
        raise BadRequest(f"cannot back up a {url.get_backend_name()} database")
    echo(f"database: {db_kind}")
    # Repos created after step 1 that the database copy names: copied now (their refs are newer).
    engine = create_engine(names_url)
    try:
        with engine.connect() as conn:
            late = [k for (k,) in conn.execute(select(Repo.storage_key)) if k not in copied]
    finally:
        engine.dispose()
    for key in late:
        src = bk.repos.path(key)
        if src.is_dir():
            copy_repo(src, dest / "repos" / src.relative_to(bk.repos.root))
    # 3. blobs.
    out = LocalBlobStore(dest / "blobs")
    n = size = 0
    missing: list[str] = []
    for key, sha256, required in _named_blobs(names_url):
        try:
            with bk.blobs.open(key) as fh:
                info = out.put_verified(key, fh, sha256=sha256)
        except KeyError:
            if required:
                missing.append(key)
            continue
        except BlobVerificationError:  # corrupt at the source: left out, reported (`cove fsck` says more)
            missing.append(key)
            continue
        n += 1
        size += info.size
    shutil.rmtree(out.tmp, ignore_errors=True)
    echo(f"blobs: {n} ({size / 2**20:.1f} MiB)" + (f"; {len(missing)} named but missing" if missing else ""))
    secret = bk.settings.data / "secret"
    if not bk.settings.secret and secret.is_file():
        shutil.copyfile(secret, dest / "secret")
        os.chmod(dest / "secret", 0o600)
    manifest = {"format": FORMAT, "started": started, "finished": time.time(), "database": db_kind,
                "repos": len(copied) + len(late), "blobs": n, "blob_bytes": size, "missing_blobs": missing}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2))  # last: a backup without it is incomplete
    return manifest


def _iter_backup_blobs(root: Path) -> Iterator[tuple[str, Path]]:
    for ns in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for folder, _dirs, names in os.walk(ns):
            for name in names:
                yield f"{ns.name}/{name}", Path(folder) / name


def restore(src: Path, bk: Backends, echo: Echo = lambda _: None) -> dict:
    """Bring the backup in `src` back into the empty hub `bk` (its data folder, database and blob store)."""
    src = Path(src)
    if not (src / MANIFEST).is_file():
        raise BadRequest(f"{src} is not a complete Cove backup (no {MANIFEST})")
    manifest = json.loads((src / MANIFEST).read_text())
    data = bk.settings.data
    if any(p.name not in {"blobs", "repos", ".tmp"} for p in data.iterdir()) or any(bk.repos.root.iterdir()):
        raise BadRequest(f"Data folder {data} is not empty")
    url = make_url(bk.settings.db_url)
    if manifest["database"] == "sqlite":
        if url.get_backend_name() != "sqlite":
            raise BadRequest("This backup holds a SQLite database; restore it into a SQLite hub")
        with sqlite3.connect(src / "cove.db") as s, sqlite3.connect(url.database) as d:
            s.backup(d)
        s.close()
        d.close()
    else:
        if url.get_backend_name() != "postgresql":
            raise BadRequest("This backup holds a PostgreSQL dump; restore it into a PostgreSQL hub")
        conn, env = _pg_conn(bk.settings.db_url)
        proc = subprocess.run([_pg_bin("pg_restore"), "--no-owner", "--exit-on-error", "--dbname", conn,
                               str(src / "cove.pgdump")], capture_output=True, text=True, check=False, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"pg_restore: {proc.stderr.strip()}")
    echo("database restored")
    if (src / "repos").is_dir():
        shutil.copytree(src / "repos", bk.repos.root, dirs_exist_ok=True)
    if (src / "secret").is_file() and not bk.settings.secret:
        shutil.copyfile(src / "secret", data / "secret")
        os.chmod(data / "secret", 0o600)
    n = 0
    if (src / "blobs").is_dir():
        for key, path in _iter_backup_blobs(src / "blobs"):
            with open(path, "rb") as fh:
                bk.blobs.put_verified(key, fh, sha256=key.removeprefix("lfs/") if key.startswith("lfs/") else None)
            n += 1
    echo(f"blobs: {n}")
    from cove.db.migrate import upgrade

    upgrade(bk, reindex=True)  # migrations, if the backup is older, and index rows re-derived from git
    return manifest
