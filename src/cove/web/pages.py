"""The web UI's router: every page, registered after the API so API paths always win.

Routes follow huggingface.co: `/`, `/models`, `/{ns}/{name}`, `/datasets/{ns}/{name}/viewer`,
`/{ns}/{name}/tree/{rev}/{path}`, `/{ns}/{name}/blob/...`, `/commits/{rev}`, `/commit/{sha}`, `/{user}`,
`/login`, `/settings/tokens`, `/{ns}/{name}/settings`. Raw bytes are served by the API's `/resolve/`.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from cove.errors import HubError, NotFound, Unauthorized
from cove.web import account, community, files, history, listing, manage, orgs, repo, sessions, write
from cove.web import collections as collection_pages
from cove.web.render import page

STATIC = Path(__file__).parent / "static"
_STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml", ".png": "image/png",
                 ".ico": "image/x-icon"}


def _viewer_page(request: Request, ns: str, name: str) -> Response:
    """`cove.web.viewer.viewer_page`, imported on the first viewer request: pyarrow and numpy stay off start-up."""
    from cove.web import viewer

    return viewer.viewer_page(request, ns, name)


def _mark_web(request: Request) -> None:
    """Every page: mark it (errors render as HTML); with `COVE_ANONYMOUS_READ=false`, require a sign-in."""
    request.state.web_page = True
    path = request.url.path
    if request.app.state.settings.anonymous_read or path in _OPEN or path.startswith("/_static/"):
        return
    if sessions.visitor(request).actor.anonymous:
        raise Unauthorized("Sign in to browse this hub")


_OPEN = ("/login", "/logout")


router = APIRouter(dependencies=[Depends(_mark_web)], include_in_schema=False)
READ = ["GET", "HEAD"]  # link checkers and `curl -I` use HEAD


def _bind(fn, repo_type: str):  # noqa: ANN001, ANN202
    """`fn(repo_type, ...)` as an endpoint for one repo type (the URL prefix decides the type)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    sig = inspect.signature(fn)
    params = [p.replace(annotation=hints.get(n, p.annotation)) for n, p in sig.parameters.items()
              if n != "repo_type"]

    def endpoint(**kwargs):  # noqa: ANN003, ANN202
        return fn(repo_type, **kwargs)

    endpoint.__signature__ = sig.replace(parameters=params, return_annotation=inspect.Signature.empty)
    endpoint.__name__ = f"{fn.__name__}_{repo_type}"
    return endpoint


@router.api_route("/_static/{name}", methods=READ)
def static(name: str) -> Response:
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file() or path.suffix not in _STATIC_TYPES:
        raise NotFound("No such file")
    return FileResponse(path, media_type=_STATIC_TYPES[path.suffix],
                        headers={"Cache-Control": "public, max-age=3600"})


def _write_routes(base: str, repo_type: str) -> None:
    """Uploads, file edits, the Community tab and the settings forms (`web.write`, `community`, `manage`)."""
    add = router.add_api_route
    for verb, form, action in (("upload", write.upload_form, write.upload), ("new", write.edit_form, write.edit)):
        for suffix in ("{rev}", "{rev}/{path:path}"):
            add(f"{base}/{verb}/{suffix}", _bind(form, repo_type), methods=READ)
            add(f"{base}/{verb}/{suffix}", _bind(action, repo_type), methods=["POST"])
    add(f"{base}/edit/{{rev}}/{{path:path}}", _bind(write.edit_form, repo_type), methods=READ)
    add(f"{base}/edit/{{rev}}/{{path:path}}", _bind(write.edit, repo_type), methods=["POST"])
    add(f"{base}/delete/{{rev}}/{{path:path}}", _bind(write.delete_form, repo_type), methods=READ)
    add(f"{base}/delete/{{rev}}/{{path:path}}", _bind(write.delete, repo_type), methods=["POST"])
    add(f"{base}/discussions", _bind(community.discussions_page, repo_type), methods=READ)
    add(f"{base}/discussions/new", _bind(community.new_discussion_form, repo_type), methods=READ)
    add(f"{base}/discussions/new", _bind(community.new_discussion, repo_type), methods=["POST"])
    add(f"{base}/discussions/{{num}}", _bind(community.discussion_page, repo_type), methods=READ)
    add(f"{base}/discussions/{{num}}/{{action}}", _bind(community.discussion_action, repo_type), methods=["POST"])
    add(f"{base}/compare", _bind(history.compare_form, repo_type), methods=READ)
    add(f"{base}/compare/{{spec:path}}", _bind(history.compare_page, repo_type), methods=READ)
    add(f"{base}/blame/{{rev}}/{{path:path}}", _bind(history.blame_page, repo_type), methods=READ)
    add(f"{base}/settings/gating", _bind(manage.gating_update, repo_type), methods=["POST"])
    add(f"{base}/settings/move", _bind(manage.move, repo_type), methods=["POST"])
    add(f"{base}/settings/access-requests", _bind(manage.access_requests_page, repo_type), methods=READ)
    add(f"{base}/settings/access-requests", _bind(manage.access_request_handle, repo_type), methods=["POST"])


# Fixed paths first: they must win over `/{user}` and `/{ns}/{name}`.
router.add_api_route("/", listing.home, methods=READ)
for _plural, _type in (("models", "model"), ("datasets", "dataset"), ("spaces", "space")):
    router.add_api_route(f"/{_plural}", _bind(listing.listing, _type), methods=READ)
router.add_api_route("/login", account.login_form, methods=READ)
router.add_api_route("/login", account.login, methods=["POST"])
router.add_api_route("/logout", account.logout_form, methods=READ)
router.add_api_route("/logout", account.logout, methods=["POST"])
router.add_api_route("/settings/tokens", account.tokens_page, methods=READ)
router.add_api_route("/settings/tokens", account.create_token, methods=["POST"])
router.add_api_route("/settings/tokens/revoke", account.revoke_token, methods=["POST"])
router.add_api_route("/datasets/{ns}/{name}/viewer", _viewer_page, methods=READ)
router.add_api_route("/settings/storage", account.storage_page, methods=READ)
router.add_api_route("/organizations/{org}/settings/storage", account.storage_page, methods=READ)
router.add_api_route("/organizations/new", orgs.new_org_form, methods=READ)
router.add_api_route("/organizations/new", orgs.new_org, methods=["POST"])
router.add_api_route("/organizations/{org}/settings/members", orgs.members_page, methods=READ)
router.add_api_route("/organizations/{org}/settings/members", orgs.members_update, methods=["POST"])
router.add_api_route("/settings/invitations", orgs.invitations_page, methods=READ)
router.add_api_route("/settings/invitations", orgs.invitation_answer, methods=["POST"])
_C = "/collections/{namespace}"
router.add_api_route(_C, collection_pages.namespace_page, methods=READ)
router.add_api_route(_C, collection_pages.create, methods=["POST"])
router.add_api_route(f"{_C}/{{slug}}", collection_pages.collection_page, methods=READ)
router.add_api_route(f"{_C}/{{slug}}/items", collection_pages.add_item, methods=["POST"])
router.add_api_route(f"{_C}/{{slug}}/items/{{item}}", collection_pages.item_action, methods=["POST"])
router.add_api_route(f"{_C}/{{slug}}/delete", collection_pages.delete, methods=["POST"])
router.add_api_route(f"{_C}/{{slug}}/settings", collection_pages.edit, methods=["POST"])
for _type, _path in write.NEW_PAGES.items():
    router.add_api_route(_path, _bind(write.new_repo_form, _type), methods=READ)
    router.add_api_route(_path, _bind(write.new_repo, _type), methods=["POST"])

for _prefix, _type in (("/datasets", "dataset"), ("/spaces", "space"), ("", "model")):
    base = f"{_prefix}/{{ns}}/{{name}}"
    router.add_api_route(base, _bind(repo.repo_page, _type), methods=READ)
    router.add_api_route(f"{base}/tree/{{rev}}", _bind(files.tree_page, _type), methods=READ)
    router.add_api_route(f"{base}/tree/{{rev}}/{{path:path}}", _bind(files.tree_page, _type), methods=READ)
    router.add_api_route(f"{base}/blob/{{rev}}/{{path:path}}", _bind(files.blob_page, _type), methods=READ)
    router.add_api_route(f"{base}/commits/{{rev:path}}", _bind(files.commits_page, _type), methods=READ)
    router.add_api_route(f"{base}/commit/{{sha}}", _bind(files.commit_page, _type), methods=READ)
    router.add_api_route(f"{base}/settings", _bind(repo.settings_page, _type), methods=READ)
    router.add_api_route(f"{base}/settings", _bind(repo.settings_update, _type), methods=["POST"])
    router.add_api_route(f"{base}/like", _bind(repo.like, _type), methods=["POST"])
    router.add_api_route(f"{base}/add-to-collection", _bind(collection_pages.add_repo, _type), methods=["POST"])
    router.add_api_route(f"{base}/ask-access", _bind(repo.ask_access, _type), methods=["POST"])
    _write_routes(base, _type)
    if _prefix:
        router.add_api_route(f"{_prefix}/{{ns}}", _bind(listing.by_author, _type), methods=READ)

router.add_api_route("/{ns}", account.person_page, methods=READ)


def _wants_html(request: Request) -> bool:
    if getattr(request.state, "web_page", False):
        return True
    path = request.url.path
    return ("text/html" in request.headers.get("accept", "") and request.method == "GET"
            and not path.startswith(("/api/", "/lfs/", "/v1/", "/v2/")) and "/resolve/" not in path)


def install(app: FastAPI) -> None:
    """Hook the pages into the app: browser sessions for the API, and HTML error pages for browsers."""
    app.state.session_actor = sessions.session_actor
    hub_handler = app.exception_handlers[HubError]
    http_handler = app.exception_handlers[StarletteHTTPException]

    async def hub_error(request: Request, exc: HubError) -> Response:
        if not _wants_html(request):
            return await hub_handler(request, exc)
        anonymous = sessions.visitor(request).actor.anonymous
        if exc.status == 401 and request.method in ("GET", "HEAD") and anonymous:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return _error_page(request, exc.status, exc.message)

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not _wants_html(request):
            return await http_handler(request, exc)
        message = "Page not found" if exc.status_code == 404 else str(exc.detail)
        return _error_page(request, exc.status_code, message)

    app.exception_handlers[HubError] = hub_error
    app.exception_handlers[StarletteHTTPException] = http_error


def _error_page(request: Request, status: int, message: str) -> Response:
    titles = {401: "Sign in required", 403: "Not allowed", 404: "Not found"}
    return page(request, "error.html", status=status, title=titles.get(status, "Error"), status_code=status,
                message=message)
