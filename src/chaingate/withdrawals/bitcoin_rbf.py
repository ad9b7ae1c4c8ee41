"""Fee bumping of a stuck Bitcoin batch (BIP125 replace-by-fee), asked of the signer.

A batch transaction unmined for longer than the network's ``replace_after`` gets a replacement
plan: the SAME payments, every input of the stuck transaction (plus more coins if the higher fee
needs them), change to the same change address, and a fee rate that beats the stuck one's by at
least the node's incremental relay fee (``getnetworkinfo``, 1 sat/vB when it does not say) in
rate and in absolute fee (``txbuilder.replacement``). The plan goes to ``signer_replacements``;
the signer checks the batch again and signs only within the approved fee cap. When the cap (or the registry's highest fee rate) leaves no room, a
critical ``withdrawal_stuck`` alert is raised instead. A stuck transaction whose change a later
batch already spends is not replaced (that would evict the later batch, whose bytes could then
never be mined): a warning says so, and the later batch's own replacement pays for the package
of parent and child, child pays for parent (docs/runbook.md, section 10). The tracker follows
both transactions and settles whichever one is mined.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg
import structlog

from chaingate.chains.bitcoin.coinselect import Coin
from chaingate.chains.bitcoin.rawtx import decode_tx
from chaingate.chains.bitcoin.rpc import BitcoinRpc
from chaingate.chains.bitcoin.txbuilder import (
    DEFAULT_INCREMENTAL_RELAY_FEE,
    BatchTx,
    FeeCapExceeded,
    TxIn,
    TxOut,
    UnsignedTx,
    estimate_vsize,
    replacement,
)
from chaingate.domain import AlertKind, AlertSeverity, Network, NewAlert
from chaingate.domain.signing_plan import BitcoinPlan, PlannedCoin
from chaingate.errors import ValidationError
from chaingate.store import wallet
from chaingate.store.alerts import raise_alert
from chaingate.withdrawals.bitcoin_planner import clamp_fee_rate, next_change_index
from chaingate.withdrawals.coins import wallet_address

log = structlog.get_logger(__name__)


async def bump_if_stuck(
    db: asyncpg.Pool,
    network: Network,
    rpc: BitcoinRpc,
    row: asyncpg.Record,
    inputs: list[asyncpg.Record],
) -> None:
    since = row["broadcast_at"] or row["created_at"]
    if (datetime.now(UTC) - since).total_seconds() <= network.replace_after:
        return
    assert network.hot_xpub is not None
    async with db.acquire() as conn:
        child = await conn.fetchrow(
            """SELECT t.batch_id, t.txid FROM wallet_coins c
                 JOIN withdrawal_txs t ON t.id = c.locked_by
                WHERE c.network = $1 AND c.txid = $2 AND c.own_change AND t.id <> $3""",
            network.name,
            row["txid"],
            row["id"],
        )
        if child is not None:
            # A request made before the later batch took the change can never be signed.
            await conn.execute(
                "UPDATE signer_replacements SET done_at = now() WHERE tx_id = $1 AND done_at IS NULL",
                row["id"],
            )
        elif await conn.fetchval(
            "SELECT 1 FROM signer_replacements WHERE tx_id = $1 AND done_at IS NULL", row["id"]
        ):
            return  # asked already; the signer has not answered yet
        original = await _as_built(conn, network, row["raw_tx"], inputs)
        parents = await _unconfirmed_parents(conn, network, inputs)
        coins = await wallet.spendable(conn, network.name)
        change_index = await _change_index(conn, network, original)
    if child is not None:
        # Replacing it would evict the later batch that spends its change (BIP125 makes the
        # replacement pay for both, and that batch's signed bytes could never be mined): not
        # done. That batch's own bump pays for both (``parents`` below, on its side).
        await _stuck_alert(
            db,
            network,
            row,
            AlertSeverity.WARNING,
            f"not replaced: its change is spent by batch {child['batch_id']} transaction "
            f"{child['txid']}, which a replacement would evict; that transaction's fee bump "
            "pays for both (docs/runbook.md, section 10)",
        )
        return
    rate = clamp_fee_rate(network, await rpc.estimate_fee_rate(2))
    incremental = await rpc.incremental_fee_rate() or DEFAULT_INCREMENTAL_RELAY_FEE
    change_script = bytes.fromhex(wallet_address(network.hot_xpub, 1, change_index).script)
    try:
        bumped = replacement(
            original,
            coins,
            change_script=change_script,
            fee_rate=rate,
            fee_cap=int(row["fee_cap"]),
            incremental_rate=incremental,
            parents=parents,
        )
        if bumped.fee_rate > network.max_fee_rate:
            raise FeeCapExceeded(bumped.fee, int(row["fee_cap"]))
    except (FeeCapExceeded, ValidationError) as exc:
        await _stuck_alert(db, network, row, AlertSeverity.CRITICAL, f"cannot be bumped: {exc}")
        return
    plan = BitcoinPlan(
        coins=tuple(PlannedCoin(c.txid, c.vout, c.amount, c.chain, c.index) for c in bumped.coins),
        fee_rate=bumped.fee_rate,
        change_index=change_index,
        incremental_rate=incremental,
    )
    async with db.acquire() as conn:
        asked = await conn.fetchval(
            """INSERT INTO signer_replacements (tx_id, plan) VALUES ($1, $2::text::jsonb)
               ON CONFLICT (tx_id) DO NOTHING RETURNING 1""",
            row["id"],
            json.dumps(plan.to_json()),
        )
    if asked:
        log.warning(
            "withdrawal_tx_stuck",
            txid=row["txid"],
            fee=original.fee,
            new_fee=bumped.fee,
            new_rate=bumped.fee_rate,
        )
        await _stuck_alert(
            db, network, row, AlertSeverity.WARNING, "an RBF replacement with a higher fee is asked"
        )


async def _as_built(
    conn: asyncpg.Connection, network: Network, raw_tx: str, inputs: list[asyncpg.Record]
) -> BatchTx:
    """The stuck transaction as ``build_batch`` would describe it (coins, fee, rate, change)."""
    decoded = decode_tx(bytes.fromhex(raw_tx))
    by_outpoint = {(r["txid"], r["vout"]): r for r in inputs}
    mine = await wallet.addresses(conn, network.name)
    coins = tuple(
        Coin(
            txid,
            vout,
            int(by_outpoint[(txid, vout)]["amount"]),
            bytes.fromhex(by_outpoint[(txid, vout)]["script"]),
            int(by_outpoint[(txid, vout)]["chain"]),
            int(by_outpoint[(txid, vout)]["index"]),
            True,
        )
        for txid, vout in decoded.spends
    )
    outputs = tuple(TxOut(o.sats, bytes.fromhex(o.script)) for o in decoded.outputs)
    change = [
        n for n, o in enumerate(decoded.outputs) if o.script in mine and mine[o.script].chain == 1
    ]
    fee = sum(c.amount for c in coins) - sum(o.amount for o in outputs)
    vsize = estimate_vsize(len(coins), [o.script for o in outputs])
    tx = UnsignedTx(tuple(TxIn(c.txid, c.vout) for c in coins), outputs)
    return BatchTx(tx, coins, fee, vsize, fee * 1000 // vsize, change[-1] if change else None)


async def _unconfirmed_parents(
    conn: asyncpg.Connection, network: Network, inputs: list[asyncpg.Record]
) -> tuple[int, int]:
    """(fee, vsize) of the live, unmined batch transactions of ours whose change the stuck
    transaction spends (one generation: a grandparent is not counted, so it is paid for only
    by its own child's bump)."""
    txids = sorted({i["txid"] for i in inputs if int(i["chain"]) == 1})
    fee = vsize = 0
    for raw in await conn.fetch(
        """SELECT raw_tx FROM withdrawal_txs
            WHERE network = $1 AND txid = ANY($2::text[]) AND done_at IS NULL
              AND status IN ('signed', 'broadcast') AND block_number IS NULL""",
        network.name,
        txids,
    ):
        decoded = decode_tx(bytes.fromhex(raw["raw_tx"]))
        spent = await conn.fetch(
            """SELECT amount::text AS amount FROM wallet_coins
                WHERE network = $1 AND (txid, vout) IN (SELECT * FROM unnest($2::text[], $3::int[]))""",
            network.name,
            [t for t, _ in decoded.spends],
            [v for _, v in decoded.spends],
        )
        if len(spent) != len(decoded.spends):
            continue  # not all its coins are ours to price: leave it out
        fee += sum(int(r["amount"]) for r in spent) - sum(o.sats for o in decoded.outputs)
        vsize += estimate_vsize(
            len(decoded.spends), [bytes.fromhex(o.script) for o in decoded.outputs]
        )
    return fee, vsize


async def _change_index(conn: asyncpg.Connection, network: Network, original: BatchTx) -> int:
    if original.change is not None:
        mine = await wallet.addresses(conn, network.name)
        return mine[original.change.script.hex()].index
    return await next_change_index(conn, network.name)


async def _stuck_alert(
    db: asyncpg.Pool, network: Network, row: asyncpg.Record, severity: AlertSeverity, what: str
) -> None:
    async with db.acquire() as conn:
        await raise_alert(
            conn,
            NewAlert(
                kind=AlertKind.WITHDRAWAL_STUCK,
                severity=severity,
                network=network.name,
                txid=row["txid"],
                message=f"{network.name}: batch {row['batch_id']} transaction {row['txid']} "
                f"unmined for over {network.replace_after:.0f} s; " + what,
                details={"batch_id": row["batch_id"]},
                dedup_key=f"withdrawal_stuck:{row['txid']}:{severity}",
            ),
        )
