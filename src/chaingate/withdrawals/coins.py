"""The coin follower (broadcaster role, Bitcoin): the hot wallet's UTXO set from verified blocks.

It reads only blocks the watcher has verified and stored (``block_hashes``: linked by parent
hash, checked against the header and merkle root), up to the watcher's cursor, and asks the
node for those exact hashes (``BitcoinRpc.getblocks`` checks each block again where it enters).
Per block, in ONE database transaction: the outputs paying a wallet address become coins, the
inputs spending a known coin mark it spent, and the block is recorded as read.

Reorgs: before reading on, the blocks it read are compared with the watcher's hashes at the
same heights; from the first difference up, their coins go back to unconfirmed and their spends
are undone (``store.wallet.orphan_above``), then the new chain is read (coins and spends come
back by outpoint). The watcher decides what the canonical chain is; this follows it.

Addresses: the receive and change chains of the hot wallet's account xpub are derived ahead of
the highest used index by the gap limit, so a payment to any of them is seen.
"""

from __future__ import annotations

import asyncpg
import structlog

from chaingate.chains.bitcoin.addresses import hash160, p2wpkh_script
from chaingate.chains.bitcoin.rawtx import DecodedTx
from chaingate.chains.bitcoin.rpc import BitcoinRpc
from chaingate.chains.hdkeys import EXTERNAL_CHAIN, INTERNAL_CHAIN, child_public_key
from chaingate.domain import Network
from chaingate.store import wallet
from chaingate.store.wallet import SeenOutput, WalletAddress

log = structlog.get_logger(__name__)

GAP_LIMIT = 20
BLOCKS_PER_PASS = 20


def wallet_address(xpub: str, chain: int, index: int) -> WalletAddress:
    script = p2wpkh_script(hash160(child_public_key(xpub, chain, index)))
    return WalletAddress("hot", chain, index, script.hex())


class CoinFollower:
    def __init__(self, db: asyncpg.Pool, network: Network, rpc: BitcoinRpc) -> None:
        if not network.hot_xpub:
            raise ValueError(f"{network.name} has no hot_xpub")
        self._db = db
        self._network = network
        self._xpub = network.hot_xpub
        self._rpc = rpc

    @property
    def name(self) -> str:
        return self._network.name

    async def extend_addresses(self, conn: asyncpg.Connection) -> None:
        """Derive each chain GAP_LIMIT addresses past its highest used one."""
        for chain in (EXTERNAL_CHAIN, INTERNAL_CHAIN):
            derived, used = await wallet.derived_and_used(conn, self.name, "hot", chain)
            if derived < used + GAP_LIMIT:
                await wallet.add_addresses(
                    conn,
                    self.name,
                    (
                        wallet_address(self._xpub, chain, i)
                        for i in range(derived, used + GAP_LIMIT)
                    ),
                )

    async def follow_once(self) -> int:
        """Undo what a reorg took away, then read the next verified blocks; how many."""
        async with self._db.acquire() as conn:
            await self.extend_addresses(conn)
            await self._undo_reorg(conn)
            todo = await conn.fetch(
                """SELECT b.number, b.hash FROM block_hashes b
                    WHERE b.network = $1
                      AND b.number > coalesce((SELECT max(number) FROM wallet_blocks
                                                WHERE network = $1), -1)
                      AND b.number <= (SELECT height FROM chain_cursor WHERE network = $1)
                    ORDER BY b.number LIMIT $2""",
                self.name,
                BLOCKS_PER_PASS,
            )
        if not todo:
            return 0
        # Consecutive heights only: a hole (a block_hashes window pruned past) stops the pass.
        first = todo[0]["number"]
        hashes = []
        for offset, row in enumerate(todo):
            if row["number"] != first + offset:
                break
            hashes.append(row["hash"])
        blocks = await self._rpc.getblocks(hashes, first)
        read = 0
        for block, txs in blocks:
            if not await self._record(block["height"], block["hash"], txs):
                break  # the watcher moved (a reorg): start over next pass
            read += 1
        return read

    async def _undo_reorg(self, conn: asyncpg.Connection) -> None:
        fork = await conn.fetchval(
            """SELECT min(w.number) - 1 FROM wallet_blocks w
                 JOIN block_hashes b ON b.network = w.network AND b.number = w.number
                WHERE w.network = $1 AND w.hash <> b.hash""",
            self.name,
        )
        if fork is None:
            # A watcher that rolled back below our last block without new blocks yet.
            fork = await conn.fetchval(
                """SELECT height FROM chain_cursor WHERE network = $1
                     AND height < (SELECT max(number) FROM wallet_blocks WHERE network = $1)""",
                self.name,
            )
        if fork is None:
            return
        async with conn.transaction():
            coins, spends = await wallet.orphan_above(conn, self.name, fork)
        log.warning(
            "wallet_reorg", network=self.name, fork=fork, coins_unconfirmed=coins, spends=spends
        )

    async def _record(self, number: int, block_hash: str, txs: list[DecodedTx]) -> bool:
        async with self._db.acquire() as conn, conn.transaction():
            current = await conn.fetchval(
                "SELECT hash FROM block_hashes WHERE network = $1 AND number = $2 FOR SHARE",
                self.name,
                number,
            )
            if current != block_hash:
                return False
            mine = await wallet.addresses(conn, self.name)
            known = await _known_outpoints(conn, self.name, txs)
            outputs = [
                SeenOutput(tx.txid, out.index, out.sats, mine[out.script])
                for tx in txs
                for out in tx.outputs
                if out.script in mine and out.sats > 0
            ]
            created = {(o.txid, o.vout) for o in outputs}
            spends = [
                (txid, vout, tx.txid)
                for tx in txs
                for txid, vout in tx.spends
                if (txid, vout) in known or (txid, vout) in created
            ]
            await wallet.record_block(conn, self.name, number, block_hash, outputs, spends)
        if outputs or spends:
            log.info(
                "wallet_block",
                network=self.name,
                block=number,
                coins=len(outputs),
                spends=len(spends),
            )
        return True


async def _known_outpoints(
    conn: asyncpg.Connection, network: str, txs: list[DecodedTx]
) -> set[tuple[str, int]]:
    wanted = [(t, v) for tx in txs for t, v in tx.spends]
    if not wanted:
        return set()
    rows = await conn.fetch(
        """SELECT txid, vout FROM wallet_coins
            WHERE network = $1 AND (txid, vout) IN (SELECT * FROM unnest($2::text[], $3::int[]))""",
        network,
        [t for t, _ in wanted],
        [v for _, v in wanted],
    )
    return {(r["txid"], r["vout"]) for r in rows}
