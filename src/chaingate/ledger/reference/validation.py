"""Edge validation of the reference ledger's request bodies.

Each parser turns a decoded JSON object into a frozen dataclass or raises ``FieldError`` naming
the offending field, which the app answers with 422. Amounts arrive as decimal strings of base
units (JSON numbers lose precision above 2^53) and leave as ``int``.
"""

from __future__ import annotations

from typing import Any

from chaingate.domain.withdrawals import WithdrawalStatus
from chaingate.errors import ValidationError
from chaingate.ledger.messages import Credit, Reversal, WithdrawalEvent

MAX_KEY_LENGTH = 200
MAX_TEXT_LENGTH = 200
MAX_AMOUNT = 2**256 - 1
WITHDRAWAL_STATUSES = frozenset(s.value for s in WithdrawalStatus)


class FieldError(ValidationError):
    """Raised when one field of a request body is missing or invalid."""

    code = "invalid_field"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _text(body: dict[str, Any], field: str, *, limit: int = MAX_TEXT_LENGTH) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise FieldError(field, "required, a non-empty string")
    if len(value) > limit:
        raise FieldError(field, f"longer than {limit} characters")
    return value


def _optional_text(body: dict[str, Any], field: str) -> str | None:
    if body.get(field) is None:
        return None
    return _text(body, field)


def _int(body: dict[str, Any], field: str, *, low: int, high: int) -> int:
    value = body.get(field)
    # bool is an int subclass; "true" is never a block number.
    if not isinstance(value, int) or isinstance(value, bool):
        raise FieldError(field, "required, an integer")
    if not low <= value <= high:
        raise FieldError(field, f"must be between {low} and {high}")
    return value


def _amount(body: dict[str, Any], field: str, *, allow_zero: bool = False) -> int:
    value = body.get(field)
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        raise FieldError(field, "required, a string of decimal digits (base units)")
    if len(value) > 1 and value.startswith("0"):
        raise FieldError(field, "must not have leading zeros")
    amount = int(value)
    if amount > MAX_AMOUNT or (amount == 0 and not allow_zero):
        raise FieldError(field, "must be a positive integer below 2^256")
    return amount


def _position(body: dict[str, Any]) -> str:
    # Positions are log indexes, output indexes or trace paths: accept an integer or a string.
    value = body.get("position")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return _text(body, "position")


def parse_credit(body: dict[str, Any]) -> Credit:
    return Credit(
        idempotency_key=_text(body, "idempotency_key", limit=MAX_KEY_LENGTH),
        user_id=_text(body, "user_id"),
        network=_text(body, "network"),
        asset=_text(body, "asset"),
        amount=_amount(body, "amount"),
        decimals=_int(body, "decimals", low=0, high=77),
        txid=_text(body, "txid"),
        position=_position(body),
        block_number=_int(body, "block_number", low=0, high=2**63 - 1),
    )


def parse_reversal(body: dict[str, Any]) -> Reversal:
    return Reversal(
        idempotency_key=_text(body, "idempotency_key", limit=MAX_KEY_LENGTH),
        credit_key=_text(body, "credit_key", limit=MAX_KEY_LENGTH),
        reason=_text(body, "reason", limit=1000),
    )


def parse_withdrawal_event(body: dict[str, Any]) -> WithdrawalEvent:
    status = _text(body, "status")
    if status not in WITHDRAWAL_STATUSES:
        raise FieldError("status", f"must be one of {', '.join(sorted(WITHDRAWAL_STATUSES))}")
    return WithdrawalEvent(
        idempotency_key=_text(body, "idempotency_key", limit=MAX_KEY_LENGTH),
        withdrawal_id=_text(body, "withdrawal_id"),
        status=status,
        user_id=_text(body, "user_id"),
        network=_text(body, "network"),
        asset=_text(body, "asset"),
        amount=_amount(body, "amount"),
        request_id=_optional_text(body, "request_id"),
        batch_id=_optional_text(body, "batch_id"),
        txid=_optional_text(body, "txid"),
        fee=_optional_amount(body, "fee"),
        amount_returned=_optional_amount(body, "amount_returned"),
        reason=None if body.get("reason") is None else _text(body, "reason", limit=2000),
    )


def _optional_amount(body: dict[str, Any], field: str) -> int | None:
    return None if body.get(field) is None else _amount(body, field, allow_zero=True)
