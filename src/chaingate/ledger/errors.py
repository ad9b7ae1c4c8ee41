"""Ledger-side errors that carry more than the shared hierarchy in ``chaingate.errors``.

They subclass the shared classes, so callers that catch ``LedgerRejectedError`` or
``LedgerError`` keep working; callers that need the HTTP status or the ledger's error code
catch the subclass.
"""

from __future__ import annotations

from chaingate.errors import LedgerError, LedgerRejectedError


class LedgerRequestRejectedError(LedgerRejectedError):
    """Raised when the ledger answered 4xx; ``status`` and ``error_code`` say why."""

    def __init__(self, message: str, *, status: int, error_code: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code


class SignatureError(LedgerError):
    """Raised when a request's signature headers do not prove it came from a holder of the
    shared secret, recently. ``code`` is the error code the ledger answers with."""

    code = "bad_signature"


class UnsignedRequestError(SignatureError):
    """Raised when the timestamp or the signature header is missing."""

    code = "unsigned"


class BadSignatureError(SignatureError):
    """Raised when the signature does not match the timestamp and body."""

    code = "bad_signature"


class StaleRequestError(SignatureError):
    """Raised when the timestamp is unreadable or too far from the ledger's clock (replay)."""

    code = "stale_request"
