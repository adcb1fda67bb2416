"""Files written once, sequentially, past the page cache where the filesystem allows (``O_DIRECT``).

A buffered write copies every byte into the page cache and allocates its pages: 0.6–1.3 CPU s/GiB on the
ext4 volume the benchmarks run on, more than hashing the bytes (sha256 ~0.5 s/GiB). ``O_DIRECT`` writes go
from an aligned buffer to the disk (~0.05 CPU s/GiB there). Received bytes are copied once into that buffer
(`free` + `advance` let a reader fill it in place), whole aligned blocks leave with one ``write`` per buffer
on a writer thread while the next buffer fills, and the unaligned tail with a plain write at the end.
Filesystems without ``O_DIRECT`` (tmpfs on older kernels, some FUSE mounts) get plain writes through the
same buffers. `close(sync=True)` fsyncs once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

#: Alignment of direct writes (offsets, lengths, buffer addresses): the largest logical block size in use.
ALIGN = 4096
#: Bytes per write. Two such buffers per file being written: one fills while the other goes to disk on a
#: writer thread (a direct write waits for the disk; the page cache used to absorb that wait).
BUFFER = 1 << 20
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _writers() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="cove-blob-write")
        return _pool


class BlobFile:
    """Sequential writes into `path` from `offset` (an existing file is written in place, not truncated)."""

    def __init__(self, path: str | os.PathLike, *, offset: int = 0, create_new: bool = False,
                 buffer: int = BUFFER) -> None:
        flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_CREAT | os.O_EXCL if create_new else os.O_CREAT)
        self.direct = bool(_O_DIRECT) and offset % ALIGN == 0
        self.fd = -1
        if self.direct:
            try:
                self.fd = os.open(path, flags | _O_DIRECT, 0o600)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self.direct = False
        if self.fd < 0:
            self.fd = os.open(path, flags, 0o600)
        self._maps = [mmap.mmap(-1, buffer), mmap.mmap(-1, buffer)]  # page aligned, as O_DIRECT wants
        self._views = [memoryview(m) for m in self._maps]
        self._cur = 0
        self._fill = 0
        self._pending: Future | None = None  # the other buffer's write
        self.pos = offset  # file offset of the current buffer's first byte
        self.size = 0  # bytes taken
        self.writes = 0  # write system calls made

    def free(self) -> memoryview:
        """The buffer's free space: fill it, then `advance` by the bytes put there."""
        return self._views[self._cur][self._fill:]

    def advance(self, n: int) -> None:
        self._fill += n
        self.size += n
        view = self._views[self._cur]
        if self._fill == len(view):
            self._wait()
            self._pending = _writers().submit(self._write_all, view, self.pos)
            self.pos += self._fill
            self._cur ^= 1
            self._fill = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        src = memoryview(data).cast("B")
        while src:
            room = self.free()
            take = min(len(room), len(src))
            room[:take] = src[:take]
            del room
            self.advance(take)
            src = src[take:]

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _write_all(self, view: memoryview, pos: int) -> None:
        while view:
            try:
                done = os.pwrite(self.fd, view, pos)
            except OSError as exc:  # a filesystem that took the flag but not these writes
                if exc.errno != errno.EINVAL or not self.direct:
                    raise
                self._buffered()
                continue
            self.writes += 1
            view, pos = view[done:], pos + done

    def _buffered(self) -> None:
        fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~_O_DIRECT)
        self.direct = False

    def close(self, *, sync: bool = True) -> None:
        """Write what is left (aligned blocks directly, then the tail), fsync (`sync`), close."""
        if self.fd < 0:
            return
        try:
            self._wait()
            view = self._views[self._cur]
            whole = self._fill - self._fill % ALIGN
            if whole and self.direct:
                self._write_all(view[:whole], self.pos)
            else:
                whole = 0
            if self._fill > whole:
                if self.direct:
                    self._buffered()
                self._write_all(view[whole:self._fill], self.pos + whole)
            self.pos += self._fill
            self._fill = 0
            if sync:
                os.fsync(self.fd)
        finally:
            self._release()

    def abort(self) -> None:
        """Close without writing what is buffered (the caller removes the file)."""
        if self.fd >= 0:
            with contextlib.suppress(Exception):
                self._wait()
            self._release()

    def _release(self) -> None:
        os.close(self.fd)
        self.fd = -1
        for view, m in zip(self._views, self._maps, strict=True):
            view.release()
            with contextlib.suppress(BufferError):  # a caller still holds a view of `free()`: freed with it
                m.close()
