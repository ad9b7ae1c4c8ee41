"""What the deposit act shows: its payments while they confirm, the alert, the summary.

Plain functions from what the demo expects and what the API and the ledger said (``Seen``) to
``Section``s; drawing is the story's business. A further act (withdrawal batches moving from
approval to confirmation) adds its own builders beside these.
"""

from __future__ import annotations

from collections.abc import Callable

from chaingate.demo.outcomes import USER, Expected, Seen, deposit_of, format_units
from chaingate.demo.story import Section

Decimals = Callable[[str, str], int | None]  # (network, asset) -> decimals, None if unlisted
Finality = Callable[[str], bool]  # network -> credits wait for a solidified block


def human(decimals: Decimals, network: str | None, asset: str | None, amount: object) -> str:
    if amount is None:
        return "-"
    places = decimals(network or "", asset or "")
    return str(amount) if places is None else format_units(int(str(amount)), places)


def _status(d: dict[str, object] | None, solidity: bool) -> str:
    if d is None:
        return "sent"
    status = str(d["status"])
    if d.get("reason"):
        return f"{status} ({d['reason']})"
    done, need = int(str(d.get("confirmations") or 0)), int(str(d["required_confirmations"]))
    if status == "confirming" and solidity and done >= need:
        return "confirming (until solidified)"
    return status


def payments(
    expected: list[Expected], seen: Seen, decimals: Decimals, finality: Finality
) -> Section:
    """Every payment of the demo with its confirmations "n / required" and the ledger balance."""
    rows = []
    for e in expected:
        d = deposit_of(e, seen)
        confirmations = (
            "-" if d is None else f"{d['confirmations'] or 0} / {d['required_confirmations']}"
        )
        balance = seen.balances.get((e.network, e.asset))
        ledger = "-" if balance is None else format_units(balance, e.decimals)
        rows.append((e.network, e.asset, format_units(e.amount, e.decimals), confirmations,
                     _status(d, finality(e.network)), ledger))  # fmt: skip
    return Section(
        f"Payments to {USER} (GET /v1/deposits, ledger GET /balances)",
        ("network", "asset", "amount", "confirmations", "status", "ledger balance"),
        tuple(rows),
        right=frozenset({"amount", "confirmations", "ledger balance"}),
        key_columns=3,
        widths=(16, 5, 10, 13, len("rejected (watch_only_network)"), 14),
    )


def alerts(seen: Seen, decimals: Decimals) -> Section:
    pushed = {a["id"] for a in seen.pushed}
    rows = tuple(
        (f"#{a['id']}", a["severity"], a["kind"], a["network"] or "-", a["asset"] or "-",
         human(decimals, a["network"], a["asset"], a["amount"]), a["user_id"] or "-",
         "yes" if a["id"] in pushed else "no")
        for a in seen.alerts
    )  # fmt: skip
    messages = "; ".join(str(a["message"]) for a in seen.alerts)
    return Section(
        "Alerts (GET /v1/alerts; pushed = received by the demo's webhook, signature checked)",
        ("id", "severity", "kind", "network", "asset", "amount", "user", "pushed"),
        rows or (("-",) * 8,),
        right=frozenset({"amount"}),
        key_columns=1,
        note=messages,
    )


def deposits(seen: Seen, decimals: Decimals) -> Section:
    rows = tuple(
        (d["network"], d["asset"] or "?", human(decimals, d["network"], d["asset"], d["amount"]),
         str(d["status"]), d["reason"] or "-", str(d["txid"]))
        for d in sorted(seen.deposits, key=lambda d: (d["network"], d["id"]))
    )  # fmt: skip
    return Section(
        f"Deposits of {USER} (GET /v1/deposits)",
        ("network", "asset", "amount", "status", "reason", "txid"),
        rows,
        right=frozenset({"amount"}),
    )


def balances(seen: Seen, decimals: Decimals, when: str = "") -> Section:
    """The ledger's word, in human units beside the base units it holds."""
    rows = tuple(
        (network, asset, human(decimals, network, asset, units), str(units))
        for (network, asset), units in sorted(seen.balances.items())
    )
    return Section(
        f"Ledger balances of {USER}{when} (reference ledger, GET /balances)",
        ("network", "asset", "balance", "base units"),
        rows or (("-", "-", "-", "-"),),
        right=frozenset({"balance", "base units"}),
    )
