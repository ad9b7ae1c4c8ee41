"""Per-endpoint Prometheus metrics, created on the registry given (never at import time)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LABELS = ("network", "endpoint")
# Node calls range from ~1 ms (local devnet) to the 10 s default timeout.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ProviderMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "chaingate_provider_requests_total",
            "HTTP requests sent to a node endpoint (a JSON-RPC batch counts once).",
            _LABELS,
            registry=self.registry,
        )
        self.errors = Counter(
            "chaingate_provider_errors_total",
            "Failed endpoint requests by kind (transport, rate_limited, rpc, too_large, bad_data).",
            (*_LABELS, "kind"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "chaingate_provider_request_seconds",
            "Time from sending a request to an endpoint until its answer was read.",
            _LABELS,
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.head_lag = Gauge(
            "chaingate_provider_head_lag_blocks",
            "Blocks the endpoint's head trails the best head of its network.",
            _LABELS,
            registry=self.registry,
        )
        self.healthy = Gauge(
            "chaingate_provider_endpoint_healthy",
            "1 when the endpoint is in rotation, 0 when it is benched.",
            _LABELS,
            registry=self.registry,
        )
