"""The withdrawal act: alice takes part of her deposits out again, through the whole desk.

Per asset: the ledger (the demo's service token) requests a withdrawal, a maker makes a batch,
two other approvers approve its content hash, the signer (its own process, the devnet hot key)
signs, the broadcaster role sends and tracks it until it is confirmed; the reference ledger
holds the funds at `requested` and settles them at `confirmed`. The table ticks through the
batch's states while the demo mines.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from chaingate.demo.outcomes import ETH, USER, DemoError, format_units
from chaingate.demo.story import Section
from chaingate.devnet import evm_contracts as evm

# anvil's account 9 of the well-known test mnemonic: a devnet hot wallet funded at genesis.
HOT_KEY = "2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6"
HOT_ADDRESS = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"
DESTINATION = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # anvil account 1: a user's wallet
PAYOUTS = (("ETH", 4 * 10**17, 18), ("NEXO", 100 * 10**18, 18))  # of 1.5 ETH and 250 NEXO
FINAL = {"confirmed", "failed", "cancelled"}
SIGNER_LIMITS = """[ethereum-devnet.ETH]
per_transaction = "10000000000000000000"
per_day = "100000000000000000000"
[ethereum-devnet.NEXO]
per_transaction = "1000000000000000000000"
per_day = "100000000000000000000000"
"""


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
    """`chaingate signer` in its own process with the devnet hot key; yields its pid."""
    limits = folder / "signer-limits.toml"
    limits.write_text(SIGNER_LIMITS)
    child_env = {**os.environ, **env, "CHAINGATE_SIGNER_DEVNET_KEYS": HOT_KEY,
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


async def fund_hot_wallet(eth_url: str, token: str) -> None:
    """The hot wallet holds ETH from genesis; it gets NEXO from the token's deployer."""
    await evm.token_transfer(eth_url, token, evm.DEFAULT_SENDER, HOT_ADDRESS, 10_000 * 10**18)


async def _api(http: aiohttp.ClientSession, token: str, method: str, path: str,
               body: Any = None) -> Any:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    async with http.request(method, path, json=body, headers=headers) as resp:
        answer = await resp.json()
        if resp.status >= 400:
            raise DemoError(f"{method} {path}: HTTP {resp.status} {answer}")
        return answer


async def request_and_approve(
    http: aiohttp.ClientSession, desk: Desk, assets: list[str]
) -> list[int]:
    """One withdrawal per payout, each in its own approved batch; the batch ids."""
    batches = []
    for asset, amount, _ in PAYOUTS:
        if asset not in assets:
            continue
        await _api(http, desk.service, "POST", "/v1/withdrawals", {
            "request_id": uuid.uuid4().hex, "user_id": USER, "network": ETH, "asset": asset,
            "to_address": DESTINATION, "amount": str(amount)})  # fmt: skip
        batch = await _api(
            http, desk.maker, "POST", "/v1/batches", {"network": ETH, "asset": asset}
        )
        for approver in desk.approvers:
            await _api(http, approver, "POST", f"/v1/batches/{batch['id']}/approvals",
                       {"content_hash": batch["content_hash"]})  # fmt: skip
        batches.append(int(batch["id"]))
    return batches


async def batch_views(
    http: aiohttp.ClientSession, desk: Desk, ids: list[int]
) -> list[dict[str, Any]]:
    return [await _api(http, desk.service, "GET", f"/v1/batches/{i}") for i in ids]


def done(views: list[dict[str, Any]]) -> bool:
    return all(o["status"] in FINAL for v in views for o in v["outputs"])


def problems(views: list[dict[str, Any]]) -> list[str]:
    return [f"withdrawal {o['withdrawal_id']} ({v['asset']}) ended {o['status']}"
            for v in views for o in v["outputs"] if o["status"] != "confirmed"]  # fmt: skip


def section(views: list[dict[str, Any]]) -> Section:
    rows = []
    for v in views:
        for o in v["outputs"]:
            approvals = f"{v['quorum']['approvals']} / {v['quorum']['needed']}"
            txid = str(o["txid"] or "-")
            rows.append((f"#{v['id']}", v["asset"], format_units(int(o["amount"]), v["decimals"]),
                         approvals, str(v["status"]), str(o["status"]),
                         txid[:18] + "…" if len(txid) > 18 else txid))  # fmt: skip
    return Section(
        f"Withdrawal batches of {USER} to {DESTINATION} (GET /v1/batches)",
        ("batch", "asset", "amount", "approvals", "batch status", "withdrawal", "txid"),
        tuple(rows),
        right=frozenset({"amount", "approvals"}),
        key_columns=2,
        widths=(5, 5, 8, 9, 16, 10, 19),
    )
