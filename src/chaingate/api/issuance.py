"""The address-index guard: a fresh database must not hand out addresses someone already has.

Deposit addresses are derived from an xpub at rising indexes kept in the database. Two
deployments, or a re-created database, with the same xpub would start at index 0 again and give
one address to two users: whoever pays it, both are credited, or the wrong one. So, before a
network's first address is issued from this database:

- the xpub's fingerprint (sha256 of the first two addresses it derives, never the xpub) is
  recorded per network; a later xpub that derives other addresses is refused (409
  ``xpub_changed``), never mixed into the same index sequence;
- the addresses at the start index and the ``HISTORY_WINDOW`` after it are looked up on chain
  (``AddressHistory``, read-only); any history refuses issuance (409 ``address_index_in_use``)
  until ops set a start index past it (``CHAINGATE_<NETWORK>_ADDRESS_START_INDEX``, runbook).

A database that already holds addresses (an upgrade) is adopted once its lowest address still
derives from the configured xpub.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import asyncpg
import structlog

from chaingate.chains.base import AddressCodec, AddressHistory
from chaingate.chains.registry import build_adapter, open_pool
from chaingate.domain import Network
from chaingate.errors import AddressIndexInUseError, ConfigError, XpubChangedError
from chaingate.settings import address_start_variable
from chaingate.store import xpubs

log = structlog.get_logger(__name__)

HISTORY_WINDOW = 20
HistoryOpener = Callable[[Network], AbstractAsyncContextManager[AddressHistory]]


def address_fingerprint(codec: AddressCodec) -> str:
    """What identifies an xpub here: the addresses it derives (so the same key in another
    serialisation, xpub or vpub, is the same; a different path or key is not)."""
    keys = [codec.derive(i).match_key for i in (0, 1)]
    return hashlib.sha256("\n".join(["chaingate-addresses-v1", *keys]).encode()).hexdigest()


@asynccontextmanager
async def open_address_history(network: Network) -> AsyncIterator[AddressHistory]:
    """The network's adapter over its own short-lived endpoint pool (the API process may run
    no watchers, so it has no pool of its own)."""
    async with open_pool(network) as pool:
        adapter = build_adapter(network, pool)
        if not isinstance(adapter, AddressHistory):
            raise ConfigError(f"{network.name}: its chain family cannot read address history")
        yield adapter


async def ensure_issuable(
    db: asyncpg.Pool,
    network: Network,
    codec: AddressCodec,
    *,
    start_index: int = 0,
    history: HistoryOpener | None = open_address_history,
) -> None:
    """Return when ``network`` may issue addresses from this database; raise otherwise."""
    fingerprint = address_fingerprint(codec)
    async with db.acquire() as conn:
        known = await xpubs.get(conn, network.name)
        if known is not None:
            _same_xpub(network.name, known.fingerprint, fingerprint)
            return
        if await _adopted(conn, network.name, codec, fingerprint):
            return
    window = [codec.derive(i) for i in range(start_index, start_index + HISTORY_WINDOW)]
    if history is None:
        # Only tests that share one devnet between fresh databases build an API without it.
        log.warning("address_history_unchecked", network=network.name)
        used: list[int] = []
    else:
        async with history(network) as reader:
            used = await reader.addresses_with_history(window)
    if used:
        env = address_start_variable(network.name)
        raise AddressIndexInUseError(
            f"{network.name}: this database has issued no addresses, but the xpub's addresses "
            f"at index {', '.join(map(str, used))} already have on-chain history (another "
            f"deployment or an earlier database issued them). Restore that database, or set "
            f"{env} above {max(used)} (docs/runbook.md: address-index guard)"
        )
    async with db.acquire() as conn, conn.transaction():
        await xpubs.lock_counter(conn, network.name)
        known = await xpubs.get(conn, network.name)
        if known is not None:  # another instance recorded it while we looked
            _same_xpub(network.name, known.fingerprint, fingerprint)
            return
        if await _adopted(conn, network.name, codec, fingerprint):
            return
        await xpubs.record(
            conn,
            xpubs.XpubRecord(network.name, fingerprint, start_index, start_index + HISTORY_WINDOW),
        )
    log.info(
        "address_issuance_opened",
        network=network.name,
        start_index=start_index,
        fingerprint=fingerprint[:16],
        history_checked=history is not None,
    )


def _same_xpub(network: str, recorded: str, configured: str) -> None:
    if recorded != configured:
        raise XpubChangedError(
            f"{network}: the configured xpub derives other addresses than the ones this "
            f"database issued (fingerprint {recorded[:16]}, now {configured[:16]}); restore "
            "the previous xpub, or give the new key its own network or database"
        )


async def _adopted(
    conn: asyncpg.Connection, network: str, codec: AddressCodec, fingerprint: str
) -> bool:
    """A database from before the guard: record its xpub if it still derives its addresses."""
    first = await xpubs.first_issued(conn, network)
    if first is None:
        return False
    index, match_key = first
    if codec.derive(index).match_key != match_key:
        raise XpubChangedError(
            f"{network}: the configured xpub does not derive the address this database issued "
            f"at index {index}; restore the previous xpub"
        )
    await xpubs.record(conn, xpubs.XpubRecord(network, fingerprint, index, None))
    return True
