"""Home, search and the model/dataset/Space listings: paginated SQL through `services.search`."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cove.db.tables import Repo, RepoTag
from cove.services import downloads, search
from cove.services.accounts import Actor
from cove.web.render import PLURALS, page
from cove.web.sessions import visitor

PAGE_SIZE = 30
SORTS = {"downloads": "downloads", "likes": "likes", "updated": "lastModified", "created": "createdAt"}
SORT_LABELS = {"downloads": "Most downloads", "likes": "Most likes", "updated": "Recently updated",
               "created": "Recently created"}


@dataclass
class Filters:
    search: str = ""
    task: str = ""
    library: str = ""
    license: str = ""
    language: str = ""
    tags: str = ""
    author: str = ""
    sort: str = "downloads"

    @classmethod
    def from_request(cls, request: Request) -> Filters:
        qp = request.query_params
        sort = qp.get("sort", "downloads")
        return cls(
            search=(qp.get("search") or qp.get("q") or "").strip()[:200],
            task=qp.get("task", "")[:100], library=qp.get("library", "")[:100],
            license=qp.get("license", "")[:100], language=qp.get("language", "")[:50],
            tags=qp.get("tags", "")[:300], author=qp.get("author", "")[:96],
            sort=sort if sort in SORTS else "downloads",
        )

    def query(self, repo_type: str) -> search.Query:
        filters = [t.strip() for t in self.tags.split(",") if t.strip()][:10]
        pipeline = None
        if self.task:
            if repo_type == "model":
                pipeline = self.task
            else:
                filters.append(self.task)
        if self.license:
            filters.append(f"license:{self.license}")
        if self.language:
            filters.append(self.language)
        return search.Query(repo_type=repo_type, search=self.search.lower().split()[:5],
                            author=self.author or None, filters=filters, pipeline_tag=pipeline,
                            library=self.library or None, sort=SORTS[self.sort], full_text=True)

    @property
    def active(self) -> list[tuple[str, str]]:
        return [(k, getattr(self, k)) for k in ("task", "library", "license", "language", "tags", "author")
                if getattr(self, k)]


def _page_number(request: Request) -> int:
    try:
        return max(0, min(int(request.query_params.get("p", "0")), 10_000))
    except ValueError:
        return 0


def facets(db: Session, actor: Actor, repo_type: str) -> dict[str, list[tuple[str, int]]]:
    """The most common tasks, libraries and licenses among the repos this visitor may see.

    Cached by `listing` only while the database is unchanged (`search.GenerationCache`): a repo made
    private leaves the counts at once.
    """
    out: dict[str, list[tuple[str, int]]] = {}
    n = func.count().label("n")

    def by_column(col) -> list[tuple[str, int]]:  # noqa: ANN001
        q = select(col, n).where(Repo.type == repo_type, col.is_not(None))
        q = search.visible(q, db, actor).group_by(col).order_by(n.desc(), col).limit(12)
        return [(str(v), int(c)) for v, c in db.execute(q)]

    def by_prefix(prefix: str) -> list[tuple[str, int]]:
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # a range on the tag index, not LIKE
        q = (select(RepoTag.tag, n).join(Repo, Repo.id == RepoTag.repo_pk)
             .where(Repo.type == repo_type, RepoTag.tag >= prefix, RepoTag.tag < end))
        q = search.visible(q, db, actor).group_by(RepoTag.tag).order_by(n.desc(), RepoTag.tag).limit(12)
        return [(str(t)[len(prefix):], int(c)) for t, c in db.execute(q)]

    if repo_type == "model":
        out["task"] = by_column(Repo.pipeline_tag)
        out["library"] = by_column(Repo.library_name)
    elif repo_type == "dataset":
        out["task"] = by_prefix("task_categories:")
        out["language"] = by_prefix("language:")
    else:
        out["library"] = by_column(Repo.sdk)
    out["license"] = by_prefix("license:")
    return {k: v for k, v in out.items() if v}


def listing(repo_type: str, request: Request) -> Response:
    """`/models`, `/datasets`, `/spaces`: filters, sorting, pages."""
    v = visitor(request)
    bk = request.app.state.backends
    f = Filters.from_request(request)
    p = _page_number(request)
    if repo_type == "space" and f.library:
        f.tags, f.library = ",".join(x for x in (f.tags, f.library) if x), ""
    q = f.query(repo_type)
    downloads.flush_for_read(bk)
    cache, gen, who = search.cache_of(request.app), search.generation_of(request.app), search.actor_key(v.actor)
    with bk.db.session() as db:
        rows = search.page(db, v.actor, q, offset=p * PAGE_SIZE, limit=PAGE_SIZE)
        total = cache.get(gen, ("count", repr(q), who), lambda: search.count(db, v.actor, q))
        side = cache.get(gen, ("facets", repo_type, who), lambda: facets(db, v.actor, repo_type))
    pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
    return page(request, "listing.html", title=PLURALS[repo_type].capitalize(), repo_type=repo_type,
                repos=rows, total=total, p=p, pages=pages, f=f, facets=side, sorts=SORT_LABELS)


def home(request: Request) -> Response:
    """`/`: one search box; with `?q=`, matches across models, datasets and Spaces."""
    v = visitor(request)
    bk = request.app.state.backends
    term = (request.query_params.get("q") or "").strip()[:200]
    sections = []
    cache, gen, who = search.cache_of(request.app), search.generation_of(request.app), search.actor_key(v.actor)
    with bk.db.session() as db:
        for repo_type in ("model", "dataset", "space"):
            f = Filters(search=term, sort="downloads" if term else "updated")
            q = f.query(repo_type)
            sections.append((repo_type, search.page(db, v.actor, q, offset=0, limit=8 if term else 6),
                             cache.get(gen, ("count", repr(q), who), lambda q=q, db=db: search.count(db, v.actor, q))))
    return page(request, "home.html", title=f"Search: {term}" if term else None, term=term, sections=sections)


def by_author(repo_type: str, request: Request, ns: str) -> Response:
    """`/datasets/{ns}` and `/spaces/{ns}`: that namespace's repos of this type."""
    return RedirectResponse(f"/{PLURALS[repo_type]}?author={quote(ns)}", status_code=302)
