"""Xet CAS routes (under ``/cas``): xorbs, shards, global dedup, reconstructions, capability fetches.

Bodies are read here (streamed into a spooled temp file, size-capped); everything else is in
``cove.services.xet``. Clients retry 5xx for minutes, so bad content is always a 4xx.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse

from cove.api.ranges import BlobFileResponse
from cove.deps import Bk, CurrentActor
from cove.errors import BadRequest, HubError, NotFound, PayloadTooLarge
from cove.services import access, scans, xet, xet_grants, xet_shards
from cove.xet import tokens  # the shard and xorb formats (numpy) are imported where used: off start-up

router = APIRouter()
P = xet.CAS_PREFIX
Authorization = Annotated[str | None, Header()]
# Request bodies beyond this go to a temporary file. Per request, not per file, but hf_xet runs several xorb
# uploads at once (more as a long transfer goes on): 8 MiB each put ~+33 MiB on the server's peak while a
# 1 GiB file came in, 1 MiB ~+20 MiB; xorbs are 64 MiB, so they always end up on disk anyway.
_SPOOL_MEMORY = 256 << 10


def _claims(bk, authorization: str | None, *, write: bool):  # noqa: ANN001, ANN202
    with bk.db.session() as db:
        return xet.authenticate(db, bk, authorization, write=write)


def _blob_tmp(bk) -> str | None:  # noqa: ANN001
    """The local blob store's temp folder: a body spooled there becomes its blob by a rename, not a copy."""
    return str(bk.blobs.tmp) if hasattr(bk.blobs, "publish_file") and hasattr(bk.blobs, "tmp") else None


def _discard(spool) -> None:  # noqa: ANN001
    spool.close()
    if isinstance(getattr(spool, "name", None), str):  # a named spool file left unpublished
        Path(spool.name).unlink(missing_ok=True)


async def _spool_body(request: Request, limit: int, counter: str, repo: str,
                      folder: str | None = None) -> tempfile.SpooledTemporaryFile:
    """The body in a temp file: in `folder` (a named file, for `publish_file`) or spooled (memory, then disk)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"Body larger than {limit} bytes")
    if folder:
        spool = tempfile.NamedTemporaryFile(dir=folder, delete=False)  # noqa: SIM115 - returned open
    else:
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)  # noqa: SIM115 - returned open
    total = 0
    try:
        async for block in request.stream():
            total += len(block)
            xet.count(counter, len(block), repo=repo)
            if total > limit:
                raise PayloadTooLarge(f"Body larger than {limit} bytes")
            spool.write(block)
        spool.flush()
    except BaseException:
        _discard(spool)
        raise
    spool.seek(0)
    return spool


async def _drain(request: Request, limit: int, counter: str, repo: str) -> None:
    total = 0
    async for block in request.stream():
        total += len(block)
        xet.count(counter, len(block), repo=repo)
        if total > limit:
            raise PayloadTooLarge(f"Body larger than {limit} bytes")


def _streams_to_store(bk) -> bool:  # noqa: ANN001
    """Whether xorb bodies go straight to the object store, verified on the way (no temp file, no staging)."""
    return hasattr(bk.blobs, "writer")


class _CountedBody:
    """The request body as a synchronous reader for a worker thread (`cove.api.lfs._Body`), counted into
    `counter` and cut off past `limit` bytes."""

    def __init__(self, request: Request, limit: int, counter: str, repo: str) -> None:
        import asyncio

        from cove.api.lfs import _Body

        self._body = _Body(request, asyncio.get_running_loop())
        self._limit, self._counter, self._repo, self.total = limit, counter, repo, 0

    def read(self, n: int = -1) -> bytes:
        data = self._body.read(n)
        self._add(len(data))
        return data

    def readinto(self, buf) -> int:  # noqa: ANN001
        n = self._body.readinto(buf)
        self._add(n)
        return n

    def _add(self, n: int) -> None:
        self.total += n
        xet.count(self._counter, n, repo=self._repo)
        if self.total > self._limit:
            raise PayloadTooLarge(f"Body larger than {self._limit} bytes")


@router.post(P + "/v1/xorbs/{prefix}/{xorb_hash}")
async def upload_xorb(prefix: str, xorb_hash: str, request: Request, bk: Bk, authorization: Authorization = None):
    from cove.xet import xorb as xorb_format
    claims = await run_in_threadpool(_claims, bk, authorization, write=True)
    length = request.headers.get("content-length", "")
    h = xet.check_xorb_upload(bk, prefix=prefix, xorb_hex=xorb_hash, length=int(length) if length.isdigit() else None)
    if await run_in_threadpool(xet.xorb_known_to, bk, claims, h):
        # Drain the body: answering before the client has sent it would look like a reset to it.
        await _drain(request, xorb_format.MAX_XORB_SERIALIZED, "xorb_bytes_received", xet.repo_key(claims))
        xet.count("xorbs_existing", repo=xet.repo_key(claims))
        return {"was_inserted": False}
    if _streams_to_store(bk):
        body = _CountedBody(request, xorb_format.MAX_XORB_SERIALIZED, "xorb_bytes_received", xet.repo_key(claims))
        inserted = await run_in_threadpool(xet.store_xorb_streaming, bk, claims, xorb_hex=h, body=body)
        return {"was_inserted": inserted}
    folder = _blob_tmp(bk)
    spool = await _spool_body(request, xorb_format.MAX_XORB_SERIALIZED, "xorb_bytes_received", xet.repo_key(claims),
                              folder)
    try:
        inserted = await run_in_threadpool(xet.store_xorb, bk, claims, xorb_hex=h, body=spool,
                                           path=spool.name if folder else None)
    finally:
        _discard(spool)
    return {"was_inserted": inserted}


@router.head(P + "/v1/xorbs/{prefix}/{xorb_hash}")
def head_xorb(prefix: str, xorb_hash: str, bk: Bk, authorization: Authorization = None) -> Response:
    claims = _claims(bk, authorization, write=True)  # like dedup answers: no namespace oracle for read tokens
    h = xet.check_xorb_upload(bk, prefix=prefix, xorb_hex=xorb_hash, length=None)
    info = bk.blobs.stat(f"xorbs/{h}") if xet.xorb_known_to(bk, claims, h) else None
    if info is None:
        return Response(status_code=404)
    return Response(status_code=200, headers={"Content-Length": str(info.size)})


@router.post(P + "/v1/xorb-grants/{prefix}/{xorb_hash}")
async def xorb_grant(prefix: str, xorb_hash: str, request: Request, bk: Bk, authorization: Authorization = None):
    claims = await run_in_threadpool(_claims, bk, authorization, write=True)
    try:
        wanted = json.loads(await request.body() or b"null")
    except ValueError:
        raise BadRequest("Grant requests are JSON") from None
    grant = await run_in_threadpool(
        xet_grants.create_grant, bk, claims, prefix=prefix, xorb_hex=xorb_hash, request=wanted
    )
    if grant is None:
        return JSONResponse({}, status_code=200)  # already stored: nothing to upload
    return JSONResponse(grant, status_code=201)


@router.put(P + "/xorb-uploads/{xorb_hash}/{grant_id}")
async def grant_upload(
    xorb_hash: str, grant_id: str, request: Request, bk: Bk, n: str = "", repo: str = "", exp: str = "", sig: str = ""
) -> Response:
    length = await run_in_threadpool(
        xet_grants.check_upload, bk, xorb_hex=xorb_hash, grant_id=grant_id, n=n, repo=repo, exp=exp, sig=sig
    )
    if _streams_to_store(bk):
        await run_in_threadpool(xet_grants.store_direct, bk, xorb_hex=xorb_hash, grant_id=grant_id, length=length,
                                body=_CountedBody(request, length, "xorb_bytes_received", repo), repo=repo)
        return Response(status_code=200)
    folder = _blob_tmp(bk)
    spool = await _spool_body(request, length, "xorb_bytes_received", repo, folder)
    try:
        await run_in_threadpool(
            xet_grants.stage_upload, bk, xorb_hex=xorb_hash, grant_id=grant_id, length=length, body=spool,
            path=spool.name if folder else None,
        )
    finally:
        _discard(spool)
    return Response(status_code=200)


@router.post(P + "/v1/xorb-commits/{prefix}/{xorb_hash}/grant/{grant_id}")
def commit_grant(prefix: str, xorb_hash: str, grant_id: str, bk: Bk, authorization: Authorization = None) -> dict:
    claims = _claims(bk, authorization, write=True)
    inserted = xet_grants.commit_grant(bk, claims, prefix=prefix, xorb_hex=xorb_hash, grant_id=grant_id)
    return {"was_inserted": inserted}


@router.post(P + "/v1/shards")
async def upload_shard_v1(request: Request, bk: Bk, authorization: Authorization = None) -> dict:
    claims = await run_in_threadpool(_claims, bk, authorization, write=True)
    with await _read_shard(request, claims) as body:
        result = await run_in_threadpool(xet_shards.register_shard, bk, claims, body)
    return {"result": result}


@router.post(P + "/v2/shards")
async def upload_shard_v2(request: Request, bk: Bk, authorization: Authorization = None) -> Response:
    claims = await run_in_threadpool(_claims, bk, authorization, write=True)
    events = [{"type": "validating", "verified": 0, "total": 1}]
    with await _read_shard(request, claims) as body:
        try:
            result = await run_in_threadpool(xet_shards.register_shard, bk, claims, body)
            events.append({"type": "result", "result": result})
        except HubError as exc:
            if exc.status >= 500:
                raise
            events.append({"type": "error", "message": exc.message, "retryable": False})
    payload = "".join(json.dumps(e) + "\n" for e in events)
    return Response(payload, media_type="application/x-ndjson", headers={"Cache-Control": "no-cache"})


async def _read_shard(request: Request, claims: tokens.XetClaims) -> tempfile.SpooledTemporaryFile:
    """The shard body, spooled (to disk past 256 KiB): validation reads it one section at a time."""
    from cove.xet import shard as shard_format
    return await _spool_body(request, shard_format.MAX_SHARD_LEN, "shard_bytes_received", xet.repo_key(claims))


@router.get(P + "/v1/chunks/{prefix}/{chunk_hash}")
def dedup_query(prefix: str, chunk_hash: str, bk: Bk, authorization: Authorization = None) -> Response:
    claims = _claims(bk, authorization, write=True)  # uploads ask it; a read token may come from an outsider
    pieces = xet.dedup_shard(bk, claims, prefix=prefix, chunk_hex=chunk_hash)  # 404 decided here
    return StreamingResponse(pieces, media_type="application/octet-stream")


@router.get(P + "/v1/reconstructions")
def batch_reconstruction(
    bk: Bk, authorization: Authorization = None, file_id: Annotated[list[str] | None, Query()] = None
) -> dict:
    claims = _claims(bk, authorization, write=False)
    out = xet.batch_reconstruction(bk, claims, file_id or [])
    for f in out["files"]:  # only the files the caller may read (the others are left out, as missing)
        scans.check_xet_download(bk, f)
    return out


@router.get(P + "/v1/reconstructions/{file_hash}")
def reconstruction_v1(
    file_hash: str, bk: Bk, authorization: Authorization = None, range: Annotated[str | None, Header()] = None
) -> dict:
    claims = _claims(bk, authorization, write=False)
    out = xet.reconstruction(bk, claims, file_hex=file_hash, range_header=range, version=1)
    scans.check_xet_download(bk, file_hash)  # after the scope checks (404 for what the caller may not read)
    return out


@router.get(P + "/v2/reconstructions/{file_hash}")
def reconstruction_v2(
    file_hash: str, bk: Bk, authorization: Authorization = None, range: Annotated[str | None, Header()] = None
) -> dict:
    claims = _claims(bk, authorization, write=False)
    out = xet.reconstruction(bk, claims, file_hex=file_hash, range_header=range, version=2)
    scans.check_xet_download(bk, file_hash)  # after the scope checks (404 for what the caller may not read)
    return out


@router.head(P + "/v1/files/{file_hash}")
def head_file(file_hash: str, bk: Bk, authorization: Authorization = None) -> Response:
    claims = _claims(bk, authorization, write=False)
    record = xet.readable_file(bk, claims, file_hash)
    return Response(status_code=200, headers={"Content-Length": str(record.size)})


class _XorbFileResponse(BlobFileResponse):
    """A single range goes by sendfile where the server offers it (`cove.zerocopy`). Otherwise 256 KiB reads,
    not 64 KiB: each read is a hop to the thread pool (1 GiB Xet download on 2 cores: server CPU 1.1 -> 0.45 s,
    530 -> 700 MB/s). Not 1 MiB as ``BlobFileResponse``: hf_xet keeps many fetches in flight, one buffer each
    (1 MiB: 940 MB/s but +30 MiB of server peak)."""

    chunk_size = 256 * 1024


@router.get(P + "/fetch/{xorb_hash}")
def fetch(
    xorb_hash: str,
    bk: Bk,
    r: str = "",
    exp: str = "",
    sig: str = "",
    range: Annotated[str | None, Header()] = None,
) -> Response:
    target = xet.fetch_target(bk, xorb_hex=xorb_hash, window=r, exp=exp, sig=sig)
    ranges = xet.parse_fetch_ranges(range, target)
    headers = {"Cache-Control": "private, max-age=3600"}
    # Bytes this process sends for Xet downloads (what presigned store URLs take off the API tier).
    xet.count("fetch_bytes_sent", sum(b + 1 - a for a, b in ranges))
    if range and target.local_path:
        # Starlette serves single and multipart ranges with sendfile-friendly file reads.
        return _XorbFileResponse(target.local_path, media_type="application/octet-stream", headers=headers)
    if len(ranges) != 1:
        raise BadRequest("Multi-range fetches need a local blob store")
    start, end = ranges[0]

    def body() -> Iterator[bytes]:
        yield from bk.blobs.iter_range(target.key, start, end + 1)

    headers["Content-Length"] = str(end + 1 - start)
    if range:
        headers["Content-Range"] = f"bytes {start}-{end}/{target.size}"
    return StreamingResponse(
        body(), status_code=206 if range else 200, media_type="application/octet-stream", headers=headers
    )


@router.get(P + "/_stats")
def cas_stats(bk: Bk, actor: CurrentActor, repo: str | None = None) -> dict:
    """Transfer counters of this process: whole server, or one readable repo given as ``type/ns/name``."""
    if repo is not None:
        repo_type, _, repo_id = repo.partition("/")
        with bk.db.session() as db:
            access.readable_repo(db, actor, repo_type, repo_id)
    return xet.stats(repo)


@router.post("/v1/telemetry")
@router.post(P + "/v1/telemetry")
def telemetry() -> Response:
    return Response(status_code=204)


@router.get(P + "/v2/file-chunk-hashes/{file_hash}")
def file_chunk_hashes(file_hash: str) -> Response:
    # Partial-rewrite uploads (hf-mount) ask for this; huggingface_hub and hf_xet's upload path do not, and a
    # 404 is the answer they fall back on. Not built until a client that uses it can be tested against.
    raise NotFound("Not supported")
