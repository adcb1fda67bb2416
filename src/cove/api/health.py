"""Operations endpoints: `/healthz` (alive), `/readyz` (database, blob store, repo storage), `/metrics`."""

from __future__ import annotations

import asyncio
import os
import tempfile

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

router = APIRouter(include_in_schema=False)

#: Seconds one readiness check may take before it counts as failed.
CHECK_TIMEOUT = 5.0


@router.get("/healthz")
async def healthz() -> JSONResponse:
    """The process answers: no I/O."""
    return JSONResponse({"status": "ok"})


def _database(bk) -> None:  # noqa: ANN001
    with bk.db.session() as db:
        db.execute(text("SELECT 1")).scalar_one()


def _blobs(bk) -> None:  # noqa: ANN001
    root = getattr(bk.blobs, "root", None)
    if root is not None and not os.path.isdir(root):
        raise OSError("the blob folder is missing")
    bk.blobs.stat("readyz/probe")  # S3: a HEAD on the bucket (missing is fine, unreachable raises)


def _repos(bk) -> None:  # noqa: ANN001
    root = bk.repos.root
    if not os.path.isdir(root) or not os.access(root, os.R_OK | os.X_OK):
        raise OSError("the repo folder is missing or unreadable")
    os.listdir(root)
    with tempfile.TemporaryFile(dir=root, prefix=".readyz-"):
        pass


_CHECKS = {"database": _database, "blobs": _blobs, "repos": _repos}


async def _run(check, bk) -> str | None:  # noqa: ANN001
    try:
        await asyncio.wait_for(run_in_threadpool(check, bk), CHECK_TIMEOUT)
    except TimeoutError:
        return f"no answer in {CHECK_TIMEOUT:g} s"
    except OSError as exc:  # no paths or URLs in the answer: anyone may ask
        return f"{type(exc).__name__}: {exc.strerror or (exc.args[0] if exc.args else '')}"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return type(exc).__name__
    return None


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """200 when the database answers, the blob store is reachable and the repo folder is writable; else 503
    naming each failed check."""
    bk = request.app.state.backends
    results = await asyncio.gather(*(_run(check, bk) for check in _CHECKS.values()))
    checks = {name: ("ok" if err is None else err) for name, err in zip(_CHECKS, results, strict=True)}
    ok = all(err is None for err in results)
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text format (see `cove.observability`)."""
    from cove.observability import exposition

    body, content_type = exposition()
    return Response(body, media_type=content_type)
