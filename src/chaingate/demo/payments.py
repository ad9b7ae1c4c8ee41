"""The demo's payments on the devnet chains, each returning what the gateway must make of it.

Each payment is mined into one block and no further: the confirmations come from ``Miner``, a
block per chain per tick, so a person watching the demo sees them count up to what each network
requires.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from tronpy import AsyncTron
from tronpy.keys import PrivateKey
from tronpy.providers.async_http import AsyncHTTPProvider

from chaingate.demo.outcomes import BSC, BTC, ETH, TRON, DemoError, Expected
from chaingate.devnet import evm_contracts as evm
from chaingate.devnet.bitcoin import LitecoinRpc
from chaingate.devnet.manager import DevnetState
from chaingate.devnet.tron_node import GENESIS_KEYS

TRON_USDT_FEE_LIMIT = 100_000_000  # sun; the devnet charges far less, this only caps it
TRON_MINE_LIMIT = 400  # blocks; the solidified head trails by 19 by default
TRON_PER_TICK = 4


async def pay_ethereum(state: DevnetState, to: str) -> list[Expected]:
    url, token, sender = str(state.eth_url), str(state.eth_token), evm.DEFAULT_SENDER
    eth = Expected("1.5 ETH", ETH, "ETH", 15 * 10**17, 18, "credited")
    nexo = Expected("250 NEXO", ETH, "NEXO", 250 * 10**18, 18, "credited")
    dust = Expected("dust ETH", ETH, "ETH", 10**14, 18, "rejected", reason="dust")
    eth.txid = await evm.send_eth(url, sender, to, eth.amount)
    nexo.txid = await evm.token_transfer(url, token, sender, to, nexo.amount)
    dust.txid = await evm.send_eth(url, sender, to, dust.amount)
    return [eth, nexo, dust]  # anvil mines each transaction as it arrives


async def pay_bsc(state: DevnetState, to: str) -> Expected:
    bep20 = Expected("BEP-20 NEXO", BSC, "NEXO", 10 * 10**18, 18, "rejected",
                     reason="watch_only_network", alert="network_mismatch")  # fmt: skip
    url = str(state.bsc_url)
    bep20.txid = await evm.token_transfer(url, str(state.bsc_token), evm.DEFAULT_SENDER, to,
                                          bep20.amount)  # fmt: skip
    return bep20


async def pay_bitcoin(state: DevnetState, to: str) -> Expected:
    btc = Expected("0.5 BTC", BTC, "BTC", 50_000_000, 8, "credited")
    async with ltc_rpc(state) as rpc:
        btc.txid = await rpc.send_to_script(to, btc.amount)
        await rpc.mine(1)
    return btc


def ltc_rpc(state: DevnetState) -> LitecoinRpc:
    """litecoind's RPC with the devnet's wallet (the credentials from the URL)."""
    parts = urlsplit(str(state.ltc_rpc_url))
    plain = urlunsplit(parts._replace(netloc=f"{parts.hostname}:{parts.port}"))
    return LitecoinRpc(plain, parts.username or "", parts.password or "", state.ltc_wallet)


async def pay_tron(url: str, usdt_contract: str, to: str) -> list[Expected]:
    trx = Expected("25 TRX", TRON, "TRX", 25_000_000, 6, "credited")
    usdt = Expected("100 USDT", TRON, "USDT", 100_000_000, 6, "credited")
    key = PrivateKey(bytes.fromhex(GENESIS_KEYS[0]))  # genesis-funded; owns the USDT supply
    sender = key.public_key.to_base58check_address()
    async with AsyncTron(provider=AsyncHTTPProvider(url)) as tron:
        tx = (await tron.trx.transfer(sender, to, trx.amount).build()).sign(key)
        trx.txid = await _broadcast(tx)
        contract = await tron.get_contract(usdt_contract)
        call = await contract.functions.transfer(to, usdt.amount)
        built = await call.with_owner(sender).fee_limit(TRON_USDT_FEE_LIMIT).build()
        usdt.txid = await _broadcast(built.sign(key))
    async with aiohttp.ClientSession(url) as node:
        await _tron_mine(node, 1)
    return [trx, usdt]


async def _broadcast(tx: Any) -> str:
    reply = await tx.broadcast()
    if reply.get("result") is not True:
        raise DemoError(f"TRON broadcast refused: {reply}")
    return str(tx.txid)


class Miner:
    """Mines on every devnet chain, a tick at a time, while the demo waits for the gateway."""

    def __init__(self, state: DevnetState) -> None:
        self.state = state
        self._btc = ltc_rpc(state)
        self._tron = aiohttp.ClientSession(str(state.tron_url))
        self.tron_blocks = 0

    async def __aenter__(self) -> Miner:
        await self._btc.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._tron.close()
        await self._btc.__aexit__(None, None, None)

    async def tick(self) -> None:
        """One block on Ethereum, BSC and Bitcoin; TRON_PER_TICK on TRON, whose credits wait
        for the solidified head (19 blocks behind on the devnet), up to TRON_MINE_LIMIT."""
        await evm.mine(str(self.state.eth_url), 1)
        await evm.mine(str(self.state.bsc_url), 1)
        await self._btc.mine(1)
        if self.tron_blocks < TRON_MINE_LIMIT:
            await _tron_mine(self._tron, TRON_PER_TICK)
            self.tron_blocks += TRON_PER_TICK


async def _tron_mine(node: aiohttp.ClientSession, count: int) -> int:
    async with node.post("/devnet/mine", json={"count": count}) as resp:
        resp.raise_for_status()
    async with node.post("/wallet/getnowblock", json={}) as resp:
        return int((await resp.json())["block_header"]["raw_data"]["number"])
