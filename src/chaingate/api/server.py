"""The API's HTTP server: aiohttp's, with its protocol-level errors answered as JSON.

A request aiohttp's parser refuses (a header past 8190 bytes, control bytes in a header, a
malformed Content-Length) never reaches the app or its error middleware: aiohttp answers it
itself, as text/plain, quoting the offending bytes (a bearer token among them). Here those
answers keep their status but take the API's one error shape, ``{"error": {"code",
"message"}}``, with a fixed message that quotes nothing. aiohttp still logs the parser error
(through structlog, redacted: logs.py).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest


class _JsonErrorHandler(RequestHandler):
    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs; its text answer is dropped
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        code = "bad_request" if status < 500 else "internal_error"
        what = "the request could not be read as HTTP" if status < 500 else "internal error"
        body = {"error": {"code": code, "message": f"{what} ({status} {phrase})".strip()}}
        response = web.json_response(body, status=status)
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class ApiRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer protocol errors as JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer  # the same server; only its handler factory differs
        return server


def api_runner(app: web.Application, **kwargs: Any) -> web.AppRunner:
    return ApiRunner(app, **kwargs)
