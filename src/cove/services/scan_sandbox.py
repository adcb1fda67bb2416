"""Pickle scans in a child process, under a memory and a CPU-time limit.

picklescan keeps every opcode of a pickle in a list (about 100 bytes of memory per byte of pickle) and inflates
zip members as it reads them: a 7.9 KB upload (a zip holding 8 MB of one-byte opcodes) made the server grow by
850 MB, and a 1 MB one would have needed ~100 GB. So a pickle-based file is scanned by a child process
(``python -m cove.services.scan_sandbox``) whose address space and CPU time are capped. It opens the file itself
when it is on local disk, and otherwise asks the server for byte ranges over its stdin/stdout (at most
`CHUNK` bytes a time). A scan that goes past a limit, or a child that dies, makes the file unsafe: it could not
be shown to be safe.

Protocol: the server writes one JSON line (kind, size, local_path, limits); the child answers ``R`` + start + end
(big-endian u64) for each read, the server replies length (u64) + bytes; the child ends with ``V`` + length +
the verdict's JSON.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import BinaryIO

from cove.services.scanning import Limits, Source, SourceUnavailable, Verdict

log = logging.getLogger("cove.scans")
#: Most bytes the child gets per read (a zip member's reader may ask for more: it is served in pieces).
CHUNK = 8 << 20
_U64 = struct.Struct(">Q")
#: Scans at once per server process (each child may use `Limits.memory`).
_SLOTS = threading.BoundedSemaphore(2)
_RANGE = struct.Struct(">QQ")


class _Died(Exception):  # noqa: N818 - control flow between the pipe helpers and `scan`
    pass


def _read_exact(fd: int, n: int, deadline: float) -> bytes:
    out = bytearray()
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError
        block = os.read(fd, n - len(out))
        if not block:
            raise _Died
        out += block
    return bytes(out)


def _unsafe(finding: str) -> Verdict:
    from cove.services.scanning import _report

    return Verdict("unsafe", _report(findings=[finding]))


def scan(source: Source, kind: str, limits: Limits) -> Verdict:
    """Scan `source` as a pickle-based `kind` in a child process under `limits`."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with _SLOTS, tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen([sys.executable, "-m", "cove.services.scan_sandbox"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=errors, env=env)
        assert proc.stdin is not None and proc.stdout is not None
        deadline = time.monotonic() + 2 * limits.cpu_seconds + 10
        try:
            return _serve(proc, source, kind, limits, deadline)
        except TimeoutError:
            return _unsafe(f"could not be scanned within {limits.cpu_seconds} s")
        except (_Died, BrokenPipeError):
            proc.kill()
            code = proc.wait()
            if code == -signal.SIGXCPU:
                return _unsafe(f"could not be scanned within {limits.cpu_seconds} s of CPU time")
            errors.seek(0)
            tail = errors.read()[-2000:].decode("utf-8", "replace")
            log.warning("pickle scanner exited with status %s: %s", code, tail)
            return _unsafe(f"could not be scanned: the scanner stopped (exit status {code})")
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdin.close()
            proc.stdout.close()


def _serve(proc: subprocess.Popen, source: Source, kind: str, limits: Limits, deadline: float) -> Verdict:
    stdin, out = proc.stdin, proc.stdout.fileno()  # type: ignore[union-attr]
    job = {"kind": kind, "size": source.size, "local_path": source.local_path, "memory": limits.memory,
           "cpu": limits.cpu_seconds}
    stdin.write(json.dumps(job).encode() + b"\n")  # type: ignore[union-attr]
    stdin.flush()  # type: ignore[union-attr]
    while True:
        tag = _read_exact(out, 1, deadline)
        if tag == b"V":
            (n,) = _U64.unpack(_read_exact(out, 8, deadline))
            v = json.loads(_read_exact(out, n, deadline))
            return Verdict(v["status"], v["report"], v["meta"])
        if tag != b"R":
            raise _Died
        start, end = _RANGE.unpack(_read_exact(out, 16, deadline))
        if not 0 <= start <= end <= source.size or end - start > CHUNK:
            raise _Died
        try:
            data = source.read(start, end)
        except SourceUnavailable:
            proc.kill()
            raise
        stdin.write(_U64.pack(len(data)) + data)  # type: ignore[union-attr]
        stdin.flush()  # type: ignore[union-attr]


# -- the child ----------------------------------------------------------------------------------


def _child(stdin: BinaryIO, out: BinaryIO) -> None:
    import resource

    job = json.loads(stdin.readline())
    resource.setrlimit(resource.RLIMIT_AS, (job["memory"], job["memory"]))
    resource.setrlimit(resource.RLIMIT_CPU, (job["cpu"], job["cpu"]))
    from cove.services import scanning

    def read(start: int, end: int) -> bytes:
        out.write(b"R" + _RANGE.pack(start, min(end, start + CHUNK)))
        out.flush()
        (n,) = _U64.unpack(stdin.read(8))
        return stdin.read(n)

    source = Source(job["size"], read, Path(tempfile.gettempdir()), job["local_path"])
    verdict = failure = None
    try:
        verdict = scanning.scan_pickle(source, job["kind"])
    except MemoryError:  # the verdict is made once the except block has let go of the scanner's frames
        failure = f"could not be scanned within {job['memory'] >> 20} MiB of memory"
    except Exception as exc:  # noqa: BLE001 - whatever the scanner tripped on, the file is not shown safe
        failure = f"could not be scanned as {job['kind']}: {scanning._one_line(exc)}"
    if verdict is None:
        verdict = _unsafe(failure or "could not be scanned")
    body = json.dumps({"status": verdict.status, "report": verdict.report, "meta": verdict.meta}).encode()
    out.write(b"V" + _U64.pack(len(body)) + body)
    out.flush()


if __name__ == "__main__":
    _proto = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever else writes to stdout (a library's print) cannot garble the protocol
    _child(sys.stdin.buffer, _proto)
