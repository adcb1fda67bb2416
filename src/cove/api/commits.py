"""Uploads and history: preupload, the NDJSON commit, validate-yaml, the commit list, super-squash."""

from __future__ import annotations

import html
import tempfile
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from cove.api.shapes import PREFIX, iso
from cove.deps import Bk, CurrentActor, repo_type_of
from cove.errors import BadRequest, PayloadTooLarge
from cove.services import access, card_meta, commit_payload, commits, files, history
from cove.settings import Settings

router = APIRouter()


@router.post("/api/{plural}/{ns}/{name}/preupload/{rev:path}")
def preupload(plural: str, ns: str, name: str, rev: str, body: Annotated[dict[str, Any], Body()],
              bk: Bk, actor: CurrentActor) -> dict:
    items = body.get("files")
    if not isinstance(items, list) or len(items) > 1000:
        raise BadRequest("'files' must be a list of at most 1000 files")
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        out = commits.preupload(db, bk, actor, repo, revision=rev, files=items, git_ignore=body.get("gitIgnore"))
        sha = bk.repos.resolve(repo.storage_key, rev)
    return {"files": out, "commitOid": sha}


@router.post("/api/{plural}/{ns}/{name}/commit/{rev:path}")
async def commit(plural: str, ns: str, name: str, rev: str, request: Request, bk: Bk,
                 actor: CurrentActor) -> JSONResponse:
    """The NDJSON commit. The body is spooled as it arrives (never held in memory), once the caller is
    known to be allowed to write; then parsed one line at a time (`cove.services.commit_payload`)."""
    create_pr = request.query_params.get("create_pr") in ("1", "true", "True")
    await run_in_threadpool(_require_may_commit, plural, ns, name, rev, create_pr, bk, actor)
    body = await _spool_body(request, bk.settings)
    try:
        return await run_in_threadpool(_commit, plural, ns, name, rev, body, create_pr, bk, actor)
    finally:
        body.close()


def _require_may_commit(plural: str, ns: str, name: str, rev: str, create_pr: bool, bk, actor) -> None:  # noqa: ANN001
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        commits.require_may_commit(db, actor, repo, revision=rev, create_pr=create_pr)


async def _spool_body(request: Request, settings: Settings) -> tempfile.SpooledTemporaryFile:
    limit = settings.max_commit_body
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"Commit payload larger than {limit} bytes: upload large files as LFS")
    lines = commit_payload.LineCapper(commit_payload.max_line(settings))
    spool = commit_payload.spool(settings)
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise PayloadTooLarge(f"Commit payload larger than {limit} bytes: upload large files as LFS")
            lines.feed(chunk)
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


def _commit(plural, ns, name, rev, body, create_pr, bk, actor) -> JSONResponse:  # noqa: ANN001
    repo_type = repo_type_of(plural)
    with commit_payload.ContentSpool(bk.settings) as spool:
        items = commit_payload.items(body, commit_payload.max_line(bk.settings))
        header, ops = commits.parse_operations(items, spool, bk.settings)
        with bk.db.session() as db:
            repo = access.readable_repo(db, actor, repo_type, f"{ns}/{name}")
            result = commits.create_commit(db, bk, actor, repo, revision=rev, header=header, ops=ops,
                                           create_pr=create_pr)
            base = f"{bk.settings.public_endpoint}/{PREFIX[repo_type]}{repo.repo_id}"
    out = {"success": True, "commitOid": result.oid, "commitUrl": f"{base}/commit/{result.oid}",
           "hookOutput": ""}
    if result.pr_num is not None:
        out["pullRequestUrl"] = f"{base}/discussions/{result.pr_num}"
    return JSONResponse(out)


@router.post("/api/validate-yaml")
def validate_yaml(body: Annotated[dict[str, Any], Body()], request: Request) -> Response:
    """The Hub's card check: 400 with ``errors`` (or, for ``Accept: text/plain``, their text) when invalid;
    ``warnings`` (a card without metadata) either way, which `HfApi` shows as a Python warning."""
    content = body.get("content")
    card = card_meta.read_card(content) if isinstance(content, str) else \
        card_meta.CardRead(errors=["'content' must be a string"])
    status = 400 if card.errors else 200
    if "text/plain" in request.headers.get("accept", ""):  # `RepoCard.validate` shows this text as is
        text = card_meta.invalid_metadata_message(card.errors) if card.errors else ""
        return PlainTextResponse(text, status_code=status)
    return JSONResponse({"errors": [{"message": e} for e in card.errors],
                         "warnings": [{"message": w} for w in card.warnings]}, status_code=status)


@router.get("/api/{plural}/{ns}/{name}/commits/{rev:path}")
def list_commits(plural: str, ns: str, name: str, rev: str, request: Request, bk: Bk, actor: CurrentActor,
                 p: int = 0, limit: int = 50, formatted: bool = False) -> JSONResponse:
    limit = max(1, min(limit, 1000))
    # The client asks with `expand[]=formatted`; `?formatted=true` is accepted too. Without either, no HTML.
    q = request.query_params
    formatted = formatted or "formatted" in q.getlist("expand[]") + q.getlist("expand")
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        sha = files.resolve_revision(bk, repo, rev)
        items = bk.repos.log(repo.storage_key, sha, skip=p * limit, limit=limit + 1)
    headers = {}
    if len(items) > limit:
        items = items[:limit]
        base = f"{bk.settings.public_endpoint}/api/{plural}/{ns}/{name}/commits/{quote(rev, safe='')}"
        nxt = f"{base}?p={p + 1}&limit={limit}" + ("&expand[]=formatted" if formatted else "")
        headers["Link"] = f'<{nxt}>; rel="next"'
    out = [{
        "id": c.id, "title": c.title, "message": c.message, "date": iso(c.date),
        "authors": [{"user": c.author, "avatar": None}],
    } for c in items]
    if formatted:
        for c in out:
            c["formatted"] = {"title": html.escape(c["title"]), "message": html.escape(c["message"])}
    return JSONResponse(out, headers=headers)


def _valid_text(text: str) -> bool:
    """False for a string git cannot store (a lone surrogate from a JSON escape)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@router.post("/api/{plural}/{ns}/{name}/super-squash/{rev:path}")
def super_squash(plural: str, ns: str, name: str, rev: str, bk: Bk, actor: CurrentActor,
                 body: Annotated[dict[str, Any] | None, Body()] = None) -> dict:
    message = (body or {}).get("message") or "Super-squash branch using huggingface_hub"
    if not isinstance(message, str) or not _valid_text(message):
        raise BadRequest("'message' must be a string")
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        sha = history.super_squash(db, bk, actor, repo, branch=rev, message=message)
    return {"commitId": sha}
