"""A repeated GET /resolve of a local LFS file is sent again past the router and the database (issue 16 item 4),
with the same headers and bytes, ranges included, and every change seen at once (private == missing)."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi.testclient import TestClient
from huggingface_hub import HfApi
from sqlalchemy import event, update

from cove.app import create_app
from cove.backends import build_backends
from cove.db.tables import Repo
from cove.settings import Settings
from tests.conftest import free_port, start_server, stop_server
from tests.perf.test_downloads import _token
from tests.perf.test_info_cache import _commit


def test_a_repeated_lfs_get_runs_no_statement_and_sees_changes(tmp_path: Path, no_xet) -> None:  # noqa: ANN001
    data = tmp_path / "data"
    srv = start_server(data, free_port(), COVE_SCAN_INTERVAL="0")
    try:
        token = _token(data, "gil")
        api = HfApi(endpoint=srv.endpoint, token=token)
        api.create_repo("gil/m")
        blob = os.urandom(300_000)
        api.upload_file(path_or_fileobj=blob, path_in_repo="w.bin", repo_id="gil/m")
    finally:
        stop_server(srv.proc)
    bk = build_backends(Settings(data=data, scan_interval=0))
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001, ANN002
        statements.append(statement)

    with TestClient(create_app(bk.settings, bk)) as client:
        url = "/gil/m/resolve/main/w.bin"
        first = client.get(url)
        assert first.status_code == 200 and first.content == blob
        event.listen(bk.db.engine, "before_cursor_execute", seen)
        try:
            again = client.get(url)
            part = client.get(url, headers={"Range": "bytes=10-19"})
        finally:
            event.remove(bk.db.engine, "before_cursor_execute", seen)
        assert statements == []
        assert again.content == blob
        drop = ("x-request-id", "date")
        assert {k: v for k, v in again.headers.items() if k not in drop} == \
            {k: v for k, v in first.headers.items() if k not in drop}
        assert again.headers["x-request-id"] != first.headers["x-request-id"]
        assert part.status_code == 206 and part.content == blob[10:20]

        _commit(client, "gil/m", token, "w.bin", b"replaced")  # a new commit: the new bytes at once
        assert client.get(url).content == b"replaced"
        _commit(client, "gil/m", token, "w.bin", blob)
        assert client.get(url).content == blob
        with bk.db.session() as db:  # the repo made private: anonymous GETs are refused at once
            db.execute(update(Repo).where(Repo.name == "m").values(private=True))
        assert client.get(url).status_code == 404
        assert client.get(url, headers={"Authorization": f"Bearer {token}"}).content == blob
