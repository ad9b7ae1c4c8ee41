"""The TRON driver: the project's TRON devnet (SPEC section 11), paid with tronpy from a genesis
key that also owns the listed USDT; `fork` for reorgs, the dropped transactions broadcast again
(the same signed bytes) to re-mine them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from tronpy import AsyncTron
from tronpy.async_tron import AsyncTransaction
from tronpy.keys import PrivateKey
from tronpy.providers.async_http import AsyncHTTPProvider

from chaindrivers import CONFIRMATIONS
from chaingate.devnet.manager import DevnetState
from chaingate.devnet.tron_node import GENESIS_KEYS
from chaingate.domain import Network
from harness import devnet_network

SENDER = PrivateKey(bytes.fromhex(GENESIS_KEYS[0]))  # holds the genesis USDT supply
SENDER_ADDRESS = SENDER.public_key.to_base58check_address()


class TronNode:
    """The TRON devnet's controls (POST /devnet/...) and a tronpy client that pays from SENDER."""

    def __init__(self, url: str, tron: AsyncTron) -> None:
        self.url = url
        self.tron = tron
        self.sent: list[tuple[int, AsyncTransaction]] = []  # (head when sent, signed tx)

    async def control(self, control: str, **body: Any) -> Any:
        async with httpx.AsyncClient() as client:
            reply = await client.post(f"{self.url}/devnet/{control}", json=body)
        reply.raise_for_status()
        return reply.json()

    async def mine(self, count: int = 1) -> int:
        return int((await self.control("mine", count=count))["head"])

    async def head(self) -> int:
        return int((await self.control("mine", count=0))["head"])

    async def fork(self, depth: int) -> None:
        """Drop the last ``depth`` blocks and the pool: their transactions are gone for good."""
        await self.control("fork", depth=depth)

    async def _send(self, tx: AsyncTransaction) -> str:
        assert (await tx.broadcast())["result"] is True
        self.sent.append((await self.head(), tx))
        return str(tx.txid)

    async def pay_trx(self, to: str, sun: int) -> str:
        return await self._send(
            (await self.tron.trx.transfer(SENDER_ADDRESS, to, sun).build()).sign(SENDER)
        )

    async def pay_trc20(self, contract: str, to: str, amount: int) -> str:
        token = await self.tron.get_contract(contract)
        call = await token.functions.transfer(to, amount)
        tx = (await call.with_owner(SENDER_ADDRESS).fee_limit(100_000_000).build()).sign(SENDER)
        return await self._send(tx)

    async def pay_trc10(self, token_id: int, to: str, amount: int) -> str:
        builder = self.tron.trx.asset_transfer(SENDER_ADDRESS, to, amount, token_id)
        return await self._send((await builder.build()).sign(SENDER))


@asynccontextmanager
async def tron_node(devnet: DevnetState) -> AsyncIterator[TronNode]:
    assert devnet.tron_url is not None, "the devnet runs without the TRON node"
    async with AsyncTron(provider=AsyncHTTPProvider(devnet.tron_url)) as tron:
        yield TronNode(devnet.tron_url, tron)


class TronDriver:
    kind = "tron"
    native = "TRX"
    token: str | None = "USDT"
    dust = 500_000  # sun; the minimum is 1 TRX

    def __init__(self, devnet: DevnetState, node: TronNode) -> None:
        assert devnet.tron_url is not None
        self.url = devnet.tron_url
        self.node = node
        self.usdt = ""
        self._lookalike: str | None = None

    async def network(self) -> Network:
        start = await self.node.mine(1) + 1  # above whatever is left in the pool
        network = devnet_network(
            "tron-devnet",
            self.url,
            start_height=start,
            confirmations=CONFIRMATIONS,
            solidity_finality=False,
        )
        self.usdt = network.asset("USDT").contract or ""
        return network

    async def pay(self, address: str, amount: int) -> str:
        txid = await self.node.pay_trx(address, amount)
        await self.node.mine(1)
        return txid

    async def pay_token(self, address: str, amount: int) -> str:
        txid = await self.node.pay_trc20(self.usdt, address, amount)
        await self.node.mine(1)
        return txid

    async def pay_unlisted(self, address: str, amount: int) -> tuple[str, str]:
        if self._lookalike is None:
            deployed = await self.node.control(
                "deploy-trc20", symbol="USDT", decimals=6, owner=SENDER_ADDRESS, supply=10**12
            )
            self._lookalike = str(deployed["contract"])
        txid = await self.node.pay_trc20(self._lookalike, address, amount)
        await self.node.mine(1)
        return txid, self._lookalike

    async def pay_failed(self, address: str, amount: int) -> str:
        await self.node.control("fail-next", mode="REVERT")
        return await self.pay_token(address, amount)

    async def mine(self, blocks: int) -> None:
        await self.node.mine(blocks)

    async def mark(self) -> int:
        return await self.node.head()

    async def reorg(self, mark: object, *, remine: bool) -> None:
        assert isinstance(mark, int)
        tip = await self.node.head()
        await self.node.fork(tip - mark)
        if remine:
            for sent_at, tx in self.node.sent:
                if sent_at >= mark:  # broadcast after the mark: in a dropped block
                    assert (await tx.broadcast())["result"] is True
        await self.node.mine(tip - mark + 1)
