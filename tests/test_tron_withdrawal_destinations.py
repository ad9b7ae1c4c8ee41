"""TRON withdrawal destinations at the API: T-addresses and 41-hex taken (stored as T-address),
other networks' addresses refused with 422 and a network_mismatch alert, typos refused quietly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from chaingate.chains.tron.addresses import base58_to_hex
from withdrawal_desk import Desk, desk

TRON = "tron-devnet"
T_ADDRESS = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
MISMATCHED = [
    ("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "evm"),
    ("0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "evm"),
    ("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "bitcoin"),
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "bitcoin"),
    ("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", "bitcoin"),
]
TYPOS = [
    T_ADDRESS[:-1] + "u",  # checksum broken
    T_ADDRESS[:-1],  # too short
    "41" + "00" * 19,  # 41-hex one byte short
    "42" + base58_to_hex(T_ADDRESS)[2:],  # another version byte
]


@pytest.fixture
async def d(db: asyncpg.Pool, ledger_url: str) -> AsyncIterator[Desk]:
    async with desk(db, ledger_url) as made:
        yield made


async def withdraw(d: Desk, to: str, request_id: str) -> tuple[int, Any]:
    return await d.withdraw(
        "tu", 2_000_000, network=TRON, asset="TRX", to_address=to, request_id=request_id
    )


async def test_t_address_and_41_hex_are_the_same_destination(d: Desk) -> None:
    status, first = await withdraw(d, T_ADDRESS, "t-1")
    assert status == 201, first
    assert first["to_address"] == T_ADDRESS
    hex41 = base58_to_hex(T_ADDRESS)
    assert hex41.startswith("41") and len(hex41) == 42
    status, second = await withdraw(d, hex41.upper(), "t-2")
    assert status == 201 and second["to_address"] == T_ADDRESS
    # a repeat of the first request spelled in hex is the same request, not a new one
    assert await withdraw(d, hex41, "t-1") == (200, first)


async def test_other_networks_addresses_are_refused_with_an_alert(d: Desk) -> None:
    for n, (address, _family) in enumerate(MISMATCHED):
        status, answer = await withdraw(d, address, f"m-{n}")
        assert status == 422 and answer["error"]["code"] == "invalid_address", answer
    for n, typo in enumerate(TYPOS):
        status, answer = await withdraw(d, typo, f"typo-{n}")
        assert status == 422 and answer["error"]["code"] == "invalid_address", (typo, answer)
    alerts = await d.db.fetch("SELECT * FROM alerts ORDER BY id")
    assert [(a["kind"], a["network"], a["details"]["address_network"]) for a in alerts] == [
        ("network_mismatch", TRON, family) for _, family in MISMATCHED
    ]
    assert await d.db.fetchval("SELECT count(*) FROM withdrawals") == 0
