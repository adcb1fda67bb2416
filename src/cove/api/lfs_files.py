"""A repo's LFS files: `GET .../lfs-files` (paginated, `Link: rel="next"`) and `POST .../lfs-files/batch`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from cove.api.shapes import iso
from cove.deps import Bk, CurrentActor, repo_type_of
from cove.errors import BadRequest
from cove.services import access, lfs_files

router = APIRouter()


@router.get("/api/{plural}/{ns}/{name}/lfs-files")
def list_lfs_files(plural: str, ns: str, name: str, bk: Bk, actor: CurrentActor,
                   skip: int = 0, limit: int = 1000) -> JSONResponse:
    skip, limit = max(0, skip), max(1, min(limit, 1000))
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        page, more = lfs_files.list_files(db, bk, actor, repo, skip=skip, limit=limit)
    out = []
    for f in page:
        item = {"fileOid": f.oid, "oid": f.oid, "size": f.size, "pushedAt": iso(f.pushed_at),
                "filename": f.filename or "", "ref": f.ref}
        if f.xet_hash:
            item["xetHash"] = f.xet_hash
        out.append(item)
    headers = {}
    if more:
        nxt = f"{bk.settings.public_endpoint}/api/{plural}/{ns}/{name}/lfs-files?skip={skip + limit}&limit={limit}"
        headers["Link"] = f'<{nxt}>; rel="next"'
    return JSONResponse(out, headers=headers)


@router.post("/api/{plural}/{ns}/{name}/lfs-files/batch")
def delete_lfs_files(plural: str, ns: str, name: str, bk: Bk, actor: CurrentActor,
                     body: Annotated[dict[str, Any], Body()]) -> dict:
    deletions = body.get("deletions")
    if not isinstance(deletions, dict):
        raise BadRequest("'deletions' is required: {sha: [...], rewriteHistory: bool}")
    rewrite = deletions.get("rewriteHistory", True)
    if not isinstance(rewrite, bool):
        raise BadRequest("'deletions.rewriteHistory' must be true or false")
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        doomed = lfs_files.delete_files(db, bk, actor, repo, deletions.get("sha"), rewrite_history=rewrite)
    lfs_files.purge_unreferenced(bk, doomed)  # once the records are gone for good
    return {}


@router.post("/api/{plural}/{ns}/{name}/lfs-files/duplicate")
def duplicate_lfs_files(plural: str, ns: str, name: str, bk: Bk, actor: CurrentActor,
                        body: Annotated[dict[str, Any], Body()]) -> dict:
    """Called on the source repo, with the destination as `target: {type, name}` (cross-repo copies)."""
    target = body.get("target")
    if not isinstance(target, dict) or not isinstance(target.get("name"), str):
        raise BadRequest("'target' is required: {type, name}")
    target_type = target.get("type") or "model"
    if target_type not in access.REPO_TYPES:
        raise BadRequest(f"Invalid repo type {target_type!r}")
    with bk.db.session() as db:
        src = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        dst = access.readable_repo(db, actor, target_type, target["name"])
        failed = lfs_files.duplicate_to(db, bk, actor, src, dst, body.get("files"))
    return {"failed": failed}
