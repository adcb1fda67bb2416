"""Start-up does no per-repo work, stale index rows heal in the background (issue 16 item 2); search on the
full-text index matches what the Hub's substring search does (item 3)."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text, update

from cove.app import create_app
from cove.backends import build_backends
from cove.db.migrate import upgrade
from cove.db.tables import Repo
from cove.services import accounts, repos, search
from cove.services.accounts import Actor
from cove.services.metric_spaces import ensure_metric_spaces
from cove.settings import Settings


def _hub(tmp_path, stale: int):  # noqa: ANN202
    settings = Settings(data=tmp_path, secret="s", scan_interval=0)
    bk = build_backends(settings)
    upgrade(bk)
    ensure_metric_spaces(bk)
    with bk.db.session() as db:
        user = accounts.add_user(db, "sam")
        actor = Actor(user_id=user.id, name="sam", role="write")
        for i in range(stale):
            repos.create(db, bk, actor, repo_type="model", namespace="sam", name=f"m{i}")
        db.execute(update(Repo).where(Repo.namespace == "sam").values(sha=None))  # a crash before the index
    return settings, bk


def sam_hub(tmp_path, names: tuple[str, ...] = ("bert-one", "bert-two", "gpt-three")):  # noqa: ANN001, ANN201
    """(settings, backends, sam): a migrated hub in `tmp_path` whose user sam owns the model repos `names`."""
    settings = Settings(data=tmp_path, secret="s", scan_interval=0)
    bk = build_backends(settings)
    upgrade(bk)
    with bk.db.session() as db:
        user = accounts.add_user(db, "sam")
        actor = Actor(user_id=user.id, name="sam", role="write")
        for name in names:
            repos.create(db, bk, actor, repo_type="model", namespace="sam", name=name)
    return settings, bk, actor


def _startup_statements(settings, bk) -> int:  # noqa: ANN001
    """SQL statements from the database check of `cove serve` to its first answer (`ensure_metric_spaces`,
    the app, its lifespan), the background healer held back."""
    seen: list[str] = []

    def listener(*_args) -> None:  # noqa: ANN002
        seen.append(threading.current_thread().name)

    event.listen(bk.db.engine, "before_cursor_execute", listener)
    try:
        upgrade(bk)
        ensure_metric_spaces(bk)
        with TestClient(create_app(settings, bk)) as client:
            assert client.get("/api/models", params={"limit": 1}).status_code == 200
    finally:
        event.remove(bk.db.engine, "before_cursor_execute", listener)
    return len(seen)


def test_start_up_does_no_per_repo_work_and_stale_rows_heal_later(tmp_path, monkeypatch):
    monkeypatch.setattr(repos, "HEAL_DELAY_S", 3600)
    few, many = (_hub(tmp_path / str(n), n) for n in (2, 30))
    assert _startup_statements(*few) == _startup_statements(*many)
    settings, bk = many
    assert repos.heal_stale(bk) == 30  # what the background thread does after start-up
    with bk.db.session() as db:
        assert db.scalar(text("SELECT count(*) FROM repos WHERE sha IS NULL")) == 0


NAMES = ["Bert-Base", "bert_base", "bertXbase", "ROBERTA-large", "tiny.gpt2", "tinyxgpt2", "a100-b", "pct-50",
         "gpt2", "GPT2-medium", "distil-bert", "x_y_z", "xAyBz", "under__score", "dot.d.ot"]
TERMS = ["bert", "BERT", "t_b", "t-b", "_", "__", "%", "y_z", "tiny.", "y.g", "gpt2", "t2-m", "a100", "pct", "o",
         "sam/", "m/bert", ".d.", 'e"b', "ase", "ert-ba", "x"]


@pytest.fixture(scope="module")
def named(tmp_path_factory):  # noqa: ANN201
    _, bk, _ = sam_hub(tmp_path_factory.mktemp("hub"), tuple(NAMES))
    return bk


@pytest.mark.parametrize("term", TERMS)
def test_search_is_a_case_insensitive_substring_match_on_the_id(named, term):
    admin = Actor(user_id=0, name="admin", role="write", is_admin=True)
    q = search.Query(repo_type="model", search=[term.lower()], sort="id", direction=1)
    with named.db.session() as db:
        assert search._fts(db)  # the trigram index of migration 0014 serves these queries
        got = [r.repo_id for r in search.page(db, admin, q, offset=0, limit=100)]
        assert search.count(db, admin, q) == len(got)
    want = [f"sam/{n}" for n in NAMES if term.lower() in f"sam/{n}".lower()]
    assert sorted(got) == sorted(want)


def test_a_repeated_search_reads_its_page_by_id_and_sees_changes_at_once(tmp_path):
    settings, bk, actor = sam_hub(tmp_path)
    seen: list[str] = []

    def listener(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001, ANN002
        seen.append(statement)

    with TestClient(create_app(settings, bk)) as client:
        url = "/api/models?search=bert&sort=downloads"
        first = client.get(url)
        assert sorted(m["id"] for m in first.json()) == ["sam/bert-one", "sam/bert-two"]
        event.listen(bk.db.engine, "before_cursor_execute", listener)
        try:
            again = client.get(url)
        finally:
            event.remove(bk.db.engine, "before_cursor_execute", listener)
        assert again.json() == first.json()
        assert seen and not any("LIKE" in s or "MATCH" in s for s in seen)  # rows by primary key only
        with bk.db.session() as db:
            repos.create(db, bk, actor, repo_type="model", namespace="sam", name="bert-four")
            db.execute(update(Repo).where(Repo.name == "bert-one").values(private=True))
        assert sorted(m["id"] for m in client.get(url).json()) == ["sam/bert-four", "sam/bert-two"]
