"""A small async JSON-RPC client for the devnet's litecoind, with the helpers tests need.

litecoind 0.21 stands in for bitcoind (SPEC section 11): same RPC, scripts and BIP143 signing,
but its addresses use the hrp ``rltc`` on regtest. The gateway shows bcrt/bc addresses and
matches deposits by scriptPubKey, so every helper here takes a script (or a witness program, or
an address of any hrp) and converts it to the node's own address form only to pay it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Self

import aiohttp
from bitcoinlib.encoding import (
    EncodingError,
    addr_bech32_to_pubkeyhash,
    pubkeyhash_to_addr_base58,
    pubkeyhash_to_addr_bech32,
)

from chaingate.errors import RpcError, TransportError

NODE_HRP = "rltc"
# Litecoin regtest base58 version bytes (chainparams.cpp, CRegTestParams).
_P2PKH_VERSION = b"\x6f"
_P2SH_VERSION = b"\x3a"
SATS_PER_COIN = 10**8
_RPC_TIMEOUT = aiohttp.ClientTimeout(total=60)

ScriptLike = bytes | str


def sats_to_coins(sats: int) -> str:
    """Exact decimal string of ``sats`` (the node accepts amounts as strings)."""
    if sats <= 0:
        raise ValueError("amount must be a positive number of base units")
    return str((Decimal(sats) / SATS_PER_COIN).quantize(Decimal("0.00000001")))


def coins_to_sats(coins: Decimal) -> int:
    sats = coins * SATS_PER_COIN
    if sats != sats.to_integral_value():
        raise ValueError(f"amount has more than 8 decimals: {coins}")
    return int(sats)


def witness_script(version: int, program: bytes) -> bytes:
    """scriptPubKey of a segwit output: OP_n <program>."""
    op = 0 if version == 0 else 0x50 + version
    return bytes([op, len(program)]) + program


def to_script(target: ScriptLike) -> bytes:
    """scriptPubKey from script bytes/hex, a bare 20/32-byte v0 program, or a bech32 address."""
    if isinstance(target, str):
        if _looks_like_bech32(target):
            version, program = _decode_segwit_address(target)
            return witness_script(version, program)
        target = bytes.fromhex(target)
    if len(target) in (20, 32):  # a bare v0 witness program (P2WPKH / P2WSH)
        return witness_script(0, target)
    return target


def script_to_node_address(script: bytes) -> str:
    """The address litecoind regtest uses for ``script`` (rltc1... / m... / Q...)."""
    if len(script) in (22, 34) and script[0] == 0 and script[1] == len(script) - 2:
        return str(pubkeyhash_to_addr_bech32(script[2:], prefix=NODE_HRP, witver=0))
    if len(script) == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac":
        return str(pubkeyhash_to_addr_base58(script[3:23], prefix=_P2PKH_VERSION))
    if len(script) == 23 and script[:2] == b"\xa9\x14" and script[22:] == b"\x87":
        return str(pubkeyhash_to_addr_base58(script[2:22], prefix=_P2SH_VERSION))
    raise ValueError(f"no litecoind regtest address form for script {script.hex()}")


def _looks_like_bech32(text: str) -> bool:
    return "1" in text and not all(c in "0123456789abcdefABCDEF" for c in text)


def _decode_segwit_address(address: str) -> tuple[int, bytes]:
    try:
        program = addr_bech32_to_pubkeyhash(address, include_witver=True)
    except (EncodingError, TypeError, ValueError) as exc:
        raise ValueError(f"not a segwit address: {address}") from exc
    # With include_witver the result is the full script: OP_n, push length, program.
    version = 0 if program[0] == 0 else program[0] - 0x50
    return version, bytes(program[2:])


class LitecoinRpc:
    """JSON-RPC over aiohttp; Decimal for every number so no amount ever becomes a float."""

    def __init__(self, url: str, user: str, password: str, wallet: str | None = None) -> None:
        self._url = url.rstrip("/")
        self._headers = {"Authorization": aiohttp.encode_basic_auth(user, password)}
        self.wallet = wallet
        self._session: aiohttp.ClientSession | None = None
        self._mining_address: str | None = None

    def __repr__(self) -> str:  # the URL and credentials stay out of reprs and logs
        return f"LitecoinRpc(wallet={self.wallet!r})"

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=_RPC_TIMEOUT)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, *params: Any, wallet: bool = True) -> Any:
        """Call ``method``; wallet calls go to /wallet/<name> when a wallet is set."""
        if self._session is None:
            raise RuntimeError("LitecoinRpc used outside 'async with'")
        url = f"{self._url}/wallet/{self.wallet}" if wallet and self.wallet else self._url
        body = {"jsonrpc": "1.0", "id": method, "method": method, "params": list(params)}
        try:
            async with self._session.post(url, json=body) as resp:
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(f"litecoind unreachable calling {method}") from exc
        try:
            reply = json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise TransportError(f"litecoind answered HTTP {resp.status} to {method}") from exc
        error = reply.get("error")
        if error:
            raise RpcError(f"{method}: {error.get('message')}", rpc_code=error.get("code"))
        return reply["result"]

    async def mining_address(self) -> str:
        if self._mining_address is None:
            self._mining_address = str(await self.call("getnewaddress", "", "bech32"))
        return self._mining_address

    async def mine(self, n: int = 1, address: str | None = None) -> list[str]:
        """Mine ``n`` blocks (to the wallet unless ``address``); returns their hashes."""
        target = address or await self.mining_address()
        return list(await self.call("generatetoaddress", n, target, wallet=False))

    async def send_to_script(
        self, script: ScriptLike, amount_sats: int, replaceable: bool = False
    ) -> str:
        """Pay ``amount_sats`` to a scriptPubKey (or program, or bcrt/bc/rltc address)."""
        address = script_to_node_address(to_script(script))
        # sendtoaddress(address, amount, comment, comment_to, subtractfee, replaceable)
        txid = await self.call(
            "sendtoaddress", address, sats_to_coins(amount_sats), "", "", False, replaceable
        )
        return str(txid)

    async def send_many(self, outputs: Mapping[ScriptLike, int], replaceable: bool = False) -> str:
        """One transaction paying every script its amount in base units."""
        amounts: dict[str, str] = {}
        for target, sats in outputs.items():
            address = script_to_node_address(to_script(target))
            if address in amounts:
                raise ValueError("send_many: the same script appears twice")
            amounts[address] = sats_to_coins(sats)
        # sendmany("", amounts, minconf, comment, subtractfeefrom, replaceable)
        return str(await self.call("sendmany", "", amounts, 1, "", [], replaceable))

    async def invalidate(self, block_hash: str) -> None:
        await self.call("invalidateblock", block_hash, wallet=False)

    async def reconsider(self, block_hash: str) -> None:
        await self.call("reconsiderblock", block_hash, wallet=False)

    async def bump_fee(self, txid: str) -> str:
        """Replace ``txid`` (BIP125) with the same payments at a higher fee."""
        result = await self.call("bumpfee", txid)
        return str(result["txid"])

    async def replace_dropping_payment(self, txid: str, extra_fee_sats: int = 20_000) -> str:
        """Double-spend ``txid``'s inputs back to the wallet: the payment it made vanishes.

        This is the RBF attack a deposit watcher must survive: the replacement pays more fee,
        so the node drops the original from its mempool.
        """
        raw = await self.call("getrawtransaction", txid, True, wallet=False)
        inputs = [{"txid": vin["txid"], "vout": vin["vout"]} for vin in raw["vin"]]
        spent = 0
        for vin in raw["vin"]:
            prev = await self.call("getrawtransaction", vin["txid"], True, wallet=False)
            spent += coins_to_sats(prev["vout"][vin["vout"]]["value"])
        paid = sum(coins_to_sats(vout["value"]) for vout in raw["vout"])
        new_fee = 2 * (spent - paid) + extra_fee_sats
        refund = await self.call("getnewaddress", "", "bech32")
        unsigned = await self.call(
            "createrawtransaction", inputs, {refund: sats_to_coins(spent - new_fee)}, 0, True
        )
        signed = await self.call("signrawtransactionwithwallet", unsigned)
        if not signed.get("complete"):
            raise RpcError("replacement could not be fully signed by the wallet")
        return str(await self.call("sendrawtransaction", signed["hex"], 0, wallet=False))
