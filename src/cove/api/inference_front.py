"""`POST /models/{ns}/{name}[/pipeline/{task}]` answered again without the framework or the database.

A batch of 16 requests is one forward pass in the worker, but each request still costs the API server its
routing, its dependencies (the token looked up, the repo and its access checked in the database, the revision
resolved, the snapshot found) and its middleware: on two cores, that per-request work — which batching cannot
amortize — competes with the worker. So, as `HeadCache` does for `HEAD /resolve`: after the full route answered
a batched task with 200, what it took from the database (the caller, the model's target) is kept per (path,
query, Authorization) and used again, in front of FastAPI, only while all of these hold:

- the database is unchanged (`HeadCache.generation`): a repo made private, a revoked token, a gate, a new member
  end it at once;
- the revision still resolves, in git, to the commit that was kept (a push is seen at once), and is no mirror
  branch due for a check upstream; the snapshot folder is still there;
- the caller's token is not due for its `last_used_at` refresh nor its expiry (`token_deadline`);
- the body is an ordinary batched request (a JSON object with `inputs`, a task that is not generative, no
  feature-extraction options, under `inference_max_input`); anything else is handed to the full route.

A cookie (the widget's browser session, with its CSRF check) or a `%`-encoded path always takes the full way.
The engine, the per-caller bound, the queue bound and the errors' shapes are the full route's own.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from starlette.requests import Request

from cove.bounded import BoundedDict
from cove.errors import HubError
from cove.inference import GENERATIVE

PATH = re.compile(r"/models/([^/]+)/([^/]+)(?:/pipeline/([^/]+))?")
ROUTES = ("/models/{ns}/{name}", "/models/{ns}/{name}/pipeline/{task}")
FAST = Counter("cove_inference_front_answers", "Inference requests answered in front of the router, from what an "
               "earlier answer took from the database (cove.api.inference_front)")


@dataclass(frozen=True)
class _Route:
    """What telemetry reads from `scope["route"]`: the template, never the raw path."""

    path: str


@dataclass(frozen=True)
class _Known:
    gen: Hashable
    deadline: float | None
    who: str  # the per-caller bound's key
    target: Any  # cove.services.inference.Target
    routed: bool  # the task came from the URL


def wait_for_model(scope: dict) -> bool:
    """`X-Wait-For-Model: false` asks for a 503 while the model loads (here and in `cove.api.inference`)."""
    return not any(k == b"x-wait-for-model" and v.strip().lower() == b"false" for k, v in scope["headers"])


class InferenceFront:
    """See the module doc. `CoveApp` calls `serve` for each POST that `claims` names; `_infer` calls `remember`."""

    MAX_ENTRIES = 10_000

    def __init__(self, head_cache, engine: Callable[[], Any]) -> None:  # noqa: ANN001 - cove.api.files.HeadCache
        self.head_cache = head_cache
        self.bk = head_cache.bk
        self.engine = engine
        self._known: BoundedDict[tuple, _Known] = BoundedDict(self.MAX_ENTRIES)

    @staticmethod
    def claims(scope: dict) -> bool:
        return PATH.fullmatch(scope["path"]) is not None

    async def serve(self, scope: dict, full: Callable[[Callable, Callable], Awaitable[None]], request_id: bytes,
                    receive: Callable, send: Callable) -> None:
        """Answer from what is kept, or hand the request (its body replayed) to `full`."""
        key = self.head_cache.request_key(scope)
        gen = self.head_cache.generation() if key is not None else None
        known = self._known.get(key) if gen is not None else None
        if known is None or not self._valid(known, gen):
            if gen is not None:
                scope.setdefault("state", {})["cove.inference_ticket"] = (self, key, gen)
            await full(receive, send)
            return
        body, receive = await self._read(scope, receive)
        parsed = self._parse(body, known) if body is not None else None
        if parsed is None:
            await full(receive, send)
            return
        scope["route"] = _Route(ROUTES[known.routed])
        FAST.inc()
        await self._answer(scope, known, parsed, request_id, receive, send)

    def _valid(self, k: _Known, gen: Hashable) -> bool:
        if k.gen != gen or (k.deadline is not None and time.time() >= k.deadline):
            return False
        from cove.services import mirror

        t = k.target
        try:
            if mirror.needs_check(self.bk, t.storage_key, t.rev):
                return False
            return self.bk.repos.resolve(t.storage_key, t.rev) == t.sha and (t.path / ".complete").is_file()
        except Exception:  # noqa: BLE001 - the full route reports whatever this was
            return False

    async def _read(self, scope: dict, receive: Callable) -> tuple[bytes | None, Callable]:
        """The body (None past the size cap: the full route answers 413), and a `receive` that replays it."""
        limit = self.bk.settings.inference_max_input
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
            if size > limit:
                break
        raw = b"".join(chunks)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": more}
            return await receive()

        return (None if size > limit else raw), replay

    @staticmethod
    def _parse(raw: bytes, k: _Known) -> tuple[str, dict] | None:
        """(task, worker item) for an ordinary batched request; None for anything the full route should see."""
        from cove.api.inference import _pick_task

        try:
            body = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(body, dict) or "inputs" not in body or "stream" in body:
            return None
        params = body.get("parameters") or {}
        task = k.target.task
        if not isinstance(params, dict) or task == "feature-extraction":
            return None
        chosen = _pick_task(task, k.routed, body["inputs"], params)
        if chosen in GENERATIVE:
            return None
        return chosen, {"inputs": body["inputs"], "parameters": params}

    async def _answer(self, scope: dict, k: _Known, parsed: tuple[str, dict], request_id: bytes,
                      receive: Callable, send: Callable) -> None:
        chosen, item = parsed
        t = k.target
        engine = self.engine()
        info: dict = {}
        headers = [(b"x-repo-commit", t.sha.encode()), (b"x-compute-type", b"cpu")]
        try:
            with engine.user_slot(k.who):
                result = await engine.run(t.key, t.path, "batch", {"task": chosen, "item": item},
                                          wait=wait_for_model(scope), info=info)
        except HubError as exc:  # as the app's handler answers it
            from cove.app import error_response

            response = error_response(Request(scope), exc.status, exc.message, exc.code, exc.headers, exc.extra)
            response.raw_headers += [(b"x-request-id", request_id), (b"x-content-type-options", b"nosniff")]
            await response(scope, receive, send)
            return
        body = json.dumps(result, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        headers += [(b"x-inference-batch", str(info.get("batch", 1)).encode()),
                    (b"content-length", str(len(body)).encode()), (b"content-type", b"application/json"),
                    (b"x-request-id", request_id), (b"x-content-type-options", b"nosniff")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def remember(request: Request, bk, target: Any, routed: bool, who: str) -> None:  # noqa: ANN001
        """After the full route answered a batched task with 200: keep what it took from the database."""
        found = request.scope.get("state", {}).get("cove.inference_ticket")
        if found is None:
            return
        front, key, gen = found
        from cove.api.files import token_deadline

        with bk.db.session() as db:
            ok, deadline = token_deadline(db, key[2])
        if not ok:
            return
        front._known.put(key, _Known(gen, deadline, who, target, routed))
