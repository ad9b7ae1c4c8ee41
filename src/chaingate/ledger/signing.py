"""HMAC request signing shared by the ledger client and the reference ledger.

A ledger request is signed over ``timestamp + "." + method + "." + target + "." + body``
(``request_message``): the timestamp (unix seconds, decimal) bounds how long a captured request
can be replayed, the method and target (path with its query string, exactly as sent) bind it to
one route, so a credit's signature cannot be replayed as a reversal or a withdrawal event, and
the body binds it to the exact bytes sent (empty for a GET).

The alert webhook (alerting/webhook.py) keeps the older ``timestamp + "." + body`` form: it has
one route, and receivers already verify that form.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from chaingate.ledger.errors import BadSignatureError, StaleRequestError, UnsignedRequestError


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """The compact JSON form of a request body: what is signed is exactly what is sent."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def retryable_status(status: int) -> bool:
    """A receiver answering this is down, busy or timed out, not refusing the request itself."""
    return status >= 500 or status in (408, 425, 429)


TIMESTAMP_HEADER = "X-Chaingate-Timestamp"
SIGNATURE_HEADER = "X-Chaingate-Signature"
DEFAULT_MAX_SKEW = 300


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``timestamp + "." + body`` under ``secret``."""
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def request_message(method: str, target: str, body: bytes) -> bytes:
    """What a ledger request's signature covers after the timestamp: method, target, body."""
    return method.upper().encode("ascii") + b"." + target.encode("utf-8") + b"." + body


def signature_headers(secret: bytes, timestamp: str, signed: bytes) -> dict[str, str]:
    """The two headers that sign a request whose signed part is ``signed``."""
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, signed)}


def verify(
    secret: bytes,
    timestamp: str | None,
    body: bytes,
    signature: str | None,
    *,
    now: float,
    max_skew: int = DEFAULT_MAX_SKEW,
) -> None:
    """Raise a ``SignatureError`` subclass unless ``signature`` signs ``body`` at ``timestamp``
    and ``timestamp`` lies within ``max_skew`` seconds of ``now``."""
    if not timestamp or not signature:
        raise UnsignedRequestError("request is not signed: timestamp and signature required")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise StaleRequestError("timestamp must be unix seconds")
    # Check the signature before the clock, so an attacker learns nothing about our clock
    # from a forged request; compare_digest keeps the comparison constant-time.
    # compare_digest refuses non-ASCII str, so a garbage header is simply a bad signature.
    expected = sign(secret, timestamp, body)
    offered = signature.strip().lower()
    if not offered.isascii() or not hmac.compare_digest(expected, offered):
        raise BadSignatureError("signature does not match")
    if abs(now - int(timestamp)) > max_skew:
        raise StaleRequestError(f"timestamp is more than {max_skew}s away from the ledger clock")
