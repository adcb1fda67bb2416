"""The engine, in the API server: one worker process per loaded model, dynamic batching, LRU within a budget.

A model is loaded on its first request (`Slot`: a worker started, its load awaited), kept while used, and stopped
after `inference_idle_unload` seconds without requests or when the loaded models' resident memory passes
`inference_memory` (least recently used first). Requests for one model wait in its queue (bounded:
`inference_max_queue`, 429 past it); as soon as the worker is free, its batcher sends all that queued meanwhile
(up to `inference_max_batch`; `inference_max_wait` may hold a batch a little longer) as one batch. A worker that dies
(crash, out of memory, killed) fails the requests it held with a 5xx, and the next request starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cove.errors import HubError, TooManyRequests
from cove.settings import Settings

log = logging.getLogger("cove.inference")
#: Seconds a failed load is answered from memory before the next request tries again.
FAILED_LOAD_TTL = 10.0
#: Under load, a batch waits for as many requests as the last one had, at most this share of the last one's run
#: time and at most REFILL_CAP seconds.
REFILL_SHARE = 0.25
REFILL_CAP = 0.05


class ModelLoading(HubError):
    """The model is still loading (the Hub's answer, with `estimated_time` in seconds)."""

    status = 503
    code = "ModelLoading"


class WorkerFailed(HubError):
    """The model's worker crashed, ran out of memory, or could not load the model."""

    status = 500
    code = "InferenceWorkerFailed"


class InferenceError(HubError):
    """The model refused the input (400), or failed on it (500)."""

    code = "InferenceError"

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _settle(fut: asyncio.Future, value: Any) -> None:
    """Set a result (or an exception) unless the request went away (cancelled) meanwhile."""
    if fut.done():
        return
    if isinstance(value, BaseException):
        fut.set_exception(value)
        fut.exception()  # retrieved: a request that went away leaves no "never retrieved" warning
    else:
        fut.set_result(value)


@dataclass
class Item:
    op: str  # "batch" | "embed" | "generate"
    payload: dict
    future: asyncio.Future | None = None  # batch / embed: the result
    stream: asyncio.Queue | None = None  # generate: events, then None
    batch: int = 1  # how many requests ran in its batch


@dataclass
class Slot:
    key: tuple[int, str, str]  # (repo pk, commit, load kind)
    path: Path
    queue: asyncio.Queue
    proc: asyncio.subprocess.Process | None = None
    ready: asyncio.Future | None = None
    started: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    rss: int = 0
    inflight: int = 0  # requests queued or running
    pending: dict[int, Item] = field(default_factory=dict)  # sent to the worker, not answered yet
    tasks: list[asyncio.Task] = field(default_factory=list)
    dead: bool = False
    load_seconds: float = 30.0
    last_size: int = 0  # the last batch: how many requests, when it ended, how long it ran (loop time, seconds)
    last_end: float = 0.0
    last_run: float = 0.0


class Engine:
    """All loaded models of this server process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.slots: dict[tuple[int, str, str], Slot] = {}
        self.ids = itertools.count(1)
        self.per_user: dict[str, int] = {}
        self.last_load: dict[tuple[int, str], float] = {}  # (repo pk, kind) -> seconds its last load took
        self.failed: dict[tuple[int, str, str], tuple[float, HubError]] = {}  # key -> (when, error) of a failed load
        self._janitor: asyncio.Task | None = None

    # -- public -------------------------------------------------------------------------------------------
    def enter(self, who: str) -> None:
        """Count one request of `who` in flight (`leave` ends it); 429 past `inference_max_per_user`."""
        if self.per_user.get(who, 0) >= self.settings.inference_max_per_user:
            raise TooManyRequests("Too many inference requests in flight for this caller; retry shortly",
                                  headers={"Retry-After": "1"})
        self.per_user[who] = self.per_user.get(who, 0) + 1

    def leave(self, who: str) -> None:
        self.per_user[who] -= 1
        if not self.per_user[who]:
            del self.per_user[who]

    @contextlib.contextmanager
    def user_slot(self, who: str):  # noqa: ANN201
        self.enter(who)
        try:
            yield
        finally:
            self.leave(who)

    async def run(self, key: tuple[int, str, str], path: Path, op: str, payload: dict, *, wait: bool = True,
                  info: dict | None = None) -> Any:
        """One batched request's result (`op` "batch" with one item, or "embed"); `info` gets its "batch" size."""
        slot = await self._slot(key, path, wait)
        item = Item(op, payload, future=asyncio.get_running_loop().create_future())
        self._enqueue(slot, item)
        try:
            return await item.future
        finally:
            if info is not None:
                info["batch"] = item.batch
            slot.inflight -= 1
            slot.last_used = time.monotonic()

    async def generate(self, key: tuple[int, str, str], path: Path, payload: dict, *,
                       wait: bool = True) -> AsyncIterator[dict]:
        """The events of one generation: {"token": ...}..., then {"done": ...}. Raises on errors."""
        slot = await self._slot(key, path, wait)
        item = Item("generate", payload, stream=asyncio.Queue())
        self._enqueue(slot, item)
        return self._events(slot, item)

    async def _events(self, slot: Slot, item: Item) -> AsyncIterator[dict]:
        try:
            while True:
                ev = await item.stream.get()
                if isinstance(ev, BaseException):
                    raise ev
                yield ev
                if "done" in ev:
                    return
        finally:
            slot.inflight -= 1
            slot.last_used = time.monotonic()

    def loaded(self) -> list[dict]:
        return [{"repo_pk": s.key[0], "sha": s.key[1], "kind": s.key[2], "rss": s.rss, "inflight": s.inflight,
                 "ready": bool(s.ready and s.ready.done() and not s.ready.exception())}
                for s in self.slots.values() if not s.dead]

    async def close(self) -> None:
        for slot in list(self.slots.values()):
            await self._stop(slot, "server stopping")

    # -- slots --------------------------------------------------------------------------------------------
    def _enqueue(self, slot: Slot, item: Item) -> None:
        if slot.dead:
            raise WorkerFailed("The model's worker stopped; retry the request")
        if slot.queue.qsize() >= self.settings.inference_max_queue:
            raise TooManyRequests("This model's request queue is full; retry shortly", headers={"Retry-After": "1"})
        slot.inflight += 1
        slot.last_used = time.monotonic()
        slot.queue.put_nowait(item)

    async def _slot(self, key: tuple[int, str, str], path: Path, wait: bool) -> Slot:
        if self._janitor is None or self._janitor.done():
            self._janitor = asyncio.create_task(self._sweep_forever())
        slot = self.slots.get(key)
        failed = self.failed.get(key)
        if (slot is None or slot.dead) and failed is not None and time.monotonic() - failed[0] < FAILED_LOAD_TTL:
            raise failed[1]  # a model that just failed to load is not loaded again on every request
        self.failed.pop(key, None)
        if slot is None or slot.dead:
            slot = Slot(key, path, asyncio.Queue())
            slot.load_seconds = self.last_load.get((key[0], key[2]), 30.0)
            self.slots[key] = slot
            self._retire_older(slot)
            slot.ready = asyncio.get_running_loop().create_future()
            slot.tasks.append(asyncio.create_task(self._start(slot)))
        slot.last_used = time.monotonic()
        if not slot.ready.done():
            left = max(1.0, slot.load_seconds - (time.monotonic() - slot.started))
            if not wait:
                raise ModelLoading("Model is currently loading", headers={"Retry-After": str(int(left))},
                                   estimated_time=round(left, 1))
            try:
                await asyncio.wait_for(asyncio.shield(slot.ready), self.settings.inference_load_timeout)
            except TimeoutError as exc:
                raise ModelLoading("Model is currently loading", headers={"Retry-After": str(int(left))},
                                   estimated_time=round(left, 1)) from exc
        if slot.ready.exception() is not None:
            raise slot.ready.exception()
        return slot

    def _retire_older(self, slot: Slot) -> None:
        """A push gave this repo a new commit: the same model at its other commits stops now if idle (else later:
        idle unload, or the memory budget)."""
        for other in list(self.slots.values()):
            same_model = other.key[0] == slot.key[0] and other.key[2] == slot.key[2] and other.key[1] != slot.key[1]
            if other is not slot and same_model and other.inflight == 0:
                asyncio.get_running_loop().create_task(self._stop(other, "a newer commit is loaded"))

    async def _start(self, slot: Slot) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": str(self.settings.inference_threads),
               "MKL_NUM_THREADS": str(self.settings.inference_threads), "TOKENIZERS_PARALLELISM": "false",
               "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1",
               "TRANSFORMERS_VERBOSITY": "error", "PYTHONUNBUFFERED": "1"}
        try:
            slot.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cove.inference.worker", slot.key[2], str(slot.path),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env, limit=256 << 20)
            await self._send(slot, {"op": "load", "path": str(slot.path), "kind": slot.key[2],
                                    "threads": self.settings.inference_threads})
            line = await slot.proc.stdout.readline()
            msg = json.loads(line) if line else {"op": "failed", "error": "the worker exited while loading"}
            if msg.get("op") != "loaded":
                raise WorkerFailed(f"The model could not be loaded: {msg.get('error')}")
        except Exception as exc:  # noqa: BLE001 - every waiting request gets it
            err = exc if isinstance(exc, HubError) else WorkerFailed(f"The model could not be loaded: {exc}")
            slot.ready.set_exception(err)
            slot.ready.exception()  # retrieved: no "never retrieved" warning when nobody waits
            self.failed[slot.key] = (time.monotonic(), err)
            await self._stop(slot, "load failed")
            return
        self.failed.pop(slot.key, None)
        slot.rss = int(msg.get("rss") or 0)
        self.last_load[(slot.key[0], slot.key[2])] = time.monotonic() - slot.started
        slot.tasks.append(asyncio.create_task(self._read(slot)))
        slot.tasks.append(asyncio.create_task(self._batcher(slot)))
        slot.ready.set_result(None)
        log.info("inference: loaded %s (%s) in %.1fs, %d MiB", slot.path, slot.key[2],
                 time.monotonic() - slot.started, slot.rss >> 20)
        await self._fit_budget(slot)

    async def _fit_budget(self, keep: Slot) -> None:
        total = sum(s.rss for s in self.slots.values() if not s.dead)
        for s in sorted(self.slots.values(), key=lambda s: s.last_used):
            if total <= self.settings.inference_memory:
                break
            if s is not keep and not s.dead and s.inflight == 0:
                total -= s.rss
                await self._stop(s, "memory budget")

    async def _send(self, slot: Slot, msg: dict) -> None:
        slot.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        await slot.proc.stdin.drain()

    async def _batcher(self, slot: Slot) -> None:
        """Take the queue's requests, batch them, send them; one batch (or generation) at a time."""
        s = self.settings
        carry: Item | None = None
        loop = asyncio.get_running_loop()
        while not slot.dead:
            first = carry or await slot.queue.get()
            carry = None
            rid = next(self.ids)
            if first.op != "batch":
                slot.pending[rid] = first
                done = first.future if first.op == "embed" else None
                if first.op == "generate":
                    done = loop.create_future()
                    first.payload["_done"] = done
                await self._send(slot, {"op": first.op, "id": rid, **{k: v for k, v in first.payload.items()
                                                                      if not k.startswith("_")}})
                with contextlib.suppress(BaseException):
                    await asyncio.shield(done)
                continue
            batch = [first]
            # What queued while the worker was busy goes at once. Under load (the last batch had several
            # requests and just ended), the callers it answered are sending their next requests: wait for as
            # many as it had, at most a quarter of its run time, else the batches alternate between one request
            # and the rest. An idle model waits for nothing; `inference_max_wait` (default 0) adds a fixed wait.
            now = loop.time()
            want, wait = s.inference_max_batch, s.inference_max_wait
            if slot.last_size > 1 and now - slot.last_end < 0.1:
                want = min(want, slot.last_size)
                wait = max(wait, min(REFILL_CAP, REFILL_SHARE * slot.last_run))
            deadline = now + wait
            while len(batch) < s.inference_max_batch:
                try:
                    nxt = slot.queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - loop.time()
                    if left <= 0 or len(batch) >= want:
                        break
                    try:
                        nxt = await asyncio.wait_for(slot.queue.get(), left)
                    except TimeoutError:
                        break
                if nxt.op != "batch" or nxt.payload["task"] != first.payload["task"]:
                    carry = nxt
                    break
                batch.append(nxt)
            for b in batch:
                b.batch = len(batch)
            group = loop.create_future()
            slot.pending[rid] = Item("batch", {"items": batch}, future=group)
            started = loop.time()
            await self._send(slot, {"op": "batch", "id": rid, "task": first.payload["task"],
                                    "items": [b.payload["item"] for b in batch]})
            with contextlib.suppress(BaseException):
                await asyncio.shield(group)
            slot.last_end = loop.time()
            slot.last_size, slot.last_run = len(batch), slot.last_end - started

    async def _read(self, slot: Slot) -> None:
        """Answers from the worker, to their requests; at EOF the worker is gone."""
        try:
            while True:
                line = await slot.proc.stdout.readline()
                if not line:
                    break
                msg = json.loads(line)
                item = slot.pending.get(msg.get("id"))
                if item is None:
                    continue
                if item.op == "generate":
                    if "error" in msg:
                        item.stream.put_nowait(InferenceError(msg["error"], msg.get("status", 500)))
                    else:
                        item.stream.put_nowait({k: v for k, v in msg.items() if k != "id"})
                    if "error" in msg or "done" in msg:
                        del slot.pending[msg["id"]]
                        _settle(item.payload["_done"], None)
                    continue
                del slot.pending[msg["id"]]
                if "error" in msg:
                    _settle(item.future, InferenceError(msg["error"], msg.get("status", 500)))
                    if item.op == "batch":
                        for b in item.payload["items"]:
                            _settle(b.future, InferenceError(msg["error"], msg.get("status", 500)))
                    continue
                results = msg["results"]
                if item.op == "batch":
                    for b, r in zip(item.payload["items"], results, strict=True):
                        _settle(b.future, r["ok"] if "ok" in r else InferenceError(r["error"], r.get("status", 500)))
                    _settle(item.future, None)
                else:
                    _settle(item.future, results[0]["ok"])
        except Exception:  # noqa: BLE001 - a garbled answer: treat the worker as gone
            log.exception("inference: bad answer from the worker of %s", slot.path)
        finally:
            await self._stop(slot, "worker exited")

    async def _stop(self, slot: Slot, why: str) -> None:
        if slot.dead:
            return
        slot.dead = True
        if self.slots.get(slot.key) is slot:
            del self.slots[slot.key]
        proc = slot.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        err = WorkerFailed("The model's worker stopped while answering (it crashed, ran out of memory, or was "
                           "stopped); retry the request")
        for item in list(slot.pending.values()):
            self._fail(item, err)
        slot.pending.clear()
        while not slot.queue.empty():
            self._fail(slot.queue.get_nowait(), err)
        current = asyncio.current_task()
        for t in slot.tasks:
            if t is not current:
                t.cancel()
        if proc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 5)
        log.info("inference: unloaded %s (%s): %s", slot.path, slot.key[2], why)

    @staticmethod
    def _fail(item: Item, err: Exception) -> None:
        if item.op == "generate":
            item.stream.put_nowait(err)
            done = item.payload.get("_done")
            if done is not None and not done.done():
                done.set_result(None)
            return
        if item.future is not None:
            _settle(item.future, err)
        if item.op == "batch" and "items" in item.payload:
            for b in item.payload["items"]:
                _settle(b.future, err)

    async def _sweep_forever(self) -> None:
        idle = self.settings.inference_idle_unload
        while self.slots:
            await asyncio.sleep(max(0.5, min(30.0, idle / 4)))
            now = time.monotonic()
            for s in list(self.slots.values()):
                if s.inflight == 0 and now - s.last_used > idle and s.ready and s.ready.done():
                    await self._stop(s, "idle")
