"""HTTP client of the ledger contract (SPEC section 6).

Every request is signed over its method, target and the exact bytes sent (ledger/signing.py). Failures are classified by what the caller
should do next: ``LedgerUnavailableError`` (down, timeout, 5xx, 408/429: the same request may be
sent again with the same idempotency key) and ``LedgerRequestRejectedError`` (other 4xx: sending
it again will not help).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import structlog
from yarl import URL

from chaingate.errors import LedgerUnavailableError
from chaingate.http import ClientSessionOwner
from chaingate.ledger.errors import LedgerRequestRejectedError
from chaingate.ledger.signing import (
    encode_body,
    request_message,
    retryable_status,
    signature_headers,
)

log = structlog.get_logger(__name__)


class LedgerClient(ClientSessionOwner):
    """``async with LedgerClient(url, secret) as ledger: await ledger.post("/credits", {...})``."""

    def __init__(
        self,
        base_url: str,
        secret: bytes,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("the ledger secret must not be empty")
        super().__init__(timeout)
        self._base = base_url.rstrip("/")
        self._secret = secret
        self._clock = clock

    def __repr__(self) -> str:  # the secret must never reach a log line or a traceback
        return "LedgerClient(<base_url>, <secret>)"

    def _headers(self, method: str, url: URL, body: bytes) -> dict[str, str]:
        # The target is the path as the ledger receives it: with the base URL's own path
        # prefix and the query string, percent-encoded as sent.
        signed = request_message(method, url.raw_path_qs, body)
        return signature_headers(self._secret, str(int(self._clock())), signed)

    async def post(self, path: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``payload`` as signed compact JSON; the parsed 2xx answer."""
        body = encode_body(payload)
        url = URL(self._base + path)
        headers = self._headers("POST", url, body)
        headers["Content-Type"] = "application/json"
        return await self._send("POST", path, url, body, headers)

    async def get(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        """Signed GET (the signature covers the path and query string as sent)."""
        url = URL(self._base + path).with_query(dict(params))
        return await self._send("GET", path, url, None, self._headers("GET", url, b""))

    async def _send(
        self, method: str, path: str, url: URL, body: bytes | None, headers: dict[str, str]
    ) -> dict[str, Any]:
        try:
            async with self.session.request(method, url, data=body, headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("ledger_unreachable", path=path, error=type(exc).__name__)
            raise LedgerUnavailableError(f"ledger {path}: {type(exc).__name__}") from exc
        if retryable_status(status):
            raise LedgerUnavailableError(f"ledger {path}: HTTP {status}")
        if status >= 400:
            code, message = _error_of(raw, status)
            raise LedgerRequestRejectedError(
                f"ledger {path}: HTTP {status} {code}: {message}", status=status, error_code=code
            )
        return _parse_answer(raw, path)


def _error_of(raw: bytes, status: int) -> tuple[str, str]:
    try:
        error = json.loads(raw)["error"]
        return str(error["code"]), str(error.get("message", ""))[:500]
    except (ValueError, TypeError, KeyError):
        return f"http_{status}", raw[:200].decode("utf-8", "replace")


def _parse_answer(raw: bytes, path: str) -> dict[str, Any]:
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        # The request may have been applied; resending with the same key gets the real answer.
        raise LedgerUnavailableError(f"ledger {path}: 2xx answer is not a JSON object")
    return answer
