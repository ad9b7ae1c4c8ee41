"""Our own coins on UTXO chains (migration 014): the wallet's addresses, its coins, their spends.

Coins enter from verified blocks (``withdrawals/coins.py``) and from the batches we sign (their
change); a reorg takes a block's coins and spends back out of the block (``orphan_above``) and
reading the block again on the new chain puts them back (``record_block``: upserts on the
outpoint). A coin is spendable when it is unspent, unlocked, and confirmed or our own change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import asyncpg

from chaingate.chains.bitcoin.coinselect import Coin
from chaingate.errors import StoreError


class CoinsTaken(StoreError):
    """Raised when a coin to lock is already locked by another transaction or spent."""


@dataclass(frozen=True, slots=True)
class WalletAddress:
    owner: str  # 'hot' (later: 'deposit')
    chain: int
    index: int
    script: str  # hex


@dataclass(frozen=True, slots=True)
class SeenOutput:
    txid: str
    vout: int
    amount: int
    address: WalletAddress


async def add_addresses(
    conn: asyncpg.Connection, network: str, addresses: Iterable[WalletAddress]
) -> None:
    await conn.executemany(
        """INSERT INTO wallet_addresses (network, owner, chain, index, script)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
        [(network, a.owner, a.chain, a.index, a.script) for a in addresses],
    )


async def addresses(conn: asyncpg.Connection, network: str) -> dict[str, WalletAddress]:
    rows = await conn.fetch(
        "SELECT owner, chain, index, script, used FROM wallet_addresses WHERE network = $1",
        network,
    )
    return {
        r["script"]: WalletAddress(r["owner"], r["chain"], r["index"], r["script"]) for r in rows
    }


async def derived_and_used(
    conn: asyncpg.Connection, network: str, owner: str, chain: int
) -> tuple[int, int]:
    """(addresses derived, 1 + highest used index) on one chain: the gap limit's inputs."""
    row = await conn.fetchrow(
        """SELECT count(*) AS derived,
                  coalesce(max(index) FILTER (WHERE used), -1) + 1 AS used
             FROM wallet_addresses WHERE network = $1 AND owner = $2 AND chain = $3""",
        network,
        owner,
        chain,
    )
    return int(row["derived"]), int(row["used"])


async def record_block(
    conn: asyncpg.Connection,
    network: str,
    number: int,
    block_hash: str,
    outputs: Sequence[SeenOutput],
    spends: Sequence[tuple[str, int, str]],  # (coin txid, coin vout, spending txid)
) -> None:
    """One block's coins and spends, and the block as read (same transaction)."""
    await conn.executemany(
        """INSERT INTO wallet_coins (network, txid, vout, amount, script, owner, chain, index,
                                     block_number, block_hash)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (network, txid, vout) DO UPDATE
              SET block_number = EXCLUDED.block_number, block_hash = EXCLUDED.block_hash,
                  -- the change of a replaced transaction that was mined after all is real
                  spent_txid = CASE WHEN wallet_coins.spent_block_number IS NULL
                                     AND wallet_coins.locked_by IS NULL
                                    THEN NULL ELSE wallet_coins.spent_txid END""",
        [
            (
                network,
                o.txid,
                o.vout,
                o.amount,
                o.address.script,
                o.address.owner,
                o.address.chain,
                o.address.index,
                number,
                block_hash,
            )
            for o in outputs
        ],
    )
    await conn.executemany(
        """UPDATE wallet_addresses SET used = true WHERE network = $1 AND script = $2""",
        [(network, s) for s in {o.address.script for o in outputs}],
    )
    await conn.executemany(
        """UPDATE wallet_coins SET spent_txid = $4, spent_block_number = $5, spent_block_hash = $6
            WHERE network = $1 AND txid = $2 AND vout = $3""",
        [(network, txid, vout, spender, number, block_hash) for txid, vout, spender in spends],
    )
    await conn.execute(
        """INSERT INTO wallet_blocks (network, number, hash) VALUES ($1, $2, $3)
           ON CONFLICT (network, number) DO UPDATE SET hash = EXCLUDED.hash""",
        network,
        number,
        block_hash,
    )


async def orphan_above(conn: asyncpg.Connection, network: str, fork: int) -> tuple[int, int]:
    """Blocks above ``fork`` left the chain: their coins become unconfirmed and their spends
    are undone (a spend by a transaction we signed stays locked to it). (coins, spends)."""
    coins = await conn.execute(
        """UPDATE wallet_coins SET block_number = NULL, block_hash = NULL
            WHERE network = $1 AND block_number > $2""",
        network,
        fork,
    )
    spends = await conn.execute(
        """UPDATE wallet_coins
              SET spent_block_number = NULL, spent_block_hash = NULL,
                  spent_txid = CASE WHEN locked_by IS NULL THEN NULL ELSE spent_txid END
            WHERE network = $1 AND spent_block_number > $2""",
        network,
        fork,
    )
    await conn.execute(
        "DELETE FROM wallet_blocks WHERE network = $1 AND number > $2", network, fork
    )
    return int(coins.split()[-1]), int(spends.split()[-1])


async def spendable(conn: asyncpg.Connection, network: str, owner: str = "hot") -> list[Coin]:
    rows = await conn.fetch(
        """SELECT txid, vout, amount::text AS amount, script, chain, index, own_change,
                  block_number IS NOT NULL AS confirmed
             FROM wallet_coins
            WHERE network = $1 AND owner = $2 AND spent_txid IS NULL AND locked_by IS NULL
              AND (block_number IS NOT NULL OR own_change)
            ORDER BY txid, vout""",
        network,
        owner,
    )
    return [
        Coin(
            txid=r["txid"],
            vout=r["vout"],
            amount=int(r["amount"]),
            script=bytes.fromhex(r["script"]),
            chain=r["chain"],
            index=r["index"],
            confirmed=r["confirmed"],
            own_change=r["own_change"],
        )
        for r in rows
    ]


async def unspent(conn: asyncpg.Connection, network: str) -> dict[tuple[str, int], int]:
    """Every coin not spent in a block, confirmed or not: (txid, vout) -> satoshis."""
    rows = await conn.fetch(
        """SELECT txid, vout, amount::text AS amount FROM wallet_coins
            WHERE network = $1 AND spent_block_number IS NULL""",
        network,
    )
    return {(r["txid"], r["vout"]): int(r["amount"]) for r in rows}


async def lock(
    conn: asyncpg.Connection, network: str, coins: Sequence[Coin], tx_id: int, txid: str
) -> None:
    """Lock ``coins`` to the signed transaction row ``tx_id``; CoinsTaken (roll back!) when
    any of them is already locked to another one or spent."""
    locked = await conn.fetch(
        """UPDATE wallet_coins SET locked_by = $2
            WHERE network = $1 AND (txid, vout) IN (SELECT * FROM unnest($3::text[], $4::int[]))
              AND (locked_by IS NULL OR locked_by = $2)
              AND (spent_txid IS NULL OR spent_txid = $5)
           RETURNING txid, vout""",
        network,
        tx_id,
        [c.txid for c in coins],
        [c.vout for c in coins],
        txid,
    )
    if len(locked) != len(coins):
        raise CoinsTaken(
            f"{len(coins) - len(locked)} of {len(coins)} coins are already locked or spent"
        )


async def add_own_change(
    conn: asyncpg.Connection,
    network: str,
    txid: str,
    vout: int,
    amount: int,
    address: WalletAddress,
) -> None:
    """The change of a transaction we signed: spendable before it is mined (only we can
    replace its parent)."""
    await conn.execute(
        """INSERT INTO wallet_coins (network, txid, vout, amount, script, owner, chain, index,
                                     own_change)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, true) ON CONFLICT DO NOTHING""",
        network,
        txid,
        vout,
        amount,
        address.script,
        address.owner,
        address.chain,
        address.index,
    )


async def conflict_own_change(
    conn: asyncpg.Connection, network: str, replaced_txid: str, replacement_txid: str
) -> None:
    """The change of a replaced transaction will not exist once its replacement is mined: it
    stops being spendable (marked spent by the replacement). CoinsTaken when another batch has
    already locked it (its parent would be evicted): the replacement must not be recorded."""
    taken = await conn.fetchval(
        """SELECT count(*) FROM wallet_coins
            WHERE network = $1 AND txid = $2 AND own_change AND locked_by IS NOT NULL""",
        network,
        replaced_txid,
    )
    if taken:
        raise CoinsTaken("the stuck transaction's change is spent by another batch already")
    await conn.execute(
        """UPDATE wallet_coins SET spent_txid = $3
            WHERE network = $1 AND txid = $2 AND own_change AND block_number IS NULL""",
        network,
        replaced_txid,
        replacement_txid,
    )
