"""Measurement 3: credits per second into the ledger.

The reference ledger runs in-process (aiohttp, its own database). Baseline: N signed POST
/credits sent one after the other with LedgerClient, nothing else. Measured: N credit rows in
ledger_outbox delivered by OutboxDispatcher (claim with a lease, send, record the answer), one
dispatcher, as the service runs it (up to 8 rows of a claim in flight), and the same dispatcher
limited to one row at a time, which is how it ran before. Both send distinct idempotency keys, so every request is a
new credit on the ledger side. The two alternate in ROUNDS rounds of N / ROUNDS credits.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import asyncpg

from chaingate.ledger.client import LedgerClient
from chaingate.ledger.dispatcher import OutboxDispatcher
from chaingate.ledger.reference.app import serve_reference_ledger
from common import Memory, measure_memory, rate, throwaway_database, timed
from progress import phase

SECRET = b"bench-ledger-secret-0123456789abcdef"
NETWORK = "ethereum-devnet"
ROUNDS = 4  # baseline and dispatcher alternate


@dataclasses.dataclass
class CreditPass:
    name: str
    count: int
    seconds: float
    memory: Memory

    @property
    def per_s(self) -> float:
        return rate(self.count, self.seconds)


@dataclasses.dataclass
class CreditsResult:
    count: int
    batch_size: int
    passes: list[CreditPass]


def credit_body(run: str, i: int) -> dict[str, Any]:
    txid = f"0x{run}{i:060x}"[:66]
    return {
        "idempotency_key": f"credit:{NETWORK}:{txid}:log:0:{run}",
        "user_id": f"user-{i % 997}",
        "network": NETWORK,
        "asset": "NEXO",
        "amount": str(10**18 + i),
        "decimals": 18,
        "txid": txid,
        "position": "log:0",
        "block_number": 1000 + i // 50,
    }


async def _direct_round(client: LedgerClient, bodies: list[dict[str, Any]]) -> Round:
    with measure_memory() as memory, timed() as clock:
        for body in bodies:
            await client.post("/credits", body)
    return Round(len(bodies), clock.seconds, memory)


async def _queue(db: asyncpg.Pool, bodies: list[dict[str, Any]]) -> None:
    # Text cast to jsonb in SQL: the same rows whatever jsonb codec the connection carries.
    await db.execute(
        """INSERT INTO ledger_outbox (idempotency_key, kind, payload)
           SELECT k, 'credit', p::jsonb FROM unnest($1::text[], $2::text[]) AS t(k, p)""",
        [b["idempotency_key"] for b in bodies],
        [json.dumps(b) for b in bodies],
    )


async def _dispatcher_round(
    db: asyncpg.Pool, dispatcher: OutboxDispatcher, bodies: list[dict[str, Any]]
) -> Round:
    await _queue(db, bodies)
    delivered = 0
    with measure_memory() as memory, timed() as clock:
        while delivered < len(bodies):
            sent = await dispatcher.dispatch_once()
            if sent == 0:
                raise RuntimeError(f"dispatcher stalled after {delivered} of {len(bodies)}")
            delivered += sent
    return Round(len(bodies), clock.seconds, memory)


@dataclasses.dataclass
class Round:
    count: int
    seconds: float
    memory: Memory


def _summed(name: str, rounds: list[Round]) -> CreditPass:
    worst = max(rounds, key=lambda r: r.memory.peak_growth).memory
    return CreditPass(name, sum(r.count for r in rounds), sum(r.seconds for r in rounds), worst)


async def run_credits(
    admin_dsn: str, db_dsn: str, count: int, batch_size: int, rounds: int = ROUNDS
) -> CreditsResult:
    """Baseline and dispatcher in alternating rounds, so a drift in machine load (or a
    growing ledger table) weighs on both alike."""
    sizes = [count // rounds + (1 if i < count % rounds else 0) for i in range(rounds)]
    direct: list[Round] = []
    dispatched: list[Round] = []
    sequential: list[Round] = []
    # A plain pool, as the dispatcher's own tests use (the dispatcher reads jsonb as text, so
    # it runs the same on the service's pool).
    async with (
        throwaway_database(admin_dsn, migrate=False) as ledger_dsn,
        serve_reference_ledger("127.0.0.1", 0, ledger_dsn, SECRET) as url,
        asyncpg.create_pool(db_dsn, min_size=1, max_size=10) as db,
        LedgerClient(url, SECRET) as client,
    ):
        dispatcher = OutboxDispatcher(db, client, batch_size=batch_size)
        one_at_a_time = OutboxDispatcher(db, client, batch_size=batch_size, concurrency=1)
        start = 0
        for round_no, size in enumerate(sizes, 1):
            phase(
                f"round {round_no} of {len(sizes)}: {size} credits direct, dispatched, one at a time"
            )
            numbers = range(start, start + size)
            direct.append(await _direct_round(client, [credit_body("aa", i) for i in numbers]))
            bodies = [credit_body("bb", i) for i in numbers]
            dispatched.append(await _dispatcher_round(db, dispatcher, bodies))
            bodies = [credit_body("cc", i) for i in numbers]
            sequential.append(await _dispatcher_round(db, one_at_a_time, bodies))
            start += size
        left = await db.fetchval("SELECT count(*) FROM ledger_outbox WHERE delivered_at IS NULL")
        credited = await _ledger_credits(ledger_dsn)
    if left or credited != 3 * count:
        raise RuntimeError(f"{left} rows undelivered, the ledger holds {credited} credits")
    passes = [
        _summed("LedgerClient.post, direct (baseline)", direct),
        _summed(f"OutboxDispatcher (batch {batch_size}, 8 in flight)", dispatched),
        _summed(f"OutboxDispatcher (batch {batch_size}, 1 in flight)", sequential),
    ]
    return CreditsResult(count, batch_size, passes)


async def _ledger_credits(ledger_dsn: str) -> int:
    conn = await asyncpg.connect(ledger_dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM refledger.credits"))
    finally:
        await conn.close()
