"""PostgreSQL: the Alembic migrations, one live smoke test, and two API processes sharing PG + S3."""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download

from tests.conftest import User
from tests.storage.conftest import S3, _stop, aws_env_for, free_port, make_user, start_cove, wait_http

pytestmark = pytest.mark.postgres


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("COVE_")}


def test_migrations_on_postgres(pg_url: str, tmp_path: Path) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect

    from cove.backends import build_backends
    from cove.db.migrate import alembic_config, upgrade
    from cove.db.tables import Base
    from cove.settings import Settings

    bk = build_backends(Settings(data=tmp_path, database_url=pg_url))
    assert bk.db.engine.dialect.name == "postgresql"
    upgrade(bk)
    upgrade(bk)  # idempotent: a second start-up finds the schema at head
    tables = set(inspect(bk.db.engine).get_table_names())
    assert {"alembic_version", "namespaces", "repos", "tokens", "lfs_objects"} <= tables

    # The migrated schema is what the models describe (types, nullability, indexes) on PostgreSQL too.
    # Xet tables are created on first use by services.xet.ensure_tables, not by Alembic: left out here.
    with bk.db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    diffs = [d for d in diffs if "xet_" not in repr(d)]
    assert diffs == []

    # Down and up again.
    command.downgrade(alembic_config(pg_url), "base")
    left = {t for t in inspect(bk.db.engine).get_table_names() if not t.startswith("xet_")}
    assert left <= {"alembic_version"}
    command.upgrade(alembic_config(pg_url), "head")
    bk.db.engine.dispose()


@pytest.fixture
def pg_hub(pg_url: str):  # noqa: ANN201
    """`cove serve` on PostgreSQL with local blobs."""
    root = Path(tempfile.mkdtemp(prefix="cove-pghub-"))
    port = free_port()
    env = {**_base_env(), "COVE_DATA": str(root / "data"), "COVE_DATABASE_URL": pg_url,
           "COVE_SECRET": "pg-smoke-" + uuid.uuid4().hex}
    log = root / "server.log"
    proc = start_cove(env, port, log)
    try:
        wait_http(f"http://127.0.0.1:{port}", proc, log)
        yield f"http://127.0.0.1:{port}", make_user(env, "dave")
    finally:
        _stop(proc)


@pytest.mark.no_xet
def test_serve_on_postgres(pg_hub, no_xet, tmp_path) -> None:  # noqa: ANN001
    endpoint, user = pg_hub
    api = HfApi(endpoint=endpoint, token=user.token)
    name = f"pg-smoke-{uuid.uuid4().hex[:6]}"
    repo = f"dave/{name}"
    api.create_repo(repo)
    data = os.urandom(1_500_000)
    api.upload_file(path_or_fileobj=data, path_in_repo="model.bin", repo_id=repo)
    api.upload_file(path_or_fileobj=b"---\nlicense: mit\ntags: [pgtest]\n---\n# hi\n", path_in_repo="README.md",
                    repo_id=repo)
    assert [m.id for m in api.list_models(search="pg-smoke")] == [repo]
    assert [m.id for m in api.list_models(author="dave")] == [repo]
    assert sorted(api.list_repo_files(repo)) == [".gitattributes", "README.md", "model.bin"]
    p = hf_hub_download(repo, "model.bin", endpoint=endpoint, token=user.token, cache_dir=tmp_path)
    with open(p, "rb") as fh:
        assert fh.read() == data
    assert len(api.list_repo_commits(repo)) == 3


# -- scale-out: two stateless API processes on one PostgreSQL + one bucket -------------------------


@dataclass
class Pair:
    endpoints: list[str]
    user: User
    bucket: str
    env: dict[str, str]

    def api(self, i: int) -> HfApi:
        return HfApi(endpoint=self.endpoints[i], token=self.user.token)


@pytest.fixture(scope="module")
def pair(pg, s3_server: S3):  # noqa: ANN001, ANN201
    """Two `cove serve` processes on different ports: one PostgreSQL database, one bucket, one shared
    COVE_DATA (the repos folder; a shared volume in a real deployment) and one COVE_SECRET."""
    root = Path(tempfile.mkdtemp(prefix="cove-scaleout-"))
    bucket = s3_server.new_bucket()
    common = {**aws_env_for(_base_env()), "COVE_DATA": str(root / "shared"),
              "COVE_DATABASE_URL": pg.create_database(f"cove_pair_{uuid.uuid4().hex[:8]}"),
              "COVE_BLOB_BACKEND": "s3", "COVE_S3_BUCKET": bucket, "COVE_S3_ENDPOINT_URL": s3_server.endpoint,
              "COVE_SECRET": "scale-out-test-secret-" + uuid.uuid4().hex}
    ports = [free_port(), free_port()]
    endpoints = [f"http://127.0.0.1:{p}" for p in ports]
    logs = [root / f"server{i}.log" for i in range(2)]
    # Both start at once: their start-up migrations race on the same empty database.
    procs = [start_cove({**common, "COVE_ENDPOINT": e}, p, log) for p, e, log in zip(ports, endpoints, logs,
                                                                                      strict=True)]
    try:
        for e, proc, log in zip(endpoints, procs, logs, strict=True):
            wait_http(e, proc, log)
        yield Pair(endpoints, make_user(common, "erin"), bucket, common)
    finally:
        for proc in procs:
            _stop(proc)


@pytest.mark.no_xet
def test_commit_through_one_is_visible_through_the_other(pair: Pair, no_xet, tmp_path) -> None:  # noqa: ANN001
    a, b = pair.api(0), pair.api(1)
    repo = f"erin/shared-{uuid.uuid4().hex[:6]}"
    a.create_repo(repo)
    data = os.urandom(2_000_000)
    info = a.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=repo)

    assert b.repo_info(repo).sha == info.oid
    assert sorted(b.list_repo_files(repo)) == [".gitattributes", "w.bin"]
    assert repo in [m.id for m in b.list_models(author="erin")]
    p = hf_hub_download(repo, "w.bin", endpoint=pair.endpoints[1], token=pair.user.token, cache_dir=tmp_path)
    with open(p, "rb") as fh:
        assert fh.read() == data

    # ... and the other way round, with the parent commit B saw.
    info2 = b.upload_file(path_or_fileobj=b"v2", path_in_repo="notes.txt", repo_id=repo, parent_commit=info.oid)
    assert a.repo_info(repo).sha == info2.oid
    r = httpx.get(f"{pair.endpoints[0]}/{repo}/resolve/main/notes.txt",
                  headers={"authorization": f"Bearer {pair.user.token}"})
    assert r.content == b"v2"
    # A signed LFS URL minted by one process is honoured by the other (shared COVE_SECRET).
    sha = hashlib.sha256(data).hexdigest()
    batch = httpx.post(f"{pair.endpoints[0]}/{repo}.git/info/lfs/objects/batch",
                       headers={"authorization": f"Bearer {pair.user.token}"},
                       json={"operation": "download", "objects": [{"oid": sha, "size": len(data)}]})
    href = batch.json()["objects"][0]["actions"]["download"]["href"]
    assert href.startswith(pair.endpoints[0])
    assert httpx.get(pair.endpoints[1] + href[len(pair.endpoints[0]):]).content == data


@pytest.mark.no_xet
def test_concurrent_commits_through_both_processes(pair: Pair, no_xet) -> None:  # noqa: ANN001
    """Commits racing on one branch through two processes: git's compare-and-swap on the ref plus the
    server's rebase-and-retry lose nothing; every acknowledged commit is in the history."""
    repo = f"erin/race-{uuid.uuid4().hex[:6]}"
    pair.api(0).create_repo(repo)
    n = 16

    def commit(i: int) -> str | None:
        try:
            return pair.api(i % 2).upload_file(path_or_fileobj=f"file {i}".encode(), path_in_repo=f"f{i:02d}.txt",
                                               repo_id=repo).oid
        except Exception as exc:  # noqa: BLE001 - a refused commit (409) is allowed, a lost one is not
            return repr(exc)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(commit, range(n)))
    acked = {f"f{i:02d}.txt": r for i, r in enumerate(results) if r and len(r) == 40}
    assert len(acked) >= n // 2, results
    for api in (pair.api(0), pair.api(1)):
        files = set(api.list_repo_files(repo))
        assert set(acked) <= files
        history = {c.commit_id for c in api.list_repo_commits(repo)}
        assert set(acked.values()) <= history
        assert len(history) == 1 + len(acked)


@pytest.mark.xet
def test_xet_upload_through_one_download_through_the_other(pair: Pair, tmp_path) -> None:  # noqa: ANN001
    pytest.importorskip("hf_xet")
    repo = f"erin/xet-{uuid.uuid4().hex[:6]}"
    pair.api(0).create_repo(repo)
    data = os.urandom(3_000_000)
    pair.api(0).upload_file(path_or_fileobj=data, path_in_repo="x.bin", repo_id=repo)
    p = hf_hub_download(repo, "x.bin", endpoint=pair.endpoints[1], token=pair.user.token, cache_dir=tmp_path)
    with open(p, "rb") as fh:
        assert fh.read() == data
    r = httpx.get(f"{pair.endpoints[1]}/{repo}/resolve/main/x.bin",
                  headers={"authorization": f"Bearer {pair.user.token}", "Range": "bytes=10-1009"})
    assert r.status_code == 206 and r.content == data[10:1010]
