"""Home, search and the model/dataset/Space listings: paginated SQL through `services.search`."""

from __future__ import annotations

from dataclasses import dataclass, replace
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

    def chips(self, repo_type: str) -> list[tuple[str, dict[str, str | None]]]:
        """The active filters as readable labels, each with the query change that removes it (one tag at a time)."""
        names = {"task": "Task", "library": "SDK" if repo_type == "space" else "Library", "license": "License",
                 "language": "Language", "author": "Author"}
        out: list[tuple[str, dict[str, str | None]]] = []
        if self.search:
            out.append((f"Search: {self.search}", {"search": None, "q": None}))
        for k, v in self.active:
            if k != "tags":
                out.append((f"{names[k]}: {v}", {k: None}))
                continue
            tags = [t.strip() for t in v.split(",") if t.strip()]
            for t in tags:
                out.append((f"Tag: {t}", {"tags": ",".join(x for x in tags if x != t) or None}))
        return out

    @property
    def active(self) -> list[tuple[str, str]]:
        return [(k, getattr(self, k)) for k in ("task", "library", "license", "language", "tags", "author")
                if getattr(self, k)]


def _page_number(request: Request) -> int:
    try:
        return max(0, min(int(request.query_params.get("p", "0")), 10_000))
    except ValueError:
        return 0


#: ISO 639-1 codes: a model card's `language:` is a bare tag ("en"), told from other tags by this list.
_ISO_639_1 = (
    "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz ee "
    "el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is "
    "it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms "
    "mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk "
    "sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi "
    "yo za zh zu")
LANGUAGES = tuple(_ISO_639_1.split())


def effective(f: Filters, repo_type: str) -> Filters:
    """The filters as queried: a Space's "library" is its SDK, matched as a tag."""
    if repo_type == "space" and f.library:
        return replace(f, tags=",".join(x for x in (f.tags, f.library) if x), library="")
    return f


def facets(db: Session, actor: Actor, repo_type: str, f: Filters | None = None) -> dict[str, list[tuple[str, int]]]:
    """The most common tasks, libraries, languages and licenses among the repos this visitor may see that match
    the other active filters (a facet's own choice is left out, so its other values stay visible).

    With no filter: grouped queries on the indexes. With filters: the same groupings over the ids that match,
    at most `search.COUNT_CAP` of them (as the total). Cached by `listing` only while the database is unchanged
    (`search.GenerationCache`): a repo made private leaves the counts at once.
    """
    out: dict[str, list[tuple[str, int]]] = {}
    n = func.count().label("n")
    f = f or Filters()

    def scope(q, kind: str):  # noqa: ANN001, ANN202
        rest = effective(replace(f, **{kind: ""}), repo_type)
        if not (rest.search or rest.active):
            return search.visible(q, db, actor)
        ids = (search.build(db, actor, rest.query(repo_type), all_hits=True).order_by(None)
               .with_only_columns(Repo.id).limit(search.COUNT_CAP))
        return q.where(Repo.id.in_(ids))

    def by_column(kind: str, col) -> list[tuple[str, int]]:  # noqa: ANN001
        q = select(col, n).where(Repo.type == repo_type, col.is_not(None))
        q = scope(q, kind).group_by(col).order_by(n.desc(), col).limit(12)
        return [(str(v), int(c)) for v, c in db.execute(q)]

    def by_tags(kind: str, prefix: str = "", among: tuple[str, ...] = ()) -> list[tuple[str, int]]:
        q = select(RepoTag.tag, n).join(Repo, Repo.id == RepoTag.repo_pk).where(Repo.type == repo_type)
        if among:
            q = q.where(RepoTag.tag.in_(among))
        else:
            end = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # a range on the tag index, not LIKE
            q = q.where(RepoTag.tag >= prefix, RepoTag.tag < end)
        q = scope(q, kind).group_by(RepoTag.tag).order_by(n.desc(), RepoTag.tag).limit(12)
        return [(str(t)[len(prefix):], int(c)) for t, c in db.execute(q)]

    if repo_type == "model":
        out["task"] = by_column("task", Repo.pipeline_tag)
        out["library"] = by_column("library", Repo.library_name)
        out["language"] = by_tags("language", among=LANGUAGES)
    elif repo_type == "dataset":
        out["task"] = by_tags("task", "task_categories:")
        out["language"] = by_tags("language", "language:")
    else:
        out["library"] = by_column("library", Repo.sdk)
    out["license"] = by_tags("license", "license:")
    return {k: v for k, v in out.items() if v}


def listing(repo_type: str, request: Request) -> Response:
    """`/models`, `/datasets`, `/spaces`: filters, sorting, pages."""
    v = visitor(request)
    bk = request.app.state.backends
    f = Filters.from_request(request)
    p = _page_number(request)
    q = effective(f, repo_type).query(repo_type)
    downloads.flush_for_read(bk)
    cache, gen, who = search.cache_of(request.app), search.generation_of(request.app), search.actor_key(v.actor)
    with bk.db.session() as db:
        rows = search.page(db, v.actor, q, offset=p * PAGE_SIZE, limit=PAGE_SIZE,
                           cache=search.cache_of(request.app, pages=True),
                           generation=search.generation_of(request.app, downloads=True))
        total = cache.get(gen, ("count", repr(q), who), lambda: search.count(db, v.actor, q))
        key = ("facets", repo_type, who, repr(replace(f, sort="")))
        side = cache.get(gen, key, lambda: facets(db, v.actor, repo_type, f))
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
