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
from chaingate.ledger.reference.validation import (
    FUNDS_RETURNED_STATUSES,
    CreditRequest,
    ReversalRequest,
    WithdrawalEventRequest,
)

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


async def apply_credit(conn: asyncpg.Connection, req: CreditRequest) -> Answer:
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


async def apply_reversal(conn: asyncpg.Connection, req: ReversalRequest) -> Answer:
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


async def apply_withdrawal_event(conn: asyncpg.Connection, req: WithdrawalEventRequest) -> Answer:
    # The reference ledger only records the event; holding and releasing withdrawn funds is
    # the withdrawal side's job, reported here as funds_returned for failed/cancelled.
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
        "funds_returned": req.status in FUNDS_RETURNED_STATUSES,
    }


async def balances_of(conn: asyncpg.Connection, user_id: str) -> list[dict[str, str]]:
    rows = await conn.fetch(
        "SELECT network, asset, amount FROM refledger.balances WHERE user_id = $1"
        " ORDER BY network, asset",
        user_id,
    )
    return [
        {"network": r["network"], "asset": r["asset"], "amount": str(int(r["amount"]))}
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
