"""The withdrawal act: alice takes part of her deposits out again, through the whole desk.

Per batch: the ledger (the demo's service token) requests its withdrawals, a maker makes the
batch, two other approvers approve its content hash, the signer (its own process, the devnet
hot keys of Ethereum, Bitcoin and TRON) signs, the broadcaster role sends and tracks it until it
is confirmed (TRON: solidified); the reference ledger holds the funds at `requested` and settles
them at `confirmed`. The table ticks through the batches' states while the demo mines;
``onchain.py`` then checks on each chain what the recipients got.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from chaingate.chains.bitcoin.bech32 import encode_segwit
from chaingate.chains.tron.addresses import to_base58
from chaingate.demo.outcomes import BTC, ETH, TRON, USER, DemoError, format_units
from chaingate.demo.payments import ltc_rpc
from chaingate.demo.story import Section
from chaingate.devnet import evm_contracts as evm
from chaingate.devnet.chains import BITCOIN_HOT_KEY, TRON_HOT_KEY
from chaingate.devnet.manager import DevnetState
from chaingate.devnet.tron_node import GENESIS_KEYS
from chaingate.domain import Network
from chaingate.signer.keystore import tron_address
from chaingate.withdrawals.coins import wallet_address

# anvil's account 9 of the well-known test mnemonic: a devnet hot wallet funded at genesis.
HOT_KEY = "2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6"
HOT_ADDRESS = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"
DESTINATION = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # anvil account 1: a user's wallet
# TRON genesis key 1: an account that exists (the demo's other TRON payee is a new one)
TRON_KNOWN = tron_address(bytes.fromhex(GENESIS_KEYS[1]))
BTC_HOT_COINS = (20_000_000, 20_000_000)  # sats paid to hot wallet addresses 0 and 1
FINAL = {"confirmed", "failed", "cancelled"}
# The signer's own limits (base units): per transaction and per day, per network and asset.
LIMITS = {
    (ETH, "ETH"): (10 * 10**18, 100 * 10**18),
    (ETH, "NEXO"): (1_000 * 10**18, 100_000 * 10**18),
    (BTC, "BTC"): (10**8, 10 * 10**8),
    (TRON, "TRX"): (1_000 * 10**6, 10_000 * 10**6),
    (TRON, "USDT"): (1_000 * 10**6, 10_000 * 10**6),
}
SIGNER_LIMITS = "".join(
    f'[{network}.{asset}]\nper_transaction = "{per_tx}"\nper_day = "{per_day}"\n'
    for (network, asset), (per_tx, per_day) in LIMITS.items()
)


@dataclass(frozen=True)
class Payout:
    """One batch the demo asks for: its outputs as (destination, base units)."""

    network: str
    asset: str
    decimals: int
    outputs: tuple[tuple[str, int], ...]

    @property
    def total(self) -> int:
        return sum(amount for _, amount in self.outputs)


def payouts(with_nexo: bool) -> list[Payout]:
    """The demo's batches, of alice's 1.5 ETH, 250 NEXO, 0.5 BTC, 25 TRX and 100 USDT; the
    Bitcoin recipients and one TRON recipient are new each run (nothing paid them before)."""
    found = [Payout(ETH, "ETH", 18, ((DESTINATION, 4 * 10**17),))]
    if with_nexo:
        found.append(Payout(ETH, "NEXO", 18, ((DESTINATION, 100 * 10**18),)))
    fresh = [encode_segwit("bcrt", 0, secrets.token_bytes(20)) for _ in range(2)]
    found.append(Payout(BTC, "BTC", 8, ((fresh[0], 10_000_000), (fresh[1], 5_000_000))))
    new = to_base58(b"\x41" + secrets.token_bytes(20))  # an account that does not exist
    found.append(Payout(TRON, "TRX", 6, ((new, 5_000_000), (TRON_KNOWN, 2_000_000))))
    found.append(Payout(TRON, "USDT", 6, ((TRON_KNOWN, 40_000_000),)))
    return found


@dataclass(frozen=True)
class Desk:
    """Who does what: the ledger's service token, the maker, two distinct approvers."""

    service: str
    maker: str
    approvers: tuple[str, str]


@contextlib.asynccontextmanager
async def signer_process(
    env: Mapping[str, str], folder: Path, log: Path | None
) -> AsyncIterator[int]:
    """`chaingate signer` in its own process with the devnet hot keys; yields its pid."""
    limits = folder / "signer-limits.toml"
    limits.write_text(SIGNER_LIMITS)
    keys = ",".join((HOT_KEY, BITCOIN_HOT_KEY, TRON_HOT_KEY))
    child_env = {**os.environ, **env, "CHAINGATE_SIGNER_DEVNET_KEYS": keys,
                 "CHAINGATE_SIGNER_LIMITS": str(limits), "CHAINGATE_LOG_FORMAT": "json"}  # fmt: skip
    out = log.open("ab") if log is not None else None
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chaingate.cli", "signer", env=child_env,
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
        )  # fmt: skip
        try:
            yield proc.pid
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
    finally:
        if out is not None:
            out.close()


async def fund_hot_wallets(state: DevnetState, nexo: str | None, bitcoin: Network) -> None:
    """Ethereum's hot wallet holds ETH from genesis and gets NEXO (when ``nexo``) from the
    token's deployer; Bitcoin's gets coins on its first receive addresses from the node's
    wallet, mined at once. TRON's (genesis key 0) holds TRX and USDT from genesis."""
    if nexo is not None:
        await evm.token_transfer(str(state.eth_url), nexo, evm.DEFAULT_SENDER, HOT_ADDRESS,
                                 10_000 * 10**18)  # fmt: skip
    if bitcoin.hot_xpub is None:
        raise DemoError(f"{bitcoin.name} has no hot_xpub")
    async with ltc_rpc(state) as rpc:
        for index, sats in enumerate(BTC_HOT_COINS):
            script = bytes.fromhex(wallet_address(bitcoin.hot_xpub, 0, index).script)
            await rpc.send_to_script(script, sats)
        await rpc.mine(1)


async def api(http: aiohttp.ClientSession, token: str, method: str, path: str,
               body: Any = None) -> Any:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    async with http.request(method, path, json=body, headers=headers) as resp:
        answer = await resp.json()
        if resp.status >= 400:
            raise DemoError(f"{method} {path}: HTTP {resp.status} {answer}")
        return answer


async def request_and_approve(
    http: aiohttp.ClientSession, desk: Desk, wanted: list[Payout]
) -> list[int]:
    """Each payout's withdrawals requested, batched and approved; the batch ids."""
    batches = []
    for payout in wanted:
        ids = set()
        for destination, amount in payout.outputs:
            made = await api(http, desk.service, "POST", "/v1/withdrawals", {
                "request_id": uuid.uuid4().hex, "user_id": USER, "network": payout.network,
                "asset": payout.asset, "to_address": destination, "amount": str(amount)})  # fmt: skip
            ids.add(made["id"])
        batch = await api(http, desk.maker, "POST", "/v1/batches",
                           {"network": payout.network, "asset": payout.asset})  # fmt: skip
        if {o["withdrawal_id"] for o in batch["outputs"]} != ids:
            raise DemoError(f"batch {batch['id']} does not hold exactly the demo's withdrawals")
        for approver in desk.approvers:
            await api(http, approver, "POST", f"/v1/batches/{batch['id']}/approvals",
                       {"content_hash": batch["content_hash"]})  # fmt: skip
        batches.append(int(batch["id"]))
    return batches


async def batch_views(
    http: aiohttp.ClientSession, desk: Desk, ids: list[int]
) -> list[dict[str, Any]]:
    return [await api(http, desk.service, "GET", f"/v1/batches/{i}") for i in ids]


def done(views: list[dict[str, Any]]) -> bool:
    return all(o["status"] in FINAL for v in views for o in v["outputs"])


def problems(views: list[dict[str, Any]]) -> list[str]:
    return [f"withdrawal {o['withdrawal_id']} ({v['asset']}) ended {o['status']}"
            for v in views for o in v["outputs"] if o["status"] != "confirmed"]  # fmt: skip


def short(text: str, keep: int = 8) -> str:
    """A long address or txid as its first ``keep`` and last 4 characters."""
    return text if len(text) <= keep + 5 else f"{text[:keep]}…{text[-4:]}"


def section(views: list[dict[str, Any]]) -> Section:
    rows = []
    for v in views:
        for o in v["outputs"]:
            approvals = f"{v['quorum']['approvals']} / {v['quorum']['needed']}"
            rows.append((f"#{v['id']}", v["asset"], short(o["to_address"]),
                         format_units(int(o["amount"]), v["decimals"]), approvals,
                         str(v["status"]), str(o["status"]), short(str(o["txid"] or "-"), 12)))  # fmt: skip
    return Section(
        f"Withdrawal batches of {USER} (GET /v1/batches)",
        ("batch", "asset", "to", "amount", "approvals", "batch status", "withdrawal", "txid"),
        tuple(rows),
        right=frozenset({"amount", "approvals"}),
        key_columns=3,
        widths=(5, 5, 13, 8, 9, 16, 10, 17),
    )
