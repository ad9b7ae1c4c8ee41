"""HTTP client of the alert webhook: POSTs one alert as compact JSON and classifies the answer.

The URL may carry the receiver's token (in its path or query), so it appears nowhere but in the
request itself: not in logs, not in error messages, not in ``repr``. With a secret, the body is
signed exactly like a ledger request (``ledger/signing.py``): ``X-Chaingate-Timestamp`` and
``X-Chaingate-Signature`` = hex HMAC-SHA256 of ``timestamp + "." + body``.

Failures: ``AlertSinkUnavailableError`` (down, timeout, 5xx, 408/425/429: send the same alert
again later) and ``AlertSinkRejectedError`` (another 4xx, or a redirect, which is not followed:
the receiver refuses it and an immediate resend will not help).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from chaingate.errors import AlertSinkRejectedError, AlertSinkUnavailableError
from chaingate.http import ClientSessionOwner
from chaingate.ledger.signing import (
    encode_body,
    retryable_status,
    signature_headers,
)
from chaingate.redact import redact_text, redact_url

ALERT_ID_HEADER = "X-Chaingate-Alert-Id"


class WebhookSink(ClientSessionOwner):
    """``async with WebhookSink(url, secret) as sink: await sink.push(alert_id, payload)``."""

    def __init__(
        self,
        url: str,
        secret: bytes = b"",
        *,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(timeout)
        self.push_timeout = timeout  # the longest one push can take (the pusher's lease budget)
        self._url = url
        self._secret = secret
        self._clock = clock

    def __repr__(self) -> str:  # the URL's token and the secret never reach a log or traceback
        return f"WebhookSink({redact_url(self._url)!r}, signed={bool(self._secret)})"

    @property
    def target(self) -> str:
        """The URL with its secret parts removed: what logs may show."""
        return redact_url(self._url)

    def _headers(self, alert_id: int, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", ALERT_ID_HEADER: str(alert_id)}
        if self._secret:
            headers |= signature_headers(self._secret, str(int(self._clock())), body)
        return headers

    async def push(self, alert_id: int, payload: Mapping[str, Any]) -> int:
        """POST one alert; the 2xx status, or a classified ``AlertSinkError``."""
        body = encode_body(payload)
        try:
            async with self.session.post(
                self._url, data=body, headers=self._headers(alert_id, body), allow_redirects=False
            ) as resp:
                status = resp.status
                raw = await resp.read() if status >= 300 else b""
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Only the class name: aiohttp messages may quote the URL.
            raise AlertSinkUnavailableError(f"webhook unreachable: {type(exc).__name__}") from None
        if retryable_status(status):
            raise AlertSinkUnavailableError(f"webhook answered HTTP {status}")
        if status >= 300:
            # The receiver's own words help the operator; a URL echoed in them is redacted.
            said = redact_text(raw[:200].decode("utf-8", "replace")).strip()
            raise AlertSinkRejectedError(
                f"webhook refused the alert: HTTP {status}" + (f": {said}" if said else ""),
                status=status,
            )
        return status
