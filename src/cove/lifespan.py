"""Work that lives as long as the app (flushers, workers, supervisors): each piece wraps the app's lifespan,
entered before the app starts and left after it stops."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol


class Worker(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


def alongside(app: Any, during: Callable[[Any], AbstractAsyncContextManager[Any]]) -> None:  # noqa: ANN401
    """Run ``during(app)`` around the app's current lifespan: entered before it, left after it."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:  # noqa: ANN401
        async with during(a), inner(a) as state:
            yield state

    app.router.lifespan_context = lifespan


def run_worker(app: Any, make: Callable[[], Worker]) -> None:  # noqa: ANN401
    """`alongside` for a worker with blocking `start()` and `stop()` (called off the event loop)."""

    @contextlib.asynccontextmanager
    async def during(_a: Any) -> AsyncIterator[None]:  # noqa: ANN401
        worker = make()
        await asyncio.to_thread(worker.start)
        try:
            yield
        finally:
            await asyncio.to_thread(worker.stop)

    alongside(app, during)


@contextlib.asynccontextmanager
async def thread_running(name: str, target: Callable[[], None], stop: threading.Event) -> AsyncIterator[None]:
    """Run ``target`` in a daemon thread while the block runs; leaving it sets ``stop`` and waits (10 s at most,
    off the event loop) for the thread to end."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 10)
