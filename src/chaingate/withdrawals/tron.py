"""The broadcaster role's TRON row: plan, send and track like the EVM classes they extend.

- ``TronPlanner``: the plan the signer needs (``TronPlan``): the SOLIDIFIED head as reference
  block, the energy and bandwidth prices, a ``triggerconstantcontract`` dry run per TRC-20
  output, which TRX destinations are not activated, the hot address's TRX.
- ``TronBroadcaster.send``: the stored bytes (the whole signed ``Transaction``) through
  ``/wallet/broadcasthex``. Accepted, or DUP_TRANSACTION_ERROR (the node has them), counts as
  sent; an expired or refused transaction is left to the tracker, which only trusts the
  solidified chain.
- ``TronTracker.track``: ``chains/tron/settlement.py`` on the solidified answers. In a
  solidified block: ``confirmed`` or ``failed`` (OUT_OF_ENERGY, REVERT) with the burned fee,
  energy and bandwidth recorded. Not there and before its expiration: the SAME bytes again.
  Dead for good (the solid head's parent past the expiration): rebuilt once (the signer signs
  a NEW transaction through ``signer_replacements``), and failed (funds back to the ledger) if
  the rebuilt one expires too.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog

from chaingate import crashpoints
from chaingate.chains.base import HttpClient
from chaingate.chains.tron.settlement import Fate, Settled, after_expiry, settle
from chaingate.chains.tron.txbuilder import trc20_transfer_data
from chaingate.domain import AlertKind, AlertSeverity, Network, NewAlert
from chaingate.domain.signing_plan import TronPlan
from chaingate.errors import ChainDataError, ProviderError
from chaingate.store.alerts import raise_alert
from chaingate.store.queue import Claim, LeasedQueue
from chaingate.withdrawals.broadcaster import Broadcaster
from chaingate.withdrawals.planner import Planner
from chaingate.withdrawals.tracker import Tracker

log = structlog.get_logger(__name__)
SENT = frozenset({"DUP_TRANSACTION_ERROR"})  # the node already has these very bytes


async def _header(http: HttpClient, path: str, body: dict[str, Any]) -> tuple[int, str, int]:
    block = await http.post(path, body)
    try:
        raw = block["block_header"]["raw_data"]
        return int(raw.get("number", 0)), str(block["blockID"]), int(raw.get("timestamp", 0))
    except (KeyError, TypeError, ValueError) as exc:
        raise ChainDataError(f"{path}: malformed block") from exc


class TronPlanner(Planner):
    def __init__(
        self, db: asyncpg.Pool, network: Network, http: HttpClient, *, refresh_after: float = 60.0
    ) -> None:
        self.http = http
        self._bind(db, network, refresh_after)

    async def _plan(self, batch_id: int, contract: str | None) -> TronPlan:
        return await self.plan_outputs(batch_id, contract)

    async def plan_outputs(
        self, batch_id: int, contract: str | None, withdrawal_id: int | None = None
    ) -> TronPlan:
        """The plan of a batch's outputs (of one of them when ``withdrawal_id`` is given)."""
        async with self._db.acquire() as conn:
            outputs = await conn.fetch(
                "SELECT withdrawal_id, destination, amount::text AS amount"
                " FROM batch_outputs WHERE batch_id = $1"
                " AND ($2::bigint IS NULL OR withdrawal_id = $2) ORDER BY withdrawal_id",
                batch_id,
                withdrawal_id,
            )
        number, block_id, timestamp = await _header(self.http, "/walletsolidity/getnowblock", {})
        answer = await self.http.post("/wallet/getchainparameters", {})
        params = {p["key"]: int(p.get("value", 0)) for p in answer.get("chainParameter", [])}
        energy: dict[int, int] = {}
        inactive: set[int] = set()
        for output in outputs:
            wid = int(output["withdrawal_id"])
            if contract is not None:
                energy[wid] = await self._dry_run(contract, output["destination"], output["amount"])
            elif not await self._account(output["destination"]):
                inactive.add(wid)
        hot = await self._account(self._hot)
        return TronPlan(
            from_address=self._hot,
            ref_number=number,
            ref_block_id=block_id,
            ref_timestamp=timestamp,
            energy_price=params["getEnergyFee"],
            bandwidth_price=params["getTransactionFee"],
            activation_fee=params["getCreateAccountFee"]
            + params["getCreateNewAccountFeeInSystemContract"],
            hot_balance=int(hot.get("balance", 0)),
            energy=energy,
            inactive=frozenset(inactive),
        )

    async def _account(self, address: str) -> dict[str, Any]:
        answer = await self.http.post("/wallet/getaccount", {"address": address, "visible": True})
        return dict(answer) if isinstance(answer, dict) else {}

    async def _dry_run(self, contract: str, to: str, amount: str) -> int:
        body = {
            "owner_address": self._hot,
            "contract_address": contract,
            "data": trc20_transfer_data(to, int(amount)),
            "visible": True,
        }
        answer = await self.http.post("/wallet/triggerconstantcontract", body)
        if answer.get("result") != {"result": True} or "energy_used" not in answer:
            # the hot wallet lacks the token, or the node cannot run it: no plan, no signing
            raise ProviderError(f"dry run of a transfer of {contract} refused: {answer}"[:300])
        return int(answer["energy_used"])


class TronTracker(Tracker):
    def __init__(
        self,
        db: asyncpg.Pool,
        network: Network,
        http: HttpClient,
        queue: LeasedQueue,
        every: float,
        broadcaster: TronBroadcaster,
    ) -> None:
        self.http = http
        self._bind(db, network, queue, every)
        self._broadcaster = broadcaster

    async def track(self, claim: Claim) -> None:
        row = claim.record
        txid = str(row["txid"])
        info = await self.http.post("/walletsolidity/gettransactioninfobyid", {"value": txid})
        tx = await self.http.post("/walletsolidity/gettransactionbyid", {"value": txid})
        head = await _header(self.http, "/wallet/getnowblock", {})
        solid = await _header(self.http, "/walletsolidity/getnowblock", {})
        parent = await _header(
            self.http, "/walletsolidity/getblockbynum", {"num": max(0, solid[0] - 1)}
        )
        fate = settle(
            txid,
            info or {},
            tx or {},
            expiration_ms=int(row["expiration_ms"]),
            head_ms=head[2],
            solid_parent_ms=parent[2],
        )
        if isinstance(fate, Settled):
            await self._settled(claim, fate)
        elif fate is Fate.REBROADCAST:
            # Not solidified yet and still alive: the same bytes again, unless the node has
            # them (pending or in a block not yet solidified)
            if not await self.http.post("/wallet/gettransactionbyid", {"value": txid}):
                await self._broadcaster.push(row)
            await self._queue.defer([claim], self._every)
        elif fate is Fate.WAIT:
            await self._queue.defer([claim], self._every)
        else:
            await self._expired(claim)

    async def _expired(self, claim: Claim) -> None:
        """Dead for good: rebuilt once (a new transaction from the signer), then failed."""
        row = claim.record
        async with self._db.acquire() as conn:
            rebuilds = await conn.fetchval(
                "SELECT count(*) FROM withdrawal_txs WHERE withdrawal_id = $1"
                " AND status = 'replaced'",
                row["withdrawal_id"],
            )
            contract = await conn.fetchval(
                "SELECT contract FROM batches WHERE id = $1", row["batch_id"]
            )
        if after_expiry(int(rebuilds)) == "fail":
            await self._finish(
                claim,
                "failed",
                str(row["txid"]),
                fee=0,
                reason="the transaction expired without entering a solidified block (and was "
                "rebuilt once already): nothing was sent",
            )
            return
        plan = await self._broadcaster.planner.plan_outputs(
            int(row["batch_id"]), contract, int(row["withdrawal_id"])
        )
        if await self._ask_replacement(row, plan):
            log.warning("tron_withdrawal_expired_rebuild_asked", txid=row["txid"])
        await self._queue.defer([claim], self._every)

    async def _settled(self, claim: Claim, fate: Settled) -> None:
        row = claim.record
        # Final on the solidified chain (confirmed, or failed with its fee), nothing recorded
        crashpoints.crash_point(crashpoints.CONFIRMED_BEFORE_BOOKKEEPING)
        async with self._db.acquire() as conn:
            await conn.execute(
                """UPDATE withdrawal_txs SET block_number = $2, energy_used = $3,
                          net_usage = $4, net_fee = $5, confirmations = 1
                    WHERE id = $1""",
                row["id"],
                fate.block_number,
                fate.energy_used,
                fate.net_usage,
                fate.net_fee,
            )
        log.info(
            "tron_withdrawal_resources",
            network=self.network.name,
            txid=row["txid"],
            result=fate.result,
            fee=fate.fee,
            energy_used=fate.energy_used,
            energy_fee=fate.energy_fee,
            net_usage=fate.net_usage,
            net_fee=fate.net_fee,
        )
        reason = None
        if fate.status == "failed":
            reason = f"{fate.result} on chain: nothing was sent; the fee {fate.fee} sun was burned"
            async with self._db.acquire() as conn:
                await raise_alert(
                    conn,
                    NewAlert(
                        kind=AlertKind.WITHDRAWAL_FAILED,
                        severity=AlertSeverity.WARNING,
                        network=self.network.name,
                        txid=str(row["txid"]),
                        message=f"withdrawal {row['withdrawal_id']}: {reason}",
                        dedup_key=f"withdrawal_failed:{row['txid']}",
                        details={"result": fate.result, "fee": fate.fee},
                    ),
                )
        await self._finish(
            claim,
            fate.status,
            str(row["txid"]),
            fee=fate.fee,
            confirmations=1 if fate.status == "confirmed" else None,
            reason=reason,
        )


class TronBroadcaster(Broadcaster):
    def __init__(
        self,
        db: asyncpg.Pool,
        network: Network,
        http: HttpClient,
        *,
        lease_seconds: float = 30.0,
        track_every: float | None = None,
        holder: str | None = None,
    ) -> None:
        self.http = http
        self._setup(db, network, lease_seconds, track_every, holder, extra="q.expiration_ms")
        self.planner: TronPlanner = TronPlanner(db, network, http)
        self.tracker = TronTracker(db, network, http, self._queue, self._track_every, self)

    async def push(self, row: asyncpg.Record) -> str:
        """Send the stored bytes; the node's answer code ("OK" when accepted)."""
        answer = await self.http.post(
            "/wallet/broadcasthex", {"transaction": row["raw_tx"]}, idempotent=False
        )
        if answer.get("result") is True:
            return "OK"
        code = str(answer.get("code", "OTHER_ERROR"))
        log.warning("tron_broadcast_refused", txid=row["txid"], code=code)
        return code

    async def send(self, claim: Claim) -> None:
        row = claim.record
        await self._mark_signed(row)
        _, _, head_ms = await _header(self.http, "/wallet/getnowblock", {})
        if head_ms >= int(row["expiration_ms"]):
            # Held back past its expiration (a broadcaster was down): never sent late. The
            # tracker declares it dead once the solidified chain proves it.
            log.warning("tron_withdrawal_expired_unsent", txid=row["txid"])
            await self.sent(claim, "expired_unsent")
            return
        crashpoints.crash_point(crashpoints.RECORDED_BEFORE_BROADCAST)
        code = await self.push(row)
        crashpoints.crash_point(crashpoints.BROADCAST_BEFORE_BOOKKEEPING)
        # Whatever the node said, the bytes may be out (or be dead): from now on the tracker
        # decides, on the solidified chain, and never sends anything but these bytes.
        await self.sent(claim, "accepted" if code == "OK" or code in SENT else code.lower())
