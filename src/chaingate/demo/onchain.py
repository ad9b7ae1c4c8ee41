"""What the chains say about the demo's Bitcoin and TRON withdrawals, asked of the nodes, not of
the gateway: each recipient got exactly its amount, the transaction is the one the gateway
names, and the fee the gateway reported (GET /v1/withdrawals/{id}) is what it really paid
(Bitcoin: inputs less outputs; TRON: the receipt's fee, beside its energy and bandwidth)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp

from chaingate.chains.tron.addresses import from_base58
from chaingate.demo.outcomes import BTC, TRON, DemoError, format_units
from chaingate.demo.story import Section
from chaingate.demo.withdrawals import Payout, short
from chaingate.devnet.bitcoin import LitecoinRpc, coins_to_sats, to_script

Balances = dict[tuple[str, str], int]  # (asset, address) -> base units on chain


@dataclass(frozen=True)
class Paid:
    """One withdrawal as the chain shows it, beside what the gateway reported."""

    network: str
    asset: str
    decimals: int
    to: str
    amount: int
    received: int
    txid: str
    fee: int | None  # the gateway's (API)
    chain_fee: int  # the chain's
    energy: int | None = None  # TRON receipt: energy used, ...
    bandwidth: int | None = None  # ... bandwidth bytes from the free or staked allowance, ...
    bandwidth_fee: int | None = None  # ... and TRX burned for bandwidth beyond it (sun)
    new_account: bool = False  # TRON: the recipient did not exist before

    def in_coin(self, fee: int | None) -> str:
        """A fee in the chain's own coin (BTC, TRX)."""
        if fee is None:
            return "-"
        return f"{format_units(fee, 8 if self.network == BTC else 6)} {self.coin}"

    @property
    def coin(self) -> str:
        return "BTC" if self.network == BTC else "TRX"

    def problems(self) -> list[str]:
        found = []
        what = f"{self.network} {self.asset} withdrawal to {self.to}"
        if self.received != self.amount:
            found.append(f"{what}: the chain shows {self.received} received, not {self.amount}")
        if self.fee != self.chain_fee:
            found.append(f"{what}: the gateway reported fee {self.fee}, the chain {self.chain_fee}")
        return found


class Tron:
    """The TRON devnet's wallet API, as any TRON client asks it."""

    def __init__(self, http: aiohttp.ClientSession, usdt: str) -> None:
        self.http, self.usdt = http, usdt

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        async with self.http.post(path, json=body) as resp:
            if resp.status != 200:
                raise DemoError(f"TRON node {path}: HTTP {resp.status}")
            return await resp.json(content_type=None)

    async def exists(self, address: str) -> bool:
        return bool(await self.post("/wallet/getaccount", {"address": address, "visible": True}))

    async def balance(self, asset: str, address: str) -> int:
        if asset == "TRX":
            account = await self.post("/wallet/getaccount", {"address": address, "visible": True})
            return int(account.get("balance", 0))
        reply = await self.post("/wallet/triggerconstantcontract", {
            "owner_address": address, "contract_address": self.usdt,
            "function_selector": "balanceOf(address)",
            "parameter": from_base58(address)[1:].hex().rjust(64, "0"), "visible": True})  # fmt: skip
        return int(reply["constant_result"][0] or "0", 16)

    async def snapshot(self, wanted: list[Payout]) -> tuple[Balances, set[str]]:
        """Each TRON recipient's balance now, and which of them have no account yet."""
        balances, missing = {}, set()
        for payout in wanted:
            for to, _ in payout.outputs:
                balances[(payout.asset, to)] = await self.balance(payout.asset, to)
                if not await self.exists(to):
                    missing.add(to)
        return balances, missing


async def check_tron(
    node: Tron, payout: Payout, before: tuple[Balances, set[str]], views: dict[str, Any]
) -> list[Paid]:
    """``views``: the gateway's withdrawals of this payout by destination."""
    found = []
    for to, amount in payout.outputs:
        view = views[to]
        info = await node.post("/wallet/gettransactioninfobyid", {"value": view["txid"]})
        if not info:
            raise DemoError(f"TRON node does not know transaction {view['txid']}")
        receipt = info.get("receipt", {})
        received = await node.balance(payout.asset, to) - before[0][(payout.asset, to)]
        found.append(Paid(TRON, payout.asset, payout.decimals, to, amount, received,
                          str(view["txid"]), _int(view["fee"]), int(info.get("fee", 0)),
                          int(receipt.get("energy_usage_total", 0)),
                          int(receipt.get("net_usage", 0)), int(receipt.get("net_fee", 0)),
                          to in before[1]))  # fmt: skip
    return found


async def check_bitcoin(rpc: LitecoinRpc, payout: Payout, views: dict[str, Any]) -> list[Paid]:
    """The recipients' outputs (scantxoutset: every unspent output paying their scripts) and the
    batch transaction's fee, inputs (their previous outputs, txindex) less outputs."""
    txids = {str(v["txid"]) for v in views.values()}
    if len(txids) != 1:
        raise DemoError(f"the Bitcoin batch went out in {len(txids)} transactions, not one")
    (txid,) = txids
    tx = await rpc.call("getrawtransaction", txid, True, wallet=False)
    spent = 0
    for vin in tx["vin"]:
        prev = await rpc.call("getrawtransaction", vin["txid"], True, wallet=False)
        spent += coins_to_sats(Decimal(prev["vout"][vin["vout"]]["value"]))
    chain_fee = spent - sum(coins_to_sats(Decimal(o["value"])) for o in tx["vout"])
    found = []
    for to, amount in payout.outputs:
        script = to_script(to).hex()
        unspent = await rpc.call("scantxoutset", "start", [f"raw({script})"], wallet=False)
        received = sum(coins_to_sats(Decimal(u["amount"])) for u in unspent["unspents"])
        found.append(Paid(BTC, payout.asset, payout.decimals, to, amount, received, txid,
                          _int(views[to]["fee"]), chain_fee))  # fmt: skip
    return found


def _int(value: object) -> int | None:
    return None if value is None else int(str(value))


def resources(p: Paid) -> tuple[str, str]:
    """TRON's energy and bandwidth as the receipt gives them ("-" for Bitcoin)."""
    if p.energy is None:
        return "-", "-"
    burned = f"{format_units(p.bandwidth_fee or 0, 6)} TRX burned"
    return str(p.energy), f"{p.bandwidth} bytes" if p.bandwidth else burned


def section(paid: list[Paid]) -> Section:
    rows = tuple(
        (p.asset, short(p.to) + (" (new)" if p.new_account else ""),
         format_units(p.amount, p.decimals), format_units(p.received, p.decimals),
         p.in_coin(p.fee), p.in_coin(p.chain_fee), *resources(p))
        for p in paid
    )  # fmt: skip
    return Section(
        "Bitcoin and TRON withdrawals on chain (litecoind, the TRON node; the gateway's fee: "
        "GET /v1/withdrawals)",
        (
            "asset",
            "to",
            "amount",
            "received",
            "fee (gateway)",
            "fee (chain)",
            "energy",
            "bandwidth",
        ),
        rows,
        right=frozenset(
            {"amount", "received", "fee (gateway)", "fee (chain)", "energy", "bandwidth"}
        ),
    )
