"""Endpoint identity: every endpoint proves which chain it serves before it is used.

An endpoint of another chain (a BSC URL pasted into the Ethereum list, a testnet node behind a
mainnet name) answers every call well-formed, usually with a higher head than the real
endpoints. Unchecked it would bench the real ones as lagging and be scanned as if it were the
configured chain. So each endpoint is asked for its chain id (EVM) or genesis block (Bitcoin,
TRON) before its first use and again at every health probe; a mismatch takes it out of rotation
(never used, never counted for the best head) and is reported to a sink the service wires to the
alert store (the provider layer knows nothing about the database).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from chaingate.domain import Endpoint
from chaingate.errors import EndpointWrongChainError
from chaingate.providers.health import ChainCheck, EndpointState

if TYPE_CHECKING:
    from chaingate.providers.pool import EndpointPool

log = structlog.get_logger(__name__)

IdentityProbe = Callable[["EndpointPool", Endpoint], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class ChainIdentity:
    """What every endpoint of a network must answer, and how to ask it."""

    what: str  # "chain id", "genesis block": for logs, alerts and errors
    probe: IdentityProbe  # one call to exactly that endpoint, no failover
    # None: pin whatever the first endpoint to answer says (a devnet whose registry file asks
    # for it explicitly with learn_genesis); every other endpoint must then agree with it.
    expected: str | None


@dataclass(frozen=True, slots=True)
class WrongChain:
    """An endpoint answered with another chain's identity."""

    network: str
    endpoint: str  # the endpoint's name, never its URL
    what: str
    expected: str
    observed: str


WrongChainSink = Callable[[WrongChain], Awaitable[None]]


class IdentityGuard:
    """Per-pool bookkeeping of which endpoints proved their chain."""

    def __init__(
        self, network: str, identity: ChainIdentity | None, sink: WrongChainSink | None
    ) -> None:
        self.network = network
        self.identity = identity
        self.sink = sink
        self.expected = identity.expected if identity is not None else None
        self._locks: dict[str, asyncio.Lock] = {}

    def needs_proof(self, state: EndpointState) -> bool:
        return self.identity is not None and state.chain is not ChainCheck.OK

    async def prove(self, pool: EndpointPool, state: EndpointState, *, again: bool) -> None:
        """Raise EndpointWrongChainError unless ``state``'s endpoint serves the configured chain.

        Asks the endpoint when it has not proved itself yet, or always with ``again`` (health
        probes). A probe that fails raises its own error and leaves the check ``unknown``.
        """
        identity = self.identity
        if identity is None:
            return
        lock = self._locks.setdefault(state.endpoint.name, asyncio.Lock())
        async with lock:
            if not again and state.chain is ChainCheck.OK:
                return  # proved by a concurrent caller while this one waited
            if not again and state.chain is ChainCheck.MISMATCH:
                raise self._error(state)
            observed = await identity.probe(pool, state.endpoint)
            if self.expected is None:
                self.expected = observed
                log.warning(
                    "endpoint_chain_pinned",
                    network=self.network,
                    endpoint=state.endpoint.name,
                    what=identity.what,
                    value=observed,
                )
            if observed == self.expected:
                if state.chain is ChainCheck.MISMATCH:
                    log.warning(
                        "endpoint_chain_restored",
                        network=self.network,
                        endpoint=state.endpoint.name,
                    )
                state.chain = ChainCheck.OK
                return
            first_sighting = state.chain is not ChainCheck.MISMATCH
            state.chain = ChainCheck.MISMATCH
            state.observed_chain = observed
        if first_sighting:
            await self._report(state, identity.what, observed)
        raise self._error(state)

    def _error(self, state: EndpointState) -> EndpointWrongChainError:
        what = self.identity.what if self.identity is not None else "identity"
        return EndpointWrongChainError(
            f"{self.network}: endpoint {state.endpoint.name} serves another chain "
            f"({what} {state.observed_chain!r:.80}, expected {self.expected!r:.80})"
        )

    async def _report(self, state: EndpointState, what: str, observed: str) -> None:
        assert self.expected is not None
        event = WrongChain(self.network, state.endpoint.name, what, self.expected, observed)
        log.critical(
            "endpoint_wrong_chain",
            network=self.network,
            endpoint=state.endpoint.name,
            what=what,
            expected=self.expected,
            observed=observed[:80],
        )
        if self.sink is None:
            return
        try:
            await self.sink(event)
        except Exception as exc:  # the endpoint is out either way; the log still says why
            log.error(
                "endpoint_wrong_chain_alert_failed",
                network=self.network,
                endpoint=state.endpoint.name,
                error=type(exc).__name__,
            )
