"""The alert raised when an endpoint turns out to serve another chain.

The provider pool knows nothing about the database: it reports a ``WrongChain`` to a sink, and
this is the sink the service (and the tests) wire to the alert store.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from chaingate.domain import AlertKind, AlertSeverity, NewAlert
from chaingate.providers.identity import WrongChain, WrongChainSink
from chaingate.store.alerts import raise_alert

WRONG_CHAIN_KIND = AlertKind.ENDPOINT_WRONG_CHAIN


def wrong_chain_alert(event: WrongChain, day: str) -> NewAlert:
    """Critical, once a day per endpoint and chain it serves (a bad URL must not flood ops)."""
    return NewAlert(
        kind=WRONG_CHAIN_KIND,
        severity=AlertSeverity.CRITICAL,
        message=(
            f"endpoint {event.endpoint} of {event.network} serves another chain "
            f"({event.what} {event.observed}, expected {event.expected}); it is taken out"
        ),
        dedup_key=f"{WRONG_CHAIN_KIND}:{event.network}:{event.endpoint}:{event.observed}:{day}",
        network=event.network,
        details={
            "endpoint": event.endpoint,
            "what": event.what,
            "expected": event.expected,
            "observed": event.observed,
        },
    )


def wrong_chain_alerts(db: asyncpg.Pool) -> WrongChainSink:
    """A sink storing each ``WrongChain`` as an alert (pushed to the webhook like any other)."""

    async def sink(event: WrongChain) -> None:
        day = datetime.now(UTC).date().isoformat()
        async with db.acquire() as conn:
            await raise_alert(conn, wrong_chain_alert(event, day))

    return sink
