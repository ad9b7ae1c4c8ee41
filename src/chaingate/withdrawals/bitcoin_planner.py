"""The Bitcoin planner (broadcaster role): coins, fee rate and change index for the signer.

The same loop as the EVM planner (``planner.py``: due jobs, ledger holds first, the plan stored
with the job); what differs is the plan. The coins come from the store's UTXO set of the hot
wallet (``withdrawals/coins.py`` follows it), chosen by ``build_batch`` exactly as the signer
will spend them; the fee rate is ``estimatesmartfee`` (CONSERVATIVE) held between the
registry's floor and cap (no estimate: the floor); the change goes to the first change address
not used yet. The signer re-derives and re-checks all of it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from chaingate.chains.bitcoin.addresses import BitcoinAddresses
from chaingate.chains.bitcoin.coinselect import InsufficientFunds
from chaingate.chains.bitcoin.rpc import BitcoinRpc
from chaingate.chains.bitcoin.txbuilder import FeeCapExceeded, TxOut, build_batch
from chaingate.domain import AlertKind, AlertSeverity, Network, NewAlert
from chaingate.domain.signing_plan import BitcoinPlan, PlannedCoin
from chaingate.store import wallet
from chaingate.store.alerts import raise_alert
from chaingate.withdrawals.coins import wallet_address
from chaingate.withdrawals.planner import Planner

FEE_TARGET_BLOCKS = 2


def clamp_fee_rate(network: Network, estimate: int | None) -> int:
    if estimate is None:
        return network.min_fee_rate
    return max(network.min_fee_rate, min(network.max_fee_rate, estimate))


async def batch_payments(
    conn: asyncpg.Connection, codec: BitcoinAddresses, batch_id: int
) -> list[TxOut]:
    """The batch's outputs as scripts, in withdrawal order (the order the content hash has)."""
    rows = await conn.fetch(
        """SELECT destination, amount::text AS amount FROM batch_outputs
            WHERE batch_id = $1 ORDER BY withdrawal_id""",
        batch_id,
    )
    return [TxOut(int(r["amount"]), bytes.fromhex(codec.match_key(r["destination"]))) for r in rows]


async def next_change_index(conn: asyncpg.Connection, network: str) -> int:
    index = await conn.fetchval(
        """SELECT min(a.index) FROM wallet_addresses a
            WHERE a.network = $1 AND a.owner = 'hot' AND a.chain = 1 AND NOT a.used
              AND NOT EXISTS (SELECT 1 FROM wallet_coins c
                               WHERE c.network = a.network AND c.script = a.script)""",
        network,
    )
    return 0 if index is None else int(index)


class BitcoinPlanner(Planner):
    def __init__(self, db: asyncpg.Pool, network: Network, rpc: BitcoinRpc) -> None:
        if not network.hot_xpub:
            raise ValueError(f"{network.name} has no hot_xpub")
        self._db = db
        self._network = network
        self._btc = rpc
        self._refresh_after = 60.0
        self._codec = BitcoinAddresses(network)
        self._xpub = network.hot_xpub

    async def _plan(self, batch_id: int, contract: str | None) -> BitcoinPlan:
        rate = clamp_fee_rate(self._network, await self._btc.estimate_fee_rate(FEE_TARGET_BLOCKS))
        async with self._db.acquire() as conn:
            payments = await batch_payments(conn, self._codec, batch_id)
            fee_cap = int(
                await conn.fetchval("SELECT fee_cap FROM batches WHERE id = $1", batch_id)
            )
            coins = await wallet.spendable(conn, self._network.name)
            change = await next_change_index(conn, self._network.name)
        try:
            built = build_batch(
                payments,
                coins,
                change_script=bytes.fromhex(wallet_address(self._xpub, 1, change).script),
                fee_rate=rate,
                fee_cap=fee_cap,
            )
        except (InsufficientFunds, FeeCapExceeded) as exc:
            await self._alert(batch_id, exc)
            raise
        return BitcoinPlan(
            coins=tuple(
                PlannedCoin(c.txid, c.vout, c.amount, c.chain, c.index) for c in built.coins
            ),
            fee_rate=rate,
            change_index=change,
        )

    async def _alert(self, batch_id: int, exc: InsufficientFunds | FeeCapExceeded) -> None:
        """No plan can be made: the batch waits, and an operator is told why (once a day)."""
        short = isinstance(exc, InsufficientFunds)
        kind = AlertKind.HOT_WALLET_INSUFFICIENT if short else AlertKind.FEE_CAP_TOO_LOW
        async with self._db.acquire() as conn:
            await raise_alert(
                conn,
                NewAlert(
                    kind=kind,
                    severity=AlertSeverity.CRITICAL if short else AlertSeverity.WARNING,
                    network=self._network.name,
                    message=f"{self._network.name}: batch {batch_id} cannot be planned: {exc}",
                    details={"batch_id": batch_id},
                    dedup_key=f"{kind}:{batch_id}:{datetime.now(UTC):%Y-%m-%d}",
                ),
            )
