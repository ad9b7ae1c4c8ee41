"""Making a batch (SPEC section 7): a maker gathers the pending withdrawals of one network and
asset, oldest first, within the asset's per-batch limits, into a batch whose content hash covers
exactly those outputs and the fee cap. The batch is sealed with its maker's name, so the maker
recorded with it cannot be changed in the database; everything happens in one transaction, with
an audit row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from chaingate.domain.approvals import Act, seal
from chaingate.domain.batch_content import (
    CONTENT_HASH_VERSION,
    BatchContent,
    BatchOutput,
    content_hash,
)
from chaingate.domain.withdrawals import WithdrawalStatus
from chaingate.errors import ConflictError, SealKeyMissingError
from chaingate.store import audit
from chaingate.store import batches as batch_rows
from chaingate.store import withdrawals as rows
from chaingate.withdrawals.rules import WithdrawalRules, limits_of
from chaingate.withdrawals.status import record_status
from chaingate.withdrawals.views import get_batch

log = structlog.get_logger(__name__)


class NothingToBatchError(ConflictError):
    """Raised when a batch is asked for and no withdrawal of that network and asset waits."""

    code = "nothing_to_batch"


async def make_batch(
    conn: asyncpg.Connection, rules: WithdrawalRules, maker: str, network_name: Any, symbol: Any
) -> dict[str, Any]:
    """Gather the pending withdrawals of ``network_name``/``symbol`` into a new batch made by
    ``maker``; the batch as shown by ``get_batch``."""
    network, asset = rules.withdrawable(network_name, symbol)
    limits = limits_of(asset)
    if not rules.seal_key:
        raise SealKeyMissingError("CHAINGATE_APPROVAL_SEAL_KEY is not set: batches cannot be made")
    async with conn.transaction():
        # Two makers at once each take rows the other has not locked: two disjoint batches.
        pending = await rows.pending_for_batch(
            conn, network.name, asset.symbol, limits.max_batch_outputs
        )
        chosen: list[BatchOutput] = []
        total = 0
        for row in pending:
            amount = int(row["amount"])
            if total + amount > limits.per_batch:
                continue  # stays requested for the next batch
            chosen.append(BatchOutput(row["id"], row["destination"], amount))
            total += amount
        if not chosen:
            raise NothingToBatchError(
                f"no requested withdrawals of {asset.symbol} on {network.name} to batch"
            )
        content = BatchContent.of(
            network=network.name,
            chain_id=network.chain_id,
            asset=asset.symbol,
            contract=asset.contract,
            decimals=asset.decimals,
            outputs=chosen,
            fee_cap=limits.fee_cap,
        )
        digest = content_hash(content)
        batch_id = await batch_rows.next_id(conn)
        made_at = datetime.now(UTC)
        await batch_rows.insert(
            conn,
            batch_rows.NewBatch(
                id=batch_id,
                content=content,
                content_hash=digest,
                content_version=CONTENT_HASH_VERSION,
                maker=maker,
                made_at=made_at,
                maker_seal=seal(rules.seal_key, Act.MAKE, batch_id, digest, maker, made_at),
            ),
        )
        for output in content.outputs:
            await record_status(
                conn,
                output.withdrawal_id,
                WithdrawalStatus.BATCHED,
                actor=maker,
                batch_id=batch_id,
            )
        await audit.record(
            conn,
            maker,
            "batch.create",
            f"batch:{batch_id}",
            {
                "network": network.name,
                "asset": asset.symbol,
                "content_hash": digest,
                "outputs": len(content.outputs),
                "total": str(content.total),
                "fee_cap": str(content.fee_cap),
            },
        )
        view = await get_batch(conn, batch_id, rules.quorum)
    log.info(
        "batch_made",
        batch_id=batch_id,
        network=network.name,
        asset=asset.symbol,
        outputs=len(content.outputs),
        maker=maker,
    )
    return view
