"""Endpoint pool: the one object adapters hold to talk to a network's node endpoints.

Layers, innermost first: transport (one HTTP POST), per-endpoint token bucket, JSON-RPC envelope
checks, the caller's response check, health bookkeeping, failover across endpoints, and tenacity
rounds for idempotent calls. A call with ``idempotent=False`` (a broadcast) is sent exactly once
to one endpoint; whatever happens is raised, since the request may already have been sent.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import structlog

from chaingate.aio import gather_first_error
from chaingate.domain import Endpoint
from chaingate.errors import (
    ChainDataError,
    EndpointInconsistentError,
    EndpointLaggingError,
    EndpointWrongChainError,
    NoHealthyEndpointError,
    ProviderError,
    RateLimitedError,
    RequestTooLargeError,
    RpcError,
    TransportError,
)
from chaingate.http import ClientSessionOwner
from chaingate.providers.batching import BatchSender, Call, Check
from chaingate.providers.health import BenchPolicy, ChainCheck, EndpointHealth, EndpointState
from chaingate.providers.identity import ChainIdentity, IdentityGuard, WrongChainSink
from chaingate.providers.jsonrpc import make_request, unwrap_single
from chaingate.providers.metrics import ProviderMetrics
from chaingate.providers.ratelimit import TokenBucket
from chaingate.providers.retry import FAILOVER_ERRORS, RetryPolicy, RoundFailed
from chaingate.providers.transport import HttpReply, raise_for_status, require_json, send_json
from chaingate.redact import redact_text

log = structlog.get_logger(__name__)

T = TypeVar("T")
HeadProbe = Callable[["EndpointPool", Endpoint], Awaitable[int]]
Op = Callable[[EndpointState], Awaitable[T]]


def error_kind(exc: BaseException) -> str:
    """The ``kind`` label of the errors metric."""
    if isinstance(exc, RateLimitedError):
        return "rate_limited"
    if isinstance(exc, TransportError):
        return "transport"
    if isinstance(exc, EndpointLaggingError):
        return "lagging"
    if isinstance(exc, EndpointWrongChainError):
        return "wrong_chain"
    if isinstance(exc, ChainDataError):
        return "bad_data"
    if isinstance(exc, RequestTooLargeError):
        return "too_large"
    return "rpc"


class EndpointPool(ClientSessionOwner):
    """Implements ``RpcClient`` and ``HttpClient`` from ``chaingate.chains.base``."""

    def __init__(
        self,
        network: str,
        endpoints: Sequence[Endpoint],
        *,
        head_probe: HeadProbe | None = None,
        max_head_lag: int = 5,
        metrics: ProviderMetrics | None = None,
        retry: RetryPolicy | None = None,
        bench: BenchPolicy | None = None,
        identity: ChainIdentity | None = None,
        on_wrong_chain: WrongChainSink | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError(f"network {network} has no endpoints")
        names = [e.name for e in endpoints]
        if len(set(names)) != len(names):
            raise ValueError(f"network {network} has duplicate endpoint names")
        super().__init__()  # no session-wide timeout: each endpoint has its own
        self.network = network
        self.endpoints = tuple(endpoints)
        self.head_probe = head_probe
        self.max_head_lag = max_head_lag
        self.metrics = metrics if metrics is not None else ProviderMetrics()
        self.retry = retry if retry is not None else RetryPolicy()
        policy = bench if bench is not None else BenchPolicy()
        self._states = {e.name: EndpointState(e, policy) for e in self.endpoints}
        self._limiters = {e.name: TokenBucket(e.rate_limit) for e in self.endpoints}
        self._ids = itertools.count(1)
        self._batches = BatchSender(self._send, self._call_on, self._ids)
        self._identity = IdentityGuard(network, identity, on_wrong_chain)
        # Set inside ``pinned()``: every call of that context goes to this one endpoint.
        self._pin: ContextVar[EndpointState | None] = ContextVar(f"pin:{network}", default=None)
        for state in self._states.values():
            self._publish_health(state)

    # --- public calls -----------------------------------------------------------------------
    async def request(
        self,
        method: str,
        params: Sequence[Any] = (),
        *,
        idempotent: bool = True,
        check: Check | None = None,
    ) -> Any:
        """One JSON-RPC call; ``check`` raises ChainDataError when the answer is wrong."""

        async def op(state: EndpointState) -> Any:
            return await self._call_on(state, method, params, check)

        return await self._dispatch(op, method, idempotent)

    async def batch(
        self, calls: Sequence[Call], *, checks: Sequence[Check | None] | None = None
    ) -> list[Any]:
        """Idempotent calls as JSON-RPC batches (split when refused); results in request order."""
        if checks is not None and len(checks) != len(calls):
            raise ValueError("checks must match calls one to one")
        if not calls:
            return []
        item_checks = list(checks) if checks is not None else [None] * len(calls)
        chunk = max(e.max_batch for e in self.endpoints)
        spans = [(i, min(i + chunk, len(calls))) for i in range(0, len(calls), chunk)]

        async def run(lo: int, hi: int) -> list[Any]:
            async def op(state: EndpointState) -> list[Any]:
                return await self._batches.run(state, calls[lo:hi], item_checks[lo:hi])

            return await self._dispatch(op, f"batch of {hi - lo}", True)

        parts = await gather_first_error([run(lo, hi) for lo, hi in spans])
        return [result for part in parts for result in part]

    async def post(
        self,
        path: str,
        payload: dict[str, Any] | None = None,
        *,
        idempotent: bool = True,
        check: Check | None = None,
    ) -> Any:
        """Plain HTTP JSON POST to ``<endpoint url><path>`` (TRON /wallet, /walletsolidity)."""

        async def op(state: EndpointState) -> Any:
            return await self._post_on(state, path, payload, check)

        return await self._dispatch(op, path, idempotent)

    async def request_on(
        self,
        endpoint: Endpoint,
        method: str,
        params: Sequence[Any] = (),
        *,
        check: Check | None = None,
    ) -> Any:
        """One JSON-RPC call to exactly ``endpoint`` (head probes); no failover, no retry."""
        state = self._states[endpoint.name]
        return await self._run_on(state, lambda s: self._call_on(s, method, params, check))

    async def post_on(
        self,
        endpoint: Endpoint,
        path: str,
        payload: dict[str, Any] | None = None,
        *,
        check: Check | None = None,
    ) -> Any:
        """One HTTP JSON POST to exactly ``endpoint``; no failover, no retry."""
        state = self._states[endpoint.name]
        return await self._run_on(state, lambda s: self._post_on(s, path, payload, check))

    @asynccontextmanager
    async def pinned(self, avoid: str | None = None) -> AsyncIterator[str]:
        """Send every call made inside to one endpoint (yielded by name), the best available
        one other than ``avoid`` where there is another: a consistent view of one endpoint,
        its head and then the blocks at or below it. No failover inside. The caller's judgement
        over several answers (EndpointInconsistentError: a block missing at or below the head
        that endpoint reported) is booked against that endpoint, which is benched."""
        candidates = self._ordered()
        candidates.sort(key=lambda s: s.endpoint.name == avoid)  # stable: best first otherwise
        state: EndpointState | None = None
        for candidate in candidates:
            try:
                await self._proven(candidate)  # one of another chain is passed over, as in _round
            except FAILOVER_ERRORS:
                continue
            state = candidate
            break
        if state is None:
            raise NoHealthyEndpointError(f"{self.network}: no endpoint to read from")
        token = self._pin.set(state)
        try:
            yield state.endpoint.name
        except EndpointInconsistentError as exc:
            self._book_failure(state, exc)
            raise
        finally:
            self._pin.reset(token)

    # --- heads and health -------------------------------------------------------------------
    async def best_head(self) -> int:
        """Probe every endpoint (its chain, then its head), bench the laggards, return the best
        head of the healthy ones. An endpoint of another chain is not counted."""
        if self.head_probe is None:
            raise RuntimeError("pool has no head probe")
        states = list(self._states.values())
        heads = await asyncio.gather(*(self._probe(s) for s in states))
        answered = [(s, h) for s, h in zip(states, heads, strict=True) if h is not None]
        if not answered:
            raise NoHealthyEndpointError(f"{self.network}: no endpoint reported its head")
        best = max(h for _, h in answered)
        for state, head in answered:
            before = state.lag_reason
            state.record_head(head, best, self.max_head_lag)
            labels = self.metrics.head_lag.labels(self.network, state.endpoint.name)
            labels.set(best - head)
            if state.lag_reason != before:
                log.warning(
                    "endpoint_head_state",
                    network=self.network,
                    endpoint=state.endpoint.name,
                    head=head,
                    best=best,
                    benched_reason=None if state.lag_reason is None else state.lag_reason.value,
                )
            self._publish_health(state)
        return best

    def health_snapshot(self) -> list[EndpointHealth]:
        """Each endpoint's head, lag, latency, bench reason and chain check, in config order."""
        return [state.snapshot() for state in self._states.values()]

    health = health_snapshot  # the older name, still used by /readyz

    async def _probe(self, state: EndpointState) -> int | None:
        assert self.head_probe is not None
        try:
            await self._identity.prove(self, state, again=True)
            head = await self.head_probe(self, state.endpoint)
            if isinstance(head, bool) or not isinstance(head, int) or head < 0:
                raise ChainDataError(f"{state.endpoint.name}: head probe returned {head!r}")
        except (ProviderError, ChainDataError) as exc:
            if isinstance(exc, EndpointWrongChainError):
                state.head = state.lag = None  # another chain's height means nothing here
                self._publish_health(state)
                return None
            if not isinstance(exc, FAILOVER_ERRORS):
                state.record_failure()  # an RpcError from a head probe is still no head
                self._publish_health(state)
            log.warning(
                "endpoint_probe_failed",
                network=self.network,
                endpoint=state.endpoint.name,
                error=type(exc).__name__,
                detail=redact_text(str(exc)),
            )
            return None
        return head

    def _publish_health(self, state: EndpointState) -> None:
        gauge = self.metrics.healthy.labels(self.network, state.endpoint.name)
        gauge.set(1 if state.is_available() else 0)

    # --- failover ---------------------------------------------------------------------------
    async def _dispatch(self, op: Op[T], what: str, idempotent: bool) -> T:
        if not idempotent:
            return await self._once(op, what)
        try:
            return await self.retry.run(lambda: self._round(op, what))
        except RoundFailed as failed:
            raise failed.public() from (failed.errors[-1] if failed.errors else None)

    async def _once(self, op: Op[T], what: str) -> T:
        # Only the proof of chain may move to the next endpoint: the call itself is sent once.
        errors: list[Exception] = []
        for state in self._ordered():
            try:
                await self._proven(state)
            except FAILOVER_ERRORS as exc:
                errors.append(exc)
                continue
            return await self._run_on(state, op)
        details = "; ".join(str(e) for e in errors)
        raise NoHealthyEndpointError(f"{self.network}: no usable endpoint for {what} {details}")

    async def _round(self, op: Op[T], what: str) -> T:
        errors: list[Exception] = []
        for state in self._ordered():
            try:
                await self._proven(state)
                return await self._run_on(state, op)
            except FAILOVER_ERRORS as exc:
                errors.append(exc)
        raise RoundFailed(self.network, what, errors)

    async def _proven(self, state: EndpointState) -> None:
        """Ask an endpoint that has not proved its chain yet; raise unless it is ours."""
        if not self._identity.needs_proof(state):
            return
        try:
            await self._identity.prove(self, state, again=False)
        except RpcError as exc:
            # It answered, but not the proof (eth_chainId unsupported, say): not usable.
            state.record_failure()
            self._publish_health(state)
            raise ChainDataError(f"{state.endpoint.name}: cannot prove its chain: {exc}") from exc
        finally:
            self._publish_health(state)

    def _ordered(self) -> list[EndpointState]:
        """Endpoints to try, best first: healthy ones in weighted random order (those that gave
        a bad answer lately after the others), then the ones benched for failures (soonest back
        first) as a last resort; lagging ones and other chains' never."""
        pin = self._pin.get()
        if pin is not None:
            return [pin]
        now = time.monotonic()
        healthy = [s for s in self._states.values() if s.is_available(now)]
        # Efraimidis-Spirakis weighted shuffle; weight 0 marks a backup used after the others.
        healthy.sort(
            key=lambda s: (not s.lied_lately(now), _weighted_key(s.endpoint.weight)), reverse=True
        )
        failing = [
            s
            for s in self._states.values()
            if s.lag_reason is None and s.chain is not ChainCheck.MISMATCH and s.is_failing(now)
        ]
        failing.sort(key=lambda s: s.failing_until)
        return healthy + failing

    async def _run_on(self, state: EndpointState, op: Op[T]) -> T:
        """Run ``op`` on one endpoint and book the outcome against that endpoint."""
        name = state.endpoint.name
        try:
            result = await op(state)
        except FAILOVER_ERRORS as exc:
            self._book_failure(state, exc)
            raise
        except RpcError as exc:
            # The node answered; the request, not the endpoint, is at fault.
            self.metrics.errors.labels(self.network, name, error_kind(exc)).inc()
            state.record_success(state.latency or 0.0)
            self._publish_health(state)
            raise
        state.record_success(state.latency or 0.0)
        self._publish_health(state)
        return result

    def _book_failure(self, state: EndpointState, exc: Exception) -> None:
        name = state.endpoint.name
        self.metrics.errors.labels(self.network, name, error_kind(exc)).inc()
        benched = state.record_failure(bad_data=isinstance(exc, ChainDataError))
        self._publish_health(state)
        log.warning(
            "endpoint_failed",
            network=self.network,
            endpoint=name,
            error=type(exc).__name__,
            detail=redact_text(str(exc)),
            failures=state.consecutive_failures,
            benched_s=round(benched, 2),
        )

    # --- one endpoint -----------------------------------------------------------------------
    async def _send(self, state: EndpointState, url: str, payload: Any) -> HttpReply:
        """One rate-limited, measured HTTP POST."""
        await self._limiters[state.endpoint.name].acquire()
        labels = (self.network, state.endpoint.name)
        self.metrics.requests.labels(*labels).inc()
        started = time.monotonic()
        try:
            return await send_json(self.session, state.endpoint, url, payload)
        finally:
            state.latency = time.monotonic() - started
            self.metrics.latency.labels(*labels).observe(state.latency)

    async def _call_on(
        self, state: EndpointState, method: str, params: Sequence[Any], check: Check | None
    ) -> Any:
        request = make_request(next(self._ids), method, params)
        reply = await self._send(state, state.endpoint.url, request)
        result = unwrap_single(state.endpoint, reply, request)
        if check is not None:
            check(result)
        return result

    async def _post_on(
        self,
        state: EndpointState,
        path: str,
        payload: dict[str, Any] | None,
        check: Check | None,
    ) -> Any:
        url = state.endpoint.url.rstrip("/") + "/" + path.lstrip("/")
        reply = await self._send(state, url, payload if payload is not None else {})
        raise_for_status(state.endpoint, reply)
        result = require_json(state.endpoint, reply)
        if check is not None:
            check(result)
        return result


def _weighted_key(weight: int) -> float:
    if weight <= 0:
        return -random.random()
    return float(random.random() ** (1.0 / weight))
