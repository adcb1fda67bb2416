"""Listing and search over the repo index: paginated SQL queries, never scans in Python."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from typing import TypeVar

from sqlalchemy import Select, and_, exists, false, func, inspect, literal_column, or_, select, table
from sqlalchemy.orm import Session, aliased

from cove.db.tables import Membership, Namespace, Repo, RepoTag
from cove.services.accounts import Actor

SORTS = {
    "downloads": Repo.downloads,
    "likes": Repo.likes,
    "lastModified": Repo.last_modified,
    "last_modified": Repo.last_modified,
    "createdAt": Repo.created_at,
    "created_at": Repo.created_at,
    "trendingScore": Repo.downloads,
    "trending_score": Repo.downloads,
    "id": Repo.id,
}


@dataclass
class Query:
    repo_type: str
    search: list[str]
    author: str | None = None
    filters: list[str] | None = None
    pipeline_tag: str | None = None
    library: str | None = None
    sort: str | None = None
    direction: int = -1
    gated: bool | None = None
    #: Match search terms in the card text too (the web UI), not only in repo ids (the Hub API).
    full_text: bool = False


def visible(q: Select, db: Session, actor: Actor) -> Select:
    """Hide private repos the caller cannot read (in rows and in counts)."""
    if actor.is_admin:
        return q
    if actor.anonymous:
        return q.where(Repo.private.is_(false()))
    member_of = select(Namespace.name).join(Membership, Membership.org_id == Namespace.id).where(
        Membership.user_id == actor.user_id
    )
    return q.where(or_(Repo.private.is_(false()), Repo.namespace == actor.name, Repo.namespace.in_(member_of)))


def _tag_match(value: str):  # noqa: ANN202
    """A filter value matches a tag, or the same value under a known prefix (task_categories:, language:...)."""
    prefixed = [f"{p}:{value}" for p in ("task_categories", "language", "license", "library", "task_ids")]
    return exists().where(and_(RepoTag.repo_pk == Repo.id, RepoTag.tag.in_([value, *prefixed])))


#: Counts stop here (`X-Total-Count`, the web listing's pages): a count never reads more rows than this.
COUNT_CAP = 10_000
_fts_tables: dict[int, bool] = {}


def _fts(db: Session) -> bool:
    """Has this SQLite database the trigram FTS5 table of migration 0014 (`repo_search`)?"""
    engine = db.get_bind()
    found = _fts_tables.get(id(engine))
    if found is None:
        found = engine.dialect.name == "sqlite" and inspect(engine).has_table("repo_search")
        _fts_tables[id(engine)] = found
    return found


#: The probe reads a term's newest this many full-text hits (FTS5 reads posting lists newest first and stops).
PROBE_HITS = 32
#: Reading and sorting one hit costs about this many times walking one row of the sort index (SQLite, measured
#: at 100k repos).
HIT_COST = 3


def _index_drives(db: Session, hits: Select, want: int) -> bool:
    """Should the full-text index drive a page of `want` rows (read every hit, sort them), rather than a walk
    of the sort order's index that matches row by row and stops after `want` matches? The probe reads the
    term's `PROBE_HITS` newest hits: fewer are all of them; else the ids they span estimate the term's hits h
    among n repos. The index costs about `HIT_COST * h` row reads, the walk about `want * n / h`: the cheaper
    wins, so a first search reads at most about sqrt(HIT_COST * want * n) rows, a term matching a share of
    the repos about `want / share` rows at any size, and the probe reads `PROBE_HITS` hits, not all."""
    newest = list(db.scalars(hits.order_by(literal_column("rowid").desc()).limit(PROBE_HITS)))
    if len(newest) < PROBE_HITS:
        return True
    n = db.scalar(select(func.max(Repo.id))) or 0  # the rows' count, near enough, from the primary key's end
    h = PROBE_HITS * n / max(1, n - newest[-1] + 1)
    return HIT_COST * h * h <= want * n


def _substring(db: Session, term: str, full_text: bool, all_hits: bool = False, want: int = 21):  # noqa: ANN202
    """(clause, rare): repos whose id (or, with `full_text`, card text) contains `term`, case-insensitively
    (the Hub's search), and whether the index should drive the query.

    SQLite: a quoted-phrase MATCH on the trigram FTS5 index is exactly a substring match (terms of 3+
    characters); for a rare term the clause is that MATCH. A common term (or a short one) is matched with
    LIKE while walking the sort order's index: with many matches a page (`want` rows) is found after few
    rows (`_index_drives` picks the cheaper by the term's estimated hits). PostgreSQL: LIKE on the
    same expressions as the pg_trgm GIN indexes of migration 0014, and its planner picks. `all_hits` (a
    count, which reads every match anyway): the index, whatever the term's frequency."""
    if "\x00" in term:  # no id or card holds NUL (and FTS5 and PostgreSQL refuse it in a query): no match
        return false(), False
    if len(term) >= 3 and _fts(db):
        phrase = '"' + term.replace('"', '""') + '"'
        match = literal_column("repo_search").op("MATCH")(f"{'full_text' if full_text else 'id_text'} : {phrase}")
        hits = select(literal_column("rowid")).select_from(table("repo_search")).where(match)
        if all_hits or _index_drives(db, hits, want):
            return Repo.id.in_(hits), True
    return _like(term, full_text), False


def _like(term: str, full_text: bool):  # noqa: ANN202
    """`term` (lower case) in the repo id (or the card text), by LIKE."""
    if "\x00" in term:
        return false()
    if full_text:
        column = Repo.search_text
    else:  # the literal '/' (not a bound parameter) keeps the expression the index's on PostgreSQL
        column = func.lower(Repo.namespace.op("||")(literal_column("'/'")).op("||")(Repo.name))
    return column.contains(term, autoescape=True)


def build(db: Session, actor: Actor, query: Query, *, all_hits: bool = False, want: int = 21) -> Select:
    """The query's statement, for a page of `want` rows (offset + limit) or, with `all_hits`, every match."""
    clauses, rare = [], False
    for term in query.search:
        if term:
            clause, is_rare = _substring(db, term.lower(), query.full_text, all_hits, want)
            clauses.append(clause)
            rare = rare or is_rare
    # A rare term's hits drive the query: `+type` keeps SQLite from walking a (type, ...) index instead.
    q = select(Repo).where(literal_column("+repos.type") == query.repo_type if rare else Repo.type == query.repo_type)
    q = visible(q, db, actor)
    for clause in clauses:
        q = q.where(clause)
    if query.author:
        q = q.where(func.lower(Repo.namespace) == query.author.lower())  # names are case-insensitive
    for f in query.filters or []:
        q = q.where(_tag_match(f))
    if query.pipeline_tag:
        q = q.where(Repo.pipeline_tag == query.pipeline_tag)
    if query.library:
        q = q.where(_tag_match(query.library))
    if query.gated is not None:
        q = q.where(Repo.gated.is_not(None) if query.gated else Repo.gated.is_(None))
    first, tie = _order(query, Repo.__table__.c.__getitem__)
    if rare and query.sort in SORTS:  # nor a sort index (`+col` is col, unindexed)
        plus = literal_column(f"+repos.{SORTS[query.sort].key}")
        first = plus.asc() if query.direction == 1 else plus.desc()
    return q.order_by(first, tie)


def _order(query: Query, column: Callable[[str], object]) -> list:
    """The query's ORDER BY, each key through `column` (the key's column in a table or a subquery)."""
    col = SORTS.get(query.sort or "")
    key, ascending = ("created_at", False) if col is None else (col.key, query.direction == 1)
    return [c.asc() if ascending else c.desc() for c in (column(key), column("id"))]


#: PostgreSQL: a search for a page of up to `WALK_ROWS // 50` rows first walks this many rows of the sort
#: order's index (matching each row), and asks the planner only when they hold too few matches.
WALK_ROWS = 3000


def _walk_window(db: Session, actor: Actor, query: Query, want: int) -> list[Repo] | None:
    """The first `want` matches if the first `WALK_ROWS` rows of the order (the query without its terms) hold
    them, else None. pg_trgm's planner estimates a term's hits from its trigrams, not from the data: a term
    matching 1 % of the repos was estimated at 10 rows, so all ~1,000 hits (and as many false trigram hits)
    were read and sorted, 8-37 ms at 100k repos, where walking the sort index finds a page in ~2,000 rows
    (~1 ms) at any size. A rarer term costs the walk, then the planner's plan."""
    hit = and_(*(_like(t.lower(), query.full_text) for t in query.search if t))
    window = build(db, actor, replace(query, search=[])).add_columns(hit.label("hit")).limit(WALK_ROWS).subquery()
    stmt = (select(aliased(Repo, window)).where(window.c.hit)
            .order_by(*_order(query, window.c.__getitem__)).limit(want))
    hits = list(db.scalars(stmt))
    return hits if len(hits) >= want else None


def page(db: Session, actor: Actor, query: Query, *, offset: int, limit: int,
         cache: GenerationCache | None = None, generation: Hashable | None = None) -> list[Repo]:
    """A page of matches. With a `cache` and a `generation` (`generation_of(app, downloads=True)`: the order
    may follow download counts), the page's repo ids are kept while the database is unchanged, so a repeated
    listing or search reads its rows by primary key instead of matching again."""
    fresh: list[list[Repo]] = []

    def run() -> list[int]:
        fresh.append(_rows(db, actor, query, offset, limit))
        return [r.id for r in fresh[0]]

    if cache is None:
        run()
        return fresh[0]
    ids = cache.get(generation, ("page", repr(query), actor_key(actor), offset, limit), run)
    if fresh:
        return fresh[0]
    rows = {r.id: r for r in db.scalars(select(Repo).where(Repo.id.in_(ids)))} if ids else {}
    return [rows[i] for i in ids if i in rows]


def _rows(db: Session, actor: Actor, query: Query, offset: int, limit: int) -> list[Repo]:
    want = offset + limit
    if db.get_bind().dialect.name == "postgresql" and any(query.search) and want * 50 <= WALK_ROWS:
        found = _walk_window(db, actor, query, want)
        if found is not None:
            return found[offset:]
    return list(db.scalars(build(db, actor, query, want=want).offset(offset).limit(limit)))


def count(db: Session, actor: Actor, query: Query, *, cap: int = COUNT_CAP) -> int:
    """How many repos match, up to `cap` (the count reads at most `cap` index entries)."""
    sub = build(db, actor, query, all_hits=True).order_by(None).with_only_columns(Repo.id).limit(cap).subquery()
    return db.scalar(select(func.count()).select_from(sub)) or 0


def actor_key(actor: Actor) -> Hashable:
    """Whose view of the repos an answer is: what `visible` depends on."""
    return "admin" if actor.is_admin else "anonymous" if actor.anonymous else ("user", actor.user_id)


T = TypeVar("T")


class GenerationCache:
    """Answers (counts, facets) kept while the database is unchanged (`generation_of`): on SQLite `HeadCache`'s
    data_version on a connection of its own, which any other connection's commit moves, a repo made private
    included (this process's download flushes do not); on PostgreSQL the WAL position. With no generation
    nothing is cached."""

    MAX = 4096

    def __init__(self, max_entries: int = MAX) -> None:
        self.max_entries = max_entries
        self._gen: Hashable = None
        self._values: dict[Hashable, object] = {}
        self._lock = threading.Lock()

    def get(self, generation: Hashable | None, key: Hashable, compute: Callable[[], T],
            keep: Callable[[T], bool] | None = None) -> T:
        """`compute()`'s value for `key` in `generation`, kept (unless `keep(value)` says not) for the next call."""
        if generation is None:
            return compute()
        with self._lock:
            if generation != self._gen:
                self._gen, self._values = generation, {}
            if key in self._values:
                return self._values[key]  # type: ignore[return-value]
        value = compute()
        if keep is not None and not keep(value):
            return value
        with self._lock:
            if generation == self._gen:
                if len(self._values) >= self.max_entries:
                    self._values.clear()
                self._values[key] = value
        return value


def generation_of(app, downloads: bool = False) -> Hashable | None:  # noqa: ANN001 - the FastAPI app
    """What the cached counts and facets are valid for: `HeadCache.generation` (SQLite's data_version, or
    PostgreSQL commits seen through `cove.db.changes`; with `downloads`, download-count flushes too); failing
    that, on PostgreSQL the WAL insert position, which every commit moves (a privacy change included); else None."""
    cache = getattr(app, "head_cache", None)
    gen = cache.generation(downloads=downloads) if cache is not None else None
    if gen is not None:
        return gen
    engine = app.state.backends.db.engine
    if engine.dialect.name != "postgresql":
        return None
    try:
        with engine.connect() as conn:
            return ("wal", conn.exec_driver_sql("SELECT pg_current_wal_lsn()").scalar())
    except Exception:  # noqa: BLE001 - e.g. a role that may not read it, or a standby: no caching
        return None


#: The API listing's rendered pages kept (`cache_of(bodies=True)`): fewer than ids or counts, as each is a body.
BODIES = 512


def cache_of(app, pages: bool = False, *, bodies: bool = False) -> GenerationCache:  # noqa: ANN001
    """The app's cache of counts and facets; with `pages`, of pages' repo ids (valid for another generation:
    `generation_of(app, downloads=True)`); with `bodies`, of the API listing's rendered pages (same generation,
    a store of their own, so that they never push the ids out)."""
    name = "search_body_cache" if bodies else "search_page_cache" if pages else "search_cache"
    found = getattr(app.state, name, None)
    if found is None:
        found = GenerationCache(BODIES if bodies else GenerationCache.MAX)
        setattr(app.state, name, found)
    return found
