"""Sealed approvals and the quorum rule (SPEC section 7).

An approval is the record (batch id, content hash, principal, time). The API seals it with
HMAC-SHA256 under a key from the environment (``CHAINGATE_APPROVAL_SEAL_KEY``) that the database
never holds, so a row written or edited straight into the database carries no valid seal. The
batch itself is sealed the same way when it is made (act ``make``, principal = the maker), so
the maker recorded with a batch cannot be swapped either. The signer re-checks every seal and
the quorum with ``check_quorum`` before it signs.

Pure: no I/O, no store, API or provider imports (the signer imports this module).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from chaingate.errors import SealKeyMissingError, ValidationError

SEAL_VERSION = 1
MIN_SEAL_KEY_LENGTH = 32
SEAL_KEY_ENV = "CHAINGATE_APPROVAL_SEAL_KEY"


class Act(StrEnum):
    MAKE = "make"  # a maker made the batch with this content hash
    APPROVE = "approve"  # an approver approved this content hash


@dataclass(frozen=True, slots=True)
class Approval:
    """One approval as stored; ``seal`` is the hex HMAC over the other fields."""

    batch_id: int
    content_hash: str
    principal: str
    approved_at: datetime
    seal: str


@dataclass(frozen=True, slots=True)
class Quorum:
    """The outcome of ``check_quorum``: whether it is met, by whom, and what did not count."""

    met: bool
    needed: int
    principals: tuple[str, ...]  # distinct approvers whose valid approvals counted
    refused: tuple[tuple[str, str], ...]  # (principal, why it did not count)


def parse_seal_key(raw: str) -> bytes:
    """The seal key from its environment text; ValidationError when too short to be a key."""
    key = raw.strip()
    if len(key) < MIN_SEAL_KEY_LENGTH:
        raise ValidationError(
            f"{SEAL_KEY_ENV}: at least {MIN_SEAL_KEY_LENGTH} characters (a random secret)"
        )
    return key.encode("utf-8")


def canonical_time(at: datetime) -> str:
    """UTC, microseconds (PostgreSQL's timestamptz precision), so a time read back from the
    database seals to the same bytes it was sealed with."""
    if at.tzinfo is None:
        raise ValidationError("seal times must carry a time zone")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def seal_message(act: Act, batch_id: int, content_hash: str, principal: str, at: datetime) -> bytes:
    """The exact bytes that are sealed."""
    document = {
        "v": SEAL_VERSION,
        "act": Act(act).value,
        "batch_id": str(batch_id),
        "content_hash": content_hash,
        "principal": principal,
        "at": canonical_time(at),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def seal(
    key: bytes, act: Act, batch_id: int, content_hash: str, principal: str, at: datetime
) -> str:
    """Hex HMAC-SHA256 of the record under ``key``."""
    if not key:
        raise SealKeyMissingError(f"{SEAL_KEY_ENV} is not set: approvals cannot be sealed")
    message = seal_message(act, batch_id, content_hash, principal, at)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def verify_seal(
    key: bytes,
    act: Act,
    batch_id: int,
    content_hash: str,
    principal: str,
    at: datetime,
    sealed: str,
) -> bool:
    """True when ``sealed`` is the seal of exactly this record; compared in constant time."""
    try:
        expected = seal(key, act, batch_id, content_hash, principal, at)
    except ValidationError:
        return False
    return hmac.compare_digest(expected, sealed.strip().lower())


def seal_approval(
    key: bytes, batch_id: int, content_hash: str, principal: str, at: datetime
) -> Approval:
    sealed = seal(key, Act.APPROVE, batch_id, content_hash, principal, at)
    return Approval(batch_id, content_hash, principal, at, sealed)


def verify_approval(key: bytes, approval: Approval) -> bool:
    return verify_seal(
        key,
        Act.APPROVE,
        approval.batch_id,
        approval.content_hash,
        approval.principal,
        approval.approved_at,
        approval.seal,
    )


def check_quorum(
    approvals: Iterable[Approval],
    *,
    key: bytes,
    batch_id: int,
    content_hash: str,
    maker: str,
    quorum: int,
) -> Quorum:
    """Count DISTINCT principals whose approval of THIS batch and THIS content hash carries a
    valid seal, never the maker; met when at least ``quorum`` (>= 1) counted."""
    if quorum < 1:
        raise ValidationError("the approval quorum must be at least 1")
    if not key:
        raise SealKeyMissingError(f"{SEAL_KEY_ENV} is not set: approvals cannot be checked")
    counted: list[str] = []
    refused: list[tuple[str, str]] = []
    for approval in approvals:
        reason = _why_not(approval, key, batch_id, content_hash, maker)
        if reason is None and approval.principal in counted:
            reason = "a second approval by the same principal"
        if reason is None:
            counted.append(approval.principal)
        else:
            refused.append((approval.principal, reason))
    return Quorum(
        met=len(counted) >= quorum,
        needed=quorum,
        principals=tuple(counted),
        refused=tuple(refused),
    )


def _why_not(
    approval: Approval, key: bytes, batch_id: int, content_hash: str, maker: str
) -> str | None:
    if approval.batch_id != batch_id:
        return f"approves batch {approval.batch_id}, not {batch_id}"
    if not hmac.compare_digest(approval.content_hash, content_hash):
        return "approves another content hash"
    if not verify_approval(key, approval):
        return "seal does not verify"
    if approval.principal == maker:
        return "the maker cannot approve"
    return None
