"""What the console suggests: the recovery action for each alert kind (from the runbook), the
runbook section itself, and where a transaction can be looked at."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TypedDict
from urllib.parse import urlencode

from chaingate.domain import Network, NetworkKind
from chaingate.settings import PROJECT_ROOT

RUNBOOK = PROJECT_ROOT / "docs" / "runbook.md"


class Recovery(TypedDict):
    action: str
    runbook: str  # the alert kind's section in docs/runbook.md (section 4)


# One line each: the first thing to do. The runbook section says the rest.
_ACTIONS = {
    "network_mismatch": "Check the transfer on that network's explorer; a look-alike token is "
    "worthless, genuine funds are recovered with the key holders. Then acknowledge.",
    "unexplained_balance": "Find the inflow (internal tx, validator withdrawal); agree any "
    "manual credit with the ledger team, quoting the txid.",
    "balance_shortfall": "Treat as a possible key compromise: look for outgoing transactions "
    "and escalate to security before anything else.",
    "reorg_reversal": "Check the reversal was delivered (Outbox page) and tell the ledger team "
    "the user's balance may be negative.",
    "reorg_too_deep": "The watcher stopped: verify hashes against an independent node, fix the "
    "endpoint or roll back by hand.",
    "ledger_rejected": "A parked outbox row: read the ledger's answer on the Outbox page; resend "
    "only once its cause is fixed.",
    "ledger_auth_failed": "The ledger refuses our signature: fix CHAINGATE_LEDGER_SECRET or the "
    "clocks; delivery resumes by itself.",
}


def for_alert(kind: str) -> Recovery:
    return {
        "action": _ACTIONS.get(kind, "See the runbook, section 4."),
        "runbook": f"/ops/runbook/{kind}" if kind in _ACTIONS else "",
    }


def runbook_section(kind: str) -> str | None:
    """The text of the runbook's section for ``kind`` (None when the runbook lacks one)."""
    return _sections().get(kind) if kind in _ACTIONS else None


@lru_cache(maxsize=1)
def _sections() -> dict[str, str]:
    try:
        text = RUNBOOK.read_text(encoding="utf-8")
    except OSError:
        return {}
    found: dict[str, str] = {}
    parts = re.split(r"^(#{2,3} .*)$", text, flags=re.MULTILINE)
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        match = re.match(r"### `([a-z_]+)`", heading)
        if match:
            found[match.group(1)] = f"{heading}\n{body.strip()}"
    return found


# Public explorers of the mainnets; devnets and unknown chains link to the console's own view.
_EVM_EXPLORERS = {1: "https://etherscan.io/tx/{}", 56: "https://bscscan.com/tx/{}"}


def tx_url(network: Network | None, txid: str) -> str:
    if network is not None and not network.testnet:
        explorer = _EVM_EXPLORERS.get(network.chain_id or 0)
        if network.kind is NetworkKind.EVM and explorer:
            return explorer.format(txid)
        if network.kind is NetworkKind.BITCOIN and network.hrp == "bc":
            return f"https://mempool.space/tx/{txid}"
        if network.kind is NetworkKind.TRON:
            return f"https://tronscan.org/#/transaction/{txid}"
    # The txid comes from a chain (or a hostile endpoint): quoted, it stays one query value.
    return f"/ops/deposits?{urlencode({'txid': txid})}"
