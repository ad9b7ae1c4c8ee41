"""What the demo promises and how it judges what the gateway and the ledger report."""

from __future__ import annotations

import dataclasses
from typing import Any

USER = "alice"
ETH, BSC, BTC, TRON = "ethereum-devnet", "bsc-devnet", "bitcoin-devnet", "tron-devnet"


class DemoError(Exception):
    """Raised when a demo step cannot be carried out (the report says which one)."""


@dataclasses.dataclass
class Expected:
    """One outcome the demo promises: a deposit and what the gateway must make of it."""

    label: str
    network: str
    asset: str
    amount: int
    decimals: int
    status: str  # credited | rejected
    reason: str | None = None
    alert: str | None = None  # alert kind that must exist for this txid
    txid: str = ""


@dataclasses.dataclass
class Seen:
    """What the gateway API and the ledger say right now."""

    deposits: list[dict[str, Any]]
    balances: dict[tuple[str, str], int]
    alerts: list[dict[str, Any]]
    pushed: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # at the webhook


def format_units(amount: int, decimals: int) -> str:
    """Exact human form of integer base units: 1500000000000000000, 18 -> "1.5"."""
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**decimals)
    text = f"{whole}.{frac:0{decimals}d}".rstrip("0").rstrip(".") if decimals else str(whole)
    return sign + text


def txid_key(value: object) -> str:
    """Transaction ids compare without case or 0x (EVM ids carry it, Bitcoin and TRON not)."""
    return str(value or "").lower().removeprefix("0x")


def deposit_of(e: Expected, seen: Seen) -> dict[str, Any] | None:
    want = (e.network, e.asset, txid_key(e.txid))
    return next((d for d in seen.deposits
                 if (d["network"], d["asset"], txid_key(d["txid"])) == want), None)  # fmt: skip


def problems(expected: list[Expected], seen: Seen) -> list[str]:
    """Every way what was seen differs from what was expected; empty means success.

    The ledger must hold exactly the credited amounts: a balance too high (dust credited, a
    double credit) fails as surely as one too low.
    """
    found = []
    for e in expected:
        d = deposit_of(e, seen)
        if d is None:
            found.append(f"{e.label} on {e.network}: no deposit recorded for tx {e.txid}")
        elif d["status"] != e.status or d["reason"] != e.reason:
            found.append(f"{e.label} on {e.network}: {d['status']} ({d['reason'] or '-'}), "
                            f"expected {e.status} ({e.reason or '-'})")  # fmt: skip
        elif int(d["amount"]) != e.amount:
            found.append(f"{e.label} on {e.network}: recorded amount {d['amount']}")
        if e.alert and not any(
            a["kind"] == e.alert
            and a["network"] == e.network
            and txid_key(a["txid"]) == txid_key(e.txid)
            for a in seen.alerts
        ):
            found.append(f"{e.label} on {e.network}: no {e.alert} alert for tx {e.txid}")
        elif e.alert and not any(
            a["kind"] == e.alert
            and a["network"] == e.network
            and txid_key(a["txid"]) == txid_key(e.txid)
            for a in seen.pushed
        ):
            found.append(f"{e.label} on {e.network}: {e.alert} alert not pushed to the webhook")
    want: dict[tuple[str, str], int] = {}
    decimals = {(e.network, e.asset): e.decimals for e in expected}
    for e in expected:
        if e.status == "credited":
            want[(e.network, e.asset)] = want.get((e.network, e.asset), 0) + e.amount
    for key in sorted(set(want) | set(seen.balances)):
        have, need = seen.balances.get(key, 0), want.get(key, 0)
        if have != need:
            places = decimals.get(key, 0)  # an unexpected asset: shown in base units
            found.append(f"ledger balance {key[0]} {key[1]} is {format_units(have, places)}, "
                            f"expected {format_units(need, places)}")  # fmt: skip
    return found
