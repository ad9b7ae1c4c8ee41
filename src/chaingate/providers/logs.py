"""``eth_getLogs`` over a block range that may exceed what an endpoint serves in one call.

Hosted plans cap the span (100 or 10,000 blocks) or the result count ("query returned more than
10000 results"); the range is cut to the known cap first and halved again on every refusal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from chaingate.errors import ChainDataError, RequestTooLargeError


class _Request(Protocol):
    def __call__(
        self,
        method: str,
        params: Sequence[Any] = (),
        *,
        idempotent: bool = True,
        check: Callable[[Any], None] | None = None,
    ) -> Awaitable[Any]: ...


def _block(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None


def _range_check(lo: int, hi: int) -> Callable[[Any], None]:
    def check(logs: Any) -> None:
        if not isinstance(logs, list):
            raise ChainDataError("eth_getLogs answer is not a list")
        for entry in logs:
            number = _block(entry.get("blockNumber")) if isinstance(entry, dict) else None
            if number is None or not lo <= number <= hi:
                raise ChainDataError(f"eth_getLogs returned a log outside blocks {lo}..{hi}")

    return check


async def split_get_logs(
    request: _Request, log_filter: Mapping[str, Any], max_range: int
) -> list[Any]:
    """All logs matching ``log_filter``, fetched in spans of at most ``max_range`` blocks."""
    start, end = _block(log_filter.get("fromBlock")), _block(log_filter.get("toBlock"))
    if start is None or end is None or "blockHash" in log_filter:
        # Tags such as "latest" or a single block hash: nothing to split.
        result = await request("eth_getLogs", [dict(log_filter)])
        if not isinstance(result, list):
            raise ChainDataError("eth_getLogs answer is not a list")
        return result
    logs: list[Any] = []
    span = max(1, max_range)
    lo = start
    while lo <= end:
        hi = min(end, lo + span - 1)
        part = {**log_filter, "fromBlock": hex(lo), "toBlock": hex(hi)}
        try:
            found = await request("eth_getLogs", [part], check=_range_check(lo, hi))
        except RequestTooLargeError:
            if hi == lo:
                raise
            span = max(1, (hi - lo + 1) // 2)
            continue
        logs.extend(found)
        lo = hi + 1
    return logs
