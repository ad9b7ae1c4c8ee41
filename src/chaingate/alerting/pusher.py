"""Alert pusher: delivers every stored alert to the webhook, at least once, oldest first.

The ``alerts`` table is its own outbox: ``raise_alert`` stores a row in the transaction of the
event, and the pusher sends rows whose ``delivered_at`` is NULL, like the ledger dispatcher
sends ``ledger_outbox`` rows. Rows are claimed with ``FOR UPDATE SKIP LOCKED`` and a lease
(``next_attempt_at`` pushed forward and committed before sending), so several pushers never send
one alert at the same time and a crashed pusher's alerts come back when the lease runs out.
``delivered_at`` is set only after a 2xx; a crash between the answer and that update sends the
alert again, with the same ``id`` in the body and the ``X-Chaingate-Alert-Id`` header, so the
receiver can drop the duplicate.

A pass never starts a send that could outlive its lease: with a slow receiver it hands the rest
of its batch back (due at once). Order is oldest first per claim; an alert that is retried can
arrive after younger ones (receivers sort by ``id`` if they care).

Failures never drop an alert. Unreachable, 5xx, 408/425/429: retried with backoff (the rest of
the batch waits too). Another 4xx: the receiver refuses it, so the alert
is held for ``rejected_backoff`` (an hour by default) with its error, and the batch goes on; a
status that says the URL itself is wrong (401, 403, 404, 405, 410) holds the rest of the batch
too. ``chaingate ops alerts redeliver`` makes held alerts due again at once.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from chaingate.alerting.webhook import WebhookSink
from chaingate.delivery import quick_retries, run_passes
from chaingate.errors import AlertSinkRejectedError, AlertSinkUnavailableError
from chaingate.store.queue import Claim, LeasedQueue, QueueTable, backoff, worker_name

log = structlog.get_logger(__name__)

# Statuses that refuse the endpoint (auth, wrong path), not one alert: trying the rest of the
# batch would only repeat the refusal once per alert.
_ENDPOINT_REFUSED = frozenset({401, 403, 404, 405, 410})

# jsonb and numeric go out as text, so the pusher works the same on a plain pool and on the
# service's pool (whose jsonb codec would decode them), and amounts stay exact integers.
ALERTS = QueueTable(
    name="alerts",
    done_column="delivered_at",
    returning="""q.id, q.kind, q.severity, q.network, q.asset, q.amount::text AS amount, q.txid,
                 q.user_id, q.message, q.details::text AS details, q.created_at, q.attempts""",
)

_COUNTS = """
SELECT kind, severity,
       count(*) FILTER (WHERE acknowledged_at IS NULL) AS open,
       count(*) FILTER (WHERE delivered_at IS NULL) AS undelivered
FROM alerts WHERE acknowledged_at IS NULL OR delivered_at IS NULL
GROUP BY kind, severity
"""


@dataclass(frozen=True, slots=True)
class ClaimedAlert:
    id: int
    kind: str
    severity: str
    attempts: int
    payload: dict[str, Any]  # the webhook body
    claim: Claim


def webhook_payload(record: asyncpg.Record) -> dict[str, Any]:
    """The JSON body of one alert: amount as a string of base units, time as ISO 8601."""
    created: datetime = record["created_at"]
    return {
        "id": record["id"],
        "kind": record["kind"],
        "severity": record["severity"],
        "network": record["network"],
        "asset": record["asset"],
        "amount": record["amount"],
        "txid": record["txid"],
        "user_id": record["user_id"],
        "message": record["message"],
        "details": json.loads(record["details"]),
        "created_at": created.isoformat(),
    }


class AlertPusherMetrics:
    """Collectors of the pusher, registered on the registry the service hands in."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.delivered = Counter(
            "chaingate_alert_webhook_delivered",
            "Alerts the webhook acknowledged (2xx)",
            ["kind", "severity"],
            registry=registry,
        )
        self.failed = Counter(
            "chaingate_alert_webhook_failed",
            "Alert push attempts that failed (unavailable: retried soon; rejected: held)",
            ["reason"],
            registry=registry,
        )
        self.open = Gauge(
            "chaingate_alerts_open",
            "Stored alerts not acknowledged yet",
            ["kind", "severity"],
            registry=registry,
        )
        self.undelivered = Gauge(
            "chaingate_alerts_undelivered",
            "Stored alerts not pushed to the webhook yet",
            ["kind", "severity"],
            registry=registry,
        )


class AlertPusher:
    def __init__(
        self,
        db_pool: asyncpg.Pool,
        sink: WebhookSink,
        *,
        batch_size: int = 50,
        lease_seconds: float = 30,
        base_backoff: float = 1.0,
        max_backoff: float = 300,
        rejected_backoff: float = 3600,
        send_attempts: int = 2,
        retry_wait: float = 0.2,
        registry: CollectorRegistry | None = None,
        holder: str | None = None,
    ) -> None:
        self._db = db_pool
        self._queue = LeasedQueue(
            db_pool,
            ALERTS,
            holder=holder or worker_name("alert_pusher"),
            lease_seconds=lease_seconds,
        )
        self._sink = sink
        self._batch_size = batch_size
        self._lease = float(lease_seconds)
        self._base_backoff = base_backoff
        self._max_backoff = float(max_backoff)
        self._rejected_backoff = float(rejected_backoff)
        self._send_attempts = send_attempts
        self._retry_wait = retry_wait
        self.metrics = AlertPusherMetrics(registry or CollectorRegistry())
        # The longest one alert's send can take: every attempt timing out, plus the waits.
        self._send_budget = sink.push_timeout * send_attempts + retry_wait * 8 * (send_attempts - 1)

    def __repr__(self) -> str:
        return f"AlertPusher({self._sink!r})"

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        """Push until ``stop`` is set; a full batch is followed at once by the next."""
        log.info("alert_pusher_target", webhook=self._sink.target)
        await run_passes(
            self._pass, stop, interval=interval, batch_size=self._batch_size, event="alert_pusher"
        )

    async def _pass(self) -> int:
        claimed = await self.push_once()
        await self.refresh_gauges()
        return claimed

    async def push_once(self) -> int:
        """Claim due alerts and push them in id order; the number claimed."""
        loop = asyncio.get_running_loop()
        claimed_at = loop.time()
        alerts = await self._claim()
        for index, alert in enumerate(alerts):
            rest = [a.claim for a in alerts[index + 1 :]]
            if index and loop.time() - claimed_at + self._send_budget > self._lease:
                # A slow receiver: the next send could outlive our lease, and another pusher
                # could claim and send the same alert meanwhile. Hand the rest back instead.
                await self._queue.defer([alert.claim, *rest], 0)
                break
            try:
                await self._send(alert)
            except AlertSinkUnavailableError as exc:
                retry_in = backoff(alert.attempts, self._base_backoff, self._max_backoff)
                await self._record_failure(alert, str(exc), retry_in, "unavailable")
                # The webhook is down: the rest waits as long instead of each alert burning its
                # own retries against it.
                await self._queue.defer(rest, retry_in)
                break
            except AlertSinkRejectedError as exc:
                await self._record_failure(alert, str(exc), self._rejected_backoff, "rejected")
                if exc.status in _ENDPOINT_REFUSED:
                    await self._queue.defer(rest, self._rejected_backoff)
                    break
                continue
            await self._record_delivery(alert)
        return len(alerts)

    async def refresh_gauges(self) -> None:
        async with self._db.acquire() as conn:
            rows = await conn.fetch(_COUNTS)
        self.metrics.open.clear()
        self.metrics.undelivered.clear()
        for r in rows:
            self.metrics.open.labels(r["kind"], r["severity"]).set(r["open"])
            self.metrics.undelivered.labels(r["kind"], r["severity"]).set(r["undelivered"])

    async def _claim(self) -> list[ClaimedAlert]:
        return [
            ClaimedAlert(
                id=c.id,
                kind=c.record["kind"],
                severity=c.record["severity"],
                attempts=c.attempts,
                payload=webhook_payload(c.record),
                claim=c,
            )
            for c in await self._queue.claim(self._batch_size)
        ]

    async def _send(self, alert: ClaimedAlert) -> None:
        retrying = quick_retries(self._send_attempts, self._retry_wait, AlertSinkUnavailableError)
        await retrying(self._sink.push, alert.id, alert.payload)

    async def _record_delivery(self, alert: ClaimedAlert) -> None:
        if not await self._queue.complete(alert.claim):
            # Another pusher claimed it after our lease ran out; it pushes (with the same id)
            # and records it itself.
            log.warning("alert_push_lease_lost", alert_id=alert.id)
            return
        self.metrics.delivered.labels(alert.kind, alert.severity).inc()
        log.info(
            "alert_pushed",
            alert_id=alert.id,
            kind=alert.kind,
            severity=alert.severity,
            attempts=alert.attempts + 1,
        )

    async def _record_failure(
        self, alert: ClaimedAlert, error: str, retry_in: float, reason: str
    ) -> None:
        await self._queue.fail(alert.claim, error, retry_in)
        self.metrics.failed.labels(reason).inc()
        fields = {
            "alert_id": alert.id,
            "kind": alert.kind,
            "attempts": alert.attempts + 1,
            "retry_in": round(retry_in, 3),
            "error": error,
        }
        if reason == "rejected":
            log.error("alert_push_rejected", **fields)
        else:
            log.warning("alert_push_retry_later", **fields)
