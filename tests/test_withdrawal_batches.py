"""Batches and maker-checker through the API, with the ledger told at every step: making,
approving (quorum, maker, duplicates, stale hashes, forged and edited rows), rejecting, and the
funds held, settled and released at the reference ledger."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
from collections.abc import AsyncIterator

import asyncpg
import pytest

from chaingate.api.common import CTX_KEY
from chaingate.api.withdrawals import rules_of
from chaingate.errors import InvalidTransitionError, SealKeyMissingError
from chaingate.withdrawals import record_batch_status, record_status
from chaingate.withdrawals.approvals import approve
from chaingate.withdrawals.batching import make_batch
from conftest import scratch_database
from withdrawal_desk import DEST, DEST2, ETH, ETHER, Desk, desk


@pytest.fixture(scope="module")
async def ledger_url(pg_admin_dsn: str) -> AsyncIterator[str]:
    """One reference ledger for the module (every test uses users of its own)."""
    from chaingate.ledger.reference.app import serve_reference_ledger
    from harness import LEDGER_SECRET

    async with (
        scratch_database(pg_admin_dsn, "cg_ledger") as dsn,
        serve_reference_ledger("127.0.0.1", 0, dsn, LEDGER_SECRET) as url,
    ):
        yield url


@pytest.fixture
async def d(db: asyncpg.Pool, ledger_url: str) -> AsyncIterator[Desk]:
    # The module's ledger outlives each test's database: withdrawal ids (the ledger's keys)
    # must not repeat across them.
    await db.execute(f"ALTER SEQUENCE withdrawals_id_seq RESTART WITH {next(_ID_BLOCKS)}")
    async with desk(db, ledger_url) as made:
        yield made


_ID_BLOCKS = itertools.count(random.randrange(10**6) * 10**6, 10**6)


async def requested(d: Desk, user: str, *amounts: int, fund: int | None = None) -> list[int]:
    await d.fund(user, fund if fund is not None else sum(amounts))
    ids = []
    for n, amount in enumerate(amounts):
        status, w = await d.withdraw(user, amount, to_address=DEST if n % 2 else DEST2)
        assert status == 201, w
        ids.append(w["id"])
    await d.deliver()
    return ids


async def audit_actions(db: asyncpg.Pool, batch_id: int) -> list[tuple[str, str]]:
    rows = await db.fetch(
        "SELECT actor, action FROM audit_log WHERE subject = $1 ORDER BY id", f"batch:{batch_id}"
    )
    return [(r["actor"], r["action"]) for r in rows]


async def test_maker_and_two_approvers_queue_exactly_one_signer_job(d: Desk) -> None:
    user = "u-happy"
    ids = await requested(d, user, 2 * ETHER, 3 * ETHER, ETHER, fund=10 * ETHER)
    assert await d.books(user) == (10 * ETHER, 6 * ETHER)  # the ledger holds the funds
    for who in ("alice", "viewer", "service"):
        status, answer = await d.call("POST", "/v1/batches", who, {"network": ETH, "asset": "ETH"})
        assert status == 403, (who, answer)
    batch = await d.make_batch()
    assert (batch["status"], batch["maker"], batch["output_count"]) == (
        "pending_approval",
        "mia",
        3,
    )
    assert batch["total"] == str(6 * ETHER) and batch["fee_cap"] == str(10**16)
    assert [o["withdrawal_id"] for o in batch["outputs"]] == ids
    assert len(batch["content_hash"]) == 64
    status, shown = await d.call("GET", f"/v1/batches/{batch['id']}", "viewer")
    assert status == 200 and shown["outputs"] == batch["outputs"]
    assert await d.statuses(*ids) == ["batched"] * 3
    # Nothing else waits, so a second batch is refused.
    status, answer = await d.call("POST", "/v1/batches", "maker", {"network": ETH, "asset": "ETH"})
    assert (status, answer["error"]["code"]) == (409, "nothing_to_batch")

    refusals = [
        ("viewer", batch["content_hash"], 403, "forbidden"),
        ("service", batch["content_hash"], 403, "forbidden"),
        ("maker", batch["content_hash"], 403, "forbidden"),  # a maker without approver role
        ("alice", "ab" * 32, 409, "stale_content_hash"),
    ]
    for who, digest, code, error in refusals:
        status, answer = await d.call(
            "POST", f"/v1/batches/{batch['id']}/approvals", who, {"content_hash": digest}
        )
        assert (status, answer["error"]["code"]) == (code, error), who
    status, first = await d.approve(batch, "alice")
    assert status == 201 and first["status"] == "pending_approval"
    assert first["quorum"] == {"needed": 2, "approvals": 1}
    status, answer = await d.approve(batch, "alice")
    assert (status, answer["error"]["code"]) == (409, "already_approved")
    assert await d.db.fetchval("SELECT count(*) FROM signer_jobs") == 0
    status, second = await d.approve(batch, "bob")
    assert status == 201 and second["status"] == "approved"
    assert [a["principal"] for a in second["approvals"]] == ["alice", "bob"]
    assert await d.statuses(*ids) == ["approved"] * 3
    jobs = await d.db.fetchval("SELECT count(*) FROM signer_jobs WHERE batch_id = $1", batch["id"])
    assert jobs == 1
    status, answer = await d.approve(batch, "carol")  # the quorum is reached: nothing to add
    assert (status, answer["error"]["code"]) == (409, "invalid_transition")
    assert await audit_actions(d.db, batch["id"]) == [
        ("mia", "batch.create"),
        ("alice", "batch.approve"),
        ("bob", "batch.approve"),
        ("bob", "batch.approved"),
        ("bob", "batch.quorum"),
    ]
    # The ledger heard requested, batched and approved of each withdrawal, in that order.
    await d.deliver()
    events = await d.db.fetch(
        """SELECT payload->>'withdrawal_id' AS w, payload->>'status' AS s FROM ledger_outbox
           WHERE kind = 'withdrawal_event' AND delivered_at IS NOT NULL ORDER BY id"""
    )
    for wid in ids:
        statuses = [e["s"] for e in events if e["w"] == str(wid)]
        assert statuses == ["requested", "batched", "approved"]


async def test_without_a_seal_key_nothing_is_batched_or_approved(d: Desk) -> None:
    await requested(d, "u-nokey", ETHER)
    batch = await d.make_batch()
    rules = rules_of(d.api.server.app[CTX_KEY])
    keyless = dataclasses.replace(rules, seal_key=b"")
    async with d.db.acquire() as conn:
        with pytest.raises(SealKeyMissingError):
            await approve(conn, keyless, "alice", batch["id"], batch["content_hash"])
        with pytest.raises(SealKeyMissingError):
            await make_batch(conn, keyless, "mia", ETH, "ETH")
    assert await d.db.fetchval("SELECT count(*) FROM approvals") == 0
    status, page = await d.call("GET", "/v1/batches", "alice", status="pending_approval")
    assert status == 200 and [b["id"] for b in page["batches"]] == [batch["id"]]
    assert "outputs" not in page["batches"][0]
    assert (await d.call("GET", "/v1/batches", "alice", status="paid"))[0] == 422


async def test_the_maker_cannot_approve_and_concurrent_approvals_queue_one_job(d: Desk) -> None:
    await requested(d, "u-race", ETHER)
    batch = await d.make_batch(who="mo")
    status, answer = await d.approve(batch, "mo")
    assert (status, answer["error"]["code"]) == (403, "maker_cannot_approve")
    answers = await asyncio.gather(*(d.approve(batch, who) for who in ("alice", "bob", "carol")))
    assert sorted(s for s, _ in answers) == [201, 201, 409]
    assert await d.db.fetchval("SELECT count(*) FROM signer_jobs") == 1
    assert await d.db.fetchval("SELECT count(*) FROM approvals") == 2


async def test_forged_and_edited_rows_do_not_approve(d: Desk) -> None:
    await requested(d, "u-forge", ETHER, ETHER)
    batch = await d.make_batch()
    # A row written straight into the database carries no valid seal: it does not count.
    await d.db.execute(
        """INSERT INTO approvals (batch_id, content_hash, principal, approved_at, seal)
           VALUES ($1, $2, 'eve', now(), $3)""",
        batch["id"],
        batch["content_hash"],
        "00" * 32,
    )
    status, answer = await d.approve(batch, "alice")
    assert status == 201 and answer["status"] == "pending_approval"
    assert await d.db.fetchval("SELECT count(*) FROM signer_jobs") == 0
    # An output edited after the batch was made: it no longer hashes to its content hash.
    edited = batch["outputs"][0]["withdrawal_id"]
    await d.db.execute("UPDATE withdrawals SET destination = $2 WHERE id = $1", edited, DEST)
    await d.db.execute(
        "UPDATE batch_outputs SET destination = $2 WHERE withdrawal_id = $1", edited, DEST
    )
    status, answer = await d.approve(batch, "bob")
    assert (status, answer["error"]["code"]) == (409, "batch_tampered")
    assert await d.db.fetchval("SELECT count(*) FROM signer_jobs") == 0
    alert = await d.db.fetchrow("SELECT * FROM alerts WHERE kind = 'batch_tampered'")
    assert alert["severity"] == "critical"
    assert ("bob", "batch.approve_refused") in await audit_actions(d.db, batch["id"])


async def test_rejection_with_release_returns_them_to_pending(d: Desk) -> None:
    user = "u-release"
    ids = await requested(d, user, ETHER, 2 * ETHER)
    batch = await d.make_batch()
    path = f"/v1/batches/{batch['id']}/rejection"
    assert (await d.call("POST", path, "maker", {"reason": "x"}))[0] == 403
    assert (await d.call("POST", path, "alice", {"reason": " "}))[0] == 422
    assert (await d.call("POST", path, "alice", {"reason": "x", "release": "yes"}))[0] == 422
    status, rejected = await d.call("POST", path, "alice", {"reason": "wrong fee", "release": True})
    assert status == 200 and rejected["status"] == "rejected"
    assert rejected["rejected_by"] == "alice" and rejected["rejection_reason"] == "wrong fee"
    assert await d.statuses(*ids) == ["requested", "requested"]
    # Rejected is final; the released withdrawals go into the next batch.
    assert (await d.call("POST", path, "bob", {"reason": "again", "release": False}))[0] == 409
    assert (await d.approve(batch, "bob"))[0] == 409
    again = await d.make_batch()
    assert [o["withdrawal_id"] for o in again["outputs"]] == ids
    await d.deliver()
    assert await d.books(user) == (3 * ETHER, 3 * ETHER)  # still held throughout
    status, shown = await d.call("GET", f"/v1/withdrawals/{ids[0]}", "viewer")
    history = [h["status"] for h in shown["history"]]
    assert history == ["requested", "batched", "requested", "batched"]
    assert ("alice", "batch.reject") in await audit_actions(d.db, batch["id"])


async def test_rejection_without_release_fails_them_and_the_ledger_releases(d: Desk) -> None:
    user = "u-fail"
    ids = await requested(d, user, ETHER, 2 * ETHER)
    assert await d.books(user) == (3 * ETHER, 3 * ETHER)
    batch = await d.make_batch()
    status, answer = await d.call(
        "POST",
        f"/v1/batches/{batch['id']}/rejection",
        "bob",
        {"reason": "destination on a sanctions list", "release": False},
    )
    assert status == 200 and answer["status"] == "rejected", answer
    assert await d.statuses(*ids) == ["failed", "failed"]
    status, shown = await d.call("GET", f"/v1/withdrawals/{ids[0]}", "service")
    assert "sanctions" in shown["failure_reason"]
    await d.deliver()
    assert await d.books(user) == (3 * ETHER, 0)  # released: the funds are the user's again
    returned = await d.db.fetch(
        """SELECT payload->>'amount_returned' AS r FROM ledger_outbox
           WHERE payload->>'status' = 'failed' ORDER BY id"""
    )
    assert [r["r"] for r in returned] == [str(ETHER), str(2 * ETHER)]


async def test_signed_to_confirmed_settles_at_the_ledger_and_completes_the_batch(d: Desk) -> None:
    user = "u-settle"
    (wid,) = await requested(d, user, 2 * ETHER, fund=5 * ETHER)
    batch = await d.make_batch()
    await d.approve(batch, "alice")
    await d.approve(batch, "bob")
    async with d.db.acquire() as conn, conn.transaction():
        with pytest.raises(InvalidTransitionError):
            await record_status(conn, wid, "broadcast", actor="broadcaster")
    async with d.db.acquire() as conn:
        # What the signer and the broadcaster do, each step in its own transaction.
        for status in ("signing", "signed", "broadcast", "confirmed"):
            async with conn.transaction():
                if status != "confirmed":
                    await record_batch_status(conn, batch["id"], status, actor="signer")
                await record_status(
                    conn,
                    wid,
                    status,
                    actor="signer",
                    txid="0xfeed" if status == "broadcast" else None,
                    fee=21000 * 10**9 if status == "confirmed" else None,
                    confirmations=3 if status == "confirmed" else None,
                )
    await d.deliver()
    assert await d.books(user) == (3 * ETHER, 0)  # settled: the balance paid for it
    status, shown = await d.call("GET", f"/v1/withdrawals/{wid}", "viewer")
    assert (shown["status"], shown["txid"], shown["fee"], shown["confirmations"]) == (
        "confirmed",
        "0xfeed",
        str(21000 * 10**9),
        3,
    )
    status, b = await d.call("GET", f"/v1/batches/{batch['id']}", "viewer")
    assert b["status"] == "completed"


async def test_a_hold_the_ledger_refuses_cancels_the_withdrawal_visibly(d: Desk) -> None:
    user, amount = "u-poor", 6 * ETHER // 10
    await d.fund(user, ETHER)
    # Two holds of 0.6 ETH against 1 ETH: the ledger takes whichever comes first (the
    # dispatcher sends independent withdrawals in parallel) and refuses the other.
    answers = [await d.withdraw(user, amount) for _ in range(2)]
    assert [s for s, _ in answers] == [201, 201]
    ids = [w["id"] for _, w in answers]
    # Batched before the ledger answered: the refusal voids that batch, the rest is released.
    batch = await d.make_batch()
    await d.deliver()
    statuses = dict(zip(ids, await d.statuses(*ids), strict=True))
    assert sorted(statuses.values()) == ["cancelled", "requested"]
    (cancelled,) = [i for i, s in statuses.items() if s == "cancelled"]
    _, shown = await d.call("GET", f"/v1/withdrawals/{cancelled}", "service")
    assert "refused to hold" in shown["failure_reason"]
    _, b = await d.call("GET", f"/v1/batches/{batch['id']}", "viewer")
    assert (b["status"], b["rejected_by"]) == ("rejected", "ledger")
    alert = await d.db.fetchrow("SELECT * FROM alerts WHERE kind = 'ledger_rejected'")
    assert alert["severity"] == "critical" and alert["user_id"] == user
    await d.deliver()
    assert await d.books(user) == (ETHER, amount)
    # Nothing about the cancelled one waits in the outbox for ever as "pending".
    stuck = await d.db.fetchval(
        "SELECT count(*) FROM ledger_outbox WHERE delivered_at IS NULL AND parked_at IS NULL"
    )
    assert stuck == 0


async def test_a_batch_stops_at_the_assets_batch_limit(d: Desk) -> None:
    # 1,000 ETH per batch on the devnet: eleven withdrawals of 100 ETH make two batches.
    first = await requested(d, "u-big-1", *[100 * ETHER] * 10)
    second = await requested(d, "u-big-2", 100 * ETHER)
    batch = await d.make_batch()
    assert (batch["output_count"], batch["total"]) == (10, str(1000 * ETHER))
    assert [o["withdrawal_id"] for o in batch["outputs"]] == first
    rest = await d.make_batch()
    assert [o["withdrawal_id"] for o in rest["outputs"]] == second


async def test_a_refused_hold_voids_an_approved_batch_nobody_signed(d: Desk) -> None:
    user, amount = "u-poor-2", 6 * ETHER // 10
    await d.fund(user, ETHER)
    ids = [(await d.withdraw(user, amount))[1]["id"] for _ in range(2)]
    batch = await d.make_batch()
    await d.approve(batch, "alice")
    status, approved = await d.approve(batch, "bob")  # approved before the ledger answered
    assert status == 201 and approved["status"] == "approved"
    await d.deliver()
    assert sorted(await d.statuses(*ids)) == ["cancelled", "requested"]
    _, b = await d.call("GET", f"/v1/batches/{batch['id']}", "viewer")
    assert b["status"] == "failed" and "refused to hold" in b["failure_reason"]
    job = await d.db.fetchrow("SELECT done_at, last_error FROM signer_jobs")
    assert job["done_at"] is not None and "voided before signing" in job["last_error"]
    # The released withdrawal is batched again; the ledger still holds its funds.
    again = await d.make_batch()
    assert again["output_count"] == 1
    await d.deliver()
    assert await d.books(user) == (ETHER, amount)


async def test_a_refused_hold_never_voids_a_batch_the_signer_has_signed(d: Desk) -> None:
    user, amount = "u-poor-3", 6 * ETHER // 10
    await d.fund(user, ETHER)
    ids = [(await d.withdraw(user, amount))[1]["id"] for _ in range(2)]
    batch = await d.make_batch()
    await d.approve(batch, "alice")
    await d.approve(batch, "bob")
    # What the signer records when it signs (stands in for the signer, which test_signer runs).
    for n, wid in enumerate(ids):
        await d.db.execute(
            """INSERT INTO withdrawal_txs (batch_id, withdrawal_id, network, from_address, nonce,
                                           raw_tx, txid)
               VALUES ($1, $2, $3, '0xhot', $4, '0x02', $5)""",
            batch["id"],
            wid,
            ETH,
            n,
            f"0x{n:064x}",
        )
    await d.deliver()
    assert await d.statuses(*ids) == ["approved", "approved"]  # signed bytes stay in charge
    _, b = await d.call("GET", f"/v1/batches/{batch['id']}", "viewer")
    assert b["status"] == "approved"
    alert = await d.db.fetchrow("SELECT * FROM alerts WHERE kind = 'withdrawal_hold_refused_late'")
    assert alert["severity"] == "critical" and alert["user_id"] == user


async def test_an_approved_batch_is_rejected_only_after_the_signer_refused_it(d: Desk) -> None:
    user = "u-refused"
    ids = await requested(d, user, ETHER, 2 * ETHER)
    batch = await d.make_batch()
    await d.approve(batch, "alice")
    await d.approve(batch, "bob")
    path = f"/v1/batches/{batch['id']}/rejection"
    body = {"reason": "the signer refused it: destination edited", "release": False}
    status, answer = await d.call("POST", path, "carol", body)
    assert (status, answer["error"]["code"]) == (409, "invalid_transition")  # signer's hands
    # The signer refuses the batch: it parks the job (and alerts).
    await d.db.execute(
        "UPDATE signer_jobs SET parked_at = now(), next_attempt_at = 'infinity' WHERE batch_id = $1",
        batch["id"],
    )
    status, answer = await d.call("POST", path, "carol", body)
    assert status == 200 and answer["status"] == "rejected", answer
    assert await d.statuses(*ids) == ["failed", "failed"]
    job = await d.db.fetchrow("SELECT done_at FROM signer_jobs WHERE batch_id = $1", batch["id"])
    assert job["done_at"] is not None  # un-parking it later signs nothing
    await d.deliver()
    assert await d.books(user) == (3 * ETHER, 0)


# --- attacks: races, hashes of other batches, own addresses, exact limits --------------------


async def test_one_request_id_sent_at_once_with_different_bodies_creates_one(d: Desk) -> None:
    await d.fund("u-dup", 10 * ETHER)
    bodies = [
        {"request_id": "dup-1", "user_id": "u-dup", "network": ETH, "asset": "ETH",
         "to_address": DEST, "amount": str(ETHER + n)}
        for n in range(6)
    ]  # fmt: skip
    answers = await asyncio.gather(
        *(d.call("POST", "/v1/withdrawals", "service", body) for body in bodies)
    )
    assert sorted(s for s, _ in answers) == [201] + [409] * 5, answers
    assert {a["error"]["code"] for s, a in answers if s == 409} == {"request_id_reused"}
    [winner] = [a for s, a in answers if s == 201]
    rows = await d.db.fetch("SELECT id, amount::text FROM withdrawals WHERE user_id = 'u-dup'")
    assert [(r["id"], r["amount"]) for r in rows] == [(winner["id"], winner["amount"])]
    keys = await d.db.fetch("SELECT idempotency_key FROM ledger_outbox")
    assert [k["idempotency_key"] for k in keys] == [f"withdrawal:{winner['id']}:requested"]


async def test_approvals_racing_a_rejection_end_in_one_consistent_state(d: Desk) -> None:
    """Two approvals (the quorum) and a rejection at once, again and again: the batch ends
    approved with exactly one signer job and the rejection refused, or rejected with no job,
    its withdrawals failed and every later approval refused. Never both, never half."""
    outcomes = set()
    for round_ in range(6):
        ids = await requested(d, f"u-race-{round_}", ETHER)
        batch = await d.make_batch()
        reject = d.call(
            "POST", f"/v1/batches/{batch['id']}/rejection", "carol",
            {"reason": "race", "release": False},
        )  # fmt: skip
        answers = await asyncio.gather(d.approve(batch, "alice"), d.approve(batch, "bob"), reject)
        status = await d.db.fetchval("SELECT status FROM batches WHERE id = $1", batch["id"])
        jobs = await d.db.fetchval(
            "SELECT count(*) FROM signer_jobs WHERE batch_id = $1", batch["id"]
        )
        outcomes.add(status)
        if status == "approved":
            assert [s for s, _ in answers] == [201, 201, 409] and jobs == 1
            assert await d.statuses(*ids) == ["approved"]
        else:
            assert status == "rejected" and jobs == 0 and answers[2][0] == 200, answers
            assert await d.statuses(*ids) == ["failed"]
            assert all(s == 409 for s, _ in answers[:2] if s != 201)
            assert (
                await d.db.fetchval(
                    "SELECT count(*) FROM approvals WHERE batch_id = $1", batch["id"]
                )
                < 2
            )
    assert outcomes <= {"approved", "rejected"}


async def test_an_approval_with_the_content_hash_of_another_batch_is_refused(d: Desk) -> None:
    await requested(d, "u-hash", ETHER)
    first = await d.make_batch()
    await requested(d, "u-hash2", 2 * ETHER)
    second = await d.make_batch()
    assert first["content_hash"] != second["content_hash"]
    for who in ("alice", "bob"):
        status, answer = await d.approve({**first, "content_hash": second["content_hash"]}, who)
        assert (status, answer["error"]["code"]) == (409, "stale_content_hash"), answer
    assert await d.db.fetchval("SELECT count(*) FROM approvals") == 0
    assert await d.db.fetchval("SELECT count(*) FROM signer_jobs") == 0


async def test_the_hot_wallet_and_a_token_contract_are_not_destinations(d: Desk) -> None:
    network = d.api.server.app[CTX_KEY].networks[ETH]
    nexo = network.asset("NEXO").contract
    for destination in (network.hot_address, network.hot_address.upper().replace("0X", "0x"),
                        nexo):  # fmt: skip
        status, answer = await d.withdraw("u-own", ETHER, to_address=destination)
        assert (status, answer["error"]["code"]) == (422, "invalid_address"), answer
    assert (
        "hot wallet"
        in (await d.withdraw("u-own", 1, to_address=network.hot_address))[1]["error"]["message"]
    )
    assert await d.db.fetchval("SELECT count(*) FROM withdrawals") == 0
    assert await d.db.fetchval("SELECT count(*) FROM ledger_outbox") == 0


async def test_amounts_at_exactly_the_limits(d: Desk) -> None:
    """100 ETH per request and 1,000 ETH per user per day on the devnet: exactly the limit is
    allowed, one base unit more is refused, at each limit."""
    assert (await d.withdraw("u-edge", 100 * ETHER + 1))[0] == 422
    for _ in range(10):
        status, answer = await d.withdraw("u-edge", 100 * ETHER)  # exactly the request limit
        assert status == 201, answer
    status, answer = await d.withdraw("u-edge", 1)  # exactly the day's limit reached
    assert (status, answer["error"]["code"]) == (422, "limit_exceeded")
    assert (await d.withdraw("u-edge2", 1))[0] == 201  # the smallest amount for another user
    total = await d.db.fetchval("SELECT sum(amount) FROM withdrawals WHERE user_id = 'u-edge'")
    assert total == 1000 * ETHER
