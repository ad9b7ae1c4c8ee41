"""The service API at its edge: auth, validation, and concurrency-safe address issuance."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from chaingate.api import ApiContext, build_app
from chaingate.chains.registry import address_codec
from chaingate.settings import Principal
from harness import SERVICE_TOKEN, TOKENS, devnet_network

VIEWER = "test-viewer-token-0000001"
AUTH = {"Authorization": f"Bearer {SERVICE_TOKEN}"}


@pytest.fixture
async def api(db: asyncpg.Pool) -> AsyncIterator[TestClient[Any, Any]]:
    networks = {
        n.name: n
        for n in (
            devnet_network("ethereum-devnet", "http://127.0.0.1:1"),
            devnet_network("bsc-devnet", "http://127.0.0.1:1"),
            devnet_network("bitcoin-devnet", "http://127.0.0.1:1"),
            devnet_network("tron-devnet", "http://127.0.0.1:1"),
        )
    }
    tokens = {**TOKENS, VIEWER: Principal("auditor", frozenset({"viewer"}))}
    ctx = ApiContext(
        db=db,
        networks=networks,
        codecs={name: address_codec(n) for name, n in networks.items()},
        tokens=tokens,
    )
    async with TestClient(TestServer(build_app(ctx))) as client:
        yield client


async def issue(api: TestClient[Any, Any], user: str, network: str) -> tuple[int, Any]:
    resp = await api.post(
        "/v1/deposit-addresses", json={"user_id": user, "network": network}, headers=AUTH
    )
    return resp.status, await resp.json()


async def test_concurrent_requests_get_one_address_per_user_and_burn_no_index(
    api: TestClient[Any, Any], db: asyncpg.Pool
) -> None:
    same = await asyncio.gather(*(issue(api, "olga", "ethereum-devnet") for _ in range(20)))
    assert sorted(status for status, _ in same) == [200] * 19 + [201]
    assert len({body["address"] for _, body in same}) == 1
    others = await asyncio.gather(*(issue(api, f"u{i}", "ethereum-devnet") for i in range(20)))
    assert len({body["address"] for _, body in others}) == 20
    indexes = [
        r["derivation_index"]
        for r in await db.fetch("SELECT derivation_index FROM deposit_addresses ORDER BY 1")
    ]
    assert indexes == list(range(21))  # no gaps: racing requests rolled back, not burnt


async def test_each_network_shows_its_own_address_form(api: TestClient[Any, Any]) -> None:
    _, eth = await issue(api, "pia", "ethereum-devnet")
    _, btc = await issue(api, "pia", "bitcoin-devnet")
    _, trx = await issue(api, "pia", "tron-devnet")
    assert eth["address"].startswith("0x") and eth["address"] != eth["address"].lower()  # EIP-55
    assert btc["address"].startswith("bcrt1q")
    assert trx["address"].startswith("T") and len(trx["address"]) == 34


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ({"user_id": "a", "network": "ethereum-devnet"}, {}, 401, "unauthenticated"),
        (
            {"user_id": "a", "network": "ethereum-devnet"},
            {"Authorization": "Bearer nope-nope-nope-nope"},
            401,
            "unauthenticated",
        ),
        (
            {"user_id": "a", "network": "ethereum-devnet"},
            {"Authorization": f"Bearer {VIEWER}"},
            403,
            "forbidden",
        ),
        ({"user_id": "a", "network": "dogecoin"}, AUTH, 422, "invalid_request"),
        ({"user_id": "a", "network": "bsc-devnet"}, AUTH, 422, "invalid_request"),
        ({"user_id": "bad id!", "network": "ethereum-devnet"}, AUTH, 422, "invalid_request"),
        ({"network": "ethereum-devnet"}, AUTH, 422, "invalid_request"),
    ],
)
async def test_bad_requests_get_a_clear_error_and_change_nothing(
    api: TestClient[Any, Any],
    db: asyncpg.Pool,
    body: dict[str, str],
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    resp = await api.post("/v1/deposit-addresses", json=body, headers=headers)
    assert resp.status == status
    error = (await resp.json())["error"]
    assert error["code"] == code and error["message"]
    assert await db.fetchval("SELECT count(*) FROM deposit_addresses") == 0


async def test_viewers_read_deposits_but_bad_filters_are_refused(api: TestClient[Any, Any]) -> None:
    ok = await api.get(
        "/v1/deposits", params={"status": "credited"}, headers={"Authorization": f"Bearer {VIEWER}"}
    )
    assert ok.status == 200 and (await ok.json()) == {"deposits": [], "next": None}
    bad = await api.get("/v1/deposits", params={"status": "paid"}, headers=AUTH)
    assert bad.status == 422
