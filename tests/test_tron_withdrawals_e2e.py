"""TRON withdrawals end to end on the TRON devnet: the API (requests, batch, two approvals), the
signer (signer/service.py), the broadcaster role's TRON row (withdrawals/tron.py: plan, send,
track on the solidified chain) and the reference ledger.

The watcher does not run: TRON withdrawals are judged on the solidified chain, which the devnet
serves directly."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import asyncpg
import pytest

from chaingate.chains.base import HttpClient
from chaingate.devnet.manager import DevnetState
from chaingate.domain import Network
from chaingate.providers.pool import EndpointPool
from chaingate.signer.checks import SignerLimit
from chaingate.signer.config import SignerSettings
from chaingate.signer.keystore import KeyRing, hot_key
from chaingate.signer.replacements import replace_once
from chaingate.signer.service import Signer
from chaingate.withdrawals.tron import TronBroadcaster, TronTracker
from harness import devnet_network, until
from tron_support import TronKey, TronNode
from withdrawal_desk import SEAL_KEY, Desk, desk

TRX = 1_000_000
NET = "tron-devnet"
HOT = TronKey.genesis(0)  # holds the registry's USDT supply and a million TRX


@pytest.fixture
async def node(devnet: DevnetState) -> AsyncIterator[TronNode]:
    assert devnet.tron_url is not None
    node = TronNode(devnet.tron_url)
    await node.mine(20)
    yield node
    await node.control("resources", extra_energy=0)


@dataclasses.dataclass
class Rig:
    d: Desk
    node: TronNode
    network: Network
    signer: Signer
    broadcaster: TronBroadcaster

    async def fund(self, user: str, asset: str, amount: int) -> None:
        await self.d.ledger.post(
            "/credits",
            {
                "idempotency_key": f"credit-{uuid.uuid4().hex}",
                "user_id": user,
                "network": NET,
                "asset": asset,
                "amount": str(amount),
                "decimals": 6,
                "txid": uuid.uuid4().hex * 2,
                "position": "native",
                "block_number": 1,
            },
        )

    async def withdraw(self, user: str, asset: str, to: str, amount: int) -> int:
        status, answer = await self.d.withdraw(
            user, amount, network=NET, asset=asset, to_address=to
        )
        assert status == 201, answer
        return int(answer["id"])

    async def approve(self, asset: str) -> int:
        await self.d.deliver()  # the ledger holds the funds
        status, batch = await self.d.call(
            "POST", "/v1/batches", "maker", {"network": NET, "asset": asset}
        )
        assert status == 201, batch
        for who in ("alice", "bob"):
            assert (await self.d.approve(batch, who))[0] in (200, 201)
        return int(batch["id"])

    async def run_until(self, ids: list[int], final: set[str]) -> list[str]:
        async def done() -> bool:
            await self.broadcaster.planner.plan_once()
            await self.signer.sign_once(limit=5)
            await replace_once(self.signer)  # TRON: rebuilds of expired transactions
            await self.broadcaster.work_once()
            await self.node.mine(1)
            await self.d.deliver()
            return set(await self.d.statuses(*ids)) <= final

        await until(done, seconds=60)
        return await self.d.statuses(*ids)


class Spy:
    """The real endpoint pool, with the paths asked of it written down (not a mock: every call
    goes through)."""

    def __init__(self, http: Any) -> None:
        self.http = http
        self.paths: list[str] = []
        self.sent: list[str] = []

    async def post(self, path: str, payload: Any = None, **kw: Any) -> Any:
        self.paths.append(path)
        if path == "/wallet/broadcasthex":
            self.sent.append(payload["transaction"])
        return await self.http.post(path, payload, **kw)


@pytest.fixture
async def rig(
    db: asyncpg.Pool, database: str, ledger_url: str, node: TronNode
) -> AsyncIterator[Rig]:
    network = devnet_network(NET, node.url, hot_address=HOT.address)
    limits = {(NET, a.symbol): SignerLimit(10**6 * TRX, 10**7 * TRX) for a in network.assets}
    settings = SignerSettings(
        database_url=database,
        networks={NET: network},
        keys=KeyRing([hot_key(HOT.key.secret)]),
        seal_key=SEAL_KEY,
        quorum=2,
        limits=limits,
    )
    async with desk(db, ledger_url) as d, EndpointPool(NET, network.endpoints) as pool:
        broadcaster = TronBroadcaster(db, network, pool, track_every=0.01)
        yield Rig(d, node, network, Signer(db, settings), broadcaster)


async def test_a_trx_and_usdt_batch_reaches_the_chain_once_and_fees_are_reported(rig: Rig) -> None:
    usdt = rig.network.asset("USDT").contract
    assert usdt is not None
    known, fresh = TronKey.fresh("known payee"), TronKey.fresh("fresh payee")
    await rig.node.control("fund", address=known.address, amount_sun=1)
    await rig.fund("tina", "TRX", 100 * TRX)
    await rig.fund("tina", "USDT", 100 * TRX)
    ids = [
        await rig.withdraw("tina", "TRX", known.address, 2 * TRX),
        await rig.withdraw("tina", "TRX", fresh.address, 3 * TRX),
    ]
    await rig.approve("TRX")
    ids.append(await rig.withdraw("tina", "USDT", fresh.address, 4 * TRX))
    usdt_batch = await rig.approve("USDT")
    status, pending = await rig.d.call("GET", f"/v1/withdrawals/{ids[2]}", "viewer")
    assert status == 200 and pending["resources"] is None  # nothing consumed yet
    before = await rig.node.balance(HOT.address)
    assert await rig.run_until(ids, {"confirmed"}) == ["confirmed"] * 3
    rows = await rig.d.db.fetch("SELECT * FROM withdrawal_txs ORDER BY withdrawal_id")
    assert len(rows) == 3  # one transaction each, never a second
    charged = [int((await rig.node.info(r["txid"])).get("fee", 0)) for r in rows]
    assert [int(r["fee"]) for r in rows] == charged  # what the gateway reports is what burned
    assert charged[1] == 1_100_000  # the new account's activation
    assert rows[2]["energy_used"] > 0 and rows[2]["fee_limit"] is not None
    assert await rig.node.balance(HOT.address) == before - 5 * TRX - sum(charged)
    assert await rig.node.balance(known.address) == 1 + 2 * TRX
    assert await rig.node.balance(fresh.address) == 3 * TRX
    fees = await rig.d.db.fetch("SELECT fee::text AS fee FROM withdrawals ORDER BY id")
    assert [int(f["fee"]) for f in fees] == charged
    events = await rig.d.db.fetch(
        """SELECT payload FROM ledger_outbox
            WHERE kind = 'withdrawal_event' AND payload->>'status' = 'confirmed'
              AND delivered_at IS NOT NULL ORDER BY (payload->>'withdrawal_id')::bigint"""
    )
    assert [int(e["payload"]["fee"]) for e in events] == charged  # what the ledger is told
    # the energy and bandwidth each consumed, as the chain's receipts say, through the API
    receipts = [(await rig.node.info(r["txid"]))["receipt"] for r in rows]
    used = [
        {
            "energy_used": r.get("energy_usage_total", 0),
            "bandwidth_used": r.get("net_usage", 0),
            "bandwidth_fee": str(r.get("net_fee", 0)),
        }
        for r in receipts
    ]
    assert used[2]["energy_used"] > 0 and used[1]["bandwidth_fee"] == "100000"  # activation
    status, page = await rig.d.call("GET", "/v1/withdrawals", "viewer", network=NET)
    assert status == 200
    listed = {w["id"]: w for w in page["withdrawals"]}
    for wid, fee, resources in zip(ids, charged, used, strict=True):
        status, one = await rig.d.call("GET", f"/v1/withdrawals/{wid}", "viewer")
        assert status == 200 and listed[wid] == one
        assert (one["fee"], one["resources"]) == (str(fee), resources)
    status, batch = await rig.d.call("GET", f"/v1/batches/{usdt_batch}", "viewer")
    assert [o["resources"] for o in batch["outputs"]] == used[2:]


async def test_an_underestimated_trc20_ends_out_of_energy_failed_with_its_fee(rig: Rig) -> None:
    await rig.fund("olga", "USDT", 100 * TRX)
    to = TronKey.fresh("ooe payee")
    wid = await rig.withdraw("olga", "USDT", to.address, 6 * TRX)
    await rig.approve("USDT")
    # the real run uses far more energy than the dry run (and the 30 % margin) said
    await rig.node.control("resources", extra_energy=40_000)
    assert await rig.run_until([wid], {"failed"}) == ["failed"]
    [row] = await rig.d.db.fetch("SELECT * FROM withdrawal_txs")
    info = await rig.node.info(row["txid"])
    assert info["receipt"]["result"] == "OUT_OF_ENERGY"
    assert int(row["fee"]) == info["fee"] > 0
    assert await rig.d.db.fetchval("SELECT count(*) FROM withdrawal_txs") == 1  # nothing resent
    reason = await rig.d.db.fetchval(
        "SELECT reason FROM withdrawal_history WHERE withdrawal_id = $1 AND to_status = 'failed'",
        wid,
    )
    assert "OUT_OF_ENERGY" in reason
    await rig.d.deliver()
    books = await rig.d.ledger.get("/balances", {"user_id": "olga"})
    [usdt] = [b for b in books["balances"] if (b["network"], b["asset"]) == (NET, "USDT")]
    assert (int(usdt["amount"]), int(usdt["held"])) == (100 * TRX, 0)  # funds back
    alert = await rig.d.db.fetchrow("SELECT * FROM alerts WHERE kind = 'withdrawal_failed'")
    assert alert is not None and row["txid"] == alert["txid"]


async def test_bytes_held_past_their_expiration_are_never_sent_and_rebuilt_once(rig: Rig) -> None:
    await rig.fund("hugo", "TRX", 100 * TRX)
    payee = TronKey.fresh("late payee")
    await rig.node.control("fund", address=payee.address, amount_sun=1)
    wid = await rig.withdraw("hugo", "TRX", payee.address, 2 * TRX)
    await rig.approve("TRX")
    rig.signer.settings.networks[NET] = dataclasses.replace(rig.network, tx_expiration=1)
    await rig.broadcaster.planner.plan_once()
    assert [o.result for o in await rig.signer.sign_once()] == ["signed"]  # bytes live 1 s
    rig.signer.settings.networks[NET] = rig.network  # a rebuild gets the usual 60 s
    [first] = await rig.d.db.fetch("SELECT * FROM withdrawal_txs")
    while (await rig.node.post("wallet/getnowblock"))["block_header"]["raw_data"][
        "timestamp"
    ] < first["expiration_ms"]:
        await rig.node.mine(1)  # the broadcaster is "down" until the bytes expired
    spy = Spy(rig.broadcaster.http)
    tracker = rig.broadcaster.tracker
    assert isinstance(tracker, TronTracker)
    rig.broadcaster.http = tracker.http = rig.broadcaster.planner.http = cast(HttpClient, spy)
    assert await rig.run_until([wid], {"confirmed"}) == ["confirmed"]
    rows = await rig.d.db.fetch("SELECT * FROM withdrawal_txs ORDER BY id")
    assert [(r["txid"] == first["txid"], r["status"]) for r in rows] == [
        (True, "replaced"),
        (False, "confirmed"),
    ]
    assert rows[1]["expiration_ms"] > first["expiration_ms"]
    assert rows[1]["ref_block_number"] > first["ref_block_number"]
    assert spy.sent == [rows[1]["raw_tx"]]  # the old bytes never; the new ones once (the node
    # keeps them while they wait to solidify: no reason to send them again)
    assert await rig.node.info(first["txid"]) == {}
    assert await rig.node.balance(payee.address) == 1 + 2 * TRX  # paid once


async def test_a_reverted_trc20_ends_failed_with_its_fee_reported_and_the_funds_back(
    rig: Rig,
) -> None:
    """The token reverts the transfer on chain (the devnet's fail-next switch): the withdrawal
    is `failed` with the fee the REVERT burned, told to the ledger, which hands the funds back;
    an alert; the recipient got nothing and nothing was sent again."""
    usdt = rig.network.asset("USDT").contract
    assert usdt is not None
    await rig.fund("rene", "USDT", 100 * TRX)
    to = TronKey.fresh("revert payee")
    wid = await rig.withdraw("rene", "USDT", to.address, 7 * TRX)
    await rig.approve("USDT")
    await rig.node.control("fail-next", mode="REVERT")  # the next contract call reverts
    assert await rig.run_until([wid], {"failed"}) == ["failed"]
    [row] = await rig.d.db.fetch("SELECT * FROM withdrawal_txs")  # one transaction, never two
    info = await rig.node.info(row["txid"])
    assert info["receipt"]["result"] == "REVERT" and info["result"] == "FAILED"
    assert int(row["fee"]) == info["fee"] > 0
    assert await rig.node.token_balance(usdt, to) == 0
    status, view = await rig.d.call("GET", f"/v1/withdrawals/{wid}", "viewer")
    assert status == 200 and view["status"] == "failed" and "REVERT" in view["failure_reason"]
    assert view["fee"] == str(info["fee"])
    assert view["resources"]["energy_used"] == info["receipt"]["energy_usage_total"] > 0
    await rig.d.deliver()
    [event] = await rig.d.db.fetch(
        """SELECT payload FROM ledger_outbox WHERE kind = 'withdrawal_event'
              AND payload->>'status' = 'failed' AND delivered_at IS NOT NULL"""
    )
    assert int(event["payload"]["fee"]) == info["fee"]  # the burned fee, told to the ledger
    books = await rig.d.ledger.get("/balances", {"user_id": "rene"})
    [held] = [b for b in books["balances"] if (b["network"], b["asset"]) == (NET, "USDT")]
    assert (int(held["amount"]), int(held["held"])) == (100 * TRX, 0)  # funds back
    alert = await rig.d.db.fetchrow("SELECT * FROM alerts WHERE kind = 'withdrawal_failed'")
    assert alert is not None and alert["txid"] == row["txid"]
    assert alert["details"]["result"] == "REVERT"
    for _ in range(3):  # more passes: the failed transaction is never sent again
        await rig.broadcaster.work_once()
        await rig.node.mine(1)
    assert await rig.d.db.fetchval("SELECT count(*) FROM withdrawal_txs") == 1
    assert await rig.node.token_balance(usdt, to) == 0
