"""`BoundedDict`: the answer caches' store (`HeadCache`, `InfoCache`, `InferenceFront`), at most `limit` entries."""

from __future__ import annotations

import threading
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedDict(dict[K, V]):
    """A dict that `put` keeps at most `limit` entries long and, with `max_bytes`, at most that many bytes (by the
    sizes `put` is given: the entries' bodies), dropping the oldest inserted first; a value larger than the whole
    budget is not kept. Reads (`get`, `in`) are plain dict calls, safe under the GIL; `put` and `clear` take a
    lock, so that concurrent inserts from the thread pool evict one entry each."""

    def __init__(self, limit: int, max_bytes: int | None = None) -> None:
        super().__init__()
        self.limit = max(1, limit)
        self.max_bytes = max_bytes
        self.bytes = 0  # the sizes of the entries kept
        self._sizes: dict[K, int] = {}
        self._put_lock = threading.Lock()

    def _drop(self, key: K) -> None:
        del self[key]
        self.bytes -= self._sizes.pop(key, 0)

    def put(self, key: K, value: V, size: int = 0) -> None:
        with self._put_lock:
            if key in self:
                self._drop(key)
            if self.max_bytes is not None and size > self.max_bytes:
                return
            while self and (len(self) >= self.limit
                            or (self.max_bytes is not None and self.bytes + size > self.max_bytes)):
                self._drop(next(iter(self)))
            self[key] = value
            self._sizes[key] = size
            self.bytes += size

    def clear(self) -> None:
        with self._put_lock:
            super().clear()
            self._sizes.clear()
            self.bytes = 0
