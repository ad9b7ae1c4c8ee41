"""The watched set of one network: match keys of issued deposit addresses, loaded incrementally.

Held as raw bytes (``AddressCodec.raw_key``: 20 bytes for an EVM account, 21 for TRON, the
script for Bitcoin), not as the text match keys: a million EVM keys take about 85 MiB instead
of 120, and the adapters probe with the bytes they decode anyway. Loaded in pages of
``PAGE_ROWS`` rows from one server-side cursor, so a first load of millions of rows never holds
the whole result set as driver records at once: the peak stays near what the set itself keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet

import asyncpg

from chaingate.domain import Network
from chaingate.store import addresses

PAGE_ROWS = 20_000


class AddressBook:
    """In-memory membership test over every address a watcher must recognise, by raw key.

    A watch-only network watches the addresses of the networks it mirrors (the same 0x address
    is valid on every EVM chain, with the same raw key).
    """

    def __init__(self, network: Network, raw_key: Callable[[str], bytes]) -> None:
        self.networks = (network.name, *network.watch_addresses_of)
        self._raw_key = raw_key
        self._keys: set[bytes] = set()
        self._last_id = 0

    def __contains__(self, raw: object) -> bool:
        return raw in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def keys(self) -> AbstractSet[bytes]:
        """The live set itself (refresh adds to it in place), for the adapters' hot loops:
        probing it directly skips a Python-level ``__contains__`` per transaction. Read only."""
        return self._keys

    async def refresh(self, conn: asyncpg.Connection, page: int = PAGE_ROWS) -> int:
        """Load addresses issued since the last refresh; return how many were added."""
        raw_key, keys = self._raw_key, self._keys

        def add(rows: list[tuple[int, str]]) -> None:
            keys.update(map(raw_key, [key for _, key in rows]))
            self._last_id = rows[-1][0]  # ordered by id

        return await addresses.keys_since(conn, self.networks, self._last_id, page, add)
