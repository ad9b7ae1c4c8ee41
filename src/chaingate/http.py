"""The aiohttp session the gateway's outbound HTTP clients (the endpoint pool, the ledger client,
the alert webhook sink) open with ``async with`` and close on exit."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import aiohttp


class ClientSessionOwner:
    """Owns one ``aiohttp.ClientSession`` for the span of an ``async with`` block."""

    def __init__(self, timeout: float | None = None) -> None:
        """``timeout``: the total per request; None leaves it to each request (aiohttp's
        default otherwise)."""
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        if self._session is None:
            if self.timeout is None:
                self._session = aiohttp.ClientSession()
            else:
                timeout = aiohttp.ClientTimeout(total=self.timeout)
                self._session = aiohttp.ClientSession(timeout=timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"{type(self).__name__} used outside 'async with'")
        return self._session
