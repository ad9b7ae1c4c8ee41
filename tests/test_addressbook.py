"""The watcher's AddressBook on real PostgreSQL: raw keys per chain family, loaded in pages,
only new rows on a refresh, the mirrored networks of a watch-only network included."""

from __future__ import annotations

import dataclasses

import asyncpg

from chaingate.chains.bitcoin.addresses import BitcoinAddresses
from chaingate.chains.evm.addresses import EvmAddresses, address_bytes
from chaingate.chains.tron.addresses import TronAddresses, from_base58
from chaingate.domain import Network, NetworkKind
from chaingate.watcher.addressbook import AddressBook

ETH = Network(
    name="eth-book",
    kind=NetworkKind.EVM,
    confirmations=1,
    block_time=1.0,
    poll_interval=1.0,
    endpoints=(),
    assets=(),
)


async def issue(db: asyncpg.Pool, network: str, keys: list[str], first: int = 0) -> None:
    await db.executemany(
        """INSERT INTO deposit_addresses (network, user_id, derivation_index, address, match_key)
           VALUES ($1, $2, $3, $4, $4)""",
        [(network, f"u{first + i}", first + i, key) for i, key in enumerate(keys)],
    )


def evm_key(i: int) -> str:
    return "0x" + i.to_bytes(20, "big").hex()


async def test_keys_are_raw_bytes_loaded_in_pages_and_only_new_rows_later(
    db: asyncpg.Pool,
) -> None:
    await issue(db, ETH.name, [evm_key(i) for i in range(25)])
    await issue(db, "another-chain", [evm_key(1000)])
    book = AddressBook(ETH, EvmAddresses(ETH).raw_key)
    async with db.acquire() as conn:
        assert await book.refresh(conn, page=7) == 25  # four pages, the last one short
        assert await book.refresh(conn, page=7) == 0
        await issue(db, ETH.name, [evm_key(i) for i in range(25, 32)], first=25)
        assert await book.refresh(conn, page=7) == 7  # exactly one full page, then an empty one
    assert len(book) == 32
    assert all(address_bytes(evm_key(i)) in book for i in range(32))
    assert evm_key(3) not in book  # text is not what the book holds: adapters probe with bytes
    assert address_bytes(evm_key(1000)) not in book.keys  # another network's address


async def test_a_watch_only_network_watches_the_addresses_it_mirrors(db: asyncpg.Pool) -> None:
    mirror = dataclasses.replace(ETH, name="eth-mirror", watch_addresses_of=(ETH.name,))
    await issue(db, ETH.name, [evm_key(1), evm_key(2)])
    book = AddressBook(mirror, EvmAddresses(mirror).raw_key)
    async with db.acquire() as conn:
        assert await book.refresh(conn) == 2
    assert address_bytes(evm_key(2)) in book


def test_raw_keys_of_each_family_are_what_their_adapters_decode() -> None:
    tron = dataclasses.replace(ETH, name="tron-book", kind=NetworkKind.TRON)
    key = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
    assert TronAddresses(tron).raw_key(key) == from_base58(key)
    assert len(from_base58(key)) == 21  # 0x41 and the account: the bytes a TRON tx carries
    btc = dataclasses.replace(ETH, name="btc-book", kind=NetworkKind.BITCOIN, hrp="bcrt")
    script = "0014" + "ab" * 20
    assert BitcoinAddresses(btc).raw_key(script) == bytes.fromhex(script)
    assert EvmAddresses(ETH).raw_key(evm_key(5).upper().replace("0X", "0x")) == bytes(19) + b"\5"
