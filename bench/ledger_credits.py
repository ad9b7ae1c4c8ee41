"""Measurement 3: credits per second into the ledger.

The reference ledger runs in its own process, as in production (``python -m
chaingate.ledger.reference``, its own database). Baseline: N signed POST /credits sent with
LedgerClient and nothing else, with IN_FLIGHT requests in flight (the dispatcher's
concurrency). Measured: N credit rows in ledger_outbox delivered by OutboxDispatcher (claim
with a lease, send, record the answer), one dispatcher as the service runs it (up to IN_FLIGHT
rows of a claim in flight). The same pair one request at a time shows what the concurrency
buys. Every request carries a new idempotency key, so each is a new credit on the ledger side.
The passes alternate in ROUNDS rounds of N / ROUNDS credits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import asyncpg

from chaingate.ledger.client import LedgerClient
from chaingate.ledger.dispatcher import OutboxDispatcher
from common import Memory, ledger_process, measure_memory, rate, throwaway_database, timed
from progress import phase

SECRET = b"bench-ledger-secret-0123456789abcdef"
NETWORK = "ethereum-devnet"
ROUNDS = 4  # baseline and dispatcher alternate
IN_FLIGHT = 8  # the dispatcher's default concurrency (rows of one claim sent at once)


@dataclasses.dataclass
class CreditPass:
    name: str
    count: int
    seconds: float
    memory: Memory
    in_flight: int = IN_FLIGHT
    direct: bool = False  # a baseline: bare LedgerClient.post

    @property
    def per_s(self) -> float:
        return rate(self.count, self.seconds)


@dataclasses.dataclass
class CreditsResult:
    count: int
    batch_size: int
    passes: list[CreditPass]

    def baseline(self, p: CreditPass) -> CreditPass:
        """The bare POSTs with the same number in flight."""
        return next(b for b in self.passes if b.direct and b.in_flight == p.in_flight)


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


async def _direct_round(
    client: LedgerClient, bodies: list[dict[str, Any]], in_flight: int
) -> Round:
    """The bodies in order, ``in_flight`` workers taking the next one as theirs is answered
    (as the dispatcher's workers take the rows of a claim)."""
    queue = list(reversed(bodies))

    async def worker() -> None:
        while queue:
            await client.post("/credits", queue.pop())

    with measure_memory() as memory, timed() as clock:
        await asyncio.gather(*(worker() for _ in range(in_flight)))
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


def _summed(name: str, rounds: list[Round], in_flight: int, *, direct: bool = False) -> CreditPass:
    worst = max(rounds, key=lambda r: r.memory.peak_growth).memory
    count, seconds = sum(r.count for r in rounds), sum(r.seconds for r in rounds)
    return CreditPass(name, count, seconds, worst, in_flight, direct)


async def run_credits(
    tmp: Path,
    admin_dsn: str,
    db_dsn: str,
    count: int,
    batch_size: int,
    rounds: int = ROUNDS,
) -> CreditsResult:
    """Baselines and dispatchers in alternating rounds, so a drift in machine load (or a
    growing ledger table) weighs on all alike."""
    sizes = [count // rounds + (1 if i < count % rounds else 0) for i in range(rounds)]
    kinds = ("aa", "bb", "cc", "dd")  # direct 8, dispatched 8, direct 1, dispatched 1
    done: dict[str, list[Round]] = {k: [] for k in kinds}
    # A plain pool, as the dispatcher's own tests use (the dispatcher reads jsonb as text, so
    # it runs the same on the service's pool).
    async with (
        throwaway_database(admin_dsn, migrate=False) as ledger_dsn,
        ledger_process(ledger_dsn, SECRET, tmp / "credits-ledger.log") as url,
        asyncpg.create_pool(db_dsn, min_size=1, max_size=10) as db,
        LedgerClient(url, SECRET) as client,
    ):
        dispatcher = OutboxDispatcher(db, client, batch_size=batch_size, concurrency=IN_FLIGHT)
        one_at_a_time = OutboxDispatcher(db, client, batch_size=batch_size, concurrency=1)
        start = 0
        for round_no, size in enumerate(sizes, 1):
            phase(
                f"round {round_no} of {len(sizes)}: {size} credits direct and dispatched, "
                f"{IN_FLIGHT} in flight, then one at a time"
            )
            numbers = range(start, start + size)

            def bodies(kind: str, numbers: range = numbers) -> list[dict[str, Any]]:
                return [credit_body(kind, i) for i in numbers]

            done["aa"].append(await _direct_round(client, bodies("aa"), IN_FLIGHT))
            done["bb"].append(await _dispatcher_round(db, dispatcher, bodies("bb")))
            done["cc"].append(await _direct_round(client, bodies("cc"), 1))
            done["dd"].append(await _dispatcher_round(db, one_at_a_time, bodies("dd")))
            start += size
        left = await db.fetchval("SELECT count(*) FROM ledger_outbox WHERE delivered_at IS NULL")
        credited = await _ledger_credits(ledger_dsn)
    if left or credited != len(kinds) * count:
        raise RuntimeError(f"{left} rows undelivered, the ledger holds {credited} credits")
    passes = [
        _summed(f"LedgerClient.post, {IN_FLIGHT} in flight (baseline)", done["aa"], IN_FLIGHT,
                direct=True),
        _summed(f"OutboxDispatcher (batch {batch_size}, {IN_FLIGHT} in flight)", done["bb"],
                IN_FLIGHT),
        _summed("LedgerClient.post, 1 in flight (baseline)", done["cc"], 1, direct=True),
        _summed(f"OutboxDispatcher (batch {batch_size}, 1 in flight)", done["dd"], 1),
    ]  # fmt: skip
    return CreditsResult(count, batch_size, passes)


async def _ledger_credits(ledger_dsn: str) -> int:
    conn = await asyncpg.connect(ledger_dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM refledger.credits"))
    finally:
        await conn.close()
