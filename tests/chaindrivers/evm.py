"""The Ethereum driver: anvil (automining one block per transaction), evm_snapshot/evm_revert
for reorgs, and the raw signed transactions of the dropped blocks sent again to re-mine them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from chaindrivers import CONFIRMATIONS
from chaingate.devnet import evm_contracts as evm
from chaingate.devnet.manager import DevnetState
from chaingate.domain import Network
from harness import devnet_network

SENDER = evm.DEFAULT_SENDER
E18 = 10**18


async def rpc(url: str, method: str, *params: Any) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        ) as resp,
    ):
        reply = await resp.json()
    assert "error" not in reply, reply
    return reply["result"]


async def head(url: str) -> int:
    return int(await rpc(url, "eth_blockNumber"), 16)


@dataclass(frozen=True, slots=True)
class Snapshot:
    id: str
    height: int


class EvmDriver:
    kind = "evm"
    native = "ETH"
    token: str | None = "NEXO"
    dust = 1000  # wei; the minimum is 0.001 ETH

    def __init__(self, devnet: DevnetState) -> None:
        assert devnet.eth_url is not None and devnet.eth_token is not None
        self.url = devnet.eth_url
        self.nexo = devnet.eth_token
        self._lookalike: str | None = None

    async def network(self) -> Network:
        start = await head(self.url) + 1
        return devnet_network(
            "ethereum-devnet", self.url, start_height=start, confirmations=CONFIRMATIONS
        )

    async def pay(self, address: str, amount: int) -> str:
        return await evm.send_eth(self.url, SENDER, address, amount)

    async def pay_token(self, address: str, amount: int) -> str:
        return await evm.token_transfer(self.url, self.nexo, SENDER, address, amount)

    async def pay_unlisted(self, address: str, amount: int) -> tuple[str, str]:
        if self._lookalike is None:
            self._lookalike = await evm.deploy_dev_token(self.url, "Nexo", "NEXO", 18, 10**30)
        txid = await evm.token_transfer(self.url, self._lookalike, SENDER, address, amount)
        return txid, self._lookalike.lower()

    async def pay_failed(self, address: str, amount: int) -> str:
        await evm.set_fail_mode(self.url, self.nexo, 2)  # transfer reverts
        try:
            return await evm.token_transfer(
                self.url, self.nexo, SENDER, address, amount, gas=200_000
            )
        finally:
            await evm.set_fail_mode(self.url, self.nexo, 0)

    async def mine(self, blocks: int) -> None:
        await evm.mine(self.url, blocks)

    async def mark(self) -> Snapshot:
        return Snapshot(await rpc(self.url, "evm_snapshot"), await head(self.url))

    async def reorg(self, mark: object, *, remine: bool) -> None:
        assert isinstance(mark, Snapshot)
        tip = await head(self.url)
        raws = await self.raw_transactions(mark.height + 1, tip) if remine else []
        assert await rpc(self.url, "evm_revert", mark.id)
        for raw in raws:  # anvil mines each into a block of its own, at new heights
            await rpc(self.url, "eth_sendRawTransaction", raw)
        await self.mine(tip - mark.height + 1)

    async def raw_transactions(self, first: int, last: int) -> list[str]:
        """The raw signed bytes of every transaction in blocks ``first..last``, in order."""
        raws: list[str] = []
        for number in range(first, last + 1):
            block = await rpc(self.url, "eth_getBlockByNumber", hex(number), False)
            for txid in block["transactions"]:
                raws.append(await rpc(self.url, "eth_getRawTransactionByHash", txid))
        return raws
