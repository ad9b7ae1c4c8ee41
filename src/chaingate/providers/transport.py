"""HTTP transport: POST one JSON body to one URL and decode the answer. Nothing else.

JSON is decoded with every non-integer number as a ``Decimal``, so that no float ever enters the
gateway (Bitcoin amounts arrive as JSON numbers such as ``0.00001``). The decoder is msgspec's,
straight from the answer's bytes: a dense catch-up decodes some 120 MB of blocks and receipts per
1,000 blocks, and msgspec does it in about two thirds of the CPU of ``json.loads`` on the text
(it also refuses NaN and Infinity, which are not JSON). Transport faults are classified here,
once, into the ``TransportError`` family; what the body means is for ``jsonrpc`` and the pool to
judge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec

from chaingate.domain import Endpoint
from chaingate.errors import RateLimitedError, RequestTooLargeError, TransportError

JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: Any  # decoded JSON; None when ``is_json`` is False
    is_json: bool


_DECODER = msgspec.json.Decoder(float_hook=Decimal)  # a pure object: no state between calls


def decode_json(data: str | bytes) -> Any:
    """Decode JSON with exact decimals instead of floats; ValueError when it is not JSON."""
    return _DECODER.decode(data)  # msgspec.DecodeError is a ValueError


def encode_json(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


async def send_json(
    session: aiohttp.ClientSession, endpoint: Endpoint, url: str, payload: Any
) -> HttpReply:
    """POST ``payload`` to ``url``; raise TransportError when no HTTP answer arrived in time.

    Messages name the endpoint, never its URL (the URL carries the key).
    """
    timeout = aiohttp.ClientTimeout(total=endpoint.timeout)
    try:
        async with session.post(
            url, data=encode_json(payload), headers=JSON_HEADERS, timeout=timeout
        ) as resp:
            data = await resp.read()
            status = resp.status
    except TimeoutError:
        raise TransportError(f"{endpoint.name}: timed out after {endpoint.timeout}s") from None
    except aiohttp.ClientError as exc:
        # aiohttp puts the URL into some messages, so only the exception type is kept.
        raise TransportError(f"{endpoint.name}: {type(exc).__name__}") from None
    try:
        return HttpReply(status, decode_json(data), True)
    except ValueError:
        return HttpReply(status, None, False)


def raise_for_status(endpoint: Endpoint, reply: HttpReply) -> None:
    """Classify a non-2xx answer: 413 is a size refusal, everything else is the endpoint's fault."""
    status = reply.status
    if 200 <= status < 300:
        return
    if status == 413:
        raise RequestTooLargeError(f"{endpoint.name}: HTTP 413 request too large")
    if status == 429:
        raise RateLimitedError(f"{endpoint.name}: HTTP 429")
    # 5xx, and 4xx such as 401/403 (bad key) or 404 (wrong path): another endpoint may serve it.
    raise TransportError(f"{endpoint.name}: HTTP {status}")


def require_json(endpoint: Endpoint, reply: HttpReply) -> Any:
    if not reply.is_json:
        raise TransportError(f"{endpoint.name}: answer is not JSON")
    return reply.body
