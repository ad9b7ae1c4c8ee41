"""Withdrawal intake (SPEC section 7): validate a request at the edge, store it once, and ask the
ledger to hold the funds.

A request is refused (``ValidationError``, 422) before anything is stored when a field is
malformed, the network or asset is unknown or not withdrawable, the destination is not an
address of THAT network, or the amount is outside the asset's limits. A destination that is
recognisably another network's address also raises a ``network_mismatch`` alert. The same
``request_id`` with the same request returns the stored withdrawal; with another request it is
refused (``IdempotencyConflictError``, 409).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from chaingate.domain import AlertKind, AlertSeverity, Network, NewAlert
from chaingate.domain.withdrawals import LIMIT_COUNTED
from chaingate.errors import IdempotencyConflictError, InvalidAddressError, LimitExceededError
from chaingate.store import audit
from chaingate.store import withdrawals as rows
from chaingate.store.alerts import raise_alert
from chaingate.withdrawals.rules import WithdrawalRules, amount_field, limits_of, name_field
from chaingate.withdrawals.rules import text_field as _text
from chaingate.withdrawals.status import record_requested
from chaingate.withdrawals.views import withdrawal_view

log = structlog.get_logger(__name__)
DAY = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class WithdrawalRequest:
    request_id: str
    user_id: str
    network: str
    asset: str
    to_address: str
    amount: int


def parse_request(body: Mapping[str, Any]) -> WithdrawalRequest:
    """The request's fields, each checked for type and form (not yet against the registry)."""
    return WithdrawalRequest(
        request_id=name_field(body, "request_id"),
        user_id=name_field(body, "user_id"),
        network=_text(body, "network"),
        asset=_text(body, "asset"),
        to_address=_text(body, "to_address"),
        amount=amount_field(body),
    )


def request_hash(req: WithdrawalRequest, destination: str) -> str:
    """What makes two requests with one request_id the same request: every field, with the
    destination in its canonical form (a repeat may spell an address in another case)."""
    canonical = {
        "user_id": req.user_id,
        "network": req.network,
        "asset": req.asset,
        "to_address": destination,
        "amount": str(req.amount),
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


async def submit(
    conn: asyncpg.Connection,
    rules: WithdrawalRules,
    principal: str,
    body: Mapping[str, Any],
) -> tuple[dict[str, Any], bool]:
    """Accept a withdrawal request: (the withdrawal, True when it was created now).

    Call it outside a transaction: it opens its own, and the alert about a destination of
    another network is stored even though the request itself is refused."""
    req = parse_request(body)
    network, asset = rules.withdrawable(req.network, req.asset)
    codec = rules.codecs[network.name]
    try:
        destination = codec.normalize(req.to_address)
    except InvalidAddressError as exc:
        if exc.other_network is not None:
            await _alert_mismatch(conn, req, exc)
        raise
    _not_our_own(network, destination)
    limits = limits_of(asset)
    if req.amount < limits.min_amount:
        raise LimitExceededError(
            f"amount {req.amount} is below the minimum withdrawal of {asset.symbol} "
            f"({limits.min_amount} base units)"
        )
    dust = codec.min_output(destination)
    if req.amount < dust:
        raise LimitExceededError(
            f"amount {req.amount} is below the dust limit of the destination's script type "
            f"({dust} base units): the network would not relay the output"
        )
    if req.amount > limits.per_request:
        raise LimitExceededError(
            f"amount {req.amount} is above the per-request limit of {asset.symbol} on "
            f"{network.name} ({limits.per_request} base units)"
        )
    digest = request_hash(req, destination)
    async with conn.transaction():
        # One user's requests for one asset queue here, so two at once cannot both fit under
        # the daily limit that only one of them fits under.
        await rows.lock_user_asset(conn, req.user_id, network.name, asset.symbol)
        existing = await rows.by_request_id(conn, req.request_id)
        if existing is not None:
            return await _repeat(conn, existing, digest), False
        since = datetime.now(UTC) - DAY
        used = await rows.withdrawn_since(
            conn, req.user_id, network.name, asset.symbol, since, sorted(LIMIT_COUNTED)
        )
        if used + req.amount > limits.per_user_day:
            raise LimitExceededError(
                f"amount {req.amount} would take user {req.user_id} over the daily limit of "
                f"{asset.symbol} on {network.name} ({limits.per_user_day} base units in 24 "
                f"hours; {used} already requested)"
            )
        row = await rows.insert(
            conn,
            rows.NewWithdrawal(
                request_id=req.request_id,
                request_hash=digest,
                user_id=req.user_id,
                network=network.name,
                asset=asset.symbol,
                destination=destination,
                amount=req.amount,
                requested_by=principal,
            ),
        )
        if row is None:  # the same request_id, for another user, committed meanwhile
            existing = await rows.by_request_id(conn, req.request_id)
            assert existing is not None
            return await _repeat(conn, existing, digest), False
        await record_requested(conn, row, principal)
        await audit.record(
            conn,
            principal,
            "withdrawal.request",
            f"withdrawal:{row['id']}",
            {"request_id": req.request_id, "amount": str(req.amount), "asset": asset.symbol},
        )
        view = await withdrawal_view(conn, row)
    log.info(
        "withdrawal_requested",
        withdrawal_id=row["id"],
        network=network.name,
        asset=asset.symbol,
        amount=str(req.amount),
        user_id=req.user_id,
        principal=principal,
    )
    return view, True


def _not_our_own(network: Network, destination: str) -> None:
    """The hot wallet would pay itself (the user debited, nothing leaving) and a token contract
    swallows what is sent to it: both are refused before anything is held."""
    if network.hot_address and destination.lower() == network.hot_address.lower():
        raise InvalidAddressError(
            f"{destination} is the gateway's own hot wallet on {network.name}: not a destination"
        )
    for listed in network.assets:
        if listed.contract and destination.lower() == listed.contract.lower():
            raise InvalidAddressError(
                f"{destination} is the {listed.symbol} token contract on {network.name}: "
                "tokens sent to it are lost"
            )


async def _repeat(
    conn: asyncpg.Connection, existing: asyncpg.Record, digest: str
) -> dict[str, Any]:
    if existing["request_hash"] != digest:
        raise IdempotencyConflictError(
            f"request_id {existing['request_id']!r} was already used for a different withdrawal"
        )
    return await withdrawal_view(conn, existing)


async def _alert_mismatch(
    conn: asyncpg.Connection, req: WithdrawalRequest, exc: InvalidAddressError
) -> None:
    alert = NewAlert(
        kind=AlertKind.NETWORK_MISMATCH,
        severity=AlertSeverity.WARNING,
        network=req.network,
        asset=req.asset,
        amount=req.amount,
        user_id=req.user_id,
        message=f"withdrawal request {req.request_id} names a {exc.other_network} address "
        f"as its destination on {req.network}; refused",
        dedup_key=f"withdrawal_destination:{req.network}:{req.request_id}:{req.to_address}",
        details={
            "request_id": req.request_id,
            "destination": req.to_address,
            "address_network": exc.other_network,
            "source": "withdrawal_intake",
        },
    )
    await raise_alert(conn, alert)
    log.warning(
        "withdrawal_network_mismatch",
        network=req.network,
        address_network=exc.other_network,
        request_id=req.request_id,
        user_id=req.user_id,
    )
