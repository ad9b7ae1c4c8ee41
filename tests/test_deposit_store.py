"""Deposit rows meeting a transaction again (SPEC section 5: re-included transactions), on real
PostgreSQL: a new block's word replaces what a row remembered; a credited row that the chain
now contradicts is reversed, alerted and credited anew under a new key; migration 006."""

from __future__ import annotations

import dataclasses
from importlib import resources

import asyncpg

from chaingate.domain import DepositInput, DepositStatus
from chaingate.ledger.messages import credit_key
from chaingate.store import deposits
from chaingate.watcher.reversals import reverse_credits

NET = "ethereum-devnet"
TX = "0x" + "ab" * 32
ALICE, BOB = "0x" + "a1" * 20, "0x" + "b0" * 20


async def issue(db: asyncpg.Pool, user: str, key: str, index: int) -> int:
    return int(
        await db.fetchval(
            """INSERT INTO deposit_addresses (network, user_id, derivation_index, address,
                                              match_key)
               VALUES ($1, $2, $3, $4, $4) RETURNING id""",
            NET,
            user,
            index,
            key,
        )
    )


def sighting(address_id: int, user: str, to: str, amount: int, block: str) -> DepositInput:
    return DepositInput(
        network=NET, txid=TX, position="log:0", to_key=to, amount=amount,
        status=DepositStatus.CONFIRMING, asset="NEXO", contract="0x" + "cc" * 20, decimals=18,
        address_id=address_id, user_id=user, block_number=10, block_hash=block,
        required_confirmations=3,
    )  # fmt: skip


async def record(conn: asyncpg.Connection, rows: list[DepositInput]) -> list[asyncpg.Record]:
    """What the watcher does with a block's deposits (watcher/loop.py _record_transfers)."""
    changed = await deposits.reverse_changed(conn, rows)
    await reverse_credits(conn, NET, changed, reorg=False)
    await deposits.upsert(conn, rows)
    return changed


async def credit_all(conn: asyncpg.Connection) -> None:
    """Every confirming row credited, as the watcher's _credit does once they are due."""
    await conn.execute("UPDATE deposits SET confirmations = required_confirmations")
    for r in await deposits.credit_due(conn, NET, 10**9, None):
        assert r["credit_key"] == credit_key(NET, r["txid"], r["position"], r["credit_generation"])


async def row(conn: asyncpg.Connection) -> asyncpg.Record:
    return await conn.fetchrow("SELECT * FROM deposits WHERE txid = $1", TX)


async def test_a_credited_deposit_the_new_block_contradicts_is_reversed_and_credited_anew(
    db: asyncpg.Pool,
) -> None:
    alice, bob = await issue(db, "alice", ALICE, 0), await issue(db, "bob", BOB, 1)
    old = sighting(alice, "alice", ALICE, 100, "0xold")
    async with db.acquire() as conn, conn.transaction():
        await record(conn, [old])
        await credit_all(conn)
        # The same block seen again changes nothing.
        assert await record(conn, [old]) == []
        assert (await row(conn))["status"] == "credited"
        # A rejection by configuration (here: dust) never takes back a credit.
        dust = dataclasses.replace(old, status=DepositStatus.REJECTED, reason="dust")
        assert await record(conn, [dust]) == []
        assert (await row(conn))["status"] == "credited"

        new = sighting(bob, "bob", BOB, 5, "0xnew")  # same (txid, position), other content
        [changed] = await record(conn, [new])
        assert (changed["user_id"], int(changed["amount"])) == ("alice", 100)
        current = await row(conn)
        assert (current["status"], current["user_id"], int(current["amount"])) == (
            "confirming", "bob", 5,
        )  # fmt: skip
        assert (current["to_key"], current["block_hash"]) == (BOB, "0xnew")
        assert current["credit_generation"] == 1  # the next credit gets a new key
        [reversal] = await conn.fetch("SELECT * FROM ledger_outbox WHERE kind = 'reversal'")
        assert reversal["payload"]["credit_key"] == credit_key(NET, TX, "log:0", 0)
        [alert] = await conn.fetch("SELECT * FROM alerts")
        assert (alert["kind"], alert["severity"], alert["user_id"]) == (
            "deposit_content_changed", "critical", "alice",
        )  # fmt: skip
        await credit_all(conn)
        assert (await row(conn))["credit_key"] == credit_key(NET, TX, "log:0", 1)


async def test_a_row_met_again_takes_the_new_blocks_word_not_what_it_remembered(
    db: asyncpg.Pool,
) -> None:
    alice, bob = await issue(db, "alice", ALICE, 0), await issue(db, "bob", BOB, 1)
    async with db.acquire() as conn, conn.transaction():
        await record(conn, [sighting(alice, "alice", ALICE, 100, "0xold")])
        await deposits.rollback_above(conn, NET, 9)  # its block left the chain
        assert (await row(conn))["status"] == "orphaned"
        await record(conn, [sighting(bob, "bob", BOB, 5, "0xnew")])
        current = await row(conn)
        assert (current["status"], current["user_id"], int(current["amount"])) == (
            "confirming", "bob", 5,
        )  # fmt: skip

        # Failed in one block, mined successfully in another: credited for the new block.
        failed = sighting(bob, "bob", BOB, 5, "0xthird")
        failed = dataclasses.replace(failed, status=DepositStatus.REJECTED, reason="failed_tx")
        await record(conn, [failed])
        assert ((await row(conn))["status"], (await row(conn))["reason"]) == (
            "rejected", "failed_tx",
        )  # fmt: skip
        await record(conn, [sighting(bob, "bob", BOB, 5, "0xfourth")])
        assert (await row(conn))["status"] == "confirming"

        # A mempool sighting never touches a row that is in a block.
        pending = dataclasses.replace(
            sighting(alice, "alice", ALICE, 1, "0x"), block_number=None, block_hash=None,
            status=DepositStatus.SEEN,
        )  # fmt: skip
        await record(conn, [pending])
        current = await row(conn)
        assert (current["status"], current["block_hash"], int(current["amount"])) == (
            "confirming", "0xfourth", 5,
        )  # fmt: skip


async def test_migration_006_renames_old_evm_positions_and_leaves_other_chains(
    db: asyncpg.Pool,
) -> None:
    rows = [
        ("ethereum-mainnet", TX, "log:57"),  # block-global logIndex: renamed
        ("ethereum-mainnet", TX, "call:3"),  # transactionIndex: renamed
        ("ethereum-mainnet", TX, "native"),
        ("ethereum-mainnet", TX, "trace:0.1"),
        ("tron-mainnet", "ab" * 32, "log:0"),  # TRON: already inside the transaction
        ("bitcoin-mainnet", "cd" * 32, "vout:1"),
    ]
    await db.executemany(
        """INSERT INTO deposits (network, txid, position, to_key, amount, status)
           VALUES ($1, $2, $3, 'k', 1, 'credited')""",
        rows,
    )
    sql = (resources.files("chaingate.store") / "migrations" / "006_tx_positions.sql").read_text()
    await db.execute(sql)
    got = {r["position"] for r in await db.fetch("SELECT position FROM deposits")}
    assert got == {"blocklog:57", "blockcall:3", "native", "trace:0.1", "log:0", "vout:1"}
    await db.execute(sql)  # applying it again changes nothing more
    assert {r["position"] for r in await db.fetch("SELECT position FROM deposits")} == got
