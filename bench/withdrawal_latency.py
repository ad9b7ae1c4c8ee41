"""Measurement 6: the time from quorum to broadcast of EVM withdrawal batches, on anvil.

Measured: a batch of ETH withdrawals goes in through the same functions the API calls
(``withdrawals/intake.py``, ``batching.py``, ``approvals.py``: a maker and two approvers); the
clock starts when the second approval (the quorum) returns and stops at each transaction's
``broadcast_at``. In between run the real parts with their default intervals: the planner and
broadcaster (``Broadcaster``, one pass per block time) and the signer (``Signer``, polling every
0.5 s), in this process against the bench's own anvil and database. Batches go one after
another (the latency of a quiet gateway, not a queue under load). The ledger's
acknowledgement of each hold (which the signer waits for) is written before the approvals: it
comes long before a quorum in practice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import statistics
import time
import uuid
from pathlib import Path

import asyncpg

from chaingate.chains.evm.rpc import EvmRpc
from chaingate.chains.registry import address_codec, open_pool
from chaingate.ledger.messages import withdrawal_event_key
from chaingate.registry import load_registry
from chaingate.settings import PROJECT_ROOT
from chaingate.signer.checks import SignerLimit
from chaingate.signer.config import SignerSettings
from chaingate.signer.keystore import KeyRing, hot_key
from chaingate.signer.service import Signer
from chaingate.store import connect_pool
from chaingate.withdrawals import approvals, batching, intake
from chaingate.withdrawals.broadcaster import Broadcaster
from chaingate.withdrawals.rules import WithdrawalRules
from common import devnet

NETWORK = "ethereum-devnet"
ETH = 10**18
SEAL_KEY = b"bench-seal-key-0123456789abcdef0123"
# anvil's account 9 of "test test ... junk": the devnet registry's hot address (not a secret).
HOT_KEY = bytes.fromhex("2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6")


@dataclasses.dataclass
class LatencyResult:
    batches: int
    outputs_per_batch: int
    seconds: list[float]  # per transaction: quorum -> broadcast

    def quantile(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.seconds)


async def run_latency(
    tmp: Path, database_url: str, batches: int, outputs: int = 2
) -> LatencyResult:
    async with devnet(tmp, "withdrawals", ["eth"]) as state:
        assert state.eth_url
        networks = load_registry(
            PROJECT_ROOT / "chains" / "devnet",
            {"CHAINGATE_ETHEREUM_DEVNET_RPC": state.eth_url},
            [NETWORK],
        )
        network = networks[NETWORK]
        rules = WithdrawalRules(
            networks=networks,
            codecs={NETWORK: address_codec(network)},
            seal_key=SEAL_KEY,
            quorum=2,
        )
        limit = SignerLimit(100 * ETH, 10_000 * ETH)
        signer_settings = SignerSettings(
            database_url=database_url,
            networks=networks,
            keys=KeyRing([hot_key(HOT_KEY)]),
            seal_key=SEAL_KEY,
            quorum=2,
            limits={(NETWORK, "ETH"): limit, (NETWORK, "NEXO"): limit},
        )
        db = await connect_pool(database_url, max_size=6)
        stop = asyncio.Event()
        try:
            async with open_pool(network) as pool:
                broadcaster = Broadcaster(db, network, EvmRpc(pool, NETWORK))
                signer = Signer(db, signer_settings)
                tasks = [
                    asyncio.create_task(broadcaster.run(stop)),
                    asyncio.create_task(signer.run(stop)),
                ]
                try:
                    seconds: list[float] = []
                    for _ in range(batches):
                        seconds += await _one_batch(db, rules, outputs)
                finally:
                    stop.set()
                    for task in tasks:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
        finally:
            await db.close()
    return LatencyResult(batches, outputs, seconds)


async def _one_batch(db: asyncpg.Pool, rules: WithdrawalRules, outputs: int) -> list[float]:
    async with db.acquire() as conn:
        ids = []
        for index in range(outputs):
            view, _ = await intake.submit(
                conn,
                rules,
                "bench-service",
                {
                    "request_id": uuid.uuid4().hex,
                    "user_id": "bench-user",
                    "network": NETWORK,
                    "asset": "ETH",
                    "to_address": "0x" + uuid.uuid4().hex + uuid.uuid4().hex[:8],
                    "amount": str(ETH // 1000 * (index + 1)),
                },
            )
            ids.append(int(view["id"]))
        # The ledger acknowledged the holds (stands in for the dispatcher and the ledger).
        await conn.execute(
            "UPDATE ledger_outbox SET delivered_at = now() WHERE idempotency_key = ANY($1)",
            [withdrawal_event_key(i, "requested") for i in ids],
        )
        batch = await batching.make_batch(conn, rules, "bench-maker", NETWORK, "ETH")
        await approvals.approve(conn, rules, "bench-alice", batch["id"], batch["content_hash"])
        await approvals.approve(conn, rules, "bench-bob", batch["id"], batch["content_hash"])
        quorum_at = time.time()
        deadline = time.monotonic() + 120
        while True:
            sent = await conn.fetch(
                """SELECT broadcast_at FROM withdrawal_txs
                    WHERE batch_id = $1 AND broadcast_at IS NOT NULL""",
                batch["id"],
            )
            if len(sent) == outputs:
                return [r["broadcast_at"].timestamp() - quorum_at for r in sent]
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch['id']} not broadcast within 120 s")
            await asyncio.sleep(0.05)
