"""Request telemetry: Prometheus metrics and the access log, one hook around the whole app.

`CoveApp.__call__` runs `observe` around every HTTP request, and `cached_head` after each `HeadCache` answer.
Requests are labelled by the matched route's template (`/api/{plural}/{ns}/{name}`), never by the raw path: that bounds
the metrics' cardinality and keeps secrets out of the log (LFS object URLs carry a signed token in the path,
CAS fetch URLs a signature in the query). The query string is never logged.

With several uvicorn workers, set `PROMETHEUS_MULTIPROC_DIR` to an empty folder (`cove serve --workers N`
does it, under the data folder): each worker writes its values there and `/metrics` sums them all.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import re
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

_MULTIPROC = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_DOCS = {
    "cove_http_requests": "HTTP requests answered, by method, route template and status.",
    "cove_http_request_duration_seconds": "Time from a request's arrival to the end of its answer, by method and "
                                          "route template.",
    "cove_http_received_bytes": "Request body bytes received, by route template.",
    "cove_http_sent_bytes": "Response body bytes sent, by route template.",
    "cove_http_server_errors": "Requests answered with a 5xx status, by route template.",
    "cove_http_requests_in_progress": "Requests being answered now.",
}
UPLOADS = Counter("cove_uploads", "Uploads stored: LFS objects (whole or completed multipart), Xet xorbs and "
                  "shards.", ["protocol", "kind"])
UPLOAD_BYTES = Counter("cove_upload_bytes", "Bytes of accepted upload requests (LFS objects and parts, Xet "
                       "xorbs and shards).", ["protocol"])
COMMITS = Counter("cove_commits", "Successful commits: the commit API (`api`) and git pushes (`git`).", ["via"])
COMMIT_RETRIES = Counter("cove_commit_retries", "Commits rebuilt because their branch moved between read and "
                         "update (only a `git push` can: API commits to one branch queue).")
THREADS_BUSY = Gauge("cove_threadpool_busy", "Worker threads running blocking handlers (at the last scrape).",
                     multiprocess_mode="livesum")
THREADS_WAITING = Gauge("cove_threadpool_waiting", "Handlers queued for a worker thread (at the last scrape).",
                        multiprocess_mode="livesum")



class _Tally:
    """One (method, route, status)'s numbers: plain integers, changed only on the event loop's thread and read
    there at scrape time, so no locks (the library's metric objects cost ~3x more per request on the
    `HEAD /resolve` hot path)."""

    __slots__ = ("count", "seconds", "buckets", "bytes_in", "bytes_out")

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(_BOUNDS) + 1)
        self.bytes_in = 0
        self.bytes_out = 0


_tallies: dict[tuple[str, str, int], _Tally] = {}
_in_flight = [0]


class _TallyCollector:
    """Exposes `_tallies` as Prometheus counters and histograms (a custom collector, see prometheus_client)."""

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        requests = CounterMetricFamily("cove_http_requests", _DOCS["cove_http_requests"],
                                       labels=["method", "route", "status"])
        latency = HistogramMetricFamily("cove_http_request_duration_seconds",
                                        _DOCS["cove_http_request_duration_seconds"], labels=["method", "route"])
        received = CounterMetricFamily("cove_http_received_bytes", _DOCS["cove_http_received_bytes"],
                                       labels=["route"])
        sent = CounterMetricFamily("cove_http_sent_bytes", _DOCS["cove_http_sent_bytes"], labels=["route"])
        errors = CounterMetricFamily("cove_http_server_errors", _DOCS["cove_http_server_errors"], labels=["route"])
        by_route: dict[str, list[int]] = {}
        by_method_route: dict[tuple[str, str], list] = {}
        for (method, route, status), t in list(_tallies.items()):
            requests.add_metric([method, route, str(status)], t.count)
            r = by_route.setdefault(route, [0, 0, 0])
            r[0] += t.bytes_in
            r[1] += t.bytes_out
            if status >= 500:
                r[2] += t.count
            h = by_method_route.setdefault((method, route), [[0] * (len(_BOUNDS) + 1), 0.0])
            h[0] = [a + b for a, b in zip(h[0], t.buckets, strict=True)]
            h[1] += t.seconds
        for (method, route), (buckets, total) in by_method_route.items():
            cumulative, acc = [], 0
            for bound, n in zip((*_BOUNDS, float("inf")), buckets, strict=True):
                acc += n
                cumulative.append(("+Inf" if bound == float("inf") else str(bound), acc))
            latency.add_metric([method, route], cumulative, total)
        for route, (b_in, b_out, n_err) in by_route.items():
            received.add_metric([route], b_in)
            sent.add_metric([route], b_out)
            if n_err:
                errors.add_metric([route], n_err)
        yield from (requests, latency, received, sent, errors)
        yield GaugeMetricFamily("cove_http_requests_in_progress", _DOCS["cove_http_requests_in_progress"],
                                value=_in_flight[0])


if _MULTIPROC:  # every worker's values in files: the library's metric objects
    REQUESTS = Counter("cove_http_requests", _DOCS["cove_http_requests"], ["method", "route", "status"])
    LATENCY = Histogram("cove_http_request_duration_seconds", _DOCS["cove_http_request_duration_seconds"],
                        ["method", "route"], buckets=_BOUNDS)
    BYTES_IN = Counter("cove_http_received_bytes", _DOCS["cove_http_received_bytes"], ["route"])
    BYTES_OUT = Counter("cove_http_sent_bytes", _DOCS["cove_http_sent_bytes"], ["route"])
    ERRORS = Counter("cove_http_server_errors", _DOCS["cove_http_server_errors"], ["route"])
    IN_FLIGHT = Gauge("cove_http_requests_in_progress", _DOCS["cove_http_requests_in_progress"],
                      multiprocess_mode="livesum")
else:
    from prometheus_client import REGISTRY

    REGISTRY.register(_TallyCollector())

UNMATCHED = "(unmatched)"
_CAS = "/cas"

# (method, route template suffix) -> what a 2xx answer counts as.
_UPLOAD_ROUTES = {
    ("PUT", "/lfs/objects/{token}"): ("lfs", "object", True),
    ("PUT", "/lfs/objects/{token}/parts/{n}"): ("lfs", None, True),
    ("POST", "/lfs/objects/{token}/complete"): ("lfs", "object", False),
    ("POST", _CAS + "/v1/xorbs/{prefix}/{xorb_hash}"): ("xet", "xorb", True),
    ("PUT", _CAS + "/xorb-uploads/{xorb_hash}/{grant_id}"): ("xet", "xorb", True),
    ("POST", _CAS + "/v1/shards"): ("xet", "shard", True),
    ("POST", _CAS + "/v2/shards"): ("xet", "shard", True),
}


def _classify(method: str, template: str) -> tuple[Any, ...] | None:
    """What a 2xx answer on this route means beyond the request itself: an upload or a commit."""
    up = _UPLOAD_ROUTES.get((method, template))
    if up is not None:
        return ("upload", *up)
    if method == "POST" and (template.endswith("/commit/{rev:path}") or template.endswith("/git-receive-pack")):
        return ("commit", "git" if template.endswith("/git-receive-pack") else "api")
    return None


_kinds: dict[tuple[str, str], tuple[Any, ...] | None] = {}
_children: dict[tuple[str, str, int], tuple[Any, Any, Any, Any]] = {}


def _metrics_for(method: str, route: str, status: int) -> tuple[Any, Any, Any, Any]:
    key = (method, route, status)
    got = _children.get(key)
    if got is None:
        got = (REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route),
               BYTES_IN.labels(route), BYTES_OUT.labels(route))
        if len(_children) < 20_000:
            _children[key] = got
    return got


def cached_head_route(path: str) -> str:
    """The route template of a HEAD /resolve that `HeadCache` answered (it never reaches the router)."""
    for prefix in ("/datasets", "/spaces"):
        if path.startswith(prefix + "/"):
            return prefix + "/{ns}/{name}/resolve/{rev}/{path:path}"
    return "/{ns}/{name}/resolve/{rev}/{path:path}"


def route_of(scope: dict) -> str:
    """The matched route's template, or `(unmatched)`: never the raw path."""
    route = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED


_UNSAFE = re.compile(r"[^A-Za-z0-9._:/+=-]")


def _log_safe(value: str) -> str:
    """A client-chosen id as one log field: at most 128 characters, no spaces or controls (no forged fields)."""
    value = value[:128]
    return _UNSAFE.sub("_", value) if _UNSAFE.search(value) else value


def _user(scope: dict) -> str:
    actor = (scope.get("state") or {}).get("actor")
    if actor is not None:
        return actor.name or "anonymous"
    for k, _ in scope["headers"]:
        if k == b"authorization":
            return "(token)"
    return "anonymous"


class AccessLog:
    """One line per request on stderr, `text` or `json`. Lines are written in batches (at most 4 KiB, one
    `write` each, so lines of several workers never interleave; at the latest 0.25 s after the first, and at
    exit): a `write` per request was most of the log's cost on the `HEAD /resolve` hot path."""

    MAX_BATCH = 4096
    DELAY = 0.25

    def __init__(self, fmt: str, fd: int = 2) -> None:
        self.json = fmt == "json"
        self.fd = fd
        self._buf: list[bytes] = []
        self._size = 0
        self._scheduled = False
        self._second = -1
        self._stamp = ""
        atexit.register(self.flush)

    def write(self, *, rid: str, user: str, client: str, method: str, route: str, status: int, bytes_in: int,
              bytes_out: int, seconds: float) -> None:
        now = time.time()
        if self.json:
            line = json.dumps({"time": round(now, 3), "request_id": rid, "user": user, "client": client,
                               "method": method, "route": route, "status": status, "bytes_in": bytes_in,
                               "bytes_out": bytes_out, "duration_ms": round(seconds * 1000, 2)})
        else:
            second = int(now)
            if second != self._second:
                self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
            line = (f"{self._stamp} {rid} {client} {user} {method} {route} {status} in={bytes_in} "
                    f"out={bytes_out} {seconds * 1000:.1f}ms")
        data = (line + "\n").encode("utf-8", "replace")
        if self._size + len(data) > self.MAX_BATCH:
            self.flush()
        self._buf.append(data)
        self._size += len(data)
        if not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._scheduled = True
            loop.call_later(self.DELAY, self._timed_flush)

    def _timed_flush(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        if not self._buf:
            return
        data = b"".join(self._buf)
        self._buf.clear()
        self._size = 0
        with contextlib.suppress(OSError):
            while data:
                data = data[os.write(self.fd, data):]


class Telemetry:
    """Counts and logs each request; `observe` wraps the app's call for one request."""

    def __init__(self, access_log: str = "text") -> None:
        off = access_log.strip().lower() in ("off", "false", "0", "no", "none", "")
        self.access = None if off else AccessLog(access_log.strip().lower())

    def cached_head(self, scope: dict, seconds: float) -> None:
        """Record a `HEAD /resolve` that `HeadCache` answered (200, no body) under the resolve route."""
        self.cached(scope, "HEAD", cached_head_route(scope["path"]), 0, seconds)

    def cached(self, scope: dict, method: str, route: str, sent: int, seconds: float) -> None:
        """Record a 200 that a cache in front of the router answered (`HeadCache`, `InfoCache`)."""
        self.record(method, route, 200, 0, sent, seconds)
        if self.access is not None:
            client = scope.get("client")
            self.access.write(rid=_log_safe(scope["state"]["request_id"]), user=_user(scope),
                              client=client[0] if client else "-", method=method, route=route, status=200,
                              bytes_in=0, bytes_out=sent, seconds=seconds)

    async def observe(self, scope: dict, receive: Callable, send: Callable,
                      call: Callable[[Callable, Callable], Awaitable[None]]) -> None:
        """Run `call(receive, send)` for one HTTP request and record it."""
        start = time.perf_counter()
        status = 0
        sent = 0
        received = 0

        async def counting_send(message: dict) -> None:
            nonlocal status, sent
            t = message["type"]
            if t == "http.response.start":
                status = message["status"]
            elif t == "http.response.body":
                sent += len(message.get("body", b""))
            elif t == "http.response.zerocopy":  # cove.zerocopy: bytes the kernel sends from a file
                sent += message["count"]
            elif t == "http.response.pathsend":
                sent += os.stat(message["path"]).st_size
            await send(message)

        async def counting_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        if _MULTIPROC:
            IN_FLIGHT.inc()
        else:
            _in_flight[0] += 1
        try:
            await call(counting_receive, counting_send)
        finally:
            if _MULTIPROC:
                IN_FLIGHT.dec()
            else:
                _in_flight[0] -= 1
            seconds = time.perf_counter() - start
            status = status or 500
            method = scope["method"]
            route = route_of(scope)
            self.record(method, route, status, received, sent, seconds)
            if self.access is not None:
                client = scope.get("client")
                self.access.write(rid=_log_safe((scope.get("state") or {}).get("request_id", "-")), user=_user(scope),
                                  client=client[0] if client else "-", method=method, route=route, status=status,
                                  bytes_in=received, bytes_out=sent, seconds=seconds)

    def flush(self) -> None:
        """Write out the access log lines still buffered."""
        if self.access is not None:
            self.access.flush()

    @staticmethod
    def record(method: str, route: str, status: int, received: int, sent: int, seconds: float) -> None:
        if _MULTIPROC:
            requests, latency, bytes_in, bytes_out = _metrics_for(method, route, status)
            requests.inc()
            latency.observe(seconds)
            if received:
                bytes_in.inc(received)
            if sent:
                bytes_out.inc(sent)
            if status >= 500:
                ERRORS.labels(route).inc()
        else:
            key = (method, route, status)
            t = _tallies.get(key)
            if t is None:
                t = _tallies[key] = _Tally()
            t.count += 1
            t.seconds += seconds
            t.buckets[bisect_left(_BOUNDS, seconds)] += 1
            t.bytes_in += received
            t.bytes_out += sent
        if 200 <= status < 300:
            key = (method, route)
            if key not in _kinds:
                _kinds[key] = _classify(method, route)
            kind = _kinds[key]
            if kind is None:
                return
            if kind[0] == "commit":
                COMMITS.labels(kind[1]).inc()
                return
            _, protocol, what, has_body = kind
            if what is not None:
                UPLOADS.labels(protocol, what).inc()
            if has_body and received:
                UPLOAD_BYTES.labels(protocol).inc(received)


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format (summed over every worker in multiprocess mode)."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    try:
        import anyio.to_thread

        stats = anyio.to_thread.current_default_thread_limiter().statistics()
        THREADS_BUSY.set(stats.borrowed_tokens)
        THREADS_WAITING.set(stats.tasks_waiting)
    except Exception:  # noqa: BLE001,S110 - outside an event loop: no thread pool to report
        pass
    if _MULTIPROC:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
