"""Repo lifecycle and info: create, delete, move, settings, `model_info`/`dataset_info`/`space_info`, likes."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse

from cove.api.info_cache import InfoCache
from cove.api.shapes import iso, repo_info_json, repo_url
from cove.deps import Bk, CurrentActor, repo_type_of
from cove.errors import BadRequest, RepoNotFound
from cove.services import access, downloads, files, likes, mirror, repos, scans
from cove.spaces import service as spaces

router = APIRouter()
JsonBody = Annotated[dict[str, Any], Body()]


def _repo_type(body: dict) -> str:
    t = body.get("type") or "model"
    if t not in access.REPO_TYPES:
        raise BadRequest(f"Invalid repo type {t!r}")
    return t


@router.post("/api/repos/create")
def create_repo(body: JsonBody, bk: Bk, actor: CurrentActor) -> JSONResponse:
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest("'name' is required")
    org = body.get("organization")
    if "/" in name and not org:
        org, name = name.split("/", 1)
    repo_type = _repo_type(body)
    visibility = body.get("visibility")
    if visibility:
        private: bool | None = visibility in ("private", "protected")
    else:  # neither: the namespace decides (an org may make its repos private by default)
        private = None if body.get("private") is None else bool(body["private"])
    with bk.db.session() as db:
        repo, created = repos.create(db, bk, actor, repo_type=repo_type, namespace=org, name=name,
                                     private=private, sdk=body.get("sdk"))
        url = repo_url(bk.settings.public_endpoint, repo.type, repo.repo_id)
        payload = {"url": url, "name": repo.repo_id, "id": f"{repo.id:024x}"}
    if not created:
        return JSONResponse(
            {"error": f"You already created this {repo_type} repo", **payload}, status_code=409,
            headers={"X-Error-Code": "RepoExists", "X-Error-Message": f"You already created this {repo_type} repo"},
        )
    return JSONResponse(payload)


def _body_repo(db, actor, body: dict, key: str = "name"):  # noqa: ANN001, ANN202
    name, org = body.get(key), body.get("organization")
    if not isinstance(name, str):
        raise BadRequest(f"'{key}' is required")
    repo_id = f"{org}/{name}" if org else name
    if "/" not in repo_id:
        if actor.anonymous:
            raise RepoNotFound()
        repo_id = f"{actor.name}/{repo_id}"
    return access.readable_repo(db, actor, _repo_type(body), repo_id)


@router.delete("/api/repos/delete")
def delete_repo(body: JsonBody, bk: Bk, actor: CurrentActor) -> dict:
    with bk.db.session() as db:
        repo = _body_repo(db, actor, body)
        repos.delete_repo(db, bk, actor, repo)
    return {}


@router.post("/api/repos/move")
def move_repo(body: JsonBody, bk: Bk, actor: CurrentActor) -> dict:
    src, dst = body.get("fromRepo"), body.get("toRepo")
    if not isinstance(src, str) or not isinstance(dst, str):
        raise BadRequest("'fromRepo' and 'toRepo' are required")
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, _repo_type(body), src)
        repos.move(db, bk, actor, repo, dst)
    return {}


@router.put("/api/{plural}/{ns}/{name}/settings")
def update_settings(plural: str, ns: str, name: str, body: JsonBody, bk: Bk, actor: CurrentActor) -> dict:
    visibility = body.get("visibility")
    private = body.get("private")
    if visibility is not None:
        if visibility not in ("public", "private", "protected"):
            raise BadRequest("visibility must be public, private or protected")
        private = visibility != "public"
    if private is not None and not isinstance(private, bool):
        raise BadRequest("'private' must be true or false")
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        repos.update_settings(db, actor, repo, private=private, gated=body.get("gated"))
    return {}


def _info(plural: str, repo_id: str, revision: str | None, expand: list[str] | None, blobs: bool,
          bk, actor, request: Request | None = None) -> dict | JSONResponse:  # noqa: ANN001
    repo_type = repo_type_of(plural)
    downloads.flush_for_read(bk)  # this process's counts, shown at once
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type, repo_id)
        default = bk.repos.default_branch(repo.storage_key)
        mirror.refresh(bk, repo, revision or default)  # a mirrored branch past its TTL: checked upstream first
        head = repos.ensure_fresh(db, bk, repo)
        sha = head if revision in (None, default) else files.resolve_revision(bk, repo, revision)
        siblings = entries = None
        if not expand or "siblings" in expand:
            entries = bk.repos.list_tree(repo.storage_key, sha, recursive=True) or []
            siblings = []
            for e in entries:
                if e.type != "file":
                    continue
                s: dict = {"rfilename": e.path}
                if blobs:
                    s["size"] = e.size
                    s["blobId"] = e.oid
                    if e.is_lfs:
                        s["lfs"] = {"sha256": e.lfs_oid, "size": e.size, "pointerSize": e.lfs_pointer_size}
                siblings.append(s)
        runtime = spaces.runtime_json(db, bk, repo) if repo.type == "space" else None
        if sha != head:
            # Info at an older revision: card-derived fields still describe main (as on the Hub).
            pass
        info = repo_info_json(repo, sha=sha, siblings=siblings, expand=expand, runtime=runtime)
        if (mirrored := mirror.info_json(db, repo)) is not None:
            info["mirror"] = mirrored  # fetched from the upstream hub, read-only here
        if repo.type == "space":
            info["host"] = spaces.host(bk, repo)  # where gradio_client finds the app
        wanted = {"safetensors", "gguf"} & set(expand or ["safetensors", "gguf"])
        if repo_type == "model" and wanted:
            if entries is None:
                entries = bk.repos.list_tree(repo.storage_key, sha, recursive=True) or []
            found = dict(zip(("safetensors", "gguf"), scans.model_meta(db, entries), strict=True))
            info.update({k: v for k, v in found.items() if k in wanted and v is not None})
        if request is not None:  # the default revision: rendered once, and kept by `InfoCache` when it may be
            response = JSONResponse(info)
            if mirrored is None and repo.type != "space":
                InfoCache.remember(request, db, repo, sha, response)
            return response
        return info


# Before the generic `/api/{plural}/{ns}/{name}` route, which would otherwise catch it.
@router.get("/api/users/{user}/likes")
def user_likes(user: str, bk: Bk, actor: CurrentActor) -> list[dict]:
    with bk.db.session() as db:
        return [{"createdAt": iso(created), "repo": {"name": repo.repo_id, "type": repo.type}}
                for repo, created in likes.liked_by(db, actor, user)]


@router.get("/api/{plural}/{ns}/{name}")
def repo_info(plural: str, ns: str, name: str, request: Request, bk: Bk, actor: CurrentActor,
              expand: Annotated[list[str] | None, Query()] = None, blobs: bool = False) -> JSONResponse:
    return _info(plural, f"{ns}/{name}", None, expand, blobs, bk, actor, request)


@router.get("/api/{plural}/{ns}/{name}/revision/{revision:path}")
def repo_info_rev(plural: str, ns: str, name: str, revision: str, bk: Bk, actor: CurrentActor,
                  expand: Annotated[list[str] | None, Query()] = None, blobs: bool = False) -> dict:
    return _info(plural, f"{ns}/{name}", revision, expand, blobs, bk, actor)


@router.post("/api/{plural}/{ns}/{name}/like")
def like(plural: str, ns: str, name: str, bk: Bk, actor: CurrentActor) -> dict:
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        likes.like(db, actor, repo)
    return {}


@router.delete("/api/{plural}/{ns}/{name}/like")
def unlike(plural: str, ns: str, name: str, bk: Bk, actor: CurrentActor) -> dict:
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        likes.unlike(db, actor, repo)
    return {}


@router.get("/api/{plural}/{ns}/{name}/likers")
def likers(plural: str, ns: str, name: str, bk: Bk, actor: CurrentActor) -> list[dict]:
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, repo_type_of(plural), f"{ns}/{name}")
        avatar = f"{bk.settings.public_endpoint}/avatars/{{}}.svg"
        return [{"user": u, "fullname": f, "type": "user", "avatarUrl": avatar.format(u)}
                for u, f in likes.likers(db, repo)]


# A repo id without a namespace (`/api/models/gpt2`, `/gpt2/resolve/main/x`): the Hub's legacy ids, which no Cove
# repo has. Checked only for requests no route took, so no real route is shadowed; they answer as a missing repo.
_SUBS = ("revision|commits|tree|refs|paths-info|preupload|commit|like|likers|discussions|branch|tag|settings"
         "|auth-check|compare|revert|super-squash|xet-read-token|xet-write-token|ask-access|user-access-request")
_NO_NAMESPACE = (
    re.compile(rf"/api/(?:models|datasets|spaces)/[^/]+(?:/(?:{_SUBS})(?:/.*)?)?"),
    re.compile(r"/(?:datasets/|spaces/)?[^/]+/resolve/[^/]+/.+"),
)


def namespace_less(path: str) -> bool:
    """True for a path that names a repo by a bare name (no namespace): a repo that cannot exist here."""
    return any(p.fullmatch(path) for p in _NO_NAMESPACE)
