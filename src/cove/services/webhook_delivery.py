"""The webhook worker: one thread per `cove serve` process sends the queued deliveries (`cove.services.webhooks`).

A due row is claimed by one atomic UPDATE (``pending`` → ``delivering``, with a lease), so with several
processes each try is made once; a claim whose process died is taken over when its lease ends. A try that
fails (no answer, or not 2xx) is retried after `webhook_retry_base` seconds, doubling each time, and given up
after `webhook_max_attempts` tries. Each try is logged on the row (time, status code, error).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import and_, delete, or_, select, update

from cove import lifespan
from cove.api.shapes import iso
from cove.backends import Backends
from cove.db.tables import Repo, Webhook, WebhookDelivery, utcnow
from cove.services import webhooks

log = logging.getLogger("cove.webhooks")
BATCH = 50
PRUNE_EVERY_S = 3600.0


def _due(now):  # noqa: ANN001, ANN202
    return or_(and_(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now),
               and_(WebhookDelivery.status == "delivering", WebhookDelivery.claimed_until < now))


def blocked_address(url: str) -> str | None:
    """Why `url`'s host may not be delivered to under `webhook_block_private`, or None."""
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError as exc:
        return f"cannot resolve {host}: {exc}"
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if not ip.is_global or ip.is_multicast:
            return f"{host} resolves to a non-public address ({ip}), refused by COVE_WEBHOOK_BLOCK_PRIVATE"
    return None


class DeliveryWorker:
    def __init__(self, bk: Backends) -> None:
        self.bk = bk
        self.settings = bk.settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None  # made at the first delivery: its TLS set-up is ~10 % of start-up
        self._client_lock = threading.Lock()
        self._last_prune = float("-inf")

    @property
    def client(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.settings.webhook_timeout, follow_redirects=False,
                                            headers={"User-Agent": "cove-webhooks"})
            return self._client

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cove-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        webhooks.WAKE.set()
        if self._thread is not None:
            self._thread.join(self.settings.webhook_timeout + 5)
        with self._client_lock:
            if self._client is not None:
                self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            busy = False
            try:
                busy = self.poll() > 0
            except Exception:  # noqa: BLE001 - the worker outlives any one bad poll
                log.exception("webhook worker poll failed")
            if not busy and not self._stop.is_set():
                webhooks.WAKE.wait(self.settings.webhook_poll_interval)
                webhooks.WAKE.clear()  # before the poll: a commit after this is seen by it or wakes the next

    def poll(self) -> int:
        """Send what is due now, oldest first; how many rows were due."""
        if time.monotonic() - self._last_prune >= PRUNE_EVERY_S:
            self.prune()
        with self.bk.db.session() as db:
            ids = db.scalars(select(WebhookDelivery.id).where(_due(utcnow()))
                             .order_by(WebhookDelivery.id).limit(BATCH)).all()
        for row_id in ids:
            if self._stop.is_set():
                break
            if self.claim(row_id):
                self.deliver(row_id)
        return len(ids)

    def claim(self, row_id: int) -> bool:
        now = utcnow()
        lease = timedelta(seconds=self.settings.webhook_timeout + 60)
        with self.bk.db.session() as db:
            res = db.execute(update(WebhookDelivery).where(WebhookDelivery.id == row_id, _due(now)).values(
                status="delivering", claimed_until=now + lease, attempts=WebhookDelivery.attempts + 1))
            return res.rowcount == 1

    def _skip_reason(self, db, row: WebhookDelivery, wh: Webhook) -> str | None:  # noqa: ANN001
        if wh.disabled:
            return "the webhook is disabled"
        repo = db.get(Repo, row.repo_pk) if row.repo_pk is not None else None
        if repo is None:
            # A deletion was checked when queued; any other event of a repo gone since is dropped.
            return None if row.payload.get("event", {}).get("action") == "delete" else "the repo no longer exists"
        if not webhooks.owner_may_read(db, wh, repo):
            return "the webhook's owner cannot read this repo"
        return None

    def deliver(self, row_id: int) -> None:
        """One try of a claimed row; the HTTP call is made with no transaction open."""
        with self.bk.db.session() as db:
            row = db.get(WebhookDelivery, row_id)
            wh = db.get(Webhook, row.webhook_id) if row is not None else None
            if row is None or wh is None:
                return
            reason = self._skip_reason(db, row, wh)
            if reason is not None:
                row.status, row.finished_at, row.claimed_until = "skipped", utcnow(), None
                row.log = [*row.log, {"at": iso(utcnow()), "statusCode": None, "error": reason}]
                return
            url, secret = wh.url, wh.secret
            payload = webhooks.absolute(row.payload, self.settings.public_endpoint)
        code, error = self._post(url, secret, payload)
        now = utcnow()
        with self.bk.db.session() as db:
            row = db.get(WebhookDelivery, row_id)
            if row is None:
                return
            row.log = [*row.log, {"at": iso(now), "statusCode": code, "error": error}][-50:]
            row.claimed_until = None
            if code is not None and 200 <= code < 300:
                row.status, row.finished_at = "delivered", now
            elif row.attempts >= self.settings.webhook_max_attempts:
                row.status, row.finished_at = "failed", now
                log.info("webhook %s: delivery %s given up after %s tries: %s", row.webhook_id, row.id,
                         row.attempts, error)
            else:
                wait = min(self.settings.webhook_retry_base * 2 ** (row.attempts - 1), self.settings.webhook_retry_max)
                row.status, row.next_attempt_at = "pending", now + timedelta(seconds=wait)

    def _post(self, url: str, secret: str | None, payload: dict) -> tuple[int | None, str | None]:
        if self.settings.webhook_block_private and (why := blocked_address(url)):
            return None, why
        headers = {"X-Webhook-Secret": secret} if secret else {}
        try:
            with self.client.stream("POST", url, json=payload, headers=headers) as resp:
                if 200 <= resp.status_code < 300:
                    return resp.status_code, None
                head = next(resp.iter_bytes(200), b"")[:200]  # the start of the answer, never all of it
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        return resp.status_code, f"HTTP {resp.status_code}: {head.decode('utf-8', 'replace')}"

    def prune(self) -> None:
        """Drop finished deliveries older than `webhook_log_days`."""
        self._last_prune = time.monotonic()
        cutoff = utcnow() - timedelta(days=self.settings.webhook_log_days)
        with self.bk.db.session() as db:
            db.execute(delete(WebhookDelivery).where(WebhookDelivery.status.in_(("delivered", "failed", "skipped")),
                                                     WebhookDelivery.finished_at < cutoff))


def run_worker_with(app, bk: Backends) -> None:  # noqa: ANN001
    """Run a `DeliveryWorker` for the app's lifetime (inside its lifespan), unless `webhook_poll_interval` is 0."""
    if bk.settings.webhook_poll_interval <= 0:
        return
    lifespan.run_worker(app, lambda: DeliveryWorker(bk))
