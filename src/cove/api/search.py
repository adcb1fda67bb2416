"""`list_models` / `list_datasets` / `list_spaces`: filters, sort, and absolute `Link` pagination."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from cove.api.shapes import repo_info_json
from cove.deps import Bk, CurrentActor
from cove.errors import BadRequest
from cove.services import downloads, search

router = APIRouter()
DEFAULT_PAGE = 1000
MAX_PAGE = 1000
#: Pages of up to this many items keep their rendered body per database generation (`search.generation_of`),
#: when it is at most `CACHED_BODY_BYTES` long: the kept bodies (at most `search.BODIES`) stay within a bound
#: (32 MiB) whatever query strings are sent; a longer page (every file of each repo listed) is rendered each time.
CACHED_PAGE = 100
CACHED_BODY_BYTES = 64 << 10
ListQ = Annotated[list[str] | None, Query()]


def _direction(value: str | None) -> int:
    """``direction``: -1 (descending, the default) or 1."""
    if value in (None, ""):
        return -1
    if value not in ("-1", "1"):
        raise BadRequest("direction must be -1 or 1")
    return int(value)


def _listing(
    repo_type: str,
    plural: str,
    request: Request,
    bk,
    actor,
    search_terms,
    author,
    filters,  # noqa: ANN001
    pipeline_tag,
    library,
    sort,
    direction,
    limit,
    full,
    card_data,
    expand,
    cursor,
    gated,
    config: bool = False,
) -> Response:
    page_size = min(limit or DEFAULT_PAGE, MAX_PAGE)
    q = search.Query(
        repo_type=repo_type,
        search=search_terms or [],
        author=author,
        filters=filters or [],
        pipeline_tag=pipeline_tag,
        library=library,
        sort=sort,
        direction=_direction(direction),
        gated=gated,
    )
    downloads.flush_for_read(bk)  # this process's counts, shown at once
    gen, cache = search.generation_of(request.app, downloads=True), search.cache_of(request.app, pages=True)

    def render() -> tuple[bytes, dict[str, str]]:
        with bk.db.session() as db:
            rows = search.page(db, actor, q, offset=cursor, limit=page_size + 1, cache=cache, generation=gen)
            items = []
            for repo in rows[:page_size]:
                siblings = _siblings(bk, repo) if full or (expand and "siblings" in expand) else None
                item = repo_info_json(
                    repo, sha=repo.sha, siblings=siblings, expand=expand, full=bool(full),
                    card=bool(card_data or full)
                )
                if config and repo.config and not expand:
                    item["config"] = repo.config
                items.append(item)
        # No total: the Hub sends none and no client reads one (huggingface_hub pages by `Link`); a count would
        # read every match of a common term, the one cost of a listing that grows with the hub.
        headers = {}
        if len(rows) > page_size:  # `limit` is the page size; the client stops reading after `limit` items
            params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
            params.append(("cursor", str(cursor + page_size)))
            headers["Link"] = f'<{bk.settings.public_endpoint}/api/{plural}?{urlencode(params)}>; rel="next"'
        return JSONResponse(items).body, headers

    if page_size > CACHED_PAGE:
        body, headers = render()
    else:  # a repeated listing: its body, while nothing it shows changed (a commit, a privacy switch, a count flush)
        key = ("body", plural, tuple(request.query_params.multi_items()), search.actor_key(actor))
        body, headers = search.cache_of(request.app, bodies=True).get(
            gen, key, render, keep=lambda answer: len(answer[0]) <= CACHED_BODY_BYTES)
    return Response(body, media_type="application/json", headers=dict(headers))


def _siblings(bk, repo) -> list[dict]:  # noqa: ANN001
    if not repo.sha:
        return []
    entries = bk.repos.list_tree(repo.storage_key, repo.sha, recursive=True) or []
    return [{"rfilename": e.path} for e in entries if e.type == "file"]


def _make(repo_type: str, plural: str):  # noqa: ANN202
    def listing(
        request: Request,
        bk: Bk,
        actor: CurrentActor,
        search: ListQ = None,
        author: str | None = None,
        filter: ListQ = None,
        pipeline_tag: str | None = None,
        library: str | None = None,
        sort: str | None = None,
        direction: str | None = None,
        limit: Annotated[int | None, Query(ge=1)] = None,
        full: bool = False,
        cardData: bool = False,
        expand: ListQ = None,
        cursor: Annotated[int, Query(ge=0, le=2**62)] = 0,  # noqa: N803
        gated: bool | None = None,
        config: bool = False,
        models: ListQ = None,
        datasets: ListQ = None,
    ) -> Response:
        # list_spaces(models=..., datasets=...): spaces that use them, as `model:`/`dataset:` tags.
        filter = [*(filter or []), *(f"model:{m}" for m in models or []), *(f"dataset:{d}" for d in datasets or [])]
        return _listing(
            repo_type,
            plural,
            request,
            bk,
            actor,
            search,
            author,
            filter,
            pipeline_tag,
            library,
            sort,
            direction,
            limit,
            full,
            cardData,
            expand,
            cursor,
            gated,
            config,
        )

    return listing


for _t, _p in (("model", "models"), ("dataset", "datasets"), ("space", "spaces")):
    router.add_api_route(f"/api/{_p}", _make(_t, _p), methods=["GET"], name=f"list_{_p}")
