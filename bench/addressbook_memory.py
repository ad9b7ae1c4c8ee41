"""Measurement 2: the watcher's AddressBook holding 1,000,000 watched addresses.

Synthetic EVM match keys (lowercase 0x hex) are COPYed into deposit_addresses of a network of
their own; then a fresh AddressBook loads them the way a starting watcher does (in pages, keys
held as 20 raw bytes). Reported: the load time, the RSS it keeps (after a garbage collection)
and the peak while loading, and the membership-probe rate the way EvmAdapter probes: from the
0x hex a node answers with, decoded to its 20 bytes, against the book's live set.
"""

from __future__ import annotations

import dataclasses
import random
import sys
import time

from chaingate.chains.evm.addresses import EvmAddresses, address_bytes
from chaingate.domain import Network, NetworkKind
from chaingate.store import connect_pool
from chaingate.watcher.addressbook import AddressBook
from common import Memory, measure_memory, rate, rss_mib, timed
from evm_scan import insert_addresses
from progress import phase

NETWORK = "bench-addressbook"
PROBES = 1_000_000


@dataclasses.dataclass
class BookResult:
    addresses: int
    copy_seconds: float
    load_seconds: float
    memory: Memory
    retained_mib: float
    object_mib: float  # sys.getsizeof of the set and its keys: what Python itself holds
    probes_per_s: float

    @property
    def bytes_per_address(self) -> float:
        return self.retained_mib * 1024 * 1024 / self.addresses


def _network() -> Network:
    return Network(
        name=NETWORK,
        kind=NetworkKind.EVM,
        confirmations=1,
        block_time=1.0,
        poll_interval=1.0,
        endpoints=(),
        assets=(),
    )


def _keys(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["0x" + rng.randbytes(20).hex() for _ in range(count)]


def _probe_rate(book: AddressBook, hits: list[str], seed: int) -> float:
    """Lookups per second, half hits and half misses (what a scan does per log/tx): each from
    a fresh hex string, as a node's answer gives it, decoded as ``EvmAdapter`` decodes it."""
    misses = _keys(len(hits), seed + 1)
    # Fresh strings, as JSON decoding makes them (no cached hash).
    mixed = ["".join(k) for pair in zip(hits, misses, strict=True) for k in pair]
    watched = book.keys
    started = time.perf_counter()
    found = sum(1 for key in mixed if address_bytes(key) in watched)
    seconds = time.perf_counter() - started
    if found != len(hits):
        raise RuntimeError(f"AddressBook found {found} of {len(hits)} loaded keys")
    return rate(len(mixed), seconds)


async def run_addressbook(db_dsn: str, count: int) -> BookResult:
    network = _network()
    keys = _keys(count, seed=99)
    db = await connect_pool(db_dsn, max_size=2)
    try:
        async with db.acquire() as conn:
            phase(f"copying {count} addresses into the database")
            with timed() as copy_clock:
                await insert_addresses(conn, network.name, keys)
            sample = keys[: min(PROBES // 2, count)]
            del keys  # only the book's own copy should stay in memory
            before = rss_mib()
            book = AddressBook(network, EvmAddresses(network).raw_key)
            phase(f"loading {count} addresses into the AddressBook, measuring memory")
            with measure_memory() as memory, timed() as load_clock:
                loaded = await book.refresh(conn)
        if loaded != count or len(book) != count:
            raise RuntimeError(f"AddressBook loaded {loaded} of {count} addresses")
        retained = memory.after - before
        objects = _object_mib(book)
        probes = _probe_rate(book, sample, seed=5)
    finally:
        await db.close()
    return BookResult(
        count, copy_clock.seconds, load_clock.seconds, memory, retained, objects, probes
    )


def _object_mib(book: AddressBook) -> float:
    # The book offers no iteration (nothing in the gateway needs one); the bench peeks inside.
    keys = book.keys
    return (sys.getsizeof(keys) + sum(sys.getsizeof(k) for k in keys)) / 1024 / 1024
