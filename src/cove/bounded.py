"""`BoundedDict`: the answer caches' store (`HeadCache`, `InfoCache`, `InferenceFront`), at most `limit` entries."""

from __future__ import annotations

import threading
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedDict(dict[K, V]):
    """A dict that `put` keeps at most `limit` entries long, dropping the oldest inserted first. Reads (`get`,
    `in`) and `clear` are plain dict calls, safe under the GIL; `put` takes its own lock, so that concurrent
    inserts from the thread pool evict one entry each."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = max(1, limit)
        self._put_lock = threading.Lock()

    def put(self, key: K, value: V) -> None:
        with self._put_lock:
            while key not in self and len(self) >= self.limit:
                try:
                    del self[next(iter(self))]
                except (StopIteration, KeyError, RuntimeError):  # cleared meanwhile (a `clear` without our lock)
                    break
            self[key] = value
