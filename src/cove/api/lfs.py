"""Git LFS: the batch API (upload and download), signed object transfer URLs, verify, multipart."""

from __future__ import annotations

import re
from collections import deque
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from cove.api.ranges import BlobFileResponse, SpanStreamingResponse, parse_range
from cove.deps import Bk, client_host, resolve_actor
from cove.errors import BadRequest, HubError, RepoNotFound, TooManyRequests, Unauthorized
from cove.services import access, mirror, mirror_lfs, uploads
from cove.services.files import BlobLocation, lfs_location
from cove.services.signing import Signer

router = APIRouter()
LFS_JSON = "application/vnd.git-lfs+json"
_OID_RE = re.compile(r"^[0-9a-f]{64}$")


def _signer(bk) -> Signer:  # noqa: ANN001
    return Signer(bk.settings.signing_secret)


def _lfs_error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status, media_type=LFS_JSON, headers=headers or {})


def _batch(repo_type: str, ns: str, name: str, body: dict, bk, authorization: str | None,  # noqa: ANN001
           client: str | None = None, session: Any = None) -> JSONResponse:
    try:
        actor = session or resolve_actor(bk, authorization, client)
    except Unauthorized as exc:
        return _lfs_error(401, exc.message, {"LFS-Authenticate": 'Basic realm="Cove"'})
    except TooManyRequests as exc:
        return _lfs_error(429, exc.message, exc.headers)
    operation = body.get("operation")
    objects = body.get("objects")
    if operation not in ("upload", "download") or not isinstance(objects, list):
        raise BadRequest("Batch request needs 'operation' (upload|download) and 'objects'")
    if not all(isinstance(obj, dict) for obj in objects):
        raise BadRequest("Each of 'objects' must be an object with 'oid' and 'size'")
    transfers = body.get("transfers") or ["basic"]
    e = bk.settings.public_endpoint
    sign = _signer(bk)
    out = []
    with bk.db.session() as db:
        try:
            repo = access.readable_repo(db, actor, repo_type, f"{ns}/{name}")
            if operation == "upload":  # bytes land nowhere until a commit: a pull request's uploads too
                access.require_contribute(db, actor, repo)
            elif repo.gated:  # LFS downloads are file contents: a gated repo needs granted access
                from cove.services import gating

                gating.require_file_access(db, actor, repo, "", bk.settings.public_endpoint)
        except (RepoNotFound, Unauthorized) as exc:
            if actor.anonymous:
                return _lfs_error(401, "Authentication required", {"LFS-Authenticate": 'Basic realm="Cove"'})
            return _lfs_error(404 if isinstance(exc, RepoNotFound) else 401, exc.message)
        except HubError as exc:
            auth = {"LFS-Authenticate": 'Basic realm="Cove"'} if exc.status == 401 else None
            return _lfs_error(exc.status, exc.message, auth)
        prefix = {"model": "", "dataset": "datasets/", "space": "spaces/"}[repo_type]
        for obj in objects:
            oid, size = str(obj.get("oid", "")), obj.get("size")
            if not _OID_RE.match(oid) or not isinstance(size, int) or size < 0:
                out.append({"oid": oid, "size": size if isinstance(size, int) else 0,
                            "error": {"code": 422, "message": "Invalid oid or size"}})
                continue
            if operation == "upload":
                if size > bk.settings.max_lfs_file_size:
                    out.append({"oid": oid, "size": size, "error": {"code": 422, "message": (
                        f"Object is {size} bytes: files are limited to {bk.settings.max_lfs_file_size} bytes")}})
                    continue
                if uploads.already_stored(db, bk, actor, repo, oid, size):
                    out.append({"oid": oid, "size": size})
                    continue
                multipart = size > uploads.MULTIPART_THRESHOLD and "multipart" in transfers
                # On an object store, parts go straight to it: its own presigned UploadPart URLs.
                native = uploads.start_native(bk, oid, size) if multipart else None
                extra = {"k": native.staging, "u": native.upload_id} if native else {}
                token = sign.sign("lfs-up", {"r": repo.id, "o": oid, "s": size, **extra})
                href = f"{e}/lfs/objects/{token}"
                actions: dict[str, Any] = {
                    "upload": {"href": href, "expires_in": uploads.URL_TTL},
                    "verify": {"href": f"{e}/{prefix}{ns}/{name}.git/info/lfs/objects/verify",
                               "expires_in": uploads.URL_TTL,
                               # git-lfs sends no credentials of its own with an action of an
                               # "authenticated" object: the verify call carries the batch caller's.
                               **({"header": {"Authorization": authorization}} if authorization else {})},
                }
                if multipart:
                    header = {"chunk_size": str(uploads.part_size(size))}
                    for i in range(1, uploads.part_count(size) + 1):
                        header[f"{i:05d}"] = native.part_urls[i - 1] if native else f"{href}/parts/{i}"
                    actions["upload"] = {"href": f"{href}/complete", "header": header,
                                         "expires_in": uploads.URL_TTL}
                out.append({"oid": oid, "size": size, "authenticated": True, "actions": actions})
            else:
                known = uploads.held(db, repo, oid)
                # A mirror's object not fetched yet: the URL carries the size, checked with the hash on arrival.
                lazy = {"s": size} if known is None and mirror.lfs_source(bk, repo.storage_key) is not None else {}
                if not lazy and (known is None or known.size != size):
                    out.append({"oid": oid, "size": size, "error": {"code": 404, "message": "Object does not exist"}})
                    continue
                # The URL names whom it was issued to: every request re-checks that they may still read.
                token = sign.sign("lfs-down", {"r": repo.id, "o": oid, "u": actor.user_id, **lazy})
                out.append({"oid": oid, "size": size, "authenticated": True, "actions": {
                    "download": {"href": f"{e}/lfs/objects/{token}",
                                 "expires_in": bk.settings.lfs_download_ttl}}})
    transfer = "multipart" if any("header" in o.get("actions", {}).get("upload", {}) for o in out) else "basic"
    return JSONResponse({"transfer": transfer, "objects": out, "hash_algo": "sha256"}, media_type=LFS_JSON)


def _add_routes(prefix: str, repo_type: str) -> None:
    async def batch(ns: str, name: str, request: Request, bk: Bk) -> Response:
        try:
            body = await request.json()
        except ValueError as exc:
            raise BadRequest("Batch body must be JSON") from exc
        if not isinstance(body, dict):
            raise BadRequest("Batch body must be an object")
        def run() -> Response:
            # A signed-in browser (the upload page) has no token: its session stands in, only with the
            # session's CSRF token in `X-CSRF-Token` (`app.state.session_actor` checks it).
            session = None
            from_browser = getattr(request.app.state, "session_actor", None)
            if not request.headers.get("authorization") and from_browser is not None:
                session = from_browser(request)
            return _batch(repo_type, ns, name, body, bk, request.headers.get("authorization"),
                          client_host(request), session)

        return await run_in_threadpool(run)

    async def verify(ns: str, name: str, request: Request, bk: Bk) -> Response:
        try:
            body = await request.json()
            oid, size = str(body["oid"]), int(body["size"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BadRequest("Verify body needs 'oid' and 'size'") from exc

        def run() -> Response:
            actor = resolve_actor(bk, request.headers.get("authorization"), client_host(request))
            with bk.db.session() as db:
                repo = access.contributable_repo(db, actor, repo_type, f"{ns}/{name}")
                uploads.verify(db, bk, actor, repo, oid, size)
            return JSONResponse({"message": "ok"}, media_type=LFS_JSON)

        return await run_in_threadpool(run)

    for suffix in (".git", ""):
        router.add_api_route(f"{prefix}/{{ns}}/{{name}}{suffix}/info/lfs/objects/batch", batch, methods=["POST"],
                             name=f"lfs_batch_{repo_type}{suffix}")
        router.add_api_route(f"{prefix}/{{ns}}/{{name}}{suffix}/info/lfs/objects/verify", verify, methods=["POST"],
                             name=f"lfs_verify_{repo_type}{suffix}")


for _p, _t in (("/datasets", "dataset"), ("/spaces", "space"), ("", "model")):
    _add_routes(_p, _t)


class _Body:
    """Synchronous file-like view of the request body, for streaming into the blob store from a worker thread.

    A hop to the event loop gathers the body's chunks (uvicorn hands ~64 KiB at a time) up to 4 MiB ahead:
    ~256 hops per GiB whatever the reader's block size (each hop is a loop wake-up and a thread wake-up).
    ``readinto`` copies the gathered chunks straight into the caller's buffer (the blob file's aligned
    buffer: each received byte is copied once in Python); ``read`` cuts from them (a consumed prefix of the
    first chunk is skipped by an offset, not sliced off)."""

    _AHEAD = 4 << 20

    def __init__(self, request: Request, loop) -> None:  # noqa: ANN001
        self._it = request.stream().__aiter__()
        self._loop = loop
        self._chunks: deque[bytes] = deque()
        self._skip = 0  # bytes of the first chunk already consumed
        self._have = 0  # bytes gathered, not yet consumed
        self._done = False

    async def _gather(self, want: int) -> list[bytes]:
        chunks, have = [], 0
        while have < want:
            try:
                chunk = await self._it.__anext__()
            except StopAsyncIteration:
                self._done = True
                break
            if chunk:
                chunks.append(chunk)
                have += len(chunk)
        return chunks

    def _fill(self, n: int) -> None:
        import asyncio

        if (n < 0 or self._have < n) and not self._done:
            want = (1 << 62) if n < 0 else max(n, self._AHEAD) - self._have
            for chunk in asyncio.run_coroutine_threadsafe(self._gather(want), self._loop).result():
                self._chunks.append(chunk)
                self._have += len(chunk)

    def readinto(self, buf) -> int:  # noqa: ANN001
        """Fill `buf` (a writable buffer) from the body; 0 at its end."""
        out = memoryview(buf).cast("B")
        self._fill(len(out))
        pos = 0
        while pos < len(out) and self._chunks:
            head = self._chunks[0]
            take = min(len(head) - self._skip, len(out) - pos)
            out[pos:pos + take] = memoryview(head)[self._skip:self._skip + take]
            pos += take
            self._skip += take
            if self._skip == len(head):
                self._chunks.popleft()
                self._skip = 0
        self._have -= pos
        return pos

    def read(self, n: int = -1) -> bytes:
        self._fill(n)
        if n < 0 or n >= self._have:
            n = self._have
        if n == 0:
            return b""
        head = self._chunks[0]
        if self._skip == 0 and len(head) == n:
            self._chunks.popleft()
            self._have -= n
            return head
        if len(head) - self._skip >= n:
            out = head[self._skip:self._skip + n]
            self._skip += n
            if self._skip == len(head):
                self._chunks.popleft()
                self._skip = 0
            self._have -= n
            return out
        buf = bytearray(n)
        self.readinto(buf)
        return bytes(buf)


def _load_upload_data(bk, token: str) -> tuple[Any, dict]:  # noqa: ANN001
    from cove.db.tables import Repo

    data = _signer(bk).load("lfs-up", token, uploads.URL_TTL)
    with bk.db.session() as db:
        repo = db.get(Repo, data["r"])
        if repo is None:
            raise RepoNotFound()
        db.expunge(repo)
    return repo, data


def _load_upload(bk, token: str) -> tuple[Any, str, int]:  # noqa: ANN001
    """An upload whose bytes come through Cove's own routes (not a native one: its parts go to the store)."""
    repo, data = _load_upload_data(bk, token)
    if "u" in data:
        raise BadRequest("This upload's parts go to the object store's part URLs")
    return repo, data["o"], data["s"]


@router.put("/lfs/objects/{token}")
async def put_object(token: str, request: Request, bk: Bk) -> Response:
    import asyncio

    repo, oid, size = _load_upload(bk, token)
    body = _Body(request, asyncio.get_running_loop())

    def run() -> None:
        with bk.db.session() as db:
            uploads.store_object(db, bk, db.merge(repo), oid, size, body)

    await run_in_threadpool(run)
    return Response(status_code=200)


@router.put("/lfs/objects/{token}/parts/{n}")
async def put_part(token: str, n: int, request: Request, bk: Bk) -> Response:
    import asyncio

    repo, oid, size = _load_upload(bk, token)
    n_parts, chunk = uploads.part_count(size), uploads.part_size(size)
    if not 1 <= n <= n_parts:
        raise BadRequest(f"Part number must be between 1 and {n_parts}")
    expected = min(chunk, size - (n - 1) * chunk)
    body = _Body(request, asyncio.get_running_loop())
    etag = await run_in_threadpool(uploads.MultipartUpload(bk, repo.id, oid).put_part, n, body, expected,
                                   (n - 1) * chunk)
    return Response(status_code=200, headers={"ETag": f'"{etag}"'})


@router.post("/lfs/objects/{token}/complete")
async def complete(token: str, request: Request, bk: Bk) -> Response:
    repo, data = _load_upload_data(bk, token)
    oid, size = data["o"], data["s"]
    try:
        body = await request.json()
    except ValueError as exc:
        raise BadRequest("Completion body must be JSON") from exc
    if not isinstance(body, dict) or body.get("oid") != oid:
        raise BadRequest("Completion oid does not match the upload")

    def run() -> None:
        if "u" in data:  # native: the store holds the parts
            with bk.db.session() as db:
                staging = uploads.complete_native(db, bk, db.merge(repo), oid, size, data["k"], data["u"], body)
            if staging:  # only once the repo's record is committed: a retry elsewhere then finds it
                bk.blobs.delete(staging)
            return
        with bk.db.session() as db:
            uploads.MultipartUpload(bk, repo.id, oid).complete(db, bk, db.merge(repo), oid, size,
                                                               uploads.part_count(size))

    await run_in_threadpool(run)
    return JSONResponse({"message": "ok"})


@router.api_route("/lfs/objects/{token}", methods=["GET", "HEAD"])
def get_object(token: str, request: Request, bk: Bk) -> Response:
    from cove.db.tables import LfsObject, Repo

    data = _signer(bk).load("lfs-down", token, bk.settings.lfs_download_ttl)
    oid = data["o"]
    with bk.db.session() as db:
        repo = db.get(Repo, data["r"])
        row = db.get(LfsObject, (data["r"], oid))
        # A URL whose holder has lost access (removed from the org, repo made private or gated) answers
        # exactly as a missing object. URLs from before "u" existed stand for no one: public repos only.
        mirrored = (row is None and repo is not None and "s" in data
                    and mirror.lfs_source(bk, repo.storage_key) is not None)
        if repo is None or (row is None and not mirrored) or not access.may_still_read(
                db, access.holder(db, user_id=data.get("u")), repo):
            raise RepoNotFound()
        lazy = None
        if mirrored:  # fetched from the upstream on this first read (`mirror_lfs`), or stored since
            size = int(data["s"])
            loc = BlobLocation("lfs", f"lfs/{oid}")
            lazy = mirror_lfs.pending(db, bk, repo, loc, size)
        else:
            loc = lfs_location(db, bk, repo, oid)  # a row resting on a Xet claim is read from its own Xet file
            size = row.size
    key = loc.key
    headers = {"ETag": f'"{oid}"', "Accept-Ranges": "bytes"}
    if loc.kind == "lfs" and bk.blobs.exists(key):
        local = bk.blobs.local_path(key)
        if local:
            return BlobFileResponse(local, headers=headers, media_type="application/octet-stream")
    if request.method == "HEAD":
        return Response(headers={**headers, "Content-Length": str(size)})
    rng = parse_range(request.headers.get("range"), size)
    start, end = rng or (0, size)
    if lazy is not None:
        body = mirror_lfs.read(bk, lazy, None, None, start, end)
    elif loc.kind == "lfs" and bk.blobs.exists(key):
        body = bk.blobs.iter_range(key, start, end)
    elif loc.kind == "xet":
        from cove.services import xet as xet_service

        body = xet_service.stream_file(bk, key, start, end)
    else:
        raise RepoNotFound("Object not found")
    headers["Content-Length"] = str(end - start)
    if rng:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return SpanStreamingResponse(body, status_code=206 if rng else 200, headers=headers,
                                 media_type="application/octet-stream")
