"""Alerts as the rules raise them: what happened (kind), how loud (severity), and its facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class AlertKind(StrEnum):
    NETWORK_MISMATCH = "network_mismatch"  # a listed asset over a path we do not credit
    UNLISTED_TOKEN = "unlisted_token"  # a contract we do not list paid us (daily, per contract)
    REORG_REVERSAL = "reorg_reversal"  # a credited deposit left the chain: reversal sent
    CONTENT_CHANGED = "deposit_content_changed"  # a credited deposit re-mined saying otherwise
    REORG_TOO_DEEP = "reorg_too_deep"  # fork point below the stored window: watcher stopped
    LEDGER_REJECTED = "ledger_rejected"  # the ledger refused a message: parked
    LEDGER_AUTH_FAILED = "ledger_auth_failed"  # the ledger refuses our signatures
    UNEXPLAINED_BALANCE = "unexplained_balance"  # more on an address than its deposits explain
    BALANCE_SHORTFALL = "balance_shortfall"  # less on an address than its deposits explain
    ENDPOINT_WRONG_CHAIN = "endpoint_wrong_chain"  # an endpoint serves another chain: taken out
    # withdrawals
    BATCH_TAMPERED = "batch_tampered"  # a batch no longer matches its sealed record
    WITHDRAWAL_HOLD_REFUSED_LATE = "withdrawal_hold_refused_late"  # hold refused after signing
    SIGNER_REFUSED = "signer_refused"  # the signer's own checks refused a batch: nothing signed
    NONCE_GAP = "nonce_gap"  # recorded nonces of a hot address have a hole
    HOT_KEY_USED_ELSEWHERE = "hot_key_used_elsewhere"  # the chain counts more txs than we signed
    WITHDRAWAL_NONCE_CONTESTED = "withdrawal_nonce_contested"  # a foreign tx holds our nonce
    FEE_CAP_TOO_LOW = "fee_cap_too_low"  # the approved fee cap cannot pay the next block
    HOT_WALLET_INSUFFICIENT = "hot_wallet_insufficient"  # coins cannot pay an approved batch
    WITHDRAWAL_STUCK = "withdrawal_stuck"  # unmined past replace_after: replaced, or cannot be
    # a confirmed withdrawal's transaction left the chain (a reorg deeper than confirmations)
    WITHDRAWAL_REORGED_AFTER_CONFIRMATION = "withdrawal_reorged_after_confirmation"
    # the node says an approved batch's transfer would fail (e.g. the hot wallet lacks the
    # token or the coin): held, planned again each pass until it would succeed
    WITHDRAWAL_UNPLANNABLE = "withdrawal_unplannable"
    WITHDRAWAL_FAILED = "withdrawal_failed"  # failed on chain (OUT_OF_ENERGY, REVERT): fee burned
    HOT_WALLET_SHORT = "hot_wallet_short"  # TRON: the hot TRX cannot pay what a batch may cost


class AlertSeverity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class NewAlert:
    """An alert to store once per ``dedup_key`` (a repeat of the same event stays silent)."""

    kind: AlertKind
    severity: AlertSeverity
    message: str
    dedup_key: str
    network: str | None = None
    asset: str | None = None
    amount: int | None = None
    txid: str | None = None
    user_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
