"""Spaces that run: the runtime and lifecycle API of the Hub (``get_space_runtime``, ``restart_space``,
``pause_space``, ``set_space_sleep_time``, secrets, variables, hardware, logs) and the app itself, reverse-proxied
at ``/spaces/{ns}/{name}/app/`` (``space_info().host``). See ``cove.spaces``."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, WebSocket
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.routing import Host, Router

from cove.db.tables import Repo, SpaceState
from cove.deps import Bk, CurrentActor, client_host, resolve_actor
from cove.errors import BadRequest, HubError, NotFound, Unauthorized
from cove.services import access
from cove.spaces import config as cfg
from cove.spaces import origin, proxy, service
from cove.spaces.logs import SpaceLog
from cove.spaces.manager import app_prefix

router = APIRouter()
JsonBody = Annotated[dict[str, Any], Body()]
ALL = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _writable(db, actor, ns: str, name: str) -> Repo:  # noqa: ANN001
    return access.writable_repo(db, actor, "space", f"{ns}/{name}")


@router.get("/api/spaces/{ns}/{name}/runtime")
def space_runtime(ns: str, name: str, bk: Bk, actor: CurrentActor) -> dict:
    with bk.db.session() as db:
        repo = access.readable_repo(db, actor, "space", f"{ns}/{name}")
        return service.runtime_json(db, bk, repo)


@router.post("/api/spaces/{ns}/{name}/restart")
def restart_space(ns: str, name: str, bk: Bk, actor: CurrentActor, factory: bool = False) -> dict:
    with bk.db.session() as db:
        repo = _writable(db, actor, ns, name)
        service.restart(db, repo, factory=factory)
        return service.runtime_json(db, bk, repo)


@router.post("/api/spaces/{ns}/{name}/pause")
def pause_space(ns: str, name: str, bk: Bk, actor: CurrentActor) -> dict:
    with bk.db.session() as db:
        repo = _writable(db, actor, ns, name)
        service.pause(db, repo)
        return service.runtime_json(db, bk, repo)


@router.post("/api/spaces/{ns}/{name}/sleeptime")
def set_sleep_time(ns: str, name: str, body: JsonBody, bk: Bk, actor: CurrentActor) -> dict:
    with bk.db.session() as db:
        repo = _writable(db, actor, ns, name)
        service.set_sleep_time(db, repo, body.get("seconds"))
        return service.runtime_json(db, bk, repo)


@router.get("/api/spaces/hardware")
def list_hardware() -> list[dict]:
    return [{"name": service.HARDWARE, "prettyName": "CPU (this hub's machine)", "cpu": "shared", "ram": "shared",
             "accelerator": None, "unitCostMicroUSD": 0, "unitCostUSD": 0, "unitLabel": "hour"}]


@router.post("/api/spaces/{ns}/{name}/hardware")
def request_hardware(ns: str, name: str, body: JsonBody, bk: Bk, actor: CurrentActor) -> dict:
    flavor = body.get("flavor")
    with bk.db.session() as db:
        repo = _writable(db, actor, ns, name)
        if flavor != service.HARDWARE:
            raise BadRequest(f"This hub offers one hardware tier, {service.HARDWARE!r}: {flavor!r} is not available")
        if "sleepTimeSeconds" in body:
            service.set_sleep_time(db, repo, body.get("sleepTimeSeconds"))
        return service.runtime_json(db, bk, repo)


def _vars(kind: str):  # noqa: ANN202
    def get(ns: str, name: str, bk: Bk, actor: CurrentActor) -> dict:
        with bk.db.session() as db:
            return service.list_vars(db, _writable(db, actor, ns, name), kind)

    def post(ns: str, name: str, body: JsonBody, bk: Bk, actor: CurrentActor) -> dict:
        with bk.db.session() as db:
            repo = _writable(db, actor, ns, name)
            service.put_var(db, bk, repo, kind, body)
            service.vars_changed(db, repo)
            return service.list_vars(db, repo, kind) if kind == "variable" else {}

    def delete(ns: str, name: str, body: JsonBody, bk: Bk, actor: CurrentActor) -> dict:
        with bk.db.session() as db:
            repo = _writable(db, actor, ns, name)
            service.delete_var(db, repo, kind, body)
            service.vars_changed(db, repo)
            return service.list_vars(db, repo, kind) if kind == "variable" else {}

    return get, post, delete


for _plural, _kind in (("secrets", "secret"), ("variables", "variable")):
    _get, _post, _delete = _vars(_kind)
    router.add_api_route(f"/api/spaces/{{ns}}/{{name}}/{_plural}", _get, methods=["GET"])
    router.add_api_route(f"/api/spaces/{{ns}}/{{name}}/{_plural}", _post, methods=["POST"])
    router.add_api_route(f"/api/spaces/{{ns}}/{{name}}/{_plural}", _delete, methods=["DELETE"])


@router.get("/api/spaces/{ns}/{name}/logs/{kind}")
async def space_logs(ns: str, name: str, kind: str, request: Request, bk: Bk, actor: CurrentActor) -> Response:
    """Server-sent events, ``data: {"data": line, "timestamp": ...}``: the log so far, then lines as they come
    (the stream stays open; a client that doesn't follow stops on a quiet read)."""
    if kind not in ("build", "run"):
        raise NotFound("Unknown log: use build or run")

    def find() -> int:
        with bk.db.session() as db:
            return _writable(db, actor, ns, name).id

    asked = datetime.now(UTC).replace(microsecond=0)
    pk = await run_in_threadpool(find)
    log = SpaceLog(bk.settings.data / "space-logs" / str(pk) / f"{kind}.log")

    def events(data: bytes, when: datetime) -> bytes:
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return b"".join(b"data: " + json.dumps({"data": line, "timestamp": stamp}).encode() + b"\n\n"
                        for line in data.decode("utf-8", "replace").splitlines(keepends=True))

    async def stream():  # noqa: ANN202
        offset, pending = 0, b""
        quiet = time.monotonic()
        first = True
        while True:
            data, offset = log.read_from(offset)
            data = pending + data
            cut = data.rfind(b"\n") + 1
            data, pending = data[:cut], data[cut:]
            if data:
                quiet = time.monotonic()
                # What was there when asked is stamped then (a client that doesn't follow reads up to the
                # response's Date); later lines when read.
                yield events(data, asked if first else datetime.now(UTC))
            elif time.monotonic() - quiet > 30:
                quiet = time.monotonic()
                yield b"data: \n\n"  # keep-alive
            first = False
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.5)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


# -- the app ------------------------------------------------------------------------------------------------
_visits: dict[int, float] = {}
WAKE_WAIT = 0.5


def _proxy_actor(bk, conn) -> Any:  # noqa: ANN001
    """The visitor: a token in Authorization or X-HF-Authorization (gradio_client's), else Cove's browser
    session, else anonymous."""
    auth = conn.headers.get("authorization") or conn.headers.get("x-hf-authorization")
    actor = resolve_actor(bk, auth, client_host(conn))
    if actor.anonymous:
        session_actor = getattr(conn.app.state, "session_actor", None)
        if session_actor is not None:
            actor = session_actor(conn) or actor
    if actor.anonymous and not bk.settings.anonymous_read:
        raise Unauthorized("Authentication required")
    return actor


def _space_pk(db, ns: str, name: str) -> int | None:  # noqa: ANN001
    return db.scalar(select(Repo.id).where(Repo.type == "space", Repo.namespace == ns, Repo.name == name))


def _lookup(bk, conn, ns: str, name: str) -> tuple[Repo, SpaceState | None]:  # noqa: ANN001
    actor = _proxy_actor(bk, conn)
    cookie = conn.cookies.get(origin.APP_COOKIE)
    with bk.db.session() as db:  # one session: the app cookie's visitor, the Space, its state
        if actor.anonymous and cookie and conn.scope.get("cove_space_origin"):
            pk = _space_pk(db, ns, name)  # the app cookie of the Space's own host: its Cove session's user
            actor = (origin.cookie_actor(db, bk.settings, cookie, pk) if pk is not None else None) or actor
        repo = access.readable_repo(db, actor, "space", f"{ns}/{name}")
        now = time.monotonic()
        if now - _visits.get(repo.id, 0) > 30:
            _visits[repo.id] = now
            service.wake(db, repo)
        st = db.get(SpaceState, repo.id)
        if st is not None and st.upstream is None and st.wanted == "sleeping":
            service.wake(db, repo)
        db.flush()  # the visit is written (committed when the session closes), then the rows detached
        db.expunge_all()
        return repo, st


#: Seconds an anonymous visitor's lookup of a public, running Space is reused (no database round trip per
#: request of a page's many assets); a Space made private or stopped is seen within this time.
ANON_TTL = 1.0
_anon: dict[tuple[str, str], tuple[float, Repo, str]] = {}


def _credentials(conn) -> bool:  # noqa: ANN001
    h = conn.headers
    return bool(h.get("authorization") or h.get("x-hf-authorization") or "cove_session" in conn.cookies
                or origin.APP_COOKIE in conn.cookies)


async def _upstream(bk, conn, ns: str, name: str, *, cached: bool = True) -> tuple[Repo, str]:  # noqa: ANN001
    """The running app's address; waits for a waking or (re)starting Space, up to `spaces_start_timeout`."""
    anonymous = not _credentials(conn)
    if anonymous and cached:
        hit = _anon.get((ns, name))
        if hit is not None and time.monotonic() - hit[0] < ANON_TTL:
            return hit[1], hit[2]
    repo, st = await run_in_threadpool(_lookup, bk, conn, ns, name)
    if anonymous and st is not None and st.upstream is not None and not repo.private:
        if len(_anon) > 10_000:
            _anon.clear()
        _anon[(ns, name)] = (time.monotonic(), repo, st.upstream)
    deadline = time.monotonic() + bk.settings.spaces_start_timeout
    waiting = (cfg.BUILDING, cfg.APP_STARTING, cfg.SLEEPING)
    while st is None or st.upstream is None:
        stage = st.stage if st is not None else cfg.NO_APP_FILE
        if stage not in waiting or time.monotonic() > deadline:
            message = (st.message if st is not None else None) or ""
            raise SpaceNotRunning(f"This Space is not running (stage {stage}). {message}".strip())
        await asyncio.sleep(WAKE_WAIT)

        def again() -> SpaceState | None:
            with bk.db.session() as db:
                row = db.get(SpaceState, repo.id)
                db.expunge_all()
                return row

        st = await run_in_threadpool(again)
    return repo, st.upstream


class SpaceNotRunning(HubError):
    status = 503
    code = "SpaceNotRunning"


@router.api_route("/spaces/{ns}/{name}/app", methods=ALL, include_in_schema=False)
def app_root(ns: str, name: str, request: Request) -> Response:
    target = f"{app_prefix(f'{ns}/{name}')}/" + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(target, status_code=307)


@router.api_route("/spaces/{ns}/{name}/app/{path:path}", methods=ALL, include_in_schema=False)
async def app_http(ns: str, name: str, path: str, request: Request, bk: Bk) -> Response:
    return await _proxied(ns, name, path, request, bk)


async def _proxied(ns: str, name: str, path: str, request: Request, bk, *,  # noqa: ANN001
                   sandboxed: bool = True) -> Response:
    """`_app_http`, looked up again once when a remembered anonymous lookup's address no longer answers."""
    try:
        return await _app_http(ns, name, path, request, bk, cached=True, sandboxed=sandboxed)
    except proxy.Unreachable as exc:
        if _anon.pop((ns, name), None) is None or request.method not in ("GET", "HEAD"):
            return Response(f"{exc}\n", status_code=502, media_type="text/plain")
    try:  # the address was remembered from before the app moved (a restart, a wake): look again
        return await _app_http(ns, name, path, request, bk, cached=False, sandboxed=sandboxed)
    except proxy.Unreachable as exc:
        return Response(f"{exc}\n", status_code=502, media_type="text/plain")


async def _app_http(ns: str, name: str, path: str, request: Request, bk, *, cached: bool,  # noqa: ANN001
                    sandboxed: bool = True) -> Response:
    repo, upstream = await _upstream(bk, request, ns, name, cached=cached)
    if upstream.startswith("static:"):
        sha = upstream.removeprefix("static:")
        file = path or "index.html"
        if file.endswith("/"):
            file += "index.html"

        def read() -> bytes | None:
            entry = bk.repos.entry(repo.storage_key, sha, file)
            if entry is None or entry.type != "file" or entry.is_lfs:
                return None
            return bk.repos.read_blob(repo.storage_key, entry.oid)

        return proxy.static(await run_in_threadpool(read), file, sandboxed=sandboxed)
    origin = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
    stripped = upstream.count("/") == 2  # http://127.0.0.1:PORT: the app is served at its root
    public = origin + app_prefix(repo.repo_id) if stripped else origin
    if not stripped:
        path = upstream.split("/", 3)[3] + "/" + path
        upstream = "/".join(upstream.split("/", 3)[:3])
    return await proxy.http(request, upstream, path, public, sandboxed=sandboxed)


@router.websocket("/spaces/{ns}/{name}/app/{path:path}")
async def app_ws(websocket: WebSocket, ns: str, name: str, path: str) -> None:
    bk = websocket.app.state.backends
    try:
        _, upstream = await _upstream(bk, websocket, ns, name)
    except HubError:
        await websocket.close(code=1008)
        return
    if upstream.startswith("static:"):
        await websocket.close(code=1008)
        return
    if upstream.count("/") > 2:
        path = upstream.split("/", 3)[3] + "/" + path
        upstream = "/".join(upstream.split("/", 3)[:3])
    await proxy.websocket(websocket, upstream, path)


# -- the app on an origin of its own (COVE_SPACES_DOMAIN) ----------------------------------------------------
def _own_path(repo_id: str, path: str) -> str:
    """The app's path on its own host: the app also builds URLs under its Cove path (its root path), which this
    host takes as the same."""
    prefix = app_prefix(repo_id).lstrip("/")
    if path == prefix:
        return ""
    return path[len(prefix) + 1:] if path.startswith(prefix + "/") else path


def _origin_space(bk, conn) -> tuple[str, str]:  # noqa: ANN001
    repo_id = origin.repo_for_host(bk, conn.headers.get("host", ""))
    if repo_id is None:
        from cove.errors import RepoNotFound

        raise RepoNotFound()
    conn.scope["cove_space_origin"] = True
    ns, _, name = repo_id.partition("/")
    return ns, name


async def origin_http(request: Request) -> Response:
    bk = request.app.state.backends
    ns, name = await run_in_threadpool(_origin_space, bk, request)
    token = request.query_params.get(origin.SIGN_PARAM)
    if token is not None:
        return await run_in_threadpool(_exchange, bk, request, ns, name, token)
    path = _own_path(f"{ns}/{name}", request.path_params.get("path", ""))
    return await _proxied(ns, name, path, request, bk, sandboxed=False)


def _exchange(bk, request: Request, ns: str, name: str, token: str) -> Response:  # noqa: ANN001
    """A Space page's ``__sign`` token for this host's cookie (its session, this Space), then the same URL without
    the token. A token that is not valid for a reader of this Space: the Space is missing."""
    from cove.errors import RepoNotFound

    with bk.db.session() as db:
        pk = _space_pk(db, ns, name)
        cookie = origin.cookie_from_sign(bk.settings, token, pk) if pk is not None else None
        actor = origin.cookie_actor(db, bk.settings, cookie, pk) if cookie else None
        if actor is None:
            raise RepoNotFound()
        access.readable_repo(db, actor, "space", f"{ns}/{name}")
    query = "&".join(p for p in request.url.query.split("&") if not p.startswith(origin.SIGN_PARAM + "="))
    target = "/" + request.url.path.lstrip("/") + (f"?{query}" if query else "")  # never //other-host
    secure = origin.secure_context(request.url.scheme, request.headers.get("host", ""))
    return Response(status_code=303, headers={"location": target, "cache-control": "no-store",
                                              "set-cookie": origin.cookie_header(bk.settings, cookie, secure)})


async def origin_ws(websocket: WebSocket) -> None:
    bk = websocket.app.state.backends
    try:
        ns, name = await run_in_threadpool(_origin_space, bk, websocket)
    except HubError:
        await websocket.close(code=1008)
        return
    await app_ws(websocket, ns, name, _own_path(f"{ns}/{name}", websocket.path_params.get("path", "")))


def install_origin(app, settings) -> None:  # noqa: ANN001
    """Route every request whose Host is ``<label>.<COVE_SPACES_DOMAIN>`` to that Space's app, ahead of Cove's
    own routes (nothing else of Cove answers on those hosts)."""
    import logging

    if not settings.spaces_domain:
        return
    d = origin.domain(settings)
    if d is None:
        logging.getLogger("cove.spaces").error(
            "COVE_SPACES_DOMAIN=%s is not used: Cove's own host (%s) is under it", settings.spaces_domain,
            settings.public_endpoint)
        return
    hosts = Router()
    hosts.add_route("/{path:path}", origin_http, methods=ALL, include_in_schema=False)
    hosts.add_websocket_route("/{path:path}", origin_ws)
    app.router.routes.insert(0, Host("{label}." + d[0], app=hosts, name="space-origin"))
    app.app_hosts = "." + d[0]  # `CoveApp`'s caches step aside for these hosts
