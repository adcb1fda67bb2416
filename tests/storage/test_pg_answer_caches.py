"""The HEAD and repo-info answer caches on PostgreSQL (issue 17 item 9, issue 16): on, and emptied across
processes by a commit in another one (`cove.db.changes`: LISTEN/NOTIFY), while a counted download's flush
empties nothing."""

from __future__ import annotations

import os
import re
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi

from tests.storage.conftest import _stop, free_port, make_user, start_cove, wait_http

pytestmark = pytest.mark.postgres


def _clears(endpoint: str) -> float:
    found = re.findall(r"^cove_head_cache_clears_total (\S+)$", httpx.get(f"{endpoint}/metrics").text, re.MULTILINE)
    assert found, "the HEAD cache's clears are not exposed"
    return float(found[0])


def _until(check, timeout: float = 5.0) -> bool:  # noqa: ANN001
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_a_commit_in_one_process_empties_the_other_ones_caches(pg) -> None:  # noqa: ANN001
    root = Path(tempfile.mkdtemp(prefix="cove-pgcache-"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("COVE_")}, "COVE_DATA": str(root / "data"),
           "COVE_DATABASE_URL": pg.create_database(f"cove_cache_{uuid.uuid4().hex[:8]}"),
           "COVE_SECRET": "pg-cache-" + uuid.uuid4().hex, "COVE_SCAN_INTERVAL": "0",
           "COVE_DOWNLOAD_FLUSH_INTERVAL": "0.1", "HF_HUB_DISABLE_XET": "1"}
    ports = [free_port(), free_port()]
    logs = [root / f"server{i}.log" for i in range(2)]
    procs = [start_cove(env, p, log) for p, log in zip(ports, logs, strict=True)]
    try:
        ends = [f"http://127.0.0.1:{p}" for p in ports]
        for e, proc, log in zip(ends, procs, logs, strict=True):
            wait_http(e, proc, log)
        user = make_user(env, "pia")
        api = HfApi(endpoint=ends[0], token=user.token)
        repo = f"pia/m-{uuid.uuid4().hex[:6]}"
        api.create_repo(repo)
        api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=repo)
        api.upload_file(path_or_fileobj=b"w" * 100, path_in_repo="w.txt", repo_id=repo)
        head = f"{ends[1]}/{repo}/resolve/main/w.txt"
        info = f"{ends[1]}/api/models/{repo}"
        # Process 1 fills its caches; a counted download there (flushed every 0.1 s) empties nothing.
        assert [httpx.head(head).status_code for _ in range(3)] == [200] * 3
        assert [httpx.get(info).status_code for _ in range(3)] == [200] * 3
        before = _clears(ends[1])
        assert httpx.head(f"{ends[1]}/{repo}/resolve/main/config.json").status_code == 200
        assert _until(lambda: httpx.get(info).json()["downloads"] == 1)  # a repo info shows the count
        assert httpx.head(head).status_code == 200
        assert _clears(ends[1]) == before
        # Process 0 makes the repo private: process 1 answers as for a missing repo, from then on.
        api.update_repo_settings(repo, private=True)
        assert _until(lambda: httpx.head(head).status_code == 404)
        assert _clears(ends[1]) > before  # it was answered from the cache, which the commit emptied
        assert httpx.head(head).status_code == 404
        assert httpx.get(info).status_code == 404
        owner = {"Authorization": f"Bearer {user.token}"}
        assert httpx.get(info, headers=owner).json()["private"] is True
    finally:
        for proc in procs:
            _stop(proc)


def test_behind_pgbouncer_nothing_is_cached_but_writes_still_notify(pg_url: str) -> None:
    from sqlalchemy import text

    from cove.db.changes import changes_for
    from cove.db.session import make_engine

    direct, pooled = make_engine(pg_url), make_engine(pg_url, pgbouncer=True)
    try:
        assert changes_for(pooled).generation() is None  # LISTEN is not kept by PgBouncer's transaction mode
        assert _until(lambda: changes_for(direct).generation() is not None)
        before = changes_for(direct).generation()
        with pooled.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS t_notify (x int)"))
        assert _until(lambda: changes_for(direct).generation() != before)
    finally:
        direct.dispose()
        pooled.dispose()
