"""Health of one endpoint: head, latency, failures, and whether it is benched (and why).

Two reasons take an endpoint out of rotation:
- failures (transport faults, bad data): benched for an exponential backoff with jitter; it is
  tried again when the bench expires or as soon as a head probe succeeds;
- lag: its head trails the best head by more than the allowed lag, or stepped back below what it
  reported before while another endpoint is ahead (a load-balanced backend serving a stale
  node). It stays out until a later probe shows it caught up.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from enum import StrEnum

from chaingate.domain import Endpoint

BAD_DATA_MEMORY = 300.0  # seconds without a bad answer before an endpoint's strikes fade


class BenchReason(StrEnum):
    FAILING = "failing"
    LAGGING = "lagging"
    STEPPED_BACK = "head_stepped_back"
    WRONG_CHAIN = "wrong_chain"


class ChainCheck(StrEnum):
    """Whether an endpoint proved it serves the configured chain (chain id or genesis block)."""

    UNKNOWN = "unknown"  # not asked yet, or the last proof could not be read
    OK = "ok"
    MISMATCH = "mismatch"  # another chain: never used, never counted for the best head


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """What /readyz and GET /v1/networks show for one endpoint (its name, never the URL)."""

    name: str
    head: int | None
    lag: int | None  # blocks behind the best head of the last probe round
    latency_ms: float | None
    healthy: bool
    benched_reason: str | None
    chain_check: ChainCheck


@dataclass(frozen=True, slots=True)
class BenchPolicy:
    base: float = 1.0  # seconds benched after the first failure
    cap: float = 60.0  # longest bench
    jitter: float = 0.5  # the bench is shortened by up to this fraction, so peers desynchronise

    def duration(self, consecutive_failures: int) -> float:
        raw = min(self.cap, self.base * 2 ** max(0, consecutive_failures - 1))
        return float(raw * (1.0 - random.uniform(0.0, self.jitter)))


class EndpointState:
    def __init__(self, endpoint: Endpoint, policy: BenchPolicy) -> None:
        self.endpoint = endpoint
        self.policy = policy
        self.head: int | None = None
        self.peak: int | None = None  # highest head reported while in step with the others
        self.latency: float | None = None
        self.consecutive_failures = 0
        self.failing_until = 0.0
        self.lag_reason: BenchReason | None = None
        self.lag: int | None = None
        self.chain = ChainCheck.UNKNOWN
        self.observed_chain: str | None = None  # what it answered when it was not our chain
        self.bad_data_strikes = 0  # bad answers, not reset by good ones (see record_failure)
        self.last_bad_data = -BAD_DATA_MEMORY
        self.benched_for_bad_data = False
        self.batch_limit = endpoint.max_batch  # lowered when the endpoint refuses a batch size

    # --- availability ---------------------------------------------------------------------
    def is_failing(self, now: float | None = None) -> bool:
        return (now if now is not None else time.monotonic()) < self.failing_until

    def is_available(self, now: float | None = None) -> bool:
        return (
            self.chain is not ChainCheck.MISMATCH
            and self.lag_reason is None
            and not self.is_failing(now)
        )

    def lied_lately(self, now: float) -> bool:
        """Whether it gave a bad answer within ``BAD_DATA_MEMORY`` seconds (asked last)."""
        return now - self.last_bad_data < BAD_DATA_MEMORY

    def bench_reason(self, now: float | None = None) -> str | None:
        if self.chain is ChainCheck.MISMATCH:
            return BenchReason.WRONG_CHAIN.value
        if self.lag_reason is not None:
            return self.lag_reason.value
        return BenchReason.FAILING.value if self.is_failing(now) else None

    def snapshot(self) -> EndpointHealth:
        return EndpointHealth(
            name=self.endpoint.name,
            head=self.head,
            lag=self.lag,
            latency_ms=None if self.latency is None else round(self.latency * 1000, 1),
            healthy=self.is_available(),
            benched_reason=self.bench_reason(),
            chain_check=self.chain,
        )

    # --- outcomes -------------------------------------------------------------------------
    def record_success(self, latency: float) -> None:
        self.latency = latency
        self.consecutive_failures = 0
        if not self.benched_for_bad_data:
            # A transport fault is over once it answers; a lie is not undone by a good answer
            # to another question (a head probe): that bench runs its course.
            self.failing_until = 0.0

    def record_failure(self, bad_data: bool = False) -> float:
        """Bench after a failure; returns the bench duration in seconds.

        A bad answer (``bad_data``) is remembered past the next good one: an endpoint that
        answers heads well and lies about blocks would otherwise be reset by every good answer,
        come back after the shortest bench and be asked first again. Its strikes fade only after
        ``BAD_DATA_MEMORY`` seconds without a lie, so its bench keeps doubling meanwhile.
        """
        now = time.monotonic()
        self.consecutive_failures += 1
        strikes = 0
        if bad_data:
            if now - self.last_bad_data > BAD_DATA_MEMORY:
                self.bad_data_strikes = 0
            self.bad_data_strikes += 1
            self.last_bad_data = now
            strikes = self.bad_data_strikes
        duration = self.policy.duration(max(self.consecutive_failures, strikes))
        self.failing_until = now + duration
        self.benched_for_bad_data = bad_data
        return duration

    def record_head(self, head: int, best: int, max_lag: int) -> None:
        """Judge a probed head against the best head of this probe round."""
        self.head = head
        behind = best - head
        self.lag = behind
        stepped_back = self.peak is not None and head < self.peak
        if behind > max_lag:
            self.lag_reason = BenchReason.LAGGING
        elif stepped_back and behind > 0:
            # Lower than it told us before while someone else is ahead: a stale backend.
            # If every endpoint stepped back together the chain itself shrank (a reorg).
            self.lag_reason = BenchReason.STEPPED_BACK
        else:
            self.lag_reason = None
            self.peak = head
