"""What a file's bytes are: pickle imports (picklescan), safetensors and GGUF headers (their own libraries).

Pure functions of the bytes and a *kind* (chosen from the file name, see `kind_for`): the result is stored
per (content, kind), so one content named `x.txt` and `x.pkl` is looked at once for each way a loader would
read it. Nothing here loads a tensor or unpickles anything.
"""

from __future__ import annotations

import io
import math
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

#: Extensions a pickle-based loader reads (torch.load, joblib, pickle, numpy with allow_pickle).
_PYTORCH = {".bin", ".pt", ".pth", ".ckpt"}
_PICKLE = {".pkl", ".pickle", ".joblib", ".dat", ".data", ".zip", ".npz"}
_NUMPY = {".npy"}
SCANNED_SUFFIXES = (*_PYTORCH, *_PICKLE, *_NUMPY, ".safetensors", ".gguf")
#: safetensors refuses headers larger than this (its own limit); so do we.
MAX_SAFETENSORS_HEADER = 100_000_000
#: A GGUF header (metadata and tensor table) larger than this is not parsed: the file is reported unsafe.
MAX_GGUF_HEADER = 256 << 20
_SAFE, _UNSAFE = "safe", "unsafe"


def kind_for(path: str) -> str:
    """How a loader would read the file at `path`: pytorch | pickle | numpy | safetensors | gguf | other."""
    low = path.lower()
    ext = low[low.rfind("."):] if "." in low.rsplit("/", 1)[-1] else ""
    if ext in _PYTORCH:
        return "pytorch"
    if ext in _PICKLE:
        return "pickle"
    if ext in _NUMPY:
        return "numpy"
    if ext in (".safetensors", ".gguf"):
        return ext[1:]
    return "other"


@dataclass(frozen=True)
class Limits:
    """What the child process that scans one pickle-based file may use (`cove.services.scan_sandbox`)."""

    memory: int  # bytes of address space
    cpu_seconds: int  # CPU time; the wall clock allows twice that


class SourceUnavailable(Exception):  # noqa: N818 - not an error in the file, a miss in the storage
    """The bytes could not be read now (storage error): nothing is concluded about the file."""


@dataclass
class Source:
    """A file's bytes: `read(start, end)` gives `[start, end)`; `local_path` when a whole copy is on disk."""

    size: int
    read: Callable[[int, int], bytes]
    tmp_dir: Path
    local_path: str | None = None


@dataclass
class Verdict:
    status: str  # safe | unsafe
    report: dict = field(default_factory=dict)  # pickleImportScan, headerScan, findings, scanner
    meta: dict | None = None  # safetensors {"parameters", "total"} or gguf {"total", "architecture", ...}


#: Pickles up to this size (not zips: they inflate) are scanned in the server's process; see `scan_sandbox`.
SMALL_PICKLE = 64 << 10


def scan(source: Source, kind: str, limits: Limits | None = None) -> Verdict:
    """Scan `source` as `kind`; a scanner error makes the file unsafe (it could not be shown to be safe).
    With `limits`, a pickle-based file (other than a small plain pickle) is scanned in a child process under
    them (`cove.services.scan_sandbox`)."""
    head = source.read(0, min(source.size, 8)) if kind not in ("safetensors", "gguf") else b""
    if kind == "other":
        kind = _sniff(head)
        if kind == "plain":
            return Verdict(_SAFE, _report(findings=[]))
    try:
        if kind == "safetensors":
            return _safetensors(source)
        if kind == "gguf":
            return _gguf(source)
        if limits is not None and (source.size > SMALL_PICKLE or not head.startswith(_PLAIN_PICKLE_HEADS)):
            from cove.services import scan_sandbox

            return scan_sandbox.scan(source, kind, limits)
        return scan_pickle(source, kind)
    except SourceUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the scanner tripped on, the file is not shown safe
        return Verdict(_UNSAFE, _report(findings=[f"could not be scanned as {kind}: {_one_line(exc)}"]))


#: First bytes of a pickle (protocols 2-5) or an npy file; anything else (a zip, a 7z) may inflate.
_PLAIN_PICKLE_HEADS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"\x93NUMPY")


def _sniff(head: bytes) -> str:
    """The kind of a file whose name says nothing, from its first bytes."""
    if head.startswith(b"GGUF"):
        return "gguf"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "pickle"  # a zip: picklescan looks at the pickles inside (torch.save's format)
    if head.startswith(b"\x93NUMPY"):
        return "numpy"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    return "plain"


def _report(*, findings: list[str], pickle: dict | None = None, header: dict | None = None) -> dict:
    return {"pickleImportScan": pickle, "headerScan": header, "findings": findings,
            "scanner": f"cove (picklescan {version('picklescan')})"}


def _one_line(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).replace("\n", " ")[:300]


# -- pickles ------------------------------------------------------------------------------------


class _RangeIO(io.RawIOBase):
    """A seekable file over `Source.read`, so picklescan can read a zip's directory without the whole file."""

    def __init__(self, source: Source) -> None:
        self._src = source
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._src.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buf) -> int:  # noqa: ANN001
        end = min(self._src.size, self._pos + len(buf))
        if end <= self._pos:
            return 0
        data = self._src.read(self._pos, end)
        buf[: len(data)] = data
        self._pos += len(data)
        return len(data)


@contextmanager
def _opened(source: Source) -> Iterator[io.BufferedReader]:
    if source.local_path is not None:
        with open(source.local_path, "rb") as fh:
            yield fh  # type: ignore[misc]
        return
    with io.BufferedReader(_RangeIO(source), buffer_size=64 << 10) as fh:  # zips: many small reads
        yield fh


def scan_pickle(source: Source, kind: str) -> Verdict:
    """picklescan's verdict on a pickle-based file (in this process: mind `scan_sandbox`)."""
    from picklescan.scanner import SafetyLevel, scan_bytes

    ext = {"pytorch": ".bin", "numpy": ".npy", "pickle": ".pkl"}[kind]
    with _opened(source) as fh:
        result = scan_bytes(fh, "file", ext)
    order = [SafetyLevel.Innocuous, SafetyLevel.Suspicious, SafetyLevel.Dangerous]
    imports = sorted({(g.module, g.name, g.safety.value) for g in result.globals})
    highest = max((order.index(g.safety) for g in result.globals), default=0)
    scan_json = {"highestSafetyLevel": order[highest].value,
                 "imports": [{"module": m, "name": n, "safety": s} for m, n, s in imports]}
    findings = [f"imports {m}.{n} ({s})" for m, n, s in imports if s != SafetyLevel.Innocuous.value]
    if result.scan_err:
        findings.append("the pickle stream could not be read to its end")
    status = _UNSAFE if findings else _SAFE
    return Verdict(status, _report(findings=findings, pickle=scan_json if result.globals else None))


# -- headers ------------------------------------------------------------------------------------


@contextmanager
def _materialized(source: Source, prefix: int) -> Iterator[str]:
    """A path to the file for a library that memory-maps it: the file itself when local, else a sparse copy
    of the right size holding only its first `prefix` bytes (the header; the tensors are never read)."""
    if source.local_path is not None:
        yield source.local_path
        return
    source.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=source.tmp_dir, prefix="scan-", suffix=".part") as fh:
        pos = 0
        while pos < prefix:
            end = min(prefix, pos + (8 << 20))
            fh.write(source.read(pos, end))
            pos = end
        fh.truncate(source.size)
        fh.flush()
        yield fh.name


def _malformed(fmt: str, error: str) -> Verdict:
    return Verdict(_UNSAFE, _report(findings=[f"malformed {fmt} header: {error}"],
                                    header={"format": fmt, "valid": False, "error": error}))


def _safetensors(source: Source) -> Verdict:
    if source.size < 8:
        return _malformed("safetensors", "file shorter than the 8-byte header length")
    n = int.from_bytes(source.read(0, 8), "little")
    if n > MAX_SAFETENSORS_HEADER or 8 + n > source.size:
        return _malformed("safetensors", f"header length {n} does not fit the file")
    from safetensors import SafetensorError, safe_open

    params: dict[str, int] = {}
    try:
        with _materialized(source, 8 + n) as path, safe_open(path, framework="numpy") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                sl = f.get_slice(name)
                dtype = sl.get_dtype()
                params[dtype] = params.get(dtype, 0) + math.prod(sl.get_shape())
    except (SafetensorError, OSError, ValueError) as exc:
        return _malformed("safetensors", _one_line(exc))
    meta = {"parameters": params, "total": sum(params.values())}
    return Verdict(_SAFE, _report(findings=[], header={"format": "safetensors", "valid": True, "error": None}), meta)


def _gguf(source: Source) -> Verdict:
    from gguf import GGUFReader

    prefix = min(source.size, 1 << 20)
    while True:
        reader, error = None, None
        with _materialized(source, prefix) as path:
            try:
                reader = GGUFReader(path)
            except Exception as exc:  # noqa: BLE001 - the reader raises many kinds on bad input
                error = _one_line(exc)
            covered = source.local_path is not None or prefix >= source.size
            if reader is not None and (covered or reader.data_offset <= prefix):
                return _gguf_verdict(reader)
        if covered:
            return _malformed("gguf", error or "header runs past the end of the file")
        if prefix >= MAX_GGUF_HEADER:
            return _malformed("gguf", f"header larger than {MAX_GGUF_HEADER} bytes")
        prefix = min(source.size, prefix * 4, MAX_GGUF_HEADER)


def _gguf_verdict(reader) -> Verdict:  # noqa: ANN001
    def value(key: str):  # noqa: ANN202
        f = reader.get_field(key)
        try:
            return f.contents() if f is not None else None
        except Exception:  # noqa: BLE001 - a field of an unexpected type is left out
            return None

    meta: dict = {"total": int(sum(int(t.n_elements) for t in reader.tensors))}
    arch = value("general.architecture")
    if isinstance(arch, str):
        meta["architecture"] = arch
        ctx = value(f"{arch}.context_length")
        if isinstance(ctx, int):
            meta["context_length"] = ctx
    return Verdict(_SAFE, _report(findings=[], header={"format": "gguf", "valid": True, "error": None}), meta)
