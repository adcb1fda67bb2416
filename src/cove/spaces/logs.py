"""Build and run logs of a Space: files in the data folder (``space-logs/<repo id>/``), kept across restarts."""

from __future__ import annotations

import os
import threading
from pathlib import Path

#: A log past this many bytes (default; `spaces_log_bytes`) keeps only its last quarter, from a line start.
MAX_BYTES = 4 << 20


class SpaceLog:
    _locks: dict[str, threading.Lock] = {}

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max(1024, max_bytes)
        self.lock = self._locks.setdefault(str(path), threading.Lock())

    def reset(self) -> None:
        with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(b"")

    def write(self, text: str) -> None:
        if not text:
            return
        with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as fh:
                fh.write(text.encode("utf-8", "replace"))
                size = fh.tell()
            if size > self.max_bytes:
                with open(self.path, "rb") as fh:
                    fh.seek(size - self.max_bytes // 4)
                    rest = fh.read()
                tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
                tmp.write_bytes(rest[rest.find(b"\n") + 1:])
                tmp.replace(self.path)

    def read_from(self, offset: int) -> tuple[bytes, int]:
        """Bytes after `offset` (from 0 when the file was cut since), and the new offset."""
        try:
            with open(self.path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if offset > size:
                    offset = 0
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:
            return b"", 0
        return data, offset + len(data)

    def tail(self, lines: int) -> str:
        data, _ = self.read_from(0)
        return "\n".join(data.decode("utf-8", "replace").rstrip("\n").splitlines()[-lines:])
