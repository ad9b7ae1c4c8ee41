"""The signer signs TRON batches as one more family: an approved batch with a TronPlan becomes
one recorded transaction per output, each with its reference block and expiration stored in
the same database transaction as its bytes; those bytes, broadcast as stored, pay exactly.

The TronPlan is read off the devnet by the test (tron_support.plan_for): the TRON planner of the
broadcaster role is not built yet (see the issue-12 report)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from chaingate.chains.tron import txbuilder as tb
from chaingate.chains.tron.addresses import to_base58
from chaingate.chains.tron.proto import decode_raw_data, decode_transaction
from chaingate.devnet.manager import DevnetState
from chaingate.domain import Network
from chaingate.domain.batch_content import BatchContent, BatchOutput
from chaingate.signer import tron as signer_tron
from chaingate.signer.checks import SignerLimit
from chaingate.signer.config import SignerSettings
from chaingate.signer.keystore import KeyRing, hot_key
from chaingate.signer.service import Signer
from signer_support import SEAL_KEY, approved_batch, devnet_networks
from tron_support import TronKey, TronNode, plan_for

TRX = 1_000_000


@pytest.fixture
async def node(devnet: DevnetState) -> AsyncIterator[TronNode]:
    assert devnet.tron_url is not None
    node = TronNode(devnet.tron_url)
    await node.mine(20)
    yield node


def tron_network(hot: TronKey) -> Network:
    return dataclasses.replace(devnet_networks()["tron-devnet"], hot_address=hot.address)


def signer_for(database: str, db: asyncpg.Pool, network: Network, hot: TronKey) -> Signer:
    limits = {
        (network.name, a.symbol): SignerLimit(10**6 * TRX, 10**7 * TRX) for a in network.assets
    }
    settings = SignerSettings(
        database_url=database,
        networks={network.name: network},
        keys=KeyRing([hot_key(hot.key.secret)]),
        seal_key=SEAL_KEY,
        quorum=2,
        limits=limits,
    )
    return Signer(db, settings)


async def plan_job(db: asyncpg.Pool, node: TronNode, hot: TronKey, batch_id: int) -> None:
    """What the planner would store: the job's TronPlan."""
    batch = await db.fetchrow("SELECT asset, contract FROM batches WHERE id = $1", batch_id)
    outputs = await db.fetch(
        "SELECT withdrawal_id, destination, amount FROM batch_outputs WHERE batch_id = $1",
        batch_id,
    )
    content = BatchContent.of(
        network="tron-devnet",
        chain_id=None,
        asset=batch["asset"],
        contract=batch["contract"],
        decimals=6,
        outputs=[
            BatchOutput(o["withdrawal_id"], o["destination"], int(o["amount"])) for o in outputs
        ],
        fee_cap=0,
    )
    plan = await plan_for(node, hot, content, batch["contract"])
    await db.execute(
        "UPDATE signer_jobs SET plan = $2::text::jsonb, planned_at = now() WHERE batch_id = $1",
        batch_id,
        json.dumps(plan.to_json()),
    )


async def test_a_tron_batch_is_signed_once_with_reference_and_expiration(
    database: str, db: asyncpg.Pool, node: TronNode
) -> None:
    hot = TronKey.genesis(0)  # holds the registry's USDT supply and a million TRX
    network = tron_network(hot)
    known, fresh = TronKey.fresh("known"), TronKey.fresh("fresh")
    await node.control("fund", address=known.address, amount_sun=1)
    trx = await approved_batch(
        db, network, "TRX", [(known.address, 2 * TRX), (fresh.address, 3 * TRX)], plan=False
    )
    usdt = await approved_batch(
        db, network, "USDT", [(known.address, 5 * TRX), (fresh.address, 7 * TRX)], plan=False
    )
    signer = signer_for(database, db, network, hot)
    assert await signer.sign_once() == []  # no plan yet: nothing to sign
    for batch_id in (trx, usdt):
        await plan_job(db, node, hot, batch_id)
    assert [o.result for o in await signer.sign_once(limit=2)] == ["signed", "signed"]
    assert await signer.sign_once() == []
    rows = await db.fetch("SELECT * FROM withdrawal_txs ORDER BY id")
    assert len(rows) == 4 and {r["batch_id"] for r in rows} == {trx, usdt}
    solid = await node.post("walletsolidity/getnowblock")
    for row in rows:
        assert row["nonce"] is None and row["from_address"] == hot.address
        assert row["expiration_ms"] > 0 and row["ref_block_id"] == solid["blockID"]
        assert (row["fee_limit"] is None) == (row["batch_id"] == trx)
        raw, [signature] = decode_transaction(bytes.fromhex(row["raw_tx"]))
        contract = decode_raw_data(raw)
        assert contract is not None and to_base58(contract.owner) == hot.address
        assert hashlib.sha256(raw).hexdigest() == row["txid"] and len(signature) == 130
    before = await node.balance(hot.address)
    for row in rows:
        answer = await node.post("wallet/broadcasthex", transaction=row["raw_tx"])
        assert answer["result"] is True and answer["txid"] == row["txid"]
    await node.mine(1)
    fees = [int((await node.info(r["txid"])).get("fee", 0)) for r in rows]
    assert await node.balance(hot.address) == before - 5 * TRX - sum(fees)
    assert await node.balance(fresh.address) == 3 * TRX


async def test_a_hot_wallet_short_of_trx_signs_nothing_and_alerts(
    database: str, db: asyncpg.Pool, node: TronNode
) -> None:
    hot = TronKey.fresh("short hot")
    await node.control("fund", address=hot.address, amount_sun=3 * TRX)
    network = tron_network(hot)
    batch_id = await approved_batch(
        db, network, "TRX", [(TronKey.fresh("new").address, 2 * TRX)], plan=False
    )
    await plan_job(db, node, hot, batch_id)
    signer = signer_for(database, db, network, hot)
    assert [o.result for o in await signer.sign_once()] == ["deferred"]
    assert await db.fetchval("SELECT count(*) FROM withdrawal_txs") == 0
    alert = await db.fetchrow("SELECT * FROM alerts")
    assert alert["kind"] == "hot_wallet_short" and "3000000" in alert["message"]


async def test_bytes_that_do_not_say_the_approved_output_are_refused_unsigned(
    database: str, db: asyncpg.Pool, node: TronNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signer reads back the bytes it is about to sign and compares them with the approved
    content: a builder that pays someone else (a bug, or a tampered builder) gets the job
    refused with a critical alert; nothing is signed or recorded."""
    hot = TronKey.genesis(0)
    network = tron_network(hot)
    payee, thief = TronKey.fresh("payee"), TronKey.fresh("thief")
    batch_id = await approved_batch(db, network, "USDT", [(payee.address, 5 * TRX)], plan=False)
    await plan_job(db, node, hot, batch_id)
    honest = tb.raw_data

    def tampered(tx: tb.TronTransfer) -> dict[str, Any]:
        return honest(dataclasses.replace(tx, to=thief.address))

    monkeypatch.setattr(tb, "raw_data", tampered)
    signed: list[bytes] = []
    real_sign = signer_tron.sign_tron
    monkeypatch.setattr(
        signer_tron, "sign_tron", lambda raw, key: signed.append(raw) or real_sign(raw, key)
    )
    signer = signer_for(database, db, network, hot)
    assert [o.result for o in await signer.sign_once()] == ["refused"]
    assert signed == []  # never reached the key
    assert await db.fetchval("SELECT count(*) FROM withdrawal_txs") == 0
    job = await db.fetchrow("SELECT * FROM signer_jobs WHERE batch_id = $1", batch_id)
    assert job["parked_at"] is not None and "bytes_mismatch" in job["last_error"]
    alert = await db.fetchrow("SELECT * FROM alerts WHERE kind = 'signer_refused'")
    assert alert is not None and "transfer" in alert["message"]
    assert alert["details"]["reason"] == "bytes_mismatch"
    monkeypatch.setattr(tb, "raw_data", honest)  # the honest builder: the same check passes
    batch_ok = await approved_batch(db, network, "USDT", [(payee.address, 5 * TRX)], plan=False)
    await plan_job(db, node, hot, batch_ok)
    assert [o.result for o in await signer.sign_once()] == ["signed"]
    assert len(signed) == 1
