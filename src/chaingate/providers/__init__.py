"""Provider layer: moves requests to node endpoints and back, nothing more.

``EndpointPool`` is what adapters hold; it implements both ``RpcClient`` (JSON-RPC) and
``HttpClient`` (TRON's HTTP API) from ``chaingate.chains.base``.
"""

from chaingate.providers.health import BenchPolicy, EndpointHealth
from chaingate.providers.metrics import ProviderMetrics
from chaingate.providers.pool import EndpointPool, HeadProbe
from chaingate.providers.retry import RetryPolicy
from chaingate.redact import redact_text, redact_url

__all__ = [
    "BenchPolicy",
    "EndpointHealth",
    "EndpointPool",
    "HeadProbe",
    "ProviderMetrics",
    "RetryPolicy",
    "redact_text",
    "redact_url",
]
