"""The Bitcoin side of the broadcaster role: send a batch's ONE transaction, track it.

The decisions come from the hot wallet's coins (``withdrawals/coins.py``), which follow only the
watcher's verified chain, never from an endpoint's word:
- confirmed: every input locked to the transaction is spent by it in a block the follower read,
  and that block is ``confirmations`` deep under the watcher's cursor. The ledger hears the
  txid and the fee (inputs less outputs) for every withdrawal of the batch;
- failed (funds back to the ledger): an input is spent, deeper than ``confirmations``, by a
  transaction that is none of the batch's. Nothing else fails a batch;
- neither: a transaction that is neither mined nor in the node's mempool (evicted, a node
  restart, a reorg that the node did not put back) gets the SAME stored bytes again.
A reorg undoes the follower's spends, so a confirmed-looking batch goes back to waiting. A
confirmed batch stays watched, as on EVM (``withdrawals/tracker.py``), until its block is
``reorg_window`` deep: a reorg that drops it raises a critical
``withdrawal_reorged_after_confirmation``, the bytes that were confirmed are sent again while
they are neither mined nor in the mempool, and the ledger hears nothing new (it was told once).
"""

from __future__ import annotations

import asyncpg
import structlog

from chaingate.chains.bitcoin.rawtx import decode_tx
from chaingate.chains.bitcoin.rpc import BitcoinRpc
from chaingate.domain import Network
from chaingate.errors import RpcError
from chaingate.store import chainstate
from chaingate.store import withdrawals as withdrawal_rows
from chaingate.store.queue import Claim, LeasedQueue
from chaingate.withdrawals.bitcoin_planner import BitcoinPlanner
from chaingate.withdrawals.bitcoin_rbf import bump_if_stuck
from chaingate.withdrawals.broadcaster import Broadcaster
from chaingate.withdrawals.coins import CoinFollower
from chaingate.withdrawals.status import withdrawals_of
from chaingate.withdrawals.tracker import Tracker

log = structlog.get_logger(__name__)


class BitcoinTracker(Tracker):
    def __init__(
        self, db: asyncpg.Pool, network: Network, rpc: BitcoinRpc, queue: LeasedQueue, every: float
    ) -> None:
        self._db = db
        self.network = network
        self._btc = rpc
        self._queue = queue
        self._every = every

    async def track(self, claim: Claim) -> None:
        row = claim.record
        async with self._db.acquire() as conn:
            cursor = await chainstate.get_cursor(conn, self.network.name)
            batch_txs = {
                r["txid"]: r["raw_tx"]
                for r in await conn.fetch(
                    "SELECT txid, raw_tx FROM withdrawal_txs WHERE batch_id = $1", row["batch_id"]
                )
            }
            settled = await conn.fetchval(
                "SELECT txid FROM withdrawals WHERE batch_id = $1 AND status = 'confirmed' LIMIT 1",
                row["batch_id"],
            )
            inputs = await _coins(conn, self.network.name, _spends(row["raw_tx"]))
        if not inputs or cursor is None:
            await self._queue.defer([claim], self._every)
            return
        # Which of the batch's transactions (this one, or one it replaced) is in a block?
        mined = {i["spent_txid"] for i in inputs if i["spent_block_number"] is not None}
        for txid in mined & set(batch_txs):
            async with self._db.acquire() as conn:
                spent = await _coins(conn, self.network.name, _spends(batch_txs[txid]))
            if all(i["spent_txid"] == txid and i["spent_block_number"] for i in spent):
                fee = sum(int(i["amount"]) for i in spent) - _paid(batch_txs[txid])
                await self._in_block(claim, txid, spent[0], cursor, fee)
                return
        if row["block_number"] is not None:
            await self._reorged_out(row)  # a critical alert if it was confirmed already
        if row["status"] == "confirmed":
            # Settled with the ledger: it can no longer fail, and is not bumped. The bytes that
            # were confirmed, again, until they are mined again.
            txid = settled if settled in batch_txs else row["txid"]
            await self._resend_if_gone(txid, batch_txs[txid])
            await self._queue.defer([claim], self._every)
            return
        foreign = [
            int(i["spent_block_number"])
            for i in inputs
            if i["spent_txid"] not in batch_txs and i["spent_block_number"] is not None
        ]
        if foreign and cursor - min(foreign) + 1 >= self.network.confirmations:
            await self._finish(
                claim,
                "failed",
                None,
                reason="an input of the batch transaction was spent by a transaction that is "
                "not ours, beyond reorg depth: nothing was sent",
            )
            return
        if not mined:
            await self._resend_if_gone(row["txid"], row["raw_tx"])
            await bump_if_stuck(self._db, self.network, self._btc, row, inputs)
        await self._queue.defer([claim], self._every)

    async def _resend_if_gone(self, txid: str, raw_tx: str) -> None:
        """Neither mined nor in the node's mempool (evicted, a node restart, a reorg the node
        did not put back): the SAME stored bytes again."""
        if await self._btc.in_mempool(txid):
            return
        try:
            fresh = await self._btc.send_raw_transaction(raw_tx, txid)
            log.info("withdrawal_rebroadcast", txid=txid, accepted=fresh)
        except RpcError as exc:
            # Inputs spent (by a replacement of ours, or by someone else): the coins decide.
            log.warning("withdrawal_rebroadcast_refused", txid=txid, error=str(exc))

    async def _in_block(
        self, claim: Claim, txid: str, spend: asyncpg.Record, cursor: int, fee: int
    ) -> None:
        row = claim.record
        block = int(spend["spent_block_number"])
        confirmations = max(cursor - block + 1, 0)
        async with self._db.acquire() as conn:
            await conn.execute(
                """UPDATE withdrawal_txs SET block_number = $2, block_hash = $3, confirmations = $4
                    WHERE id = $1""",
                row["id"],
                block,
                spend["spent_block_hash"],
                confirmations,
            )
            for withdrawal_id in await withdrawals_of(conn, row):
                await withdrawal_rows.set_progress(
                    conn, withdrawal_id, txid=txid, confirmations=confirmations
                )
        if confirmations < self.network.confirmations:
            await self._queue.defer([claim], self._every)
        elif row["status"] == "confirmed":
            await self._watched(claim, txid, confirmations)
        else:
            await self._finish(claim, "confirmed", txid, fee=fee, confirmations=confirmations)


def _spends(raw_tx: str) -> list[tuple[str, int]]:
    return list(decode_tx(bytes.fromhex(raw_tx)).spends)


def _paid(raw_tx: str) -> int:
    return sum(o.sats for o in decode_tx(bytes.fromhex(raw_tx)).outputs)


async def _coins(
    conn: asyncpg.Connection, network: str, outpoints: list[tuple[str, int]]
) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            """SELECT txid, vout, amount::text AS amount, script, chain, index, spent_txid,
                      spent_block_number, spent_block_hash, locked_by
                 FROM wallet_coins
                WHERE network = $1
                  AND (txid, vout) IN (SELECT * FROM unnest($2::text[], $3::int[]))""",
            network,
            [t for t, _ in outpoints],
            [v for _, v in outpoints],
        )
    )


class BitcoinBroadcaster(Broadcaster):
    """The broadcaster of one Bitcoin network: follow the hot wallet's coins, plan, send the
    stored bytes, track. Same queue and bookkeeping as the EVM one."""

    def __init__(
        self,
        db: asyncpg.Pool,
        network: Network,
        rpc: BitcoinRpc,
        *,
        lease_seconds: float = 30.0,
        track_every: float | None = None,
        holder: str | None = None,
    ) -> None:
        self._btc = rpc
        self._setup(db, network, lease_seconds, track_every, holder)
        self.follower = CoinFollower(db, network, rpc)
        self.planner = BitcoinPlanner(db, network, rpc)
        self.tracker = BitcoinTracker(db, network, rpc, self._queue, self._track_every)

    async def _pass(self) -> int:
        for _ in range(50):  # catch up a while, but let sending and tracking run too
            if not await self.follower.follow_once():
                break
        return await super()._pass()

    async def send(self, claim: Claim) -> None:
        row = claim.record
        await self._mark_signed(row)
        try:
            fresh = await self._btc.send_raw_transaction(row["raw_tx"], row["txid"])
            outcome = "sent" if fresh else "already_known"
        except RpcError as exc:
            # Refused (an input spent meanwhile, a fee below the node's floor): counted as sent,
            # the tracker decides from the coins, and resends while nothing is decided.
            log.warning("withdrawal_send_refused", txid=row["txid"], error=str(exc)[:200])
            outcome = "refused"
        await self.sent(claim, outcome)
