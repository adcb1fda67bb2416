"""Inference: the Hub's serverless routes (`POST /models/{repo}`, `/models/{repo}/pipeline/{task}`) and the
OpenAI-compatible ones (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `/v1/models`).

`InferenceClient(model=f"{HF_ENDPOINT}/models/{repo}")` posts every task to the first; `InferenceClient(
base_url=f"{HF_ENDPOINT}/v1")` and the `openai` client use the others. See `cove.inference`.
"""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from cove.api.inference_front import InferenceFront, wait_for_model
from cove.deps import Bk, CurrentActor, client_host
from cove.errors import BadRequest, HubError, PayloadTooLarge
from cove.inference import GENERATIVE
from cove.inference.engine import Engine
from cove.services import inference as service
from cove.services.accounts import Actor

router = APIRouter()


def engine_of(app) -> Engine:  # noqa: ANN001
    """The app's inference engine (made on first use)."""
    engine = getattr(app.state, "inference", None)
    if engine is None:
        engine = app.state.inference = Engine(app.state.backends.settings)
    return engine


def _engine(request: Request) -> Engine:
    return engine_of(request.app)


async def _body(request: Request, bk) -> dict:  # noqa: ANN001
    limit = bk.settings.inference_max_input
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The input is {declared} bytes; this hub takes at most {limit} per request")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise PayloadTooLarge(f"The input is over {limit} bytes, the most this hub takes per request")
    try:
        body = json.loads(raw or b"null")
    except ValueError as exc:
        raise BadRequest("The body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise BadRequest('The body must be a JSON object: {"inputs": ..., "parameters": {...}}')
    return body


def _who(actor: Actor, request: Request) -> str:
    return f"user:{actor.user_id}" if actor.user_id is not None else f"ip:{client_host(request)}"


def _pick_task(task: str, routed: bool, inputs: Any, params: dict) -> str:
    """The Hub serves a sentence-transformers model for both of its tasks, and a classifier zero-shot."""
    if not routed and task in ("feature-extraction", "sentence-similarity"):
        return "sentence-similarity" if isinstance(inputs, dict) and "source_sentence" in inputs \
            else "feature-extraction"
    if not routed and task == "text-classification" and params.get("candidate_labels"):
        return "zero-shot-classification"
    if task == "conversational":
        return "text-generation"
    return task


# -- the Hub's serverless format --------------------------------------------------------------------------
@router.post("/models/{ns}/{name}")
async def infer(ns: str, name: str, request: Request, bk: Bk, actor: CurrentActor,
                revision: str | None = None) -> Response:
    return await _infer(ns, name, None, request, bk, actor, revision)


@router.post("/models/{ns}/{name}/pipeline/{task}")
async def infer_task(ns: str, name: str, task: str, request: Request, bk: Bk, actor: CurrentActor,
                     revision: str | None = None) -> Response:
    return await _infer(ns, name, task, request, bk, actor, revision)


async def _infer(ns: str, name: str, task: str | None, request: Request, bk, actor: Actor,  # noqa: ANN001
                 revision: str | None) -> Response:
    service.enabled(bk)
    body = await _body(request, bk)
    if "inputs" not in body:
        raise BadRequest("The body needs `inputs`")
    target = await run_in_threadpool(service.target, bk, actor, f"{ns}/{name}", revision, task)
    inputs, params = body["inputs"], body.get("parameters") or {}
    if not isinstance(params, dict):
        raise BadRequest("`parameters` must be an object")
    if target.task == "feature-extraction" or task == "feature-extraction":
        params = {**params, **{k: body[k] for k in ("normalize", "truncate") if k in body}}
    chosen = _pick_task(target.task, task is not None, inputs, params)
    engine = _engine(request)
    headers = {"X-Repo-Commit": target.sha, "X-Compute-Type": "cpu"}
    if chosen not in GENERATIVE:
        info: dict = {}
        who = _who(actor, request)
        with engine.user_slot(who):
            result = await engine.run(target.key, target.path, "batch",
                                      {"task": chosen, "item": {"inputs": inputs, "parameters": params}},
                                      wait=wait_for_model(request.scope), info=info)
        if "cove.inference_ticket" in request.scope.get("state", {}) and actor.user_id is not None:
            await run_in_threadpool(InferenceFront.remember, request, bk, target, task is not None, who)
        return JSONResponse(result, headers={**headers, "X-Inference-Batch": str(info.get("batch", 1))})
    if not isinstance(inputs, str):
        raise BadRequest("`inputs` must be a string")
    events = await _generation(engine, target, request, actor, {"prompt": inputs}, params)
    if body.get("stream"):
        return StreamingResponse(_tgi_stream(events, inputs, params), media_type="text/event-stream",
                                 headers=headers)
    text, tokens, done = await _collect(events)
    out: dict[str, Any] = {"generated_text": (inputs + text) if params.get("return_full_text") else text}
    if params.get("details"):
        out["details"] = {"finish_reason": done["finish_reason"], "generated_tokens": done["generated_tokens"],
                          "seed": done.get("seed"), "prefill": [], "tokens": tokens}
    return JSONResponse([out], headers=headers)


_GEN_KEYS = ("max_new_tokens", "temperature", "top_p", "top_k", "do_sample", "repetition_penalty", "seed", "stop")


async def _generation(engine: Engine, target: service.Target, request: Request, actor: Actor, source: dict,
                      params: dict) -> AsyncIterator[dict]:
    """Start a generation; its first event is awaited here, so a refusal is this request's HTTP error. It counts
    as the caller's request in flight until its last event is read (or the stream is dropped)."""
    p = {k: params[k] for k in _GEN_KEYS if params.get(k) is not None}
    if isinstance(p.get("stop"), str):
        p["stop"] = [p["stop"]]
    try:
        for k in ("max_new_tokens", "top_k", "seed"):
            if k in p:
                p[k] = int(p[k])
        for k in ("temperature", "top_p", "repetition_penalty"):
            if k in p:
                p[k] = float(p[k])
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"Invalid generation parameter: {exc}") from exc
    if p.get("max_new_tokens", 1) < 0 or p.get("temperature", 0) < 0:
        raise BadRequest("max_new_tokens and temperature must not be negative")
    who = _who(actor, request)
    engine.enter(who)
    try:
        events = await engine.generate(target.key, target.path, {
            **source, "parameters": p, "max_new_tokens": engine.settings.inference_max_new_tokens},
            wait=wait_for_model(request.scope))
        first = await anext(events)
    except BaseException:
        engine.leave(who)
        raise

    async def chained() -> AsyncIterator[dict]:
        try:
            yield first
            async for ev in events:
                yield ev
        finally:
            engine.leave(who)

    return chained()


async def _collect(events: AsyncIterator[dict]) -> tuple[str, list[dict], dict]:
    tokens: list[dict] = []
    done = None
    async for ev in events:  # to the end: the stream's own bookkeeping runs when it is exhausted
        if "token" in ev:
            tokens.append(ev["token"])
        else:
            done = ev["done"]
    if done is None:
        raise HubError("The generation ended early")
    return done["generated_text"], tokens, done


def _sse(obj: Any) -> bytes:
    return b"data:" + json.dumps(obj).encode() + b"\n\n"


def _stream_error(exc: Exception) -> bytes:
    return _sse({"error": getattr(exc, "message", str(exc)), "error_type": "generation"})


async def _tgi_stream(events: AsyncIterator[dict], prompt: str, params: dict) -> AsyncIterator[bytes]:
    """TGI's token stream: one event per token; the last one also carries generated_text and details."""
    held: dict | None = None
    index = 0
    try:
        async for ev in events:
            if "token" in ev:
                if held is not None:
                    index += 1
                    yield _sse({"index": index, "token": held, "generated_text": None, "details": None})
                held = ev["token"]
                continue
            done = ev["done"]
            text = done["generated_text"]
            last = held or {"id": 0, "text": "", "logprob": 0.0, "special": True}
            yield _sse({"index": index + 1, "token": last,
                        "generated_text": (prompt + text) if params.get("return_full_text") else text,
                        "details": {"finish_reason": done["finish_reason"],
                                    "generated_tokens": done["generated_tokens"],
                                    "input_length": done["input_length"], "seed": done.get("seed")}})
    except Exception as exc:  # noqa: BLE001 - the stream has started: the error is its last event
        yield _stream_error(exc)


# -- OpenAI-compatible ------------------------------------------------------------------------------------
def _model_id(body: dict) -> tuple[str, str | None]:
    model = body.get("model")
    if not isinstance(model, str) or "/" not in model:
        raise BadRequest("`model` must name a model repo: namespace/name")
    repo_id, _, revision = model.partition(":")
    return repo_id, revision or None


def _openai_params(body: dict, default_max: int | None) -> dict:
    out = {"max_new_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or default_max,
           "temperature": body.get("temperature"), "top_p": body.get("top_p"), "seed": body.get("seed"),
           "stop": body.get("stop")}
    if body.get("n") not in (None, 1):
        raise BadRequest("Only n=1 is supported")
    return {k: v for k, v in out.items() if v is not None}


def _cut(text: str, stops: list[str]) -> str:
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    return text[:cut] if cut >= 0 else text


class _Deltas:
    """Text to send as it comes, holding back what may still turn into a stop sequence (never sent)."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = stops
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.text = ""
        self.sent = 0

    def add(self, piece: str) -> str:
        self.text += piece
        safe = len(self.text) - self.hold
        if any(s in self.text for s in self.stops):
            safe = min(safe, len(_cut(self.text, self.stops)))
        out = self.text[self.sent: safe] if safe > self.sent else ""
        self.sent = max(self.sent, safe)
        return out

    def finish(self, text: str) -> str:
        final = _cut(text, self.stops)
        return final[self.sent:] if len(final) > self.sent else ""


def _finish(reason: str) -> str:
    return "length" if reason == "length" else "stop"


async def _openai_generation(request: Request, bk, actor: Actor, body: dict, chat: bool,  # noqa: ANN001
                             repo_id: str | None = None) -> Response:
    revision = None
    if repo_id is None:
        repo_id, revision = _model_id(body)
    target = await run_in_threadpool(service.target, bk, actor, repo_id, revision, "text-generation")
    params = _openai_params(body, None if chat else 16)
    stops = params.get("stop") or []
    stops = [stops] if isinstance(stops, str) else [s for s in stops if isinstance(s, str)]
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise BadRequest("`messages` must be a non-empty list of {role, content}")
        source: dict = {"messages": messages}
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise BadRequest("`prompt` must be a string")
        source = {"prompt": prompt}
    engine = _engine(request)
    events = await _generation(engine, target, request, actor, source, params)
    cid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    model = body.get("model") if isinstance(body.get("model"), str) else repo_id
    kind = "chat.completion" if chat else "text_completion"
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(_openai_stream(events, stops, cid, created, model, kind, chat, include_usage),
                                 media_type="text/event-stream", headers={"X-Repo-Commit": target.sha})
    text, _, done = await _collect(events)
    text = _cut(text, stops)
    if not chat and body.get("echo"):
        text = source["prompt"] + text
    choice: dict[str, Any] = {"index": 0, "finish_reason": _finish(done["finish_reason"]), "logprobs": None}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    usage = {"prompt_tokens": done["input_length"], "completion_tokens": done["generated_tokens"],
             "total_tokens": done["input_length"] + done["generated_tokens"]}
    return JSONResponse({"id": cid, "object": kind, "created": created, "model": model, "choices": [choice],
                         "usage": usage, "system_fingerprint": f"cove-{target.sha[:12]}"},
                        headers={"X-Repo-Commit": target.sha})


async def _openai_stream(events: AsyncIterator[dict], stops: list[str], cid: str, created: int, model: str,
                         kind: str, chat: bool, include_usage: bool) -> AsyncIterator[bytes]:
    obj = f"{kind}.chunk" if chat else kind
    deltas = _Deltas(stops)

    def chunk(text: str | None, finish: str | None, first: bool = False) -> bytes:
        if chat:
            delta: dict[str, Any] = {"role": "assistant", "content": text or ""} if first else {"content": text}
            if finish and text is None:
                delta = {}
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        else:
            choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
        return _sse({"id": cid, "object": obj, "created": created, "model": model, "choices": [choice],
                     "system_fingerprint": "cove"})

    first = True
    try:
        async for ev in events:
            if "token" in ev:
                piece = deltas.add(ev["token"]["text"])
                if piece or (first and chat):
                    yield chunk(piece, None, first)
                    first = False
                continue
            done = ev["done"]
            rest = deltas.finish(done["generated_text"])
            if rest:
                yield chunk(rest, None, first)
            yield chunk(None, _finish(done["finish_reason"]))
            if include_usage:
                yield _sse({"id": cid, "object": obj, "created": created, "model": model, "choices": [],
                            "usage": {"prompt_tokens": done["input_length"],
                                      "completion_tokens": done["generated_tokens"],
                                      "total_tokens": done["input_length"] + done["generated_tokens"]}})
    except Exception as exc:  # noqa: BLE001
        yield _stream_error(exc)
    yield b"data: [DONE]\n\n"


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, bk: Bk, actor: CurrentActor) -> Response:
    service.enabled(bk)
    return await _openai_generation(request, bk, actor, await _body(request, bk), chat=True)


@router.post("/models/{ns}/{name}/v1/chat/completions")
async def model_chat_completions(ns: str, name: str, request: Request, bk: Bk, actor: CurrentActor) -> Response:
    """`InferenceClient(model=f"{HF_ENDPOINT}/models/{repo}").chat_completion(...)` posts here."""
    service.enabled(bk)
    return await _openai_generation(request, bk, actor, await _body(request, bk), chat=True, repo_id=f"{ns}/{name}")


@router.post("/v1/completions")
async def completions(request: Request, bk: Bk, actor: CurrentActor) -> Response:
    service.enabled(bk)
    return await _openai_generation(request, bk, actor, await _body(request, bk), chat=False)


@router.post("/v1/embeddings")
async def embeddings(request: Request, bk: Bk, actor: CurrentActor) -> Response:
    service.enabled(bk)
    body = await _body(request, bk)
    repo_id, revision = _model_id(body)
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise BadRequest("`input` must be a string or a non-empty list of strings")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise BadRequest("`encoding_format` must be float or base64")
    target = await run_in_threadpool(service.target, bk, actor, repo_id, revision, "feature-extraction")
    engine = _engine(request)
    with engine.user_slot(_who(actor, request)):
        result = await engine.run(target.key, target.path, "embed", {"texts": texts},
                                  wait=wait_for_model(request.scope))
    vectors, n_tokens = result["vectors"], result["tokens"]
    dims = body.get("dimensions")
    if isinstance(dims, int) and dims > 0:
        vectors = [v[:dims] for v in vectors]
    data = []
    for i, v in enumerate(vectors):
        emb: Any = base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if fmt == "base64" else v
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return JSONResponse({"object": "list", "data": data, "model": body["model"],
                         "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens}},
                        headers={"X-Repo-Commit": target.sha})


@router.get("/v1/models")
def list_models(bk: Bk, actor: CurrentActor) -> dict:
    models = service.listed_models(bk, actor)
    return {"object": "list", "data": [{"id": rid, "object": "model", "created": created,
                                        "owned_by": rid.split("/", 1)[0], "pipeline_tag": tag}
                                       for rid, tag, created in models]}
