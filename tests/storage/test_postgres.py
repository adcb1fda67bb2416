"""PostgreSQL: the Alembic migrations, one live smoke test, and two API processes sharing PG + S3."""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download

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
    assert set(inspect(bk.db.engine).get_table_names()) <= {"alembic_version"}
    command.upgrade(alembic_config(pg_url), "head")
    bk.db.engine.dispose()


@pytest.fixture
def pg_hub(pg_url: str):  # noqa: ANN201
    """`cove serve` on PostgreSQL with local blobs."""
    root = Path(tempfile.mkdtemp(prefix="cove-pghub-"))
    port = free_port()
    env = {**_base_env(), "COVE_DATA": str(root / "data"), "COVE_DATABASE_URL": pg_url}
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


@pytest.mark.no_xet
def test_two_processes_share_postgres_and_s3(pg_url: str, s3_server: S3, no_xet, tmp_path) -> None:  # noqa: ANN001
    root = Path(tempfile.mkdtemp(prefix="cove-scaleout-"))
    shared = root / "shared"  # the repos folder (a shared volume in a real deployment)
    bucket = s3_server.new_bucket()
    common = {**aws_env_for(_base_env()), "COVE_DATA": str(shared), "COVE_DATABASE_URL": pg_url,
              "COVE_BLOB_BACKEND": "s3", "COVE_S3_BUCKET": bucket, "COVE_S3_ENDPOINT_URL": s3_server.endpoint,
              "COVE_SECRET": "scale-out-test-secret-" + uuid.uuid4().hex}
    ports = [free_port(), free_port()]
    endpoints = [f"http://127.0.0.1:{p}" for p in ports]
    # Both start at once: their start-up migrations race on the same empty database.
    procs = [start_cove({**common, "COVE_ENDPOINT": e}, p, root / f"server{i}.log")
             for i, (p, e) in enumerate(zip(ports, endpoints, strict=True))]
    try:
        for e, proc, i in zip(endpoints, procs, range(2), strict=True):
            wait_http(e, proc, root / f"server{i}.log")
        user = make_user(common, "erin")
        a, b = (HfApi(endpoint=e, token=user.token) for e in endpoints)
        repo = f"erin/shared-{uuid.uuid4().hex[:6]}"
        a.create_repo(repo)
        data = os.urandom(2_000_000)
        info = a.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=repo)

        # Everything written through A is visible through B.
        assert b.repo_info(repo).sha == info.oid
        assert sorted(b.list_repo_files(repo)) == [".gitattributes", "w.bin"]
        assert repo in [m.id for m in b.list_models(author="erin")]
        p = hf_hub_download(repo, "w.bin", endpoint=endpoints[1], token=user.token, cache_dir=tmp_path)
        with open(p, "rb") as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == hashlib.sha256(data).hexdigest()

        # ... and the other way round, with the parent commit B saw.
        info2 = b.upload_file(path_or_fileobj=b"v2", path_in_repo="notes.txt", repo_id=repo,
                              parent_commit=info.oid)
        assert a.repo_info(repo).sha == info2.oid
        r = httpx.get(f"{endpoints[0]}/{repo}/resolve/main/notes.txt",
                      headers={"authorization": f"Bearer {user.token}"})
        assert r.content == b"v2"
        # A signed LFS URL minted by one process is honoured by the other (shared COVE_SECRET).
        sha = hashlib.sha256(data).hexdigest()
        batch = httpx.post(f"{endpoints[0]}/{repo}.git/info/lfs/objects/batch",
                           headers={"authorization": f"Bearer {user.token}"},
                           json={"operation": "download", "objects": [{"oid": sha, "size": len(data)}]})
        href = batch.json()["objects"][0]["actions"]["download"]["href"]
        assert href.startswith(endpoints[0])
        assert httpx.get(endpoints[1] + href[len(endpoints[0]):]).content == data
    finally:
        for proc in procs:
            _stop(proc)
