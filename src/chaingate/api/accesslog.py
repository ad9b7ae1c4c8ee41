"""aiohttp's access log as structured events (method, path, status, duration), not a line of
Apache text: the records go to the ``aiohttp.access`` logger, which ``logs.configure_logging``
renders through structlog (JSON, redacted). The query string is left out: it is the caller's
data, not what an access log needs."""

from __future__ import annotations

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse


class StructuredAccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            "http_request",
            extra={
                "method": request.method,
                "path": request.path[:200],
                "status": response.status,
                "duration_ms": round(time * 1000, 1),
                "remote": request.remote,
            },
        )
