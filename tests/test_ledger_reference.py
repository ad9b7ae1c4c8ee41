"""The reference ledger and its client over real HTTP on a real PostgreSQL database:
signatures, idempotency, credits and reversals, validation, and the runnable module."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from chaingate.errors import LedgerUnavailableError
from chaingate.ledger.client import LedgerClient
from chaingate.ledger.errors import (
    BadSignatureError,
    LedgerRequestRejectedError,
    StaleRequestError,
    UnsignedRequestError,
)
from chaingate.ledger.reference import serve_reference_ledger
from chaingate.ledger.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    encode_body,
    request_message,
    sign,
    verify,
)
from conftest import scratch_database

SECRET = b"test-ledger-secret-4f1c"
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
async def ledger_dsn(pg_admin_dsn: str) -> AsyncIterator[str]:
    async with scratch_database(pg_admin_dsn, "cg_ledger_ref") as dsn:
        yield dsn


@pytest.fixture(scope="module")
async def ledger_url(ledger_dsn: str) -> AsyncIterator[str]:
    async with serve_reference_ledger("127.0.0.1", 0, ledger_dsn, SECRET) as url:
        yield url


@pytest.fixture
async def ledger(ledger_url: str) -> AsyncIterator[LedgerClient]:
    async with LedgerClient(ledger_url, SECRET, timeout=5) as client:
        yield client


def credit(user: str, amount: str = "1500000", **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "idempotency_key": f"credit-{uuid.uuid4().hex}",
        "user_id": user,
        "network": "ethereum-devnet",
        "asset": "NEXO",
        "amount": amount,
        "decimals": 18,
        "txid": "0x" + uuid.uuid4().hex * 2,
        "position": 3,
        "block_number": 120,
    }
    body.update(overrides)
    return body


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


async def balance(ledger: LedgerClient, user: str) -> int:
    answer = await ledger.get("/balances", {"user_id": user})
    return sum(int(b["amount"]) for b in answer["balances"])


async def raw_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


# --- signing ---------------------------------------------------------------------------------
def test_signature_round_trip_and_refusals() -> None:
    body = b'{"a":1}'
    sig = sign(SECRET, "1700000000", body)
    verify(SECRET, "1700000000", body, sig, now=1_700_000_100)
    with pytest.raises(BadSignatureError):
        verify(SECRET, "1700000000", b'{"a":2}', sig, now=1_700_000_000)
    with pytest.raises(BadSignatureError):
        verify(b"other-secret", "1700000000", body, sig, now=1_700_000_000)
    with pytest.raises(BadSignatureError):
        verify(SECRET, "1700000000", body, "é" * 64, now=1_700_000_000)
    with pytest.raises(StaleRequestError):
        verify(SECRET, "1700000000", body, sig, now=1_700_000_301)
    with pytest.raises(StaleRequestError):
        verify(SECRET, "17e8", body, sig, now=1_700_000_000)
    with pytest.raises(UnsignedRequestError):
        verify(SECRET, None, body, sig, now=1_700_000_000)
    with pytest.raises(UnsignedRequestError):
        verify(SECRET, "1700000000", body, "", now=1_700_000_000)


# --- authentication over HTTP ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("unsigned", "unsigned"),
        ("bad", "bad_signature"),
        ("stale", "stale_request"),
        ("other_secret", "bad_signature"),
    ],
)
async def test_unauthenticated_credit_is_refused_and_not_applied(
    ledger: LedgerClient, ledger_url: str, case: str, code: str
) -> None:
    user = new_user()
    body = encode_body(credit(user))
    now = str(int(time.time()))
    headers = {"Content-Type": "application/json"}
    if case == "bad":
        headers |= {TIMESTAMP_HEADER: now, SIGNATURE_HEADER: "0" * 64}
    elif case == "stale":
        old = str(int(time.time()) - 301)
        signed = request_message("POST", "/credits", body)
        headers |= {TIMESTAMP_HEADER: old, SIGNATURE_HEADER: sign(SECRET, old, signed)}
    elif case == "other_secret":
        signed = request_message("POST", "/credits", body)
        headers |= {TIMESTAMP_HEADER: now, SIGNATURE_HEADER: sign(b"guess", now, signed)}
    status, answer = await raw_post(ledger_url + "/credits", body, headers)
    assert status == 401
    assert answer["error"]["code"] == code
    assert answer["error"]["message"]
    assert await balance(ledger, user) == 0
    assert (await ledger.get("/credits", {"user_id": user}))["credits"] == []


async def test_signature_for_one_query_does_not_read_another(ledger_url: str) -> None:
    now = str(int(time.time()))
    signed = request_message("GET", "/balances?user_id=a", b"")
    headers = {TIMESTAMP_HEADER: now, SIGNATURE_HEADER: sign(SECRET, now, signed)}
    async with aiohttp.ClientSession() as session:
        async with session.get(ledger_url + "/balances?user_id=a", headers=headers) as resp:
            assert resp.status == 200
        async with session.get(ledger_url + "/balances?user_id=b", headers=headers) as resp:
            assert resp.status == 401


async def test_a_signature_replayed_on_another_route_or_method_is_refused(
    ledger: LedgerClient, ledger_url: str
) -> None:
    """The signature covers method and path: a captured credit cannot be replayed elsewhere."""
    user = new_user()
    body = encode_body(credit(user))
    now = str(int(time.time()))
    signed = sign(SECRET, now, request_message("POST", "/credits", body))
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: now, SIGNATURE_HEADER: signed}
    for path in ("/reversals", "/withdrawal-events", "/credits/", "/credits?x=1"):
        status, answer = await raw_post(ledger_url + path, body, headers)
        assert (status, answer["error"]["code"]) == (401, "bad_signature"), path
    async with (
        aiohttp.ClientSession() as session,
        session.put(ledger_url + "/credits", data=body, headers=headers) as resp,
    ):
        assert resp.status == 401
    # Only the route it was made for accepts it, and nothing else was applied before that.
    assert await balance(ledger, user) == 0
    status, _ = await raw_post(ledger_url + "/credits", body, headers)
    assert status == 201 and await balance(ledger, user) > 0


async def test_client_with_wrong_secret_gets_a_typed_rejection(ledger_url: str) -> None:
    async with LedgerClient(ledger_url, b"wrong", timeout=5) as client:
        with pytest.raises(LedgerRequestRejectedError) as info:
            await client.post("/credits", credit(new_user()))
    assert info.value.status == 401
    assert info.value.error_code == "bad_signature"


async def test_client_reports_a_ledger_that_is_not_there_as_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with LedgerClient(f"http://127.0.0.1:{port}", SECRET, timeout=2) as client:
        with pytest.raises(LedgerUnavailableError):
            await client.post("/credits", credit(new_user()))


# --- idempotency -------------------------------------------------------------------------------
async def test_same_key_twice_answers_the_same_and_counts_once(ledger: LedgerClient) -> None:
    user = new_user()
    body = credit(user, "2500")
    first = await ledger.post("/credits", body)
    # The same object serialised differently (key order) is the same request.
    second = await ledger.post("/credits", dict(reversed(list(body.items()))))
    assert first == second
    assert first["balance"] == "2500"
    assert await balance(ledger, user) == 2500


async def test_concurrent_identical_requests_apply_once(ledger: LedgerClient) -> None:
    user = new_user()
    body = credit(user, "700")
    answers = await asyncio.gather(*(ledger.post("/credits", body) for _ in range(12)))
    assert all(a == answers[0] for a in answers)
    assert await balance(ledger, user) == 700
    assert len((await ledger.get("/credits", {"user_id": user}))["credits"]) == 1


async def test_same_key_different_body_is_a_conflict(ledger: LedgerClient) -> None:
    user = new_user()
    body = credit(user, "100")
    await ledger.post("/credits", body)
    with pytest.raises(LedgerRequestRejectedError) as info:
        await ledger.post("/credits", body | {"amount": "100000"})
    assert info.value.status == 409
    assert info.value.error_code == "idempotency_key_reused"
    assert await balance(ledger, user) == 100


async def test_same_deposit_under_a_second_key_is_not_credited_twice(
    ledger: LedgerClient,
) -> None:
    user = new_user()
    body = credit(user, "900")
    await ledger.post("/credits", body)
    with pytest.raises(LedgerRequestRejectedError) as info:
        await ledger.post("/credits", body | {"idempotency_key": "another-key-" + user})
    assert info.value.error_code == "duplicate_deposit"
    assert await balance(ledger, user) == 900


# --- credits and reversals ---------------------------------------------------------------------
async def test_credit_then_reversal_returns_the_balance_to_zero(ledger: LedgerClient) -> None:
    user = new_user()
    big = str(2**200 + 7)  # beyond int64 and float precision: exact all the way
    c = credit(user, big)
    assert (await ledger.post("/credits", c))["balance"] == big
    reversal = {
        "idempotency_key": f"rev-{user}",
        "credit_key": c["idempotency_key"],
        "reason": "reorg",
    }
    answer = await ledger.post("/reversals", reversal)
    assert answer["amount"] == big
    assert answer["balance"] == "0"
    assert await ledger.post("/reversals", reversal) == answer  # a repeat is not a second debit
    with pytest.raises(LedgerRequestRejectedError) as info:
        await ledger.post("/reversals", reversal | {"idempotency_key": f"rev2-{user}"})
    assert info.value.status == 409
    assert info.value.error_code == "already_reversed"
    assert await balance(ledger, user) == 0
    credits = (await ledger.get("/credits", {"user_id": user}))["credits"]
    assert [(x["amount"], x["reversed"]) for x in credits] == [(big, True)]


async def test_reversal_of_unknown_credit_is_404_and_does_not_burn_its_key(
    ledger: LedgerClient,
) -> None:
    user = new_user()
    c = credit(user, "55")
    reversal = {
        "idempotency_key": f"rev-{user}",
        "credit_key": c["idempotency_key"],
        "reason": "reorg",
    }
    with pytest.raises(LedgerRequestRejectedError) as info:
        await ledger.post("/reversals", reversal)
    assert info.value.status == 404
    await ledger.post("/credits", c)
    assert (await ledger.post("/reversals", reversal))["balance"] == "0"


async def test_reversed_deposit_mined_again_can_be_credited_again(ledger: LedgerClient) -> None:
    user = new_user()
    c = credit(user, "10")
    await ledger.post("/credits", c)
    await ledger.post(
        "/reversals",
        {"idempotency_key": f"rev-{user}", "credit_key": c["idempotency_key"], "reason": "reorg"},
    )
    again = c | {"idempotency_key": f"again-{user}", "block_number": 125}
    assert (await ledger.post("/credits", again))["balance"] == "10"


# --- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", 1500),
        ("amount", "1.5"),
        ("amount", "-3"),
        ("amount", "0"),
        ("amount", str(2**256)),
        ("amount", "007"),
        ("user_id", ""),
        ("decimals", True),
        ("block_number", -1),
        ("idempotency_key", None),
        ("network", None),
    ],
)
async def test_invalid_credit_is_422_naming_the_field(
    ledger: LedgerClient, field: str, value: object
) -> None:
    user = new_user()
    body = credit(user) | {field: value}
    if value is None:
        del body[field]
    with pytest.raises(LedgerRequestRejectedError) as info:
        await ledger.post("/credits", body)
    assert info.value.status == 422
    assert field in str(info.value)
    assert await balance(ledger, user) == 0


async def test_non_json_body_is_refused(ledger_url: str) -> None:
    body = b"not json"
    now = str(int(time.time()))
    status, answer = await raw_post(
        ledger_url + "/credits",
        body,
        {
            TIMESTAMP_HEADER: now,
            SIGNATURE_HEADER: sign(SECRET, now, request_message("POST", "/credits", body)),
        },
    )
    assert status == 422
    assert answer["error"]["field"] == "body"


# --- withdrawal events -------------------------------------------------------------------------
def event(
    wid: str, user: str, status: str, amount: str = "1000", **extra: object
) -> dict[str, object]:
    return {
        "idempotency_key": f"{wid}:{status}",
        "withdrawal_id": wid,
        "status": status,
        "user_id": user,
        "network": "ethereum-devnet",
        "asset": "NEXO",
        "amount": amount,
        **extra,
    }


async def books(ledger: LedgerClient, user: str) -> tuple[int, int, int]:
    answer = await ledger.get("/balances", {"user_id": user})
    (row,) = [b for b in answer["balances"] if b["asset"] == "NEXO"]
    return int(row["amount"]), int(row["held"]), int(row["available"])


async def test_withdrawal_events_are_recorded_once(ledger: LedgerClient, ledger_dsn: str) -> None:
    user, wid = new_user(), f"w-{uuid.uuid4().hex[:8]}"
    await ledger.post("/credits", credit(user, "5000"))
    assert (await ledger.post("/withdrawal-events", event(wid, user, "requested")))[
        "effect"
    ] == "held"
    broadcast = event(wid, user, "broadcast", txid="0xabc", fee="21000")
    failed = event(wid, user, "failed", amount_returned="1000", reason="nonce consumed")
    assert (await ledger.post("/withdrawal-events", broadcast))["funds_returned"] is False
    await ledger.post("/withdrawal-events", broadcast)
    answer = await ledger.post("/withdrawal-events", failed)
    assert (answer["funds_returned"], answer["amount_returned"]) == (True, "1000")
    assert await books(ledger, user) == (5000, 0, 5000)
    with pytest.raises(LedgerRequestRejectedError) as info:
        await ledger.post(
            "/withdrawal-events", broadcast | {"idempotency_key": "x", "status": "teleported"}
        )
    assert info.value.status == 422
    conn = await asyncpg.connect(ledger_dsn)
    try:
        rows = await conn.fetch(
            "SELECT status, fee FROM refledger.withdrawal_events WHERE withdrawal_id = $1"
            " ORDER BY created_at",
            wid,
        )
    finally:
        await conn.close()
    assert [(r["status"], r["fee"]) for r in rows] == [
        ("requested", None),
        ("broadcast", 21000),
        ("failed", None),
    ]


async def test_a_withdrawal_holds_then_settles_and_an_uncovered_one_is_refused(
    ledger: LedgerClient,
) -> None:
    user = new_user()
    await ledger.post("/credits", credit(user, "5000"))
    first, second, third = (f"w-{uuid.uuid4().hex[:8]}" for _ in range(3))
    await ledger.post("/withdrawal-events", event(first, user, "requested", "3000"))
    assert await books(ledger, user) == (5000, 3000, 2000)
    # 2,500 more is not covered by what is left (2,000): refused, nothing held.
    with pytest.raises(LedgerRequestRejectedError) as info:
        await ledger.post("/withdrawal-events", event(second, user, "requested", "2500"))
    assert (info.value.status, info.value.error_code) == (422, "insufficient_funds")
    assert await books(ledger, user) == (5000, 3000, 2000)
    # An event that disagrees with the hold about the amount is refused.
    with pytest.raises(LedgerRequestRejectedError) as info:
        await ledger.post("/withdrawal-events", event(first, user, "confirmed", "3001"))
    assert info.value.status == 409
    settled = await ledger.post("/withdrawal-events", event(first, user, "confirmed", "3000"))
    assert settled["effect"] == "settled"
    assert await books(ledger, user) == (2000, 0, 2000)
    # Released funds are available again; a released withdrawal cannot settle.
    await ledger.post("/withdrawal-events", event(third, user, "requested", "2000"))
    assert await books(ledger, user) == (2000, 2000, 0)
    await ledger.post("/withdrawal-events", event(third, user, "cancelled", "2000"))
    assert await books(ledger, user) == (2000, 0, 2000)
    with pytest.raises(LedgerRequestRejectedError):
        await ledger.post("/withdrawal-events", event(third, user, "confirmed", "2000"))


def test_module_refuses_to_start_without_its_environment() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINGATE_LEDGER_")}
    env["PYTHONPATH"] = str(SRC)
    proc = subprocess.run(
        [sys.executable, "-m", "chaingate.ledger.reference", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "CHAINGATE_LEDGER_SECRET" in proc.stderr


async def test_module_serves_the_contract_and_never_prints_the_secret(ledger_dsn: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(
        os.environ,
        PYTHONPATH=str(SRC),
        CHAINGATE_LEDGER_DATABASE_URL=ledger_dsn,
        CHAINGATE_LEDGER_SECRET=SECRET.decode(),
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chaingate.ledger.reference",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        user = new_user()
        async with LedgerClient(f"http://127.0.0.1:{port}", SECRET, timeout=2) as client:
            for _ in range(100):
                try:
                    await client.post("/credits", credit(user, "42"))
                    break
                except LedgerUnavailableError:
                    await asyncio.sleep(0.1)
            assert await balance(client, user) == 42
    finally:
        proc.terminate()
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=10)
    assert SECRET not in output
    assert json.dumps(SECRET.decode()).encode() not in output
