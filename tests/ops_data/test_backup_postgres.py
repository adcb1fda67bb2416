"""`cove backup` of a hub on PostgreSQL (pg_dump), `cove restore` into a new folder and a new, empty database
(pg_restore): every commit and file is back byte-for-byte and `cove fsck` is clean."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi, constants, hf_hub_download

from tests.conftest import SERVER_ENV, free_port, start_server, stop_server
from tests.storage import pg as pgmod

pytestmark = pytest.mark.postgres

_why = pgmod.unavailable()
if _why:
    pytest.skip(_why, allow_module_level=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[pgmod.PgCluster]:
    with pgmod.running() as c:
        yield c


@pytest.fixture(scope="module")
def path_without_pg(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH with every command of this one but PostgreSQL's client programs (as on a host where they live only
    in /usr/lib/postgresql/<v>/bin): `cove backup` / `cove restore` must find pg_dump / pg_restore there."""
    pg_names = {Path(p).name for p in glob.glob("/usr/lib/postgresql/*/bin/*")}
    shim = tmp_path_factory.mktemp("path-without-pg")
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for entry in os.scandir(folder):
            if entry.name not in pg_names and not (shim / entry.name).exists():
                (shim / entry.name).symlink_to(entry.path)
    assert shutil.which("pg_dump", path=str(shim)) is None
    return str(shim)


#: `cove serve` on PostgreSQL needs COVE_SECRET (issue 17 item 6).
_SECRET = "backup-postgres-test-secret"


def _cove(data: Path, db_url: str, *args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**SERVER_ENV, "COVE_DATA": str(data), "COVE_DATABASE_URL": db_url}
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "cove", *args], env=env, capture_output=True, text=True,
                          check=False)


def test_backup_and_restore_on_postgres(cluster: pgmod.PgCluster, path_without_pg: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    db_url = cluster.create_database(f"cove_{uuid.uuid4().hex[:10]}")
    srv = start_server(tmp_path / "data", free_port(), COVE_DATABASE_URL=db_url, COVE_SECRET=_SECRET)
    user = f"pgop{uuid.uuid4().hex[:6]}"
    try:
        out = _cove(srv.data, db_url, "user", "add", user)
        assert out.returncode == 0, out.stdout + out.stderr
        out = _cove(srv.data, db_url, "token", "create", user, "--role", "write")
        assert out.returncode == 0, out.stdout + out.stderr
        token = out.stdout.strip()
        api = HfApi(endpoint=srv.endpoint, token=token)
        repo_id = f"{user}/pg-backup"
        api.create_repo(repo_id)
        files: list[tuple[str, str, bytes]] = []  # (commit sha, path, content)
        for path, body in [("README.md", b"# on postgres\n"), ("weights.bin", os.urandom(200_000)),
                           ("notes/a.txt", b"small\n")]:
            info = api.upload_file(path_or_fileobj=body, path_in_repo=path, repo_id=repo_id,
                                   commit_message=f"add {path}")
            files.append((info.oid, path, body))
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # one file through classic LFS too
        lfs_body = os.urandom(150_000)
        info = api.upload_file(path_or_fileobj=lfs_body, path_in_repo="lfs.bin", repo_id=repo_id,
                               commit_message="add lfs.bin")
        files.append((info.oid, "lfs.bin", lfs_body))
        monkeypatch.undo()
        commits = [c.commit_id for c in api.list_repo_commits(repo_id)]

        dest = tmp_path / "backup"
        out = _cove(srv.data, db_url, "backup", str(dest), path=path_without_pg)
        assert out.returncode == 0, out.stdout + out.stderr
        assert (dest / "cove.pgdump").is_file()
    finally:
        stop_server(srv.proc)

    new_data = tmp_path / "restored"
    new_url = cluster.create_database(f"cove_{uuid.uuid4().hex[:10]}")
    out = _cove(new_data, new_url, "restore", str(dest), "--data", str(new_data), path=path_without_pg)
    assert out.returncode == 0, out.stdout + out.stderr
    srv2 = start_server(new_data, free_port(), COVE_DATABASE_URL=new_url, COVE_SECRET=_SECRET)
    try:
        fsck = _cove(new_data, new_url, "fsck")
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        restored = HfApi(endpoint=srv2.endpoint, token=token)
        assert [c.commit_id for c in restored.list_repo_commits(repo_id)] == commits
        for sha, path, body in files:
            for rev in (sha, "main"):
                got = hf_hub_download(repo_id, path, revision=rev, endpoint=srv2.endpoint, token=token,
                                      cache_dir=tmp_path / f"cache-{rev}")
                assert Path(got).read_bytes() == body, (rev, path)
    finally:
        stop_server(srv2.proc)
