"""The watched set of one network: match keys of issued deposit addresses, loaded incrementally."""

from __future__ import annotations

import asyncpg

from chaingate.domain import Network
from chaingate.store import addresses


class AddressBook:
    """In-memory membership test over every address a watcher must recognise.

    A watch-only network watches the addresses of the networks it mirrors (the same 0x address
    is valid on every EVM chain).
    """

    def __init__(self, network: Network) -> None:
        self.networks = (network.name, *network.watch_addresses_of)
        self._keys: set[str] = set()
        self._last_id = 0

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    async def refresh(self, conn: asyncpg.Connection) -> int:
        """Load addresses issued since the last refresh; return how many were added."""
        rows = await addresses.keys_since(conn, self.networks, self._last_id)
        for row_id, key in rows:
            self._keys.add(key)
            self._last_id = max(self._last_id, row_id)
        return len(rows)
