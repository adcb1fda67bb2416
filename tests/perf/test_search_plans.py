"""Issue 16 item 3: a first search's plan does not grow with the hub. At 20k repos a term matching ~3 % of them
(~550 hits) is served by walking the sort order's index until a page is found (no sort of every hit), on
SQLite (FTS5 trigram index, probed for its 32 newest hits only) and on PostgreSQL (pg_trgm, whose planner
misjudges such terms); a rare term is still served from the full-text index. Pages equal the index-driven
query's."""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, insert, text

from cove.backends import build_backends
from cove.db.migrate import upgrade
from cove.db.tables import Repo
from cove.services import search
from cove.services.accounts import ANONYMOUS
from cove.settings import Settings

N = 20_000
WORDS = ["bert", "gpt2", "llama", "t5", "roberta", "whisper"]
COMMON = ["llama-bert", "bert-t5", "gpt2-llama", "whisper-roberta"]  # `a-b`: ~3 % of the ids each
RARE = "-1234"  # ids ending -1234 or -1234x: 11 of 20k


def _seed(bk) -> None:  # noqa: ANN001
    """`N` public model rows straight through the database layer (as benchmarks/search_scale.py seeds)."""
    rnd = random.Random(16)
    base = datetime(2025, 1, 1)
    rows = []
    for i in range(N):
        ns, name = f"user{i % 1000}", f"{rnd.choice(WORDS)}-{rnd.choice(WORDS)}-{i}"
        rows.append(dict(type="model", namespace=ns, name=name, storage_key=secrets.token_hex(16), private=False,
                         created_at=base + timedelta(seconds=i), last_modified=base + timedelta(seconds=i),
                         tags=[], downloads=rnd.randrange(10000), likes=rnd.randrange(100),
                         search_text=f"{ns}/{name} a model"))
    with bk.db.engine.begin() as conn:
        conn.execute(insert(Repo), rows)
        if conn.dialect.name == "postgresql":
            conn.execute(text("ANALYZE repos"))


@contextmanager
def _statements(bk) -> Iterator[list[tuple[str, object]]]:  # noqa: ANN001
    seen: list[tuple[str, object]] = []

    def before(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        seen.append((statement, parameters))

    event.listen(bk.db.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(bk.db.engine, "before_cursor_execute", before)


def _first_page(bk, term: str, sort: str | None) -> tuple[list[int], list[str]]:  # noqa: ANN001
    """A first search's page of 20 (+1) ids, each statement it ran with its plan, and the expected page."""
    q = search.Query(repo_type="model", search=[term], sort=sort)
    with bk.db.session() as db, _statements(bk) as seen:
        got = [r.id for r in search.page(db, ANONYMOUS, q, offset=0, limit=21)]
    plans = []
    with bk.db.engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()
        for statement, params in seen:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            if conn.dialect.name == "postgresql":
                cursor.execute("EXPLAIN " + statement, params)
            else:
                cursor.execute("EXPLAIN QUERY PLAN " + statement, params)
            plans.append(statement + "\n" + "\n".join(str(r[-1] if len(r) > 1 else r[0]) for r in cursor.fetchall()))
    with bk.db.session() as db:
        want = [r.id for r in db.scalars(search.build(db, ANONYMOUS, q, all_hits=True).limit(21))]
    assert got == want, term
    return got, plans


@pytest.fixture(scope="module")
def sqlite_hub(tmp_path_factory):  # noqa: ANN201
    bk = build_backends(Settings(data=tmp_path_factory.mktemp("hub"), secret="s", scan_interval=0))
    upgrade(bk)
    _seed(bk)
    return bk


@pytest.fixture(scope="module")
def pg_hub(tmp_path_factory):  # noqa: ANN201
    from tests.storage import pg as pgmod

    why = pgmod.unavailable()
    if why:
        pytest.skip(why)
    with pgmod.running() as cluster:
        url = cluster.create_database("plans")
        bk = build_backends(Settings(data=tmp_path_factory.mktemp("hub"), secret="s", scan_interval=0,
                                     database_url=url))
        upgrade(bk)
        _seed(bk)
        yield bk
        bk.db.engine.dispose()


@pytest.mark.parametrize("sort", [None, "downloads"])
def test_sqlite_first_search_walks_the_sort_index_for_a_common_term(sqlite_hub, sort) -> None:  # noqa: ANN001
    for term in COMMON:
        got, plans = _first_page(sqlite_hub, term, sort)
        assert len(got) == 21
        for plan in plans:
            assert "TEMP B-TREE" not in plan, plan  # no sort of every hit: the order's index serves the page
            if "MATCH" in plan:  # the probe reads the term's newest hits, not up to 1,001 of them
                assert "LIMIT" in plan and "count(" not in plan, plan
        assert any("USING INDEX ix_repos_type_" in p and "LIKE" in p for p in plans), plans
    got, plans = _first_page(sqlite_hub, RARE, sort)  # a rare term: its hits, read from the full-text index
    assert 0 < len(got) < 21
    assert any("VIRTUAL TABLE" in p and "FROM repos" in p for p in plans), plans  # the index drives the page
    assert all("SCAN repos" not in p for p in plans), plans  # hits read by rowid, never a table scan


@pytest.mark.postgres
@pytest.mark.parametrize("sort", [None, "downloads"])
def test_postgres_first_search_walks_the_sort_index_for_a_common_term(pg_hub, sort) -> None:  # noqa: ANN001
    for term in COMMON:
        got, plans = _first_page(pg_hub, term, sort)
        assert len(got) == 21
        assert all("Bitmap" not in p and "Seq Scan" not in p for p in plans), plans  # not every hit, sorted
        assert any("Index Scan Backward using ix_repos_type_" in p for p in plans), plans
    got, plans = _first_page(pg_hub, RARE, sort)  # a rare term: the walk finds too few, the trigram index serves
    assert 0 < len(got) < 21
    assert any("ix_repos_id_trgm" in p for p in plans), plans


def test_a_repeated_listing_reads_no_repo_rows_and_sees_changes_at_once(tmp_path) -> None:  # noqa: ANN001
    """A repeated `/api/models` page answers its kept body (no rows read, nothing serialized again) while the
    database is unchanged; a new repo or a repo made private shows at once."""
    from fastapi.testclient import TestClient

    from cove.app import create_app
    from cove.services import repos
    from tests.perf.test_startup_and_search import sam_hub

    settings, bk, actor = sam_hub(tmp_path)
    with TestClient(create_app(settings, bk)) as client:
        for url in ("/api/models?search=bert&limit=20", "/api/models?limit=2"):
            first = client.get(url)
            with _statements(bk) as seen:
                again = client.get(url)
            assert again.json() == first.json() and again.headers.get("link") == first.headers.get("link")
            assert not [s for s, _ in seen if "FROM repos" in s], seen
        with bk.db.session() as db:
            repos.create(db, bk, actor, repo_type="model", namespace="sam", name="bert-four")
            db.execute(Repo.__table__.update().where(Repo.name == "bert-one").values(private=True))
        got = client.get("/api/models?search=bert&limit=20").json()
        assert sorted(m["id"] for m in got) == ["sam/bert-four", "sam/bert-two"]


def test_a_listing_page_longer_than_the_kept_bound_is_rendered_each_time(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """Kept listing bodies are bounded in size (any query string makes a new key): a page over
    `CACHED_BODY_BYTES` reads its rows again, a shorter one does not."""
    from fastapi.testclient import TestClient

    from cove.api import search as api_search
    from cove.app import create_app
    from tests.perf.test_startup_and_search import sam_hub

    settings, bk, _ = sam_hub(tmp_path)
    with TestClient(create_app(settings, bk)) as client:
        short = len(client.get("/api/models?limit=1").content)
        monkeypatch.setattr(api_search, "CACHED_BODY_BYTES", short)
        for url, read_again in (("/api/models?limit=1", False), ("/api/models?limit=3", True)):
            first = client.get(url)
            with _statements(bk) as seen:
                assert client.get(url).content == first.content
            assert bool([s for s, _ in seen if "FROM repos" in s]) is read_again, (url, seen)
