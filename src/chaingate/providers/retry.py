"""Which failures move a call to another endpoint, and how rounds over the endpoints are retried.

Only transport faults, lagging endpoints and bad data are an endpoint's fault; a JSON-RPC error
object is the node's answer and goes back to the caller unchanged. Retries (tenacity,
exponential backoff with full jitter) are used for idempotent calls only: the pool never builds
a retrying loop around a call made with ``idempotent=False``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from chaingate.errors import (
    ChainDataError,
    EndpointLaggingError,
    EndpointWrongChainError,
    NoHealthyEndpointError,
    TransportError,
)

T = TypeVar("T")

# The failures that say "this endpoint, not this request, is the problem".
FAILOVER_ERRORS: tuple[type[Exception], ...] = (
    TransportError,
    EndpointLaggingError,
    EndpointWrongChainError,
    ChainDataError,
)


class RoundFailed(Exception):
    """Every endpoint tried in one round failed with a failover error (internal to the pool)."""

    def __init__(self, network: str, what: str, errors: Sequence[Exception]) -> None:
        super().__init__(f"{network}: no endpoint answered {what}")
        self.network = network
        self.what = what
        self.errors = tuple(errors)

    @property
    def retryable(self) -> bool:
        # Bad data from every endpoint will not improve in a second; a timeout or 429 may.
        return any(isinstance(e, TransportError | EndpointLaggingError) for e in self.errors)

    def public(self) -> Exception:
        """The exception the caller sees."""
        if self.errors and all(isinstance(e, ChainDataError) for e in self.errors):
            first = self.errors[0]
            return type(first)(
                f"{self.network}: every endpoint failed the check for {self.what}: {first}"
            )
        details = "; ".join(str(e) for e in self.errors) or "every endpoint is benched"
        return NoHealthyEndpointError(f"{self}: {details}")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    rounds: int = 3  # passes over all usable endpoints per call
    initial: float = 0.1  # seconds; the n-th wait is uniform in [0, initial * 2**n]
    max_wait: float = 2.0

    async def run(self, round_: Callable[[], Awaitable[T]]) -> T:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.rounds),
            wait=wait_random_exponential(multiplier=self.initial, max=self.max_wait),
            retry=retry_if_exception(lambda e: isinstance(e, RoundFailed) and e.retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await round_()
        raise AssertionError("tenacity stops by raising")  # pragma: no cover
