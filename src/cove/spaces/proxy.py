"""Cove's reverse proxy to a Space's app: HTTP with streamed bodies both ways (so server-sent events and
Gradio's queue work), WebSockets relayed frame by frame, and a static Space's files served from git.

Every response of an app carries ``Content-Security-Policy: sandbox ...`` (without ``allow-same-origin``): the
app's pages run in an opaque origin, so a Space's scripts can't act on Cove with its visitor's session, though
they are served under Cove's host. Their own requests are then cross-origin, hence ``Access-Control-Allow-Origin:
*`` (never with credentials). The visitor's Cove credentials (Authorization, ``X-HF-Authorization``, Cove's
cookies) are checked here and never forwarded to the app.

On a Space's own origin (``COVE_SPACES_DOMAIN``, `cove.spaces.origin`) none of that sandboxing is needed: the app's
headers pass as they are (``sandboxed=False``), and only Cove's credentials are kept from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
from collections.abc import AsyncIterator

import httpx
import websockets
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from cove.errors import BadRequest

SANDBOX = ("sandbox allow-scripts allow-forms allow-popups allow-popups-to-escape-sandbox allow-downloads "
           "allow-modals")
_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
        "transfer-encoding", "upgrade", "host", "authorization", "x-hf-authorization", "cookie"}
_WS_DROP = _HOP | {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                   "sec-websocket-protocol", "content-length"}
#: Response headers of the app that Cove sets itself.
_REPLACED = {"date", "server", "content-security-policy", "x-frame-options", "access-control-allow-origin",
             "access-control-allow-credentials"}
_COVE_COOKIES = ("cove_session", "cove_csrf", "cove_space")
_client: httpx.AsyncClient | None = None


class Unreachable(Exception):
    """The app did not take the request (gone, or not listening)."""


def client() -> httpx.AsyncClient:
    global _client
    if _client is None:
        _client = httpx.AsyncClient(timeout=httpx.Timeout(10, read=None, write=None), follow_redirects=False,
                                    limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
    return _client


def _cookies(header: str | None) -> str | None:
    """The Cookie header without Cove's own cookies."""
    if not header:
        return None
    kept = [c for c in header.split(";") if c.strip().split("=", 1)[0] not in _COVE_COOKIES]
    return ";".join(kept).strip() or None


def forwarded(headers, scheme: str, client_ip: str | None, drop: set[str]) -> list[tuple[str, str]]:  # noqa: ANN001
    out = [(k, v) for k, v in headers.items() if k.lower() not in drop]
    cookie = _cookies(headers.get("cookie"))
    if cookie:
        out.append(("cookie", cookie))
    if headers.get("host"):
        out.append(("x-forwarded-host", headers["host"]))
    out.append(("x-forwarded-proto", scheme))
    if client_ip:
        out.append(("x-forwarded-for", client_ip))
    return out


def _response_headers(upstream: httpx.Response, public: str, base: str,
                      sandboxed: bool = True) -> list[tuple[str, str]]:
    out = []
    for k, v in upstream.headers.multi_items():
        lk = k.lower()
        if lk in _HOP or (lk in _REPLACED if sandboxed else lk in ("date", "server")):
            continue
        if lk == "location" and v.startswith(base):
            v = public + v[len(base):]
        out.append((k, v))
    if sandboxed:
        out += [("content-security-policy", SANDBOX), ("access-control-allow-origin", "*"),
                ("x-frame-options", "SAMEORIGIN")]
    return out


async def http(request: Request, upstream: str, path: str, public: str, *, sandboxed: bool = True) -> Response:
    """Forward `request` to ``upstream + "/" + path`` and stream the answer back; a redirect to the app's own
    origin is rewritten to `public` (the public URL of that origin)."""
    url = f"{upstream}/{path}"
    if request.url.query:
        url += "?" + request.url.query
    headers = forwarded(request.headers, request.url.scheme, request.client.host if request.client else None, _HOP)
    if "content-length" not in request.headers and request.method in ("GET", "HEAD", "OPTIONS", "DELETE"):
        body = None
    else:
        body = request.stream()
    try:
        req = client().build_request(request.method, url, headers=headers, content=body)
    except (httpx.InvalidURL, ValueError) as exc:
        raise BadRequest(f"Invalid path for the Space's app: {exc}") from exc
    try:
        resp = await client().send(req, stream=True)
    except httpx.HTTPError as exc:
        raise Unreachable(f"The Space's app did not answer: {type(exc).__name__}") from exc
    base = upstream.split("/", 3)
    origin = "/".join(base[:3])

    async def body_iter() -> AsyncIterator[bytes]:
        try:
            async for chunk in resp.aiter_raw():
                yield chunk
        finally:
            await resp.aclose()

    return _streaming(body_iter(), resp.status_code, _response_headers(resp, public, origin, sandboxed))


def _streaming(body: AsyncIterator[bytes], status: int, headers: list[tuple[str, str]]) -> StreamingResponse:
    out = StreamingResponse(body, status_code=status)
    out.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    return out


def static(data: bytes | None, path: str, *, sandboxed: bool = True) -> Response:
    sandbox = {"content-security-policy": SANDBOX} if sandboxed else {}
    if data is None:
        return Response("Not found\n", status_code=404, media_type="text/plain", headers=sandbox)
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    extra = {"access-control-allow-origin": "*"} if sandboxed else {}
    return Response(data, media_type=kind, headers={**sandbox, **extra, "cache-control": "no-cache"})


async def websocket(ws: WebSocket, upstream: str, path: str) -> None:
    """Relay a WebSocket between the client and the app, both ways, until either side closes."""
    url = upstream.replace("http", "ws", 1) + "/" + path
    if ws.url.query:
        url += "?" + ws.url.query
    protocols = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    headers = forwarded(ws.headers, "https" if ws.url.scheme == "wss" else "http",
                        ws.client.host if ws.client else None, _WS_DROP | {"origin"})
    try:
        upstream_ws = await websockets.connect(url, additional_headers=headers, subprotocols=protocols or None,
                                               max_size=None, open_timeout=10, origin=None)
    except (OSError, ValueError, websockets.exceptions.WebSocketException):
        await ws.close(code=1011)
        return
    await ws.accept(subprotocol=upstream_ws.subprotocol)

    async def client_to_app() -> None:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            if msg.get("bytes") is not None:
                await upstream_ws.send(msg["bytes"])
            elif msg.get("text") is not None:
                await upstream_ws.send(msg["text"])

    async def app_to_client() -> None:
        async for msg in upstream_ws:
            if isinstance(msg, bytes):
                await ws.send_bytes(msg)
            else:
                await ws.send_text(msg)

    tasks = [asyncio.create_task(client_to_app()), asyncio.create_task(app_to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        with contextlib.suppress(Exception):
            await upstream_ws.close()
        with contextlib.suppress(Exception, WebSocketDisconnect):
            await ws.close()
