"""What each reference-ledger request does to the books.

Every function runs inside the transaction that also records the idempotency key, so an effect
and its stored answer commit together or not at all. A refusal raises ``EffectRefusedError``;
the transaction then rolls back and the key stays free (a later retry may succeed, e.g. a
reversal whose credit had not arrived yet).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg

from chaingate.errors import LedgerError
from chaingate.ledger.messages import FUNDS_RETURNED_STATUSES, Credit, Reversal, WithdrawalEvent

Answer = tuple[int, dict[str, Any]]


class EffectRefusedError(LedgerError):
    """Raised when a valid request cannot be applied; the app answers ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = code


async def _add_to_balance(
    conn: asyncpg.Connection, user_id: str, network: str, asset: str, delta: int
) -> int:
    row = await conn.fetchrow(
        """
        INSERT INTO refledger.balances AS b (user_id, network, asset, amount)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (user_id, network, asset) DO UPDATE SET amount = b.amount + EXCLUDED.amount
        RETURNING amount
        """,
        user_id,
        network,
        asset,
        Decimal(delta),
    )
    return int(row["amount"])


async def apply_credit(conn: asyncpg.Connection, req: Credit) -> Answer:
    try:
        await conn.execute(
            """
            INSERT INTO refledger.credits (credit_key, user_id, network, asset, amount, decimals,
                                           txid, position, block_number)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            """,
            req.idempotency_key,
            req.user_id,
            req.network,
            req.asset,
            Decimal(req.amount),
            req.decimals,
            req.txid,
            req.position,
            req.block_number,
        )
    except asyncpg.UniqueViolationError as exc:
        # Another key already credited this (network, txid, position): crediting it again
        # would count one deposit twice.
        raise EffectRefusedError(
            409, "duplicate_deposit", "this deposit is already credited under another key"
        ) from exc
    balance = await _add_to_balance(conn, req.user_id, req.network, req.asset, req.amount)
    return 201, {
        "credit_key": req.idempotency_key,
        "user_id": req.user_id,
        "network": req.network,
        "asset": req.asset,
        "amount": str(req.amount),
        "balance": str(balance),
    }


async def apply_reversal(conn: asyncpg.Connection, req: Reversal) -> Answer:
    credit = await conn.fetchrow(
        "SELECT * FROM refledger.credits WHERE credit_key = $1 FOR UPDATE", req.credit_key
    )
    if credit is None:
        raise EffectRefusedError(404, "unknown_credit", "no credit with this credit_key")
    if credit["reversed"]:
        raise EffectRefusedError(
            409, "already_reversed", f"credit was already reversed by {credit['reversal_key']}"
        )
    await conn.execute(
        "UPDATE refledger.credits SET reversed = true, reversal_key = $2 WHERE credit_key = $1",
        req.credit_key,
        req.idempotency_key,
    )
    amount = int(credit["amount"])
    balance = await _add_to_balance(
        conn, credit["user_id"], credit["network"], credit["asset"], -amount
    )
    return 201, {
        "reversal_key": req.idempotency_key,
        "credit_key": req.credit_key,
        "user_id": credit["user_id"],
        "network": credit["network"],
        "asset": credit["asset"],
        "amount": str(amount),
        "balance": str(balance),
    }


async def apply_withdrawal_event(conn: asyncpg.Connection, req: WithdrawalEvent) -> Answer:
    """Record the event; hold the funds at ``requested``, settle them at ``confirmed``, release
    them at ``failed`` or ``cancelled``. A hold the user's balance cannot cover is refused (422),
    and no event may disagree with the hold about who, what or how much (409)."""
    hold = await conn.fetchrow(
        "SELECT * FROM refledger.holds WHERE withdrawal_id = $1 FOR UPDATE", req.withdrawal_id
    )
    if hold is not None and (
        (hold["user_id"], hold["network"], hold["asset"], int(hold["amount"]))
        != (req.user_id, req.network, req.asset, req.amount)
    ):
        raise EffectRefusedError(
            409, "hold_mismatch", "the event names another user, asset or amount than the hold"
        )
    effect = "recorded"
    returned = 0
    if req.status == "requested" and hold is None:
        await _hold(conn, req)
        effect = "held"
    elif req.status == "confirmed":
        if hold is None or hold["status"] == "released":
            raise EffectRefusedError(409, "no_hold", "no funds are held for this withdrawal")
        if hold["status"] == "held":
            await _add_to_balance(conn, req.user_id, req.network, req.asset, -req.amount)
            await _set_hold(conn, req.withdrawal_id, "settled")
            effect = "settled"
    elif req.status in FUNDS_RETURNED_STATUSES and hold is not None:
        if hold["status"] == "settled":
            raise EffectRefusedError(409, "already_settled", "the withdrawal was settled")
        if hold["status"] == "held":
            await _set_hold(conn, req.withdrawal_id, "released")
            effect, returned = "released", req.amount
    await conn.execute(
        """
        INSERT INTO refledger.withdrawal_events (idempotency_key, withdrawal_id, status, txid, fee)
        VALUES ($1, $2, $3, $4, $5)
        """,
        req.idempotency_key,
        req.withdrawal_id,
        req.status,
        req.txid,
        None if req.fee is None else Decimal(req.fee),
    )
    return 201, {
        "withdrawal_id": req.withdrawal_id,
        "status": req.status,
        "effect": effect,
        "funds_returned": req.status in FUNDS_RETURNED_STATUSES,
        "amount_returned": str(returned),
    }


async def _hold(conn: asyncpg.Connection, req: WithdrawalEvent) -> None:
    # Lock the balance row first: two holds of one user at once must not both fit under it.
    await conn.execute(
        """INSERT INTO refledger.balances (user_id, network, asset, amount) VALUES ($1, $2, $3, 0)
           ON CONFLICT (user_id, network, asset) DO NOTHING""",
        req.user_id,
        req.network,
        req.asset,
    )
    balance = await conn.fetchval(
        """SELECT amount FROM refledger.balances WHERE user_id = $1 AND network = $2
           AND asset = $3 FOR UPDATE""",
        req.user_id,
        req.network,
        req.asset,
    )
    held = await conn.fetchval(
        """SELECT COALESCE(sum(amount), 0) FROM refledger.holds
           WHERE user_id = $1 AND network = $2 AND asset = $3 AND status = 'held'""",
        req.user_id,
        req.network,
        req.asset,
    )
    available = int(balance) - int(held)
    if available < req.amount:
        raise EffectRefusedError(
            422,
            "insufficient_funds",
            f"available {max(available, 0)} {req.asset} does not cover {req.amount}",
        )
    await conn.execute(
        """INSERT INTO refledger.holds (withdrawal_id, user_id, network, asset, amount, status)
           VALUES ($1, $2, $3, $4, $5, 'held')""",
        req.withdrawal_id,
        req.user_id,
        req.network,
        req.asset,
        Decimal(req.amount),
    )


async def _set_hold(conn: asyncpg.Connection, withdrawal_id: str, status: str) -> None:
    await conn.execute(
        "UPDATE refledger.holds SET status = $2, updated_at = now() WHERE withdrawal_id = $1",
        withdrawal_id,
        status,
    )


async def balances_of(conn: asyncpg.Connection, user_id: str) -> list[dict[str, str]]:
    """Per network and asset: the balance, what withdrawals hold of it, and what is left."""
    rows = await conn.fetch(
        """SELECT b.network, b.asset, b.amount,
                  COALESCE((SELECT sum(h.amount) FROM refledger.holds h
                            WHERE h.user_id = b.user_id AND h.network = b.network
                              AND h.asset = b.asset AND h.status = 'held'), 0) AS held
           FROM refledger.balances b WHERE b.user_id = $1 ORDER BY b.network, b.asset""",
        user_id,
    )
    return [
        {
            "network": r["network"],
            "asset": r["asset"],
            "amount": str(int(r["amount"])),
            "held": str(int(r["held"])),
            "available": str(int(r["amount"]) - int(r["held"])),
        }
        for r in rows
    ]


async def credits_of(conn: asyncpg.Connection, user_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM refledger.credits WHERE user_id = $1 ORDER BY created_at, credit_key",
        user_id,
    )
    return [
        {
            "credit_key": r["credit_key"],
            "network": r["network"],
            "asset": r["asset"],
            "amount": str(int(r["amount"])),
            "decimals": r["decimals"],
            "txid": r["txid"],
            "position": r["position"],
            "block_number": r["block_number"],
            "reversed": r["reversed"],
        }
        for r in rows
    ]
