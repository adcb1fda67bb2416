"""The repo page (card, metadata, usage), likes, and the repo settings page (visibility, delete)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from cove.backends import Backends
from cove.db.tables import Like, Repo
from cove.errors import BadRequest, Forbidden
from cove.services import access, gating, likes, mirror, repos
from cove.services import refs as refs_service
from cove.web import cards
from cove.web.collections import writable_collections
from cove.web.render import page, repo_path
from cove.web.sessions import Visitor, check_csrf, visitor

MAX_CARD = 2_000_000
#: Folders searched for images to show under the card (besides the repo's root); never a whole-tree walk.
IMAGE_DIRS = ("images", "img", "assets", "figures", "plots", "docs", "media")


@dataclass
class RepoView:
    """What every repo page shows in its header: the repo, the visitor's rights, branches and tags."""

    repo: Repo
    repo_type: str
    base: str
    can_write: bool
    liked: bool = False
    #: May read file contents: false on a gated repo until the visitor's access request is accepted.
    has_files: bool = True
    #: May change visibility or delete (the namespace's admins): the settings tab.
    can_admin: bool = False
    #: On a gated repo: the visitor's access request's status (pending, accepted, rejected) or None.
    access_request: str | None = None
    branches: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    #: A pull-through mirror (`cove.services.mirror`): the upstream it was fetched from; read-only here.
    mirror: str | None = None
    #: The default branch (git HEAD): the card, the Files tab and the PR base.
    branch: str = "main"

    @property
    def repo_id(self) -> str:
        return self.repo.repo_id

    def may_read(self, path: str) -> bool:
        return self.has_files or path in gating.UNGATED_FILES


def open_repo(request: Request, repo_type: str, ns: str, name: str) -> tuple[Visitor, RepoView]:
    """The repo if this visitor may read it; otherwise RepoNotFound, exactly as for a missing repo."""
    v = visitor(request)
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        repo = access.readable_repo(db, v.actor, repo_type, f"{ns}/{name}")
        can_write = access.can_write(db, v.actor, repo)
        can_admin = access.can_admin(db, v.actor, repo)
        liked = not v.actor.anonymous and db.get(Like, (v.actor.user_id, repo.id)) is not None
        has_files = gating.has_access(db, v.actor, repo)
        asked = gating.request_status(db, v.actor, repo) if repo.gated else None  # accepted ones too
        mirrored = mirror.mirrored(db, repo)
        db.expunge(repo)
    refs = refs_service.list_refs(bk, repo, include_prs=False)
    view = RepoView(repo=repo, repo_type=repo_type, base=repo_path(repo_type, repo.repo_id),
                    can_write=can_write, liked=liked, has_files=has_files, can_admin=can_admin, access_request=asked,
                    branches=[b["name"] for b in refs["branches"]], tags=[t["name"] for t in refs["tags"]],
                    mirror=mirrored.upstream if mirrored is not None else None,
                    branch=bk.repos.default_branch(repo.storage_key))
    return v, view


def repo_page(repo_type: str, request: Request, ns: str, name: str) -> Response:
    """`/{ns}/{name}` (and `/datasets/...`, `/spaces/...`): the card and what to do with the repo."""
    _, view = open_repo(request, repo_type, ns, name)
    bk: Backends = request.app.state.backends
    repo = view.repo
    key = repo.storage_key
    sha = bk.repos.resolve(key, view.branch)
    card = None
    gallery: list[str] = []
    last = None
    if sha:
        last = bk.repos.commit_info(key, sha)
        entry = bk.repos.entry(key, sha, "README.md")
        if entry is not None and entry.type == "file" and not entry.is_lfs and entry.size <= MAX_CARD:
            text = bk.repos.read_blob(key, entry.oid).decode("utf-8", "replace")
            card = cards.load(text, repo_type=repo_type, base=view.base, rev=view.branch)
        paths = _image_candidates(bk, key, sha)
        shown = set(card.images) if card else set()
        gallery = [p for p in paths if cards.is_image(p) and p not in shown][:12] if view.has_files else []
    meta = card.meta if card else (repo.card_data or {})
    chips = card.chips if card else cards.chips(meta, repo_type)
    snippets = cards.snippets(repo_type, repo.repo_id, request.app.state.settings.public_endpoint,
                              pipeline_tag=repo.pipeline_tag, library=repo.library_name)
    space = _space_view(bk, repo, request.cookies.get("cove_session")) if repo_type == "space" else None
    resp = page(request, "repo.html", title=repo.repo_id, view=view, tab="card", card=card, chips=chips,
                results=card.results if card else cards.results(meta), snippets=snippets, gallery=gallery,
                last=last, sha=sha, space=space, collections=writable_collections(request))
    if space and space["own_origin"]:  # the app's own origin may be framed (only here)
        resp.headers["Content-Security-Policy"] += f"; frame-src {space['url'].split('/?', 1)[0].rstrip('/')}"
    return resp


def _space_view(bk: Backends, repo, session_cookie: str | None = None) -> dict:  # noqa: ANN001 - Repo
    """The Space's stage, why it is not running, and the app's URL (embedded in the page while it serves): on the
    Space's own origin with ``COVE_SPACES_DOMAIN`` (a private one's with a token for this session), else its path."""
    from cove.db.tables import SpaceState
    from cove.spaces import service
    from cove.spaces.origin import frame_url

    with bk.db.session() as db:
        rt = service.runtime_json(db, bk, repo)
        st = db.get(SpaceState, repo.id)
        serving = st is not None and st.upstream is not None
    own = frame_url(bk.settings, repo, session_cookie) if serving else None
    return {"stage": rt["stage"], "message": rt.get("errorMessage"), "serving": serving, "own_origin": own is not None,
            "url": own or service.host(bk, repo).removeprefix(bk.settings.public_endpoint)}


def _image_candidates(bk: Backends, key: str, sha: str) -> list[str]:
    root = bk.repos.list_tree(key, sha) or []
    out = [e.path for e in root if e.type == "file"]
    for d in root:
        if d.type == "directory" and d.path.lower() in IMAGE_DIRS:
            out += [e.path for e in bk.repos.list_tree(key, sha, d.path) or [] if e.type == "file"]
    return out


def like(repo_type: str, request: Request, ns: str, name: str,
         csrf_token: Annotated[str, Form()] = "") -> Response:
    v = check_csrf(request, csrf_token)
    if v.actor.anonymous:
        return RedirectResponse(f"/login?next={repo_path(repo_type, f'{ns}/{name}')}", status_code=303)
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        repo = access.readable_repo(db, v.actor, repo_type, f"{ns}/{name}")
        if db.get(Like, (v.actor.user_id, repo.id)) is None:
            likes.like(db, v.actor, repo)
        else:
            likes.unlike(db, v.actor, repo)
        target = repo_path(repo_type, repo.repo_id)
    return RedirectResponse(target, status_code=303)


def ask_access(repo_type: str, request: Request, ns: str, name: str,
               csrf_token: Annotated[str, Form()] = "", field: Annotated[list[str] | None, Form()] = None,
               answer: Annotated[list[str] | None, Form()] = None) -> Response:
    """The gate's button: an access request (accepted at once when the repo's gating is `auto`), with the
    answers to the card's `extra_gated_fields` (every one required, as on the Hub)."""
    v = check_csrf(request, csrf_token)
    target = repo_path(repo_type, f"{ns}/{name}")
    if v.actor.anonymous:
        return RedirectResponse(f"/login?next={target}", status_code=303)
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        repo = access.readable_repo(db, v.actor, repo_type, f"{ns}/{name}")
        asked = gated_fields(repo.card_data)
        answers = dict(zip(field or [], [a.strip()[:500] for a in answer or []], strict=False))
        if set(asked) - {k for k, a in answers.items() if a}:
            raise BadRequest("Fill in every field to ask for access")
        gating.request_access(db, v.actor, repo, {k: answers[k] for k in asked} or None)
    return RedirectResponse(target, status_code=303)


def gated_fields(card_data: dict | None) -> dict[str, object]:
    """The card's `extra_gated_fields` (name -> type: text, checkbox, date_picker, country, or a select)."""
    fields = (card_data or {}).get("extra_gated_fields")
    return {str(k)[:200]: v for k, v in fields.items()} if isinstance(fields, dict) else {}


def settings_page(repo_type: str, request: Request, ns: str, name: str) -> Response:
    _, view = open_repo(request, repo_type, ns, name)
    if not view.can_admin:
        raise Forbidden(f"You don't have the rights to change the settings of {view.repo_id}")
    return page(request, "repo_settings.html", title=f"Settings · {view.repo_id}", view=view, tab="settings",
                saved=request.query_params.get("saved"))


def settings_update(repo_type: str, request: Request, ns: str, name: str,
                    action: Annotated[str, Form()], csrf_token: Annotated[str, Form()] = "",
                    visibility: Annotated[str, Form()] = "", branch: Annotated[str, Form()] = "",
                    confirm: Annotated[str, Form()] = "") -> Response:
    """One form per action: `visibility` (public/private), `default-branch` or `delete` (type the repo id to
    confirm)."""
    v = check_csrf(request, csrf_token)
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        repo = access.readable_repo(db, v.actor, repo_type, f"{ns}/{name}")
        if action == "visibility":
            if visibility not in ("public", "private"):
                raise BadRequest("Visibility is 'public' or 'private'")
            repos.update_settings(db, v.actor, repo, private=visibility == "private", gated=None)
            target = f"{repo_path(repo_type, repo.repo_id)}/settings?saved=visibility"
        elif action == "default-branch":
            repos.set_default_branch(db, bk, v.actor, repo, branch)
            target = f"{repo_path(repo_type, repo.repo_id)}/settings?saved=default-branch"
        elif action == "delete":
            if confirm.strip() != repo.repo_id:
                raise BadRequest(f"Type {repo.repo_id} to confirm the deletion")
            repos.delete_repo(db, bk, v.actor, repo)
            target = f"/{ns}"
        else:
            raise BadRequest(f"Unknown action {action!r}")
    return RedirectResponse(target, status_code=303)


__all__ = ["open_repo", "repo_page", "settings_page", "settings_update", "like", "ask_access"]
