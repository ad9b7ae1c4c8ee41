"""POST /v1/withdrawals at the edge: 201/200/409/422, limits, the network-mismatch alert, reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from withdrawal_desk import DEST, ETH, ETHER, Desk, desk


@pytest.fixture
async def d(db: asyncpg.Pool, ledger_url: str) -> AsyncIterator[Desk]:
    async with desk(db, ledger_url) as made:
        yield made


async def nothing_queued(db: asyncpg.Pool) -> bool:
    counts = await db.fetchrow(
        """SELECT (SELECT count(*) FROM withdrawals) AS w,
                  (SELECT count(*) FROM withdrawal_history) AS h,
                  (SELECT count(*) FROM ledger_outbox) AS o,
                  (SELECT count(*) FROM audit_log) AS a"""
    )
    return tuple(counts) == (0, 0, 0, 0)


async def test_new_then_same_then_reused_request_id(d: Desk) -> None:
    body = {
        "request_id": "ledger-req-1",
        "user_id": "u1",
        "network": ETH,
        "asset": "ETH",
        "to_address": DEST.lower(),  # all-lowercase hex carries no checksum and is accepted
        "amount": "1500000000000000000",
    }
    status, first = await d.call("POST", "/v1/withdrawals", "service", body)
    assert status == 201, first
    assert first["status"] == "requested" and first["to_address"] == DEST  # stored as EIP-55
    assert first["amount"] == "1500000000000000000" and first["history"][0]["status"] == "requested"
    # The same request again (even with the address in another case) is the same withdrawal.
    again = await d.call("POST", "/v1/withdrawals", "service", {**body, "to_address": DEST})
    assert again == (200, first)
    status, error = await d.call("POST", "/v1/withdrawals", "service", {**body, "amount": "2"})
    assert status == 409 and error["error"]["code"] == "request_id_reused"
    assert await d.db.fetchval("SELECT count(*) FROM withdrawals") == 1
    # One ledger event (the hold) and one audit row for the one withdrawal.
    keys = [r["idempotency_key"] for r in await d.db.fetch("SELECT * FROM ledger_outbox")]
    assert keys == [f"withdrawal:{first['id']}:requested"]
    assert await d.db.fetchval("SELECT count(*) FROM audit_log") == 1
    # The same new request five times at once: one withdrawal, created once.
    twin = {**body, "request_id": "ledger-req-2"}
    answers = await asyncio.gather(
        *(d.call("POST", "/v1/withdrawals", "service", twin) for _ in range(5))
    )
    assert sorted(s for s, _ in answers) == [200, 200, 200, 200, 201]
    assert len({a["id"] for _, a in answers}) == 1


TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
BITCOIN = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
BAD_CHECKSUM = "0x70997970c51812dc3A010C7d01b50e0d17dc79C8"


INVALID: list[tuple[dict[str, Any], str, str]] = [
    ({"to_address": TRON}, "invalid_address", "Tron address"),
    ({"to_address": BITCOIN}, "invalid_address", "Bitcoin address"),
    ({"to_address": BAD_CHECKSUM}, "invalid_address", "checksum"),
    ({"to_address": "0x1234"}, "invalid_address", "40 hex digits"),
    ({"amount": "0"}, "invalid_request", "positive"),
    ({"amount": "-5"}, "invalid_request", "digits 0-9"),
    ({"amount": "+5"}, "invalid_request", "digits 0-9"),
    ({"amount": "1.5"}, "invalid_request", "digits 0-9"),
    ({"amount": "1e18"}, "invalid_request", "digits 0-9"),
    ({"amount": "١٢"}, "invalid_request", "digits 0-9"),  # Arabic-Indic digits
    ({"amount": "007"}, "invalid_request", "leading zeros"),
    ({"amount": 5}, "invalid_request", "string of digits"),
    ({"amount": str(100 * ETHER + 1)}, "limit_exceeded", "per-request limit"),
    ({"asset": "DOGE"}, "invalid_request", "unknown asset"),
    ({"network": "dogecoin"}, "invalid_request", "unknown network"),
    ({"network": "bsc-devnet", "asset": "BNB"}, "invalid_request", "watch-only"),
    ({"request_id": ""}, "invalid_request", "request_id"),
    ({"user_id": "bad id!"}, "invalid_request", "user_id"),
    ({"to_address": None}, "invalid_request", "to_address"),
]


async def test_invalid_requests_are_422_and_queue_nothing(d: Desk) -> None:
    for changes, code, words in INVALID:
        status, answer = await d.withdraw("u1", ETHER, **changes)
        assert status == 422, (changes, answer)
        assert answer["error"]["code"] == code, changes
        assert words.lower() in answer["error"]["message"].lower(), (changes, answer)
    assert await nothing_queued(d.db)


async def test_an_address_of_another_network_raises_a_network_mismatch_alert(d: Desk) -> None:
    status, _ = await d.withdraw("u7", ETHER, to_address=TRON, request_id="r-tron")
    assert status == 422
    status, _ = await d.withdraw("u7", 10**6, to_address=DEST, network="tron-devnet", asset="TRX")
    assert status == 422
    status, _ = await d.withdraw("u7", ETHER, to_address=BAD_CHECKSUM)  # a typo, not a network
    assert status == 422
    alerts = await d.db.fetch("SELECT * FROM alerts ORDER BY id")
    assert [(a["kind"], a["network"], a["details"]["address_network"]) for a in alerts] == [
        ("network_mismatch", ETH, "tron"),
        ("network_mismatch", "tron-devnet", "evm"),
    ]
    assert alerts[0]["user_id"] == "u7" and int(alerts[0]["amount"]) == ETHER
    assert await d.db.fetchval("SELECT count(*) FROM withdrawals") == 0


async def test_the_daily_limit_holds_under_concurrent_requests(d: Desk) -> None:
    # 1,000 ETH per user per day on the devnet: 15 requests of 90 ETH at once, 11 fit.
    answers = await asyncio.gather(*(d.withdraw("whale", 90 * ETHER) for _ in range(15)))
    assert sorted(s for s, _ in answers) == [201] * 11 + [422] * 4
    refused = [a for s, a in answers if s == 422]
    assert all(a["error"]["code"] == "limit_exceeded" for a in refused)
    assert "daily limit" in refused[0]["error"]["message"]
    total = await d.db.fetchval("SELECT sum(amount) FROM withdrawals WHERE user_id = 'whale'")
    assert total == 990 * ETHER
    # Other users and assets are not affected.
    assert (await d.withdraw("minnow", 90 * ETHER))[0] == 201


async def test_roles_reads_filters_and_cursor_pagination(d: Desk) -> None:
    status, answer = await d.call("POST", "/v1/withdrawals", "viewer", {})
    assert (status, answer["error"]["code"]) == (403, "forbidden")
    for who in ("maker", "alice"):
        assert (await d.call("POST", "/v1/withdrawals", who, {}))[0] == 403
    ids = []
    for n in range(5):
        status, w = await d.withdraw("reader" if n % 2 else "other", (n + 1) * ETHER)
        assert status == 201
        ids.append(w["id"])
    status, one = await d.call("GET", f"/v1/withdrawals/{ids[0]}", "viewer")
    assert status == 200 and one["id"] == ids[0]
    assert {"status", "batch_id", "txid", "fee", "confirmations", "history"} <= set(one)
    assert (await d.call("GET", "/v1/withdrawals/999999", "viewer"))[0] == 404
    assert (await d.call("GET", "/v1/withdrawals/abc", "viewer"))[0] == 422
    status, page = await d.call("GET", "/v1/withdrawals", "service", user_id="reader")
    assert [w["id"] for w in page["withdrawals"]] == [ids[3], ids[1]]
    seen: list[int] = []
    after: str | None = ""
    while after is not None:
        status, page = await d.call(
            "GET", "/v1/withdrawals", "viewer", network=ETH, status="requested", limit="2",
            **({"after": after} if after else {}),
        )  # fmt: skip
        assert status == 200
        seen += [w["id"] for w in page["withdrawals"]]
        after = page["next"]
    assert seen == sorted(ids, reverse=True)
    bad = await d.call("GET", "/v1/withdrawals", "viewer", status="paid")
    assert bad[0] == 422
    assert (await d.call("GET", "/v1/withdrawals", "viewer", after="17"))[0] == 422
