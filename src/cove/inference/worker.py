"""A model worker: `python -m cove.inference.worker KIND PATH`, one process per loaded model (the arguments
only name it in `ps`: what to load comes on stdin).

It speaks JSON lines: requests on stdin, answers on the stdout it was started with (its own prints go to
stderr). The first request loads the model: ``{"op": "load", "path", "kind", "threads"}`` -> ``{"op": "loaded",
"rss"}`` (or ``{"op": "failed", "error"}``). Then, one at a time:

- ``{"op": "batch", "id", "task", "items": [{"inputs", "parameters"}]}`` -> ``{"id", "results": [{"ok": ...} |
  {"error", "status"}]}``
- ``{"op": "embed", "id", "texts"}`` -> ``{"id", "results": [{"ok": {"vectors": [[...], ...], "tokens"}}]}``
- ``{"op": "generate", "id", "prompt" | "messages", "parameters", "max_new_tokens"}`` -> ``{"id", "token"}``...
  then ``{"id", "done"}`` (or ``{"id", "error", "status"}``).

It ends when stdin closes, and with its parent (Linux: PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import traceback


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _first_to_go() -> None:
    """Out of memory, the kernel kills this worker before the hub (the server answers its requests 500)."""
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as fh:
        fh.write("1000")


def _rss() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _error(exc: BaseException) -> dict:
    from cove.inference.tasks import InputError

    if isinstance(exc, InputError):
        return {"error": str(exc), "status": 400}
    return {"error": f"{type(exc).__name__}: {exc}", "status": 500}


def main() -> None:
    _die_with_parent()
    _first_to_go()
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # stray prints (transformers' warnings) go to stderr, never into the answers
    sys.stdout = sys.stderr

    def send(msg: dict) -> None:
        out.write(json.dumps(msg, allow_nan=False) + "\n")
        out.flush()

    loaded = None
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        op = msg.get("op")
        if op == "load":
            try:
                import torch

                torch.set_num_threads(max(1, int(msg.get("threads") or 1)))
                from cove.inference.tasks import Loaded

                loaded = Loaded(msg["path"], msg["kind"])
                send({"op": "loaded", "rss": _rss()})
            except Exception as exc:  # noqa: BLE001 - reported to the server, which answers the requests
                traceback.print_exc()
                send({"op": "failed", "error": f"{type(exc).__name__}: {exc}"})
                return
            continue
        rid = msg.get("id")
        try:
            if op == "batch":
                results = loaded.run_batch(msg["task"], msg["items"])
                send({"id": rid, "results": [_error(r) if isinstance(r, Exception) else {"ok": r} for r in results]})
            elif op == "embed":
                n = sum(len(ids) for ids in loaded.tokenizer(msg["texts"]).input_ids)
                send({"id": rid, "results": [{"ok": {"vectors": loaded.embed(msg["texts"]), "tokens": n}}]})
            elif op == "generate":
                prompt = msg.get("prompt")
                if prompt is None:
                    prompt = loaded.chat_prompt(msg["messages"])
                for event in loaded.generate(prompt, msg.get("parameters") or {}, int(msg["max_new_tokens"])):
                    send({"id": rid, **event})
            else:
                send({"id": rid, "error": f"unknown op {op!r}", "status": 500})
        except Exception as exc:  # noqa: BLE001
            if not isinstance(exc, ValueError):
                traceback.print_exc()
            send({"id": rid, **_error(exc)})


if __name__ == "__main__":
    main()
