"""Taking back a credit: a compensating ledger reversal through the outbox and a critical
alert, in the caller's transaction. Used when a reorg drops a credited deposit's block and when
a new block says something else about a credited deposit (its content changed)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from chaingate.domain import AlertKind, AlertSeverity, NewAlert
from chaingate.ledger.messages import Reversal, reversal_key
from chaingate.store import outbox
from chaingate.store.alerts import raise_alert


async def reverse_credits(
    conn: asyncpg.Connection, network: str, rows: Sequence[asyncpg.Record], *, reorg: bool
) -> list[AlertKind]:
    """Queue a reversal of each row's credit and alert it; the kinds of the new alerts.

    ``rows`` are deposits just marked reversed, by a reorg (``reorg``) or by
    ``deposits.reverse_changed`` (they then carry ``new_*`` columns: what the new block says).
    """
    raised: list[AlertKind] = []
    for row in rows:
        if reorg:
            reason = f"reorg: block {row['block_number']} left the chain"
            kind, details = AlertKind.REORG_REVERSAL, {"block_number": row["block_number"]}
            message = (
                f"credited deposit {row['txid']} left the chain in a reorg; "
                "a reversal was sent to the ledger"
            )
        else:
            reason = f"content_changed: re-mined in block {row['new_block_hash']}"
            kind, details = AlertKind.CONTENT_CHANGED, _changes(row)
            message = (
                f"credited deposit {row['txid']} {row['position']} was mined again saying "
                "something else; its credit was reversed and it is credited anew from the new "
                "block"
            )
        reversal = Reversal(
            idempotency_key=reversal_key(row["credit_key"]),
            credit_key=row["credit_key"],
            reason=reason,
        )
        await outbox.enqueue(conn, reversal.KIND, reversal.idempotency_key, reversal.body())
        alert = NewAlert(
            kind=kind,
            severity=AlertSeverity.CRITICAL,
            network=network,
            asset=row["asset"],
            amount=int(row["amount"]),
            txid=row["txid"],
            user_id=row["user_id"],
            dedup_key=f"reversal:{row['credit_key']}",
            message=message,
            details={"position": row["position"], "credit_key": row["credit_key"], **details},
        )
        if await raise_alert(conn, alert):
            raised.append(kind)
    return raised


def _changes(row: asyncpg.Record) -> dict[str, object]:
    return {
        "old": {"to": row["to_key"], "asset": row["asset"], "amount": str(int(row["amount"]))},
        "new": {
            "to": row["new_to_key"],
            "asset": row["new_asset"],
            "amount": str(int(row["new_amount"])),
            "block_hash": row["new_block_hash"],
        },
    }
