"""`create_app(settings)`: the whole ASGI application — routers, the error handler, start-up."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from urllib.parse import unquote

import pygit2
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, HTTPConnection

from cove.allocator import limit_arenas
from cove.api.info_cache import ROUTE as INFO_ROUTE  # the route template its answers are recorded under
from cove.api.moved import redirect as redirect_moved
from cove.backends import Backends, build_backends
from cove.errors import HubError, InsufficientStorage, RepoMoved, RepoNotFound, RepoStorageDamaged
from cove.observability import cached_head_route, route_of
from cove.settings import Settings
from cove.storage.git_repos import GitObjectMissing

log = logging.getLogger("cove")


def request_id(scope) -> bytes:  # noqa: ANN001
    """The client's trace id when it sent one, else a fresh one."""
    for k, v in scope["headers"]:
        if k in (b"x-request-id", b"x-amzn-trace-id"):
            return v
    return uuid.uuid4().hex.encode()


#: Bytes uvicorn refuses in a header value (it drops the connection, with no response, when one is there).
_BAD_HEADER_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def safe_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Every header value made sendable (control characters become spaces); `nosniff` unless already set."""
    out = [(k, _BAD_HEADER_BYTES.sub(b" ", v)) for k, v in headers]
    if not any(k.lower() == b"x-content-type-options" for k, _ in out):
        out.append((b"x-content-type-options", b"nosniff"))
    return out


class RequestIdMiddleware:
    """Adds `X-Request-Id` and `X-Content-Type-Options: nosniff` to every response (the client's trace id
    when it sent one), and keeps control characters out of every header value."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        rid = state["request_id"].encode("latin-1") if "request_id" in state else request_id(scope)
        raw = scope.get("raw_path") or b""
        if b"%2f" in raw.lower():
            # Revisions travel as one quoted segment (`feat%2Fx`, `refs%2Fpr%2F1`); keep the encoded slash
            # through routing, and `decode_slashes` turns it back into `/` in the path parameters.
            scope["path"] = unquote(raw.decode("latin-1").replace("%2f", "%252F").replace("%2F", "%252F"))
        state["request_id"] = rid.decode("latin-1")

        async def send_with_id(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.start":
                message["headers"] = safe_headers([*message.get("headers", []), (b"x-request-id", rid)])
            await send(message)

        await self.app(scope, receive, send_with_id)


class CoveApp(FastAPI):
    """FastAPI, with `HeadCache` and `InfoCache` in front: a repeated HEAD /resolve or repo-info GET is answered
    before the framework's own layers (error and telemetry middleware, routing, dependencies), with the
    `X-Request-Id` that `RequestIdMiddleware` adds. Only while that is the one middleware: any other could
    change the answer."""

    head_cache = None
    #: `cove.api.info_cache.InfoCache`: a repeated repo-info GET, answered the same way.
    info_cache = None
    #: `cove.observability.Telemetry`: metrics and the access log, around everything (HeadCache included).
    telemetry = None
    #: `cove.api.inference_front.InferenceFront`: a repeated batched inference POST, past routing and the database.
    inference_front = None
    _front: bool | None = None
    #: ``.<COVE_SPACES_DOMAIN host>`` once `cove.api.spaces.install_origin` routed those hosts to the Spaces' apps:
    #: a request for such a host is the app's alone, never answered by the caches above.
    app_hosts: str | None = None

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        telemetry = self.telemetry
        rid = request_id(scope)
        if telemetry is not None:
            scope.setdefault("state", {})["request_id"] = rid.decode("latin-1")
        # On a Space app's host none of the fast paths below answers: only the app does (through routing).
        method = "" if self.app_hosts is not None and self._for_app(scope) else scope["method"]
        if method == "HEAD" and self.head_cache is not None:
            start = time.perf_counter()
            if self._fronted() and await self.head_cache.serve(scope, send, rid):
                if telemetry is not None:  # the hot path: counted without wrapping `send` (always 200, no body)
                    telemetry.cached_head(scope, time.perf_counter() - start)
                return
        elif method == "GET" and self.info_cache is not None:
            start = time.perf_counter()
            if self._fronted() and (sent := await self.info_cache.serve(scope, send, rid)) is not None:
                if telemetry is not None:
                    telemetry.cached(scope, "GET", INFO_ROUTE, sent, time.perf_counter() - start)
                return
            if self._fronted() and (sent := await self.head_cache.serve_get(scope, receive, send, rid)) is not None:
                if telemetry is not None:  # a local LFS file sent again (`HeadCache.serve_get`)
                    telemetry.cached(scope, "GET", cached_head_route(scope["path"]), sent, time.perf_counter() - start)
                return
        call = partial(FastAPI.__call__, self, scope)
        if (method == "POST" and self.inference_front is not None and self.inference_front.claims(scope)
                and self._fronted()):
            call = partial(self.inference_front.serve, scope, call, rid)
        if telemetry is None:
            await call(receive, send)
        else:
            await telemetry.observe(scope, receive, send, call)

    def _fronted(self) -> bool:
        """Whether `RequestIdMiddleware` is the one middleware, so the fast paths may answer (computed once:
        middleware can't be added once the app has started)."""
        if self._front is None:
            self._front = [m.cls for m in self.user_middleware] == [RequestIdMiddleware]
        return self._front

    def _for_app(self, scope) -> bool:  # noqa: ANN001
        """Whether the request's Host is a Space app's (``<label>.<domain>``, as the `Host` route matches it)."""
        for key, value in scope["headers"]:
            if key == b"host":
                return value.split(b":", 1)[0].lower().decode("latin-1").endswith(self.app_hosts)
        return False


async def decode_slashes(request: HTTPConnection) -> None:
    """Path parameters get their `%2F` back as `/` (see `RequestIdMiddleware`); HTTP and WebSocket routes alike."""
    params = request.scope.get("path_params") or {}
    for k, v in params.items():
        if isinstance(v, str) and "%2F" in v:
            params[k] = v.replace("%2F", "/")


def error_response(request: Request, status: int, message: str, code: str | None,
                   headers: dict[str, str] | None = None, extra: dict | None = None) -> Response:
    hdrs = dict(headers or {})
    message = message.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate echoed from the input
    if code:
        hdrs["X-Error-Code"] = code
    text = re.sub(r"[\x00-\x1f\x7f]", " ", message)[:1000]
    hdrs["X-Error-Message"] = text.encode("ascii", "replace").decode()
    body = {"error": message, **(extra or {})}
    if request.method == "HEAD":
        return Response(status_code=status, headers=hdrs)
    return JSONResponse(body, status_code=status, headers=hdrs)


_DISK_FULL_TEXT = ("no space left on device", "disk quota exceeded", "database or disk is full")


#: Below this much free space, a failed git or database write is taken for a full disk: libgit2 reports
#: ENOSPC with no errno (and often with a stale message from an earlier lookup).
LOW_SPACE = 64 << 20


def disk_full(exc: BaseException, data: Path | None = None) -> bool:
    """Did this fail because the disk (or the quota) is full? Looks through the causes too; with `data`, a
    git or database error while `data`'s disk is all but full counts as well."""
    if data is not None and isinstance(exc, (pygit2.GitError, OperationalError)):
        with contextlib.suppress(OSError):
            if shutil.disk_usage(data).free < LOW_SPACE:
                return True
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(t in str(seen).lower() for t in _DISK_FULL_TEXT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _lifespan(settings: Settings):  # noqa: ANN202
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from cove.services import tempfiles

        lock = await asyncio.to_thread(tempfiles.startup_sweep, settings)
        task = asyncio.create_task(tempfiles.sweep_forever(settings))
        try:
            yield
        finally:
            task.cancel()
            if lock is not None:
                lock.close()
            if getattr(app, "telemetry", None) is not None:
                app.telemetry.flush()  # uvicorn re-raises SIGTERM after shutdown: no atexit

    return lifespan


def create_app(settings: Settings | None = None, backends: Backends | None = None) -> FastAPI:
    settings = settings or Settings()
    limit_arenas()
    bk = backends or build_backends(settings)
    app = CoveApp(title="Cove", version="0.1.0", docs_url=None, openapi_url="/api/openapi.json",
                  redoc_url=None, dependencies=[Depends(decode_slashes)], lifespan=_lifespan(bk.settings))
    app.state.backends = bk
    app.state.settings = settings

    @app.exception_handler(HubError)
    async def _hub_error(request: Request, exc: HubError) -> Response:
        if isinstance(exc, RepoMoved) and (moved := redirect_moved(request, exc)) is not None:
            return moved  # the old id of a moved repo, named in the URL: 307 to the new one
        return error_response(request, exc.status, exc.message, exc.code, exc.headers, exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for err in exc.errors()[:5]:
            loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return error_response(request, 400, "Invalid request: " + "; ".join(parts), "BadRequest")

    @app.exception_handler(ClientDisconnect)
    async def _hung_up(request: Request, exc: ClientDisconnect) -> Response:
        # The client left mid-body (a killed upload, a timed-out balancer): nothing was stored; its fault, not ours.
        return error_response(request, 400, "The client disconnected before the request body was complete",
                              "BadRequest")

    @app.exception_handler(RecursionError)
    async def _too_deep(request: Request, exc: RecursionError) -> Response:
        # Only input nested deeper than Python's recursion limit gets here (JSON bodies, mostly).
        return error_response(request, 400, "Invalid request: the input is nested too deeply", "BadRequest")

    async def _storage(request: Request, exc: Exception) -> Response:
        if not disk_full(exc, settings.data):
            raise exc
        # The route template, not the path: LFS upload URLs carry a signed token in it.
        log.error("disk full: %s %s: %s", request.method, route_of(request.scope), exc)
        err = InsufficientStorage("Insufficient storage: the server's disk is full, nothing was stored. "
                                  "Try again later, or ask the administrator to free space.")
        return error_response(request, err.status, err.message, err.code)

    for cls in (OSError, pygit2.GitError, OperationalError):
        app.add_exception_handler(cls, _storage)

    damaged_logged: set[str] = set()  # storage keys: each damaged repo is logged once per process, not per request

    @app.exception_handler(GitObjectMissing)
    async def _damaged(request: Request, exc: GitObjectMissing) -> Response:
        params = request.path_params
        repo_id = f"{params['ns']}/{params['name']}" if "ns" in params and "name" in params else None
        if exc.key not in damaged_logged:
            damaged_logged.add(exc.key)
            log.error("repo storage damaged (run `cove fsck`): %s %s (%s): %s", request.method,
                      route_of(request.scope), repo_id or "?", exc)
        what = f"repository {repo_id}" if repo_id else "this repository"
        err = RepoStorageDamaged(f"The storage of {what} is damaged (a git object is missing or unreadable): "
                                 "ask the administrator to run `cove fsck`.")
        return error_response(request, err.status, err.message, err.code)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        from cove.api.repos import namespace_less

        if exc.status_code in (404, 405) and namespace_less(request.scope["path"]):
            # No route ran, so no actor: the message follows the credentials sent, as access.readable_repo's does.
            err = RepoNotFound() if "authorization" in request.headers else RepoNotFound(
                "Repository not found. If the repo is private, make sure you are authenticated.")
            return error_response(request, err.status, err.message, err.code)
        code = "NotFound" if exc.status_code == 404 else None
        return error_response(request, exc.status_code, str(exc.detail), code, dict(exc.headers or {}))

    from cove.api import routers

    for router in routers():
        app.include_router(router)
    from cove.web.pages import install as install_web

    install_web(app)
    app.add_middleware(RequestIdMiddleware)
    from cove.api.files import HeadCache

    app.head_cache = HeadCache(bk)
    from cove.api.info_cache import InfoCache

    app.info_cache = InfoCache(app.head_cache)
    from cove.api.inference import engine_of
    from cove.api.inference_front import InferenceFront

    app.inference_front = InferenceFront(app.head_cache, partial(engine_of, app))
    from cove.observability import Telemetry

    app.telemetry = Telemetry(settings.access_log)
    from cove.services.scans import run_worker_with

    run_worker_with(app, bk)
    from cove.spaces.manager import run_with as run_spaces_with

    run_spaces_with(app, bk)
    from cove.services import webhook_delivery

    webhook_delivery.run_worker_with(app, bk)
    from cove.services import mirror

    mirror.run_with(app, bk)  # lookups that miss may fetch from the upstream hub (docs/mirror.md)
    from cove.services.downloads import run_flusher_with

    run_flusher_with(app, bk)
    from cove.services.repos import heal_in_background

    heal_in_background(app, bk)
    from cove.services import git_maintenance

    git_maintenance.run_with(app, bk)  # repack/gc in one process of the fleet at a time, off the request path
    return app
