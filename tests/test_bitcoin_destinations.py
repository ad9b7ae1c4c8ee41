"""Bitcoin withdrawal destinations: every script type of the network, nothing of another
network (422 and a ``network_mismatch`` alert), and no output below its dust limit."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from chaingate.chains.bitcoin.addresses import BitcoinAddresses
from chaingate.chains.bitcoin.bech32 import encode_segwit
from chaingate.errors import InvalidAddressError
from harness import devnet_network
from withdrawal_desk import Desk, desk

BTC = "bitcoin-devnet"
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58check(version: int, body: bytes) -> str:
    payload = bytes([version]) + body
    raw = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    number = int.from_bytes(raw, "big")
    text = ""
    while number:
        number, rest = divmod(number, 58)
        text = _B58[rest] + text
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + text


H20, H32 = bytes(range(1, 21)), bytes(range(1, 33))
# One address of each script type on the devnet (bcrt hrp; litecoind's base58 versions).
P2WPKH = encode_segwit("bcrt", 0, H20)
P2WSH = encode_segwit("bcrt", 0, H32)
P2TR = encode_segwit("bcrt", 1, H32)
P2PKH = b58check(0x6F, H20)
P2SH_LITECOIND = b58check(0x3A, H20)  # litecoind regtest getnewaddress p2sh-segwit: Q...
P2SH = b58check(0xC4, H20)
WRONG_NETWORK = {
    encode_segwit("bc", 0, H20): "bitcoin-mainnet",
    encode_segwit("tb", 1, H32): "bitcoin-testnet",
    encode_segwit("ltc", 0, H20): "litecoin",
    b58check(0x00, H20): "bitcoin-mainnet",
    b58check(0x30, H20): "litecoin",  # Litecoin mainnet L...
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8": "evm",
    "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t": "tron",
}


def test_every_script_type_of_the_network_is_accepted_with_its_script() -> None:
    codec = BitcoinAddresses(devnet_network(BTC, "http://127.0.0.1:1"))
    assert codec.match_key(P2WPKH) == "0014" + H20.hex()
    assert codec.match_key(P2WSH) == "0020" + H32.hex()
    assert codec.match_key(P2TR) == "5120" + H32.hex()
    assert codec.match_key(P2PKH) == "76a914" + H20.hex() + "88ac"
    assert codec.match_key(P2SH) == codec.match_key(P2SH_LITECOIND) == "a914" + H20.hex() + "87"
    assert [codec.min_output(a) for a in (P2WPKH, P2WSH, P2TR, P2PKH, P2SH)] == [
        294,
        330,
        330,
        546,
        540,
    ]


def test_a_mainnet_codec_refuses_the_devnet_versions() -> None:
    devnet = devnet_network(BTC, "http://127.0.0.1:1")
    mainnet = BitcoinAddresses(
        dataclasses.replace(
            devnet, name="bitcoin-mainnet", hrp="bc", p2pkh_versions=(), p2sh_versions=()
        )
    )
    for text in (P2PKH, P2SH, P2SH_LITECOIND, P2WPKH):
        with pytest.raises(InvalidAddressError) as caught:
            mainnet.normalize(text)
        assert caught.value.other_network is not None, text


@pytest.fixture
async def d(db: asyncpg.Pool, ledger_url: str) -> AsyncIterator[Desk]:
    async with desk(db, ledger_url) as made:
        yield made


async def test_wrong_network_addresses_are_422_with_a_network_mismatch_alert(d: Desk) -> None:
    for n, address in enumerate(WRONG_NETWORK):
        status, answer = await d.withdraw(
            "u9", 100_000, network=BTC, asset="BTC", to_address=address, request_id=f"wn-{n}"
        )
        assert status == 422 and answer["error"]["code"] == "invalid_address", (address, answer)
    alerts = await d.db.fetch("SELECT * FROM alerts ORDER BY id")
    assert [(a["kind"], a["network"]) for a in alerts] == [("network_mismatch", BTC)] * len(
        WRONG_NETWORK
    )
    assert [a["details"]["address_network"] for a in alerts] == list(WRONG_NETWORK.values())
    assert await d.db.fetchval("SELECT count(*) FROM withdrawals") == 0


async def test_a_dust_output_is_refused_and_the_limit_itself_accepted(d: Desk) -> None:
    for address, dust in ((P2WPKH, 294), (P2PKH, 546), (P2TR, 330)):
        status, answer = await d.withdraw(
            "u9", dust - 1, network=BTC, asset="BTC", to_address=address
        )
        assert status == 422 and answer["error"]["code"] == "limit_exceeded", answer
        assert "dust" in answer["error"]["message"]
        status, answer = await d.withdraw("u9", dust, network=BTC, asset="BTC", to_address=address)
        assert status == 201, answer
        assert answer["to_address"] == address
