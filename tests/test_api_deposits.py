"""GET /v1/deposits on anvil with the reference ledger: each deposit's ledger delivery state
(pending, delivered, parked), the txid filter, and keyset pagination with an opaque cursor."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from chaindrivers.evm import E18 as ETH
from chaindrivers.evm import SENDER, head
from chaingate.devnet import evm_contracts as evm
from chaingate.devnet.manager import DevnetState
from chaingate.store.deposits import DepositFilter, list_deposits, list_query
from harness import SERVICE_TOKEN, Gateway, devnet_network, gateway

AUTH = {"Authorization": f"Bearer {SERVICE_TOKEN}"}


@pytest.fixture
async def eth(devnet: DevnetState, db: Any, ledger_url: str) -> AsyncIterator[Gateway]:
    url = devnet.eth_url or ""
    network = devnet_network("ethereum-devnet", url, start_height=await head(url) + 1)
    async with gateway(network, db, ledger_url) as gw:
        yield gw


async def page(gw: Gateway, **query: str) -> dict[str, Any]:
    resp = await gw.api.get("/v1/deposits", params=query, headers=AUTH)
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def test_deposits_show_ledger_delivery_filter_by_txid_and_page_by_cursor(
    eth: Gateway, devnet: DevnetState
) -> None:
    url = devnet.eth_url or ""
    alice, bob = await eth.address("alice"), await eth.address("bob")
    txids = [await evm.send_eth(url, SENDER, alice, ETH + i) for i in range(5)]
    await evm.send_eth(url, SENDER, bob, 2 * ETH)
    await evm.mine(url, 3)
    await eth.sync()
    rows = await eth.deposits("alice")
    assert len(rows) == 5 and {r["status"] for r in rows} == {"credited"}
    # Credited, but the ledger has acknowledged nothing yet: say so.
    assert {(r["ledger"], r["delivered_at"]) for r in rows} == {("pending", None)}
    assert {r["ledger_message"] for r in rows} == {"credit"}

    # The dispatcher parks a message the ledger refused for good (next attempt: never).
    parked_txid = txids[0].lower()
    await eth.db.execute(
        """UPDATE ledger_outbox SET next_attempt_at = 'infinity'
           WHERE payload->>'txid' = $1""",
        parked_txid,
    )
    await eth.deliver()
    rows = {r["txid"]: r for r in await eth.deposits("alice")}
    assert rows[parked_txid]["ledger"] == "parked"
    assert rows[parked_txid]["delivered_at"] is None
    delivered = [r for t, r in rows.items() if t != parked_txid]
    assert {r["ledger"] for r in delivered} == {"delivered"}
    assert all(r["delivered_at"] for r in delivered)

    # txid filter, in any letter case; a txid nobody paid finds nothing.
    one = await page(eth, txid=txids[2].upper().replace("0X", "0x"))
    assert [r["txid"] for r in one["deposits"]] == [txids[2].lower()]
    assert one["next"] is None
    assert (await page(eth, txid="0x" + "ab" * 32))["deposits"] == []

    # Pages of 2, newest first, with and without other filters: every deposit exactly once.
    for filters in ({}, {"user_id": "alice"}, {"network": "ethereum-devnet", "status": "credited"}):
        seen: list[int] = []
        query = {"limit": "2", **filters}
        while True:
            got = await page(eth, **query)
            seen += [r["id"] for r in got["deposits"]]
            if got["next"] is None:
                break
            assert len(got["deposits"]) == 2
            query["after"] = got["next"]
        assert seen == sorted(seen, reverse=True) and len(set(seen)) == len(seen)
        expected = 5 if filters.get("user_id") else 6
        assert len(seen) == expected, filters

    # A cursor is opaque: a forged or mangled one is a clear 422, not an empty page.
    for bad in ("42", "ZDE6", "ZDE6LTE", "x" * 65, "ZDE6OTIyMzM3MjAzNjg1NDc3NTgwOA"):
        resp = await eth.api.get("/v1/deposits", params={"after": bad}, headers=AUTH)
        assert resp.status == 422, bad


async def test_each_filter_is_an_index_scan_in_id_order(db: asyncpg.Pool) -> None:
    """Keyset pagination stays cheap at any depth: on a realistic table every filter combination
    is answered from an index on deposits, never by reading the whole table."""
    await db.execute(
        """INSERT INTO deposits (network, txid, position, to_key, amount, status, user_id,
                                 credit_key)
           SELECT CASE WHEN i % 2 = 0 THEN 'ethereum-devnet' ELSE 'bitcoin-devnet' END,
                  md5(i::text), '0', 'k', 1, 'credited', 'u' || (i % 500), 'c' || i
           FROM generate_series(1, 20000) AS i"""
    )
    await db.execute("ANALYZE deposits")
    for where in (
        DepositFilter(user_id="u7", before_id=15_000),
        DepositFilter(network="ethereum-devnet", before_id=12_000),
        DepositFilter(user_id="u7", network="ethereum-devnet"),
        DepositFilter(txid="0x" + "ab" * 32),
        DepositFilter(before_id=10_000),
        DepositFilter(),
    ):
        sql, args = list_query(where, 101)
        plan = "\n".join(r[0] for r in await db.fetch(f"EXPLAIN {sql}", *args))
        assert "Seq Scan on deposits" not in plan, (where, plan)
        assert re.search(r"Index (Only )?Scan (Backward )?(using|on) deposits\w*", plan), plan


async def test_a_reversed_deposit_shows_its_reversal_and_a_remined_one_no_stale_credit(
    db: asyncpg.Pool,
) -> None:
    """The ledger state speaks for the message in force: the reversal once reversed; nothing
    for a deposit mined again and not yet re-credited (its old credit_key is history)."""
    await db.execute(
        """INSERT INTO deposits (network, txid, position, to_key, amount, status, user_id,
                                 credit_key, reason)
           VALUES ('ethereum-devnet', 'aa', '0', 'k', 1, 'reversed', 'u', 'c-aa', 'reorg'),
                  ('ethereum-devnet', 'bb', '0', 'k', 1, 'confirming', 'u', 'c-bb', NULL)"""
    )
    await db.execute(
        """INSERT INTO ledger_outbox (idempotency_key, kind, payload, delivered_at)
           VALUES ('c-aa', 'credit', '{}', now()), ('reversal:c-aa', 'reversal', '{}', NULL),
                  ('c-bb', 'credit', '{}', now())"""
    )
    async with db.acquire() as conn:
        rows = {r["txid"]: r for r in await list_deposits(conn, DepositFilter(user_id="u"))}
    assert (rows["aa"]["ledger_message"], rows["aa"]["ledger"]) == ("reversal", "pending")
    assert rows["aa"]["delivered_at"] is None
    assert (rows["bb"]["ledger_message"], rows["bb"]["ledger"]) == (None, None)
