"""Tracks broadcast withdrawal transactions to their end, on the chain the watcher verified.

For a ``broadcast`` row (and any transaction it replaced: same withdrawal, same nonce):
- mined: confirmations count on the watcher's verified chain (its stored block hashes and
  cursor, ``store/chainstate.py``), never on an endpoint's head. A receipt whose block is not
  the verified block at that height is not counted. At the network's confirmations a
  successful transaction is ``confirmed`` (with the fee paid); a reverted one (receipt status 0,
  e.g. an ERC-20 transfer the token refused) is ``failed`` with the reason, funds back;
- no longer mined (a reorg dropped it) or dropped from the mempool: the SAME bytes are sent
  again;
- its nonce consumed by another transaction beyond reorg depth (the account's nonce at
  head - confirmations is past it, and no transaction of ours at that nonce has a receipt):
  ``failed``, funds back. Never on a timeout alone;
- unmined longer than the registry's ``replace_after``: a replacement is requested from the
  signer (``signer_replacements``): the same transfer at the same nonce with higher fees, when
  the approved fee cap allows; otherwise a critical alert. Whichever one is mined counts.

``confirmed`` is what the ledger hears once (its event key is per withdrawal and status), but
the row stays watched until its block is ``reorg_window`` deep (the watcher's window, beyond
which no reorg is followed). A reorg that drops a confirmed transaction raises a critical
``withdrawal_reorged_after_confirmation`` and the SAME bytes are sent again until they are
mined again; the withdrawal stays ``confirmed`` (the funds were settled and cannot fail any
more), the ledger hears nothing new, and the row is done once the new block is deep enough.
"""

from __future__ import annotations

import json

import asyncpg
import structlog

from chaingate import crashpoints
from chaingate.chains.evm.codec import decode_transfer_log
from chaingate.chains.evm.hexdata import hex_int
from chaingate.chains.evm.rpc import EvmRpc, RawReceipt
from chaingate.chains.evm.txbuilder import FeeCapError, Fees, bump_fees, quote_from_fee_history
from chaingate.domain import AlertKind, AlertSeverity, Network, NetworkKind, NewAlert
from chaingate.domain.signing_plan import EvmPlan, TronPlan
from chaingate.domain.withdrawals import WithdrawalStatus
from chaingate.store import chainstate
from chaingate.store import withdrawals as withdrawal_rows
from chaingate.store.alerts import raise_alert
from chaingate.store.queue import Claim, LeasedQueue
from chaingate.withdrawals.status import record_status, withdrawals_of

log = structlog.get_logger(__name__)
ACTOR = "tracker"


class Tracker:
    def __init__(
        self, db: asyncpg.Pool, network: Network, rpc: EvmRpc, queue: LeasedQueue, every: float
    ) -> None:
        self._rpc = rpc
        self._bind(db, network, queue, every)

    def _bind(self, db: asyncpg.Pool, network: Network, queue: LeasedQueue, every: float) -> None:
        """What every family's tracker holds (EVM, TRON): the database, the network, the
        broadcaster's outgoing queue and how often a tracked row comes due again."""
        self._db = db
        self.network = network
        self._queue = queue
        self._every = every

    async def track(self, claim: Claim) -> None:
        row = claim.record
        for txid in await self._same_nonce_txids(row):
            receipt = await self._rpc.receipt(txid)
            if receipt is not None:
                await self._mined(claim, txid, receipt)
                return
        if row["block_number"] is not None:
            await self._reorged_out(row)
        if row["status"] == "confirmed":
            # Settled with the ledger: it can no longer fail. The same bytes until mined again.
            await self._resend_if_dropped(row)
            await self._queue.defer([claim], self._every)
            return
        if await self._nonce_consumed_elsewhere(row):
            await self._finish(
                claim, "failed", None, reason="nonce consumed by another transaction"
            )
            return
        await self._resend_if_dropped(row)
        await self._replace_if_stuck(row)
        await self._queue.defer([claim], self._every)

    async def _resend_if_dropped(self, row: asyncpg.Record) -> None:
        if await self._rpc.transaction(row["txid"]) is None:
            # Dropped (mempool eviction, a node restart, a reorg): the same bytes again.
            outcome = await self._rpc.send_raw_transaction("0x" + row["raw_tx"], row["txid"])
            log.info("withdrawal_rebroadcast", txid=row["txid"], outcome=outcome.value)

    async def _reorged_out(self, row: asyncpg.Record) -> None:
        log.warning(
            "withdrawal_tx_reorged_out",
            network=self.network.name,
            txid=row["txid"],
            block=row["block_number"],
            status=row["status"],
        )
        async with self._db.acquire() as conn, conn.transaction():
            await conn.execute(
                """UPDATE withdrawal_txs SET block_number = NULL, block_hash = NULL,
                          confirmations = 0 WHERE id = $1""",
                row["id"],
            )
            for withdrawal_id in await withdrawals_of(conn, row):
                await withdrawal_rows.set_progress(conn, withdrawal_id, confirmations=0)
            if row["status"] == "confirmed":
                await raise_alert(
                    conn,
                    NewAlert(
                        kind=AlertKind.WITHDRAWAL_REORGED_AFTER_CONFIRMATION,
                        severity=AlertSeverity.CRITICAL,
                        network=self.network.name,
                        txid=row["txid"],
                        message=f"{self.network.name}: confirmed withdrawal tx {row['txid']} "
                        f"(block {row['block_number']}) is no longer on the chain: a reorg "
                        f"deeper than {self.network.confirmations} confirmations; the same "
                        "signed bytes are sent again",
                        details={"withdrawal_id": row["withdrawal_id"], "nonce": row["nonce"]},
                        dedup_key=f"withdrawal_reorged_after_confirmation:{row['txid']}:"
                        f"{row['block_number']}",
                    ),
                )

    async def _same_nonce_txids(self, row: asyncpg.Record) -> list[str]:
        async with self._db.acquire() as conn:
            rows = await conn.fetch(
                """SELECT txid FROM withdrawal_txs
                    WHERE network = $1 AND from_address = $2 AND nonce = $3
                      AND withdrawal_id = $4 ORDER BY (id = $5) DESC, id DESC""",
                row["network"],
                row["from_address"],
                row["nonce"],
                row["withdrawal_id"],
                row["id"],
            )
        return [r["txid"] for r in rows]

    async def _mined(self, claim: Claim, txid: str, receipt: RawReceipt) -> None:
        row = claim.record
        number = hex_int(receipt["blockNumber"], "receipt blockNumber")
        async with self._db.acquire() as conn:
            cursor = await chainstate.get_cursor(conn, self.network.name)
            verified = await chainstate.stored_hash(conn, self.network.name, number)
        # Verified: the watcher reached the block and stored this very hash at its height (or
        # the block is older than the window of stored hashes, far beyond any reorg).
        on_chain = (
            cursor is not None
            and cursor >= number
            and (
                verified == receipt["blockHash"]
                or (verified is None and cursor - number >= self.network.reorg_window)
            )
        )
        confirmations = cursor - number + 1 if on_chain and cursor is not None else 0
        async with self._db.acquire() as conn:
            await conn.execute(
                """UPDATE withdrawal_txs SET block_number = $2, block_hash = $3, confirmations = $4
                    WHERE id = $1""",
                row["id"],
                number,
                receipt["blockHash"],
                confirmations,
            )
            await withdrawal_rows.set_progress(
                conn, row["withdrawal_id"], confirmations=confirmations
            )
        if confirmations < self.network.confirmations:
            await self._queue.defer([claim], self._every)
            return
        if row["status"] == "confirmed":
            await self._watched(claim, txid, confirmations)
            return
        fee = hex_int(receipt.get("gasUsed", "0x0"), "gasUsed") * hex_int(
            receipt.get("effectiveGasPrice", "0x0"), "effectiveGasPrice"
        )
        if receipt["status"] != "0x1":
            await self._finish(
                claim,
                "failed",
                txid,
                fee=fee,
                reason="the transaction reverted on chain (receipt status 0): nothing was sent",
            )
        elif not await self._token_moved(row, receipt):
            await self._finish(
                claim,
                "failed",
                txid,
                fee=fee,
                reason="the token emitted no Transfer of the amount to the destination "
                "(transfer returned false): nothing was sent",
            )
        else:
            crashpoints.crash_point(crashpoints.CONFIRMED_BEFORE_BOOKKEEPING)
            await self._finish(claim, "confirmed", txid, fee=fee, confirmations=confirmations)

    async def _token_moved(self, row: asyncpg.Record, receipt: RawReceipt) -> bool:
        """A token withdrawal counts only with the token's own Transfer event of exactly the
        amount from the hot address to the destination (a token may return false instead of
        reverting, and status 1 then means nothing)."""
        async with self._db.acquire() as conn:
            output = await conn.fetchrow(
                """SELECT b.contract, bo.destination, bo.amount::text AS amount
                     FROM batch_outputs bo JOIN batches b ON b.id = bo.batch_id
                    WHERE bo.batch_id = $1 AND bo.withdrawal_id = $2""",
                row["batch_id"],
                row["withdrawal_id"],
            )
        if output is None or output["contract"] is None:
            return True  # native coin: status 1 moved the value
        for entry in receipt.get("logs") or []:
            moved = decode_transfer_log(entry)
            if (
                moved is not None
                and moved.contract == output["contract"]
                and moved.sender == row["from_address"].lower()
                and moved.to == output["destination"].lower()
                and moved.amount == int(output["amount"])
            ):
                return True
        return False

    async def _finish(
        self,
        claim: Claim,
        outcome: str,
        txid: str | None,
        *,
        fee: int | None = None,
        confirmations: int | None = None,
        reason: str | None = None,
    ) -> None:
        """The row's end, for every family: the row, the transactions it replaced and each
        withdrawal it pays (``withdrawals_of``) in one transaction; the ledger hears it once."""
        row = claim.record
        # A confirmed row stays watched (see the module's docstring) until beyond the window.
        watch = (
            outcome == "confirmed"
            and self.network.kind is not NetworkKind.TRON  # solidified blocks are final
            and (confirmations or 0) < self.network.reorg_window
        )
        async with self._db.acquire() as conn, conn.transaction():
            if watch:
                kept = await self._queue.reschedule(
                    claim, self._every, conn=conn, extra_set="status = $4, fee = $5",
                    args=[outcome, fee],
                )  # fmt: skip
            else:
                kept = await self._queue.complete(
                    claim, conn=conn, extra_set="status = $3, fee = $4", args=[outcome, fee]
                )
            if not kept:
                return  # another broadcaster holds the row now
            # The transactions it replaced are over too: the same withdrawal and nonce (EVM),
            # the same withdrawal (TRON rebuilds), the same batch (Bitcoin: both NULL).
            await conn.execute(
                """UPDATE withdrawal_txs SET done_at = now()
                    WHERE batch_id = $1 AND withdrawal_id IS NOT DISTINCT FROM $2
                      AND nonce IS NOT DISTINCT FROM $3 AND id <> $4 AND done_at IS NULL""",
                row["batch_id"],
                row["withdrawal_id"],
                row["nonce"],
                row["id"],
            )
            status = (
                WithdrawalStatus.CONFIRMED if outcome == "confirmed" else WithdrawalStatus.FAILED
            )
            for withdrawal_id in await withdrawals_of(conn, row):
                await record_status(
                    conn,
                    withdrawal_id,
                    status,
                    actor=ACTOR,
                    txid=txid,
                    fee=fee,
                    confirmations=confirmations,
                    reason=reason,
                )
        log.info(
            "withdrawal_tx_final",
            network=self.network.name,
            txid=txid or row["txid"],
            outcome=outcome,
            fee=fee,
            reason=reason,
        )

    async def _watched(self, claim: Claim, txid: str, confirmations: int) -> None:
        """A confirmed row, told and settled already: only watched until beyond the window."""
        if confirmations >= self.network.reorg_window:
            await self._queue.complete(claim)
            log.info("withdrawal_tx_final_depth", txid=txid, confirmations=confirmations)
        else:
            await self._queue.defer([claim], self._every)

    async def _nonce_consumed_elsewhere(self, row: asyncpg.Record) -> bool:
        """True when the account's nonce at head - confirmations is past ours: a transaction at
        our nonce is buried that deep, and (the caller checked) it is none of ours."""
        head = await self._rpc.block_number()
        depth_block = head - self.network.confirmations
        if depth_block < 0:
            return False
        count = await self._rpc.transaction_count(row["from_address"], depth_block)
        return count > int(row["nonce"])

    async def _replace_if_stuck(self, row: asyncpg.Record) -> None:
        """Unmined longer than ``replace_after``: ask the signer for the same transfer at the
        same nonce with higher fees, or alert when the approved fee cap leaves no room."""
        since = row["broadcast_at"] or row["created_at"]
        async with self._db.acquire() as conn:
            stuck = await conn.fetchval(
                "SELECT now() - $1::timestamptz > make_interval(secs => $2)",
                since,
                self.network.replace_after,
            )
        if not stuck:
            return
        history = await self._rpc.fee_history()
        quote = quote_from_fee_history(history)
        gas = int(row["gas_limit"])
        try:
            bump_fees(
                Fees(int(row["max_fee_per_gas"]), int(row["max_priority_fee_per_gas"])),
                quote,
                cap=int(row["fee_cap"]) // gas,
            )
        except FeeCapError as exc:
            await self._stuck_alert(row, AlertSeverity.CRITICAL, f"cannot be replaced: {exc}")
            return
        plan = EvmPlan(
            from_address=row["from_address"],
            chain_nonce=int(row["nonce"]),
            next_base_fee=quote.next_base_fee,
            recent_tips=quote.recent_tips,
            gas={},
        )
        if await self._ask_replacement(row, plan):
            log.warning("withdrawal_tx_stuck", txid=row["txid"], nonce=row["nonce"])
            await self._stuck_alert(
                row, AlertSeverity.WARNING, "a replacement with higher fees is requested"
            )

    async def _ask_replacement(self, row: asyncpg.Record, plan: EvmPlan | TronPlan) -> bool:
        """Ask the signer for a new transaction in place of ``row`` (``signer_replacements``,
        with fresh figures in ``plan``): True when asked now, False when it was asked before."""
        async with self._db.acquire() as conn:
            asked = await conn.fetchval(
                """INSERT INTO signer_replacements (tx_id, plan) VALUES ($1, $2::text::jsonb)
                   ON CONFLICT (tx_id) DO NOTHING RETURNING 1""",
                row["id"],
                json.dumps(plan.to_json()),
            )
        return bool(asked)

    async def _stuck_alert(self, row: asyncpg.Record, severity: AlertSeverity, what: str) -> None:
        async with self._db.acquire() as conn:
            await raise_alert(
                conn,
                NewAlert(
                    kind=AlertKind.WITHDRAWAL_STUCK,
                    severity=severity,
                    network=self.network.name,
                    txid=row["txid"],
                    message=f"{self.network.name}: withdrawal tx {row['txid']} (nonce "
                    f"{row['nonce']}) unmined for over {self.network.replace_after:.0f} s; " + what,
                    details={"withdrawal_id": row["withdrawal_id"], "nonce": row["nonce"]},
                    dedup_key=f"withdrawal_stuck:{row['txid']}:{severity}",
                ),
            )
