"""Allocator settings for the server process.

glibc gives each thread that allocates its own malloc arena (up to 8 per core). Cove's request handlers
run in a thread pool and move data in 256 KiB - 1 MiB buffers; the more transfers a client keeps in
flight (hf_xet raises its concurrency as a transfer goes on), the more arenas hold freed buffers, so the
server's resident memory crept up with the size of a Xet upload or download. Two arenas keep it level
(benchmarks/README.md, "Memory"). ``MALLOC_ARENA_MAX`` in the environment still wins.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_ARENA_MAX = -8  # glibc <malloc.h>
ARENAS = 2


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process; False where that does not apply (musl, macOS, set by env)."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols, libc's among them (find_library forks ldconfig)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_ARENA_MAX, arenas))
