"""The address-index guard on real nodes (anvil, litecoind, the TRON devnet): a fresh database
refuses to issue addresses whose index already has on-chain history, issues from an explicit
start index past them, and refuses an xpub other than the one it issued from."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from tronpy import AsyncTron
from tronpy.providers.async_http import AsyncHTTPProvider

from chaindrivers.bitcoin import ltc_rpc
from chaindrivers.tron import TronNode as TronDevnet
from chaingate.api import ApiContext, build_app
from chaingate.api.issuance import HISTORY_WINDOW, open_address_history
from chaingate.chains.registry import address_codec
from chaingate.devnet import evm_contracts as evm
from chaingate.devnet.manager import DevnetState
from chaingate.domain import Network
from chaingate.settings import Settings
from harness import SERVICE_TOKEN, TOKENS, devnet_network

AUTH = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
# Each run takes a start index nobody else in the session uses (other tests issue from 0).
FAR = random.randrange(100_000, 1_000_000, 1000)


@dataclasses.dataclass
class Api:
    client: TestClient[Any, Any]

    async def issue(self, user: str, network: str) -> tuple[int, dict[str, Any]]:
        resp = await self.client.post(
            "/v1/deposit-addresses", json={"user_id": user, "network": network}, headers=AUTH
        )
        return resp.status, dict(await resp.json())


MakeApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(db: asyncpg.Pool) -> AsyncIterator[MakeApi]:
    """An API over real HTTP for ``network`` (optionally with a start index), with the
    production history reader: the network's adapter over its own endpoint pool."""
    async with AsyncExitStack() as stack:

        async def make(network: Network, start: int | None = None) -> Api:
            ctx = ApiContext(
                db=db,
                networks={network.name: network},
                codecs={network.name: address_codec(network)},
                tokens=TOKENS,
                address_start={} if start is None else {network.name: start},
                address_history=open_address_history,
            )
            client = await stack.enter_async_context(TestClient(TestServer(build_app(ctx))))
            return Api(client)

        yield make


async def refused(api: Api, network: Network, code: str) -> str:
    status, body = await api.issue("mallory", network.name)
    assert status == 409, body
    assert body["error"]["code"] == code
    return str(body["error"]["message"])


async def assert_nothing_issued(db: asyncpg.Pool) -> None:
    assert await db.fetchval("SELECT count(*) FROM deposit_addresses") == 0


async def issued_index(db: asyncpg.Pool, user: str) -> int:
    return int(
        await db.fetchval("SELECT derivation_index FROM deposit_addresses WHERE user_id = $1", user)
    )


# --- EVM ---------------------------------------------------------------------------------------
async def test_evm_fresh_database_refuses_used_indexes_and_issues_past_them(
    devnet: DevnetState, db: asyncpg.Pool, make_api: MakeApi
) -> None:
    url, token = devnet.eth_url or "", devnet.eth_token or ""
    network = devnet_network("ethereum-devnet", url)
    codec = address_codec(network)
    await evm.send_eth(url, evm.DEFAULT_SENDER, codec.derive(0).address, 10**15)
    # A token-only payment (no ETH, no nonce) is history too.
    await evm.token_transfer(url, token, evm.DEFAULT_SENDER, codec.derive(FAR + 7).address, 1)

    message = await refused(await make_api(network), network, "address_index_in_use")
    assert "index 0" in message and "CHAINGATE_ETHEREUM_DEVNET_ADDRESS_START_INDEX" in message
    assert await refused(await make_api(network, FAR), network, "address_index_in_use")
    await assert_nothing_issued(db)

    api = await make_api(network, FAR + 100)
    assert (await api.issue("alice", network.name))[0] == 201
    assert (await api.issue("bob", network.name))[0] == 201
    assert [await issued_index(db, u) for u in ("alice", "bob")] == [FAR + 100, FAR + 101]
    # The start index only applies to a database that has issued nothing: later it is ignored.
    assert (await (await make_api(network, 0)).issue("carol", network.name))[0] == 201
    assert await issued_index(db, "carol") == FAR + 102

    # Another xpub for the same network is refused, never mixed into the index sequence.
    other = dataclasses.replace(network, xpub=devnet_network("tron-devnet", url).xpub)
    message = await refused(await make_api(other, FAR + 100), other, "xpub_changed")
    assert "xpub" in message and (other.xpub or "") not in message
    status, _ = await api.issue("alice", network.name)  # the real one still works
    assert status == 200 and await issued_index(db, "alice") == FAR + 100


async def test_a_database_from_before_the_guard_is_adopted_only_with_its_own_xpub(
    devnet: DevnetState, db: asyncpg.Pool, make_api: MakeApi
) -> None:
    network = devnet_network("ethereum-devnet", devnet.eth_url or "")
    codec = address_codec(network)
    derived = codec.derive(FAR + 5)
    await db.execute(
        """INSERT INTO deposit_addresses (network, user_id, derivation_index, address, match_key)
           VALUES ($1, 'old-user', $2, $3, $4)""",
        network.name,
        derived.index,
        derived.address,
        derived.match_key,
    )
    await db.execute(
        "INSERT INTO address_counters (network, next_index) VALUES ($1, $2)",
        network.name,
        FAR + 6,
    )
    other = dataclasses.replace(network, xpub=devnet_network("tron-devnet", "http://x").xpub)
    await refused(await make_api(other), other, "xpub_changed")
    api = await make_api(network)
    assert (await api.issue("new-user", network.name))[0] == 201
    assert await issued_index(db, "new-user") == FAR + 6
    await refused(await make_api(other), other, "xpub_changed")


# --- Bitcoin (litecoind) -----------------------------------------------------------------------
async def test_bitcoin_fresh_database_refuses_used_indexes(
    devnet: DevnetState, db: asyncpg.Pool, make_api: MakeApi
) -> None:
    network = devnet_network("bitcoin-devnet", devnet.ltc_rpc_url or "")
    codec = address_codec(network)
    async with ltc_rpc(devnet) as ltc:
        await ltc.send_to_script(codec.derive(0).match_key, 50_000)
        await ltc.send_to_script(codec.derive(FAR + 3).match_key, 50_000)
        await ltc.mine(1)
    message = await refused(await make_api(network), network, "address_index_in_use")
    assert "CHAINGATE_BITCOIN_DEVNET_ADDRESS_START_INDEX" in message
    await refused(await make_api(network, FAR), network, "address_index_in_use")
    await assert_nothing_issued(db)
    api = await make_api(network, FAR + HISTORY_WINDOW)
    assert (await api.issue("alice", network.name))[0] == 201
    assert await issued_index(db, "alice") == FAR + HISTORY_WINDOW


# --- TRON devnet -------------------------------------------------------------------------------
async def test_tron_fresh_database_refuses_used_indexes(
    devnet: DevnetState, db: asyncpg.Pool, make_api: MakeApi
) -> None:
    assert devnet.tron_url is not None
    network = devnet_network("tron-devnet", devnet.tron_url)
    codec = address_codec(network)
    usdt = network.asset("USDT").contract
    assert usdt is not None
    async with AsyncTron(provider=AsyncHTTPProvider(devnet.tron_url)) as tron:
        chain = TronDevnet(devnet.tron_url, tron)
        await chain.pay_trx(codec.derive(0).address, 1_000_000)
        await chain.pay_trc20(usdt, codec.derive(FAR + 9).address, 5)  # not an account: TRC-20
        await chain.mine(1)
    message = await refused(await make_api(network), network, "address_index_in_use")
    assert "CHAINGATE_TRON_DEVNET_ADDRESS_START_INDEX" in message
    await refused(await make_api(network, FAR), network, "address_index_in_use")
    await assert_nothing_issued(db)
    api = await make_api(network, FAR + HISTORY_WINDOW)
    assert (await api.issue("alice", network.name))[0] == 201
    other = dataclasses.replace(network, xpub=devnet_network("ethereum-devnet", "http://x").xpub)
    await refused(await make_api(other), other, "xpub_changed")


def test_start_index_comes_from_the_environment_and_is_checked() -> None:
    env = {
        "CHAINGATE_DATABASE_URL": "postgresql://u@h/db",
        "CHAINGATE_ETHEREUM_DEVNET_ADDRESS_START_INDEX": "5000",
    }
    assert Settings.from_env(env).address_start == {"ethereum-devnet": 5000}
    for bad in ("-1", "²", "2147483648", "1e3"):
        with pytest.raises(Exception, match="ADDRESS_START_INDEX: expected an address index"):
            Settings.from_env({**env, "CHAINGATE_ETHEREUM_DEVNET_ADDRESS_START_INDEX": bad})
