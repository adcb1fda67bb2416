"""Git smart HTTP: clone, fetch and push through `git http-backend` (git's own server side, run as CGI).

URLs (with or without ``.git``): ``/{ns}/{name}``, ``/datasets/{ns}/{name}``, ``/spaces/{ns}/{name}``, each
with ``/info/refs?service=git-upload-pack|git-receive-pack``, ``/git-upload-pack`` and ``/git-receive-pack``.
Cove decides who may read or write before git starts; git speaks the wire protocol. Request and response
bodies stream through pipes, so a pack is never held in memory. Pushes are checked by a pre-receive hook
and indexed when they land (`cove.services.git_push`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from cove.backends import Backends
from cove.deps import Bk, client_host, resolve_actor
from cove.errors import HubError, TooManyRequests, Unauthorized
from cove.services import access, git_push, mirror
from cove.services.accounts import Actor

log = logging.getLogger("cove.git")
router = APIRouter()
SERVICES = ("git-upload-pack", "git-receive-pack")
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="Cove", charset="UTF-8"'}
_CHUNK = 1 << 16
_STDERR_KEEP = 1 << 16


@dataclass
class GitTarget:
    """A repo the caller may use for the requested service."""

    repo_pk: int
    repo_id: str
    storage_key: str
    actor: Actor
    refs_before: dict[str, str] = field(default_factory=dict)
    writer: bool = True  # unset: a reader's push, confined to the pull requests they opened (the hook checks)


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    # git prints a text/plain error body as "remote: ..." lines before its own error.
    return PlainTextResponse(message.rstrip("\n") + "\n", status_code=status, headers=headers)


def authorize(
    bk: Backends, repo_type: str, ns: str, name: str, authorization: str | None, *, write: bool,
    client: str | None = None,
) -> GitTarget | Response:
    """The repo, or the answer git should get: 401 with a Basic challenge (git then asks for credentials),
    404 for a repo the caller cannot see (private == missing), 403 for a caller who may not push. A reader with
    a write token may push, to the `refs/pr/N` they opened only (`git_push.ref_errors`), as on the Hub."""
    name = name.removesuffix(".git")
    try:
        actor = resolve_actor(bk, authorization, client)
    except Unauthorized as exc:
        return _text(401, exc.message, _CHALLENGE)
    except TooManyRequests as exc:
        return _text(429, exc.message, exc.headers)
    if actor.anonymous and (write or not bk.settings.anonymous_read):
        return _text(401, "Authentication required: use your user name and an access token as the password", _CHALLENGE)
    with bk.db.session() as db:
        repo = access.find_repo(db, repo_type, f"{ns}/{name}")
        if repo is None:
            access.raise_if_moved(db, actor, repo_type, f"{ns}/{name}")  # the app answers 307 to the new URL
            try:
                repo = None if write else mirror.pull_through(db, repo_type, f"{ns}/{name}")  # the upstream's
            except HubError as exc:
                return _text(exc.status, exc.message)
        elif not write:
            mirror.refresh(bk, repo, "main")  # a clone of a mirror sees the upstream's branches past the TTL
        if repo is None or not access.can_read(db, actor, repo):
            if actor.anonymous:
                return _text(401, access._not_found_message(actor), _CHALLENGE)
            return _text(404, "Repository not found")
        writer = True
        try:
            if write and not access.can_write(db, actor, repo):
                access.require_contribute(db, actor, repo)
                writer = False
            elif not write and repo.gated:  # a clone holds every file: gated repos need granted access
                from cove.services import gating

                gating.require_file_access(db, actor, repo, "", bk.settings.public_endpoint)
        except HubError as exc:
            return _text(exc.status, exc.message, _CHALLENGE if exc.status == 401 else None)
        return GitTarget(repo.id, repo.repo_id, repo.storage_key, actor, writer=writer)


def cgi_env(bk: Backends, target: GitTarget, request: Request, path_info: str, *, write: bool) -> dict[str, str]:
    key = target.storage_key
    rel = bk.repos.path(key).relative_to(bk.repos.root)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(bk.settings.data.resolve())),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_PROJECT_ROOT": str(bk.repos.root.resolve()),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": f"/{rel.as_posix()}{path_info}",
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.url.query,
        "CONTENT_TYPE": request.headers.get("content-type", ""),
        "REMOTE_USER": target.actor.name or "",
        "REMOTE_ADDR": request.client.host if request.client else "",
    }
    for var in ("PYTHONPATH", "LANG", "LC_ALL", "TMPDIR"):
        if var in os.environ:
            env[var] = os.environ[var]
    # No CONTENT_LENGTH: git reads the body until we close its stdin (the server already enforces the
    # length). With CONTENT_LENGTH, http-backend 2.39 spins forever on a body cut short by the client.
    if "content-encoding" in request.headers:
        env["HTTP_CONTENT_ENCODING"] = request.headers["content-encoding"]
    if "git-protocol" in request.headers:
        env["GIT_PROTOCOL"] = env["HTTP_GIT_PROTOCOL"] = request.headers["git-protocol"]
    if write:
        env.update(
            git_push.receive_env(
                data=bk.settings.data,
                db_url=bk.settings.db_url,
                repo_pk=target.repo_pk,
                repo_id=target.repo_id,
                max_file=bk.settings.max_inline_file,
                user=target.actor.name or "",
                writer=target.writer,
            )
        )
    else:
        env.update(
            git_push.git_config_env(
                {"http.receivepack": "false", "uploadpack.allowFilter": "true", "uploadpack.allowAnySHA1InWant": "true"}
            )
        )
    return env


class GitCGIResponse(Response):
    """Runs `git http-backend` and streams both ways: the request body into its stdin as it arrives,
    its stdout back as the response. ``after`` (blocking) runs once git has exited, before the response
    ends — so when `git push` returns, the index already shows the push."""

    def __init__(self, env: dict[str, str], *, after=None, finish_on_disconnect: bool = False,  # noqa: ANN001
                 hold=None) -> None:  # noqa: ANN001
        super().__init__()
        self.env = env
        self.after = after
        self.finish_on_disconnect = finish_on_disconnect
        self.hold = hold  # a context manager held (entered off the event loop) while git runs

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if self.hold is None:
            await self._run(scope, receive, send)
            return
        await run_in_threadpool(self.hold.__enter__)
        try:
            await self._run(scope, receive, send)
        finally:
            self.hold.__exit__(None, None, None)

    async def _run(self, scope, receive, send) -> None:  # noqa: ANN001
        proc = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        gone = asyncio.Event()

        def client_gone() -> None:
            gone.set()
            if not self.finish_on_disconnect and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()  # nobody will read the pack: stop making it

        feeder = asyncio.create_task(_feed(proc, receive, client_gone))
        errors = asyncio.create_task(_tail(proc.stderr))  # type: ignore[arg-type]
        try:
            status, headers, rest = await _read_headers(proc.stdout)  # type: ignore[arg-type]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            chunk = rest
            while True:
                if chunk and not gone.is_set():
                    try:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    except OSError:
                        client_gone()
                chunk = await proc.stdout.read(_CHUNK)  # type: ignore[union-attr]
                if not chunk:
                    break
            rc = await proc.wait()
            if rc != 0 and not gone.is_set():
                log.warning("git http-backend exited with %s: %s", rc, (await errors).decode(errors="replace"))
            if self.after is not None:
                await run_in_threadpool(self.after)
            if not gone.is_set():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            feeder.cancel()
            errors.cancel()


async def _feed(proc: asyncio.subprocess.Process, receive, client_gone) -> None:  # noqa: ANN001
    """Pipe the request body into git; then keep listening, to learn when the client goes away."""
    stdin = proc.stdin
    assert stdin is not None
    try:
        while True:
            message = await receive()
            if message["type"] != "http.request":
                client_gone()  # cut off mid-body: git sees a truncated request and moves nothing
                return
            body = message.get("body", b"")
            if body:
                stdin.write(body)
                await stdin.drain()
            if not message.get("more_body", False):
                break
    except (BrokenPipeError, ConnectionResetError):
        pass  # git stopped reading (it answered with an error)
    finally:
        stdin.close()
    # The ASGI server answers this once the client disconnects (or the response is complete).
    if (await receive())["type"] == "http.disconnect":
        client_gone()


async def _tail(stream: asyncio.StreamReader) -> bytes:
    kept = b""
    while block := await stream.read(_CHUNK):
        kept = (kept + block)[-_STDERR_KEEP:]
    return kept


async def _read_headers(stdout: asyncio.StreamReader) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Parse the CGI header block (``Status:`` and the rest) off git's stdout."""
    buf = b""
    while True:
        for sep in (b"\r\n\r\n", b"\n\n"):
            idx = buf.find(sep)
            if idx >= 0:
                head, rest = buf[:idx], buf[idx + len(sep) :]
                break
        else:
            block = await stdout.read(_CHUNK)
            if not block:
                return 500, [(b"content-type", b"text/plain")], b"git http-backend failed\n"
            buf += block
            continue
        break
    status, headers = 200, []
    for line in head.splitlines():
        k, _, v = line.decode("latin-1").partition(":")
        if k.strip().lower() == "status":
            status = int(v.split()[0])
        elif k.strip():
            headers.append((k.strip().lower().encode(), v.strip().encode("latin-1")))
    return status, headers, rest


def _add_routes(prefix: str, repo_type: str) -> None:
    async def info_refs(ns: str, name: str, request: Request, bk: Bk) -> Response:
        service = request.query_params.get("service")
        if service not in SERVICES:
            return _text(403, "Only git's smart HTTP protocol is supported: please upgrade git")
        write = service == "git-receive-pack"
        target = await run_in_threadpool(
            authorize, bk, repo_type, ns, name, request.headers.get("authorization"), write=write,
            client=client_host(request),
        )
        if isinstance(target, Response):
            return target
        return GitCGIResponse(cgi_env(bk, target, request, "/info/refs", write=write))

    async def upload_pack(ns: str, name: str, request: Request, bk: Bk) -> Response:
        target = await run_in_threadpool(
            authorize, bk, repo_type, ns, name, request.headers.get("authorization"), write=False,
            client=client_host(request),
        )
        if isinstance(target, Response):
            return target
        return GitCGIResponse(cgi_env(bk, target, request, "/git-upload-pack", write=False))

    async def receive_pack(ns: str, name: str, request: Request, bk: Bk) -> Response:
        target = await run_in_threadpool(
            authorize, bk, repo_type, ns, name, request.headers.get("authorization"), write=True,
            client=client_host(request),
        )
        if isinstance(target, Response):
            return target
        target.refs_before = await run_in_threadpool(bk.repos.refs, target.storage_key)

        def after() -> None:
            git_push.after_push(bk, target.repo_pk, target.refs_before)

        return GitCGIResponse(  # git maintenance of this repo waits for the push (`GitRepoStore.writing`)
            cgi_env(bk, target, request, "/git-receive-pack", write=True), after=after, finish_on_disconnect=True,
            hold=bk.repos.writing(target.storage_key),
        )

    async def locks_verify(ns: str, name: str) -> Response:
        # Cove has no file locking. git-lfs asks before every push; 501 makes it turn lock
        # verification off for this remote quietly (a 200 or a 404 would print advice on each push).
        return JSONResponse(
            {"message": "File locking is not supported by Cove"},
            status_code=501,
            media_type="application/vnd.git-lfs+json",
        )

    base = f"{prefix}/{{ns}}/{{name}}"
    tag = repo_type
    router.add_api_route(
        f"{base}/info/refs", info_refs, methods=["GET"], name=f"git_info_refs_{tag}", include_in_schema=False
    )
    router.add_api_route(
        f"{base}/git-upload-pack", upload_pack, methods=["POST"], name=f"git_upload_{tag}", include_in_schema=False
    )
    router.add_api_route(
        f"{base}/git-receive-pack", receive_pack, methods=["POST"], name=f"git_receive_{tag}", include_in_schema=False
    )
    router.add_api_route(
        f"{base}/info/lfs/locks/verify",
        locks_verify,
        methods=["POST"],
        name=f"lfs_locks_verify_{tag}",
        include_in_schema=False,
    )


for _p, _t in (("/datasets", "dataset"), ("/spaces", "space"), ("", "model")):
    _add_routes(_p, _t)
