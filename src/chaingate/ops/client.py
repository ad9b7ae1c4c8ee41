"""The ops command line's client of the gateway API: the operator's bearer token, JSON in and
out, and every refusal as one ApiCallError with a line a person can act on."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from yarl import URL

from chaingate.errors import ApiCallError
from chaingate.http import ClientSessionOwner

_HINTS = {
    401: "check CHAINGATE_OPS_TOKEN / --token",
    403: "your token lacks the role for this",
}


class OpsApiClient(ClientSessionOwner):
    def __init__(self, base_url: str, token: str, timeout: float = 30.0) -> None:
        super().__init__(timeout)
        self.base_url = base_url.rstrip("/")
        self._token = token

    async def get(self, path: str, **params: str) -> Any:
        return await self.call("GET", path, params={k: v for k, v in params.items() if v})

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return await self.call("POST", path, body=body or {})

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            async with self.session.request(
                method, self.base_url + path, params=params, json=body, headers=headers
            ) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            # The host and port only: the URL could carry credentials in a proxy setup.
            raise ApiCallError(
                f"cannot reach the gateway API at {_where(self.base_url)}: {type(exc).__name__}"
            ) from None
        try:
            data = json.loads(text) if text else {}
        except json.JSONDecodeError:
            data = {}
        if status >= 400:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            code = error.get("code", "http_error")
            message = error.get("message") or text[:200] or "no message"
            hint = _HINTS.get(status)
            raise ApiCallError(
                f"{message} (HTTP {status} {code}{'; ' + hint if hint else ''})", status=status
            )
        return data


def _where(url: str) -> str:
    parts = URL(url)
    return f"{parts.host}:{parts.port}"
