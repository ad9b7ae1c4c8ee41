"""The planner (broadcaster role): reads from the chain what the signer needs and cannot ask.

For each signer job of its network without a fresh plan, it reads ``eth_feeHistory``, the hot
address's pending nonce and an ``eth_estimateGas`` per output (a token transfer from the hot
address; a native transfer only when the destination runs code), and stores them as the job's
plan (``domain/signing_plan.py``). Nothing is locked while the node is asked: planning twice is
harmless (the figures are only input, checked and bounded by the signer).
"""

from __future__ import annotations

import json

import asyncpg
import structlog

from chaingate.chains.evm.rpc import EvmRpc
from chaingate.chains.evm.txbuilder import NATIVE_TRANSFER_GAS, erc20_transfer_data
from chaingate.domain import AlertKind, AlertSeverity, Network, NewAlert
from chaingate.domain.signing_plan import BitcoinPlan, EvmPlan, TronPlan
from chaingate.errors import ProviderError, RpcError, ValidationError
from chaingate.store.alerts import raise_alert
from chaingate.store.batches import unheld

log = structlog.get_logger(__name__)

_DUE = """
SELECT j.id, j.batch_id, b.contract
  FROM signer_jobs j JOIN batches b ON b.id = j.batch_id
 WHERE b.network = $1 AND j.done_at IS NULL AND j.parked_at IS NULL
   AND (j.plan IS NULL OR j.planned_at < now() - make_interval(secs => $2))
 ORDER BY j.id LIMIT $3
"""


class Planner:
    def __init__(
        self, db: asyncpg.Pool, network: Network, rpc: EvmRpc, *, refresh_after: float = 60.0
    ) -> None:
        self._rpc = rpc
        self._bind(db, network, refresh_after)

    def _bind(self, db: asyncpg.Pool, network: Network, refresh_after: float) -> None:
        """What every account-based family's planner holds (EVM, TRON): the database, the
        network, its hot address and how old a plan may get."""
        if network.hot_address is None:
            raise ValueError(f"{network.name} has no hot_address")
        self._db = db
        self._network = network
        self._refresh_after = refresh_after
        self._hot = network.hot_address

    async def plan_once(self, limit: int = 20) -> int:
        """Plan the due jobs of the network; how many got a plan."""
        async with self._db.acquire() as conn:
            jobs = await conn.fetch(_DUE, self._network.name, self._refresh_after, limit)
        planned = 0
        for job in jobs:
            if await self._unheld(job["batch_id"]):
                continue  # the signer would not sign before the ledger holds the funds
            try:
                plan = await self._plan(job["batch_id"], job["contract"])
            except RpcError as exc:
                # The node refused to estimate: the transfer would fail (the hot wallet lacks
                # the token or the coin, the token refuses the destination). Held, not failed:
                # ops refill the hot wallet (it is planned on the next pass) or reject it.
                await self._unplannable(job["batch_id"], exc)
                continue
            except (ProviderError, ValidationError) as exc:
                # An endpoint failing, or (Bitcoin) coins that do not reach yet: no plan, so
                # the signer waits; tried again next pass.
                log.warning(
                    "withdrawal_plan_failed",
                    network=self._network.name,
                    batch_id=job["batch_id"],
                    error=type(exc).__name__,
                    detail=str(exc)[:200],
                )
                continue
            async with self._db.acquire() as conn:
                await conn.execute(
                    """UPDATE signer_jobs SET plan = $2::text::jsonb, planned_at = now()
                        WHERE id = $1 AND done_at IS NULL""",
                    job["id"],
                    json.dumps(plan.to_json()),
                )
            planned += 1
        return planned

    async def _unplannable(self, batch_id: int, exc: RpcError) -> None:
        log.error(
            "withdrawal_unplannable",
            network=self._network.name,
            batch_id=batch_id,
            detail=str(exc)[:200],
        )
        async with self._db.acquire() as conn:
            batch = await conn.fetchrow(
                "SELECT asset, total::text AS total FROM batches WHERE id = $1", batch_id
            )
            await raise_alert(
                conn,
                NewAlert(
                    kind=AlertKind.WITHDRAWAL_UNPLANNABLE,
                    severity=AlertSeverity.CRITICAL,
                    network=self._network.name,
                    asset=batch["asset"] if batch else None,
                    amount=int(batch["total"]) if batch else None,
                    message=f"approved batch {batch_id} cannot be sent from {self._hot}: the node "
                    f"says its transfer would fail ({str(exc)[:300]}); held until it would "
                    "succeed (refill the hot wallet) or the batch is rejected",
                    details={"batch_id": batch_id, "hot_address": self._hot},
                    dedup_key=f"withdrawal_unplannable:{self._network.name}:{batch_id}",
                ),
            )

    async def _unheld(self, batch_id: int) -> list[int]:
        async with self._db.acquire() as conn:
            ids = [
                r["withdrawal_id"]
                for r in await conn.fetch(
                    "SELECT withdrawal_id FROM batch_outputs WHERE batch_id = $1", batch_id
                )
            ]
            return await unheld(conn, ids)

    async def _plan(self, batch_id: int, contract: str | None) -> EvmPlan | TronPlan | BitcoinPlan:
        async with self._db.acquire() as conn:
            outputs = await conn.fetch(
                "SELECT withdrawal_id, destination, amount::text AS amount"
                " FROM batch_outputs WHERE batch_id = $1 ORDER BY withdrawal_id",
                batch_id,
            )
        history = await self._rpc.fee_history()
        base = history.get("baseFeePerGas") or ["0x0"]
        tips = tuple(int(r[0], 16) for r in history.get("reward") or [] if r)
        gas: dict[int, int] = {}
        for output in outputs:
            if contract is not None:
                data = erc20_transfer_data(output["destination"], int(output["amount"]))
                call = {"from": self._hot, "to": contract, "data": "0x" + data.hex()}
            else:
                call = {
                    "from": self._hot,
                    "to": output["destination"],
                    "value": hex(int(output["amount"])),
                }
            estimate = await self._rpc.estimate_gas(call)
            if contract is not None or estimate > NATIVE_TRANSFER_GAS:
                gas[int(output["withdrawal_id"])] = estimate
        return EvmPlan(
            from_address=self._hot,
            chain_nonce=await self._rpc.transaction_count(self._hot, "pending"),
            next_base_fee=int(base[-1], 16),
            recent_tips=tips,
            gas=gas,
        )
