"""Bearer tokens -> principals with roles. Tokens are compared as SHA-256 digests in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from chaingate.settings import Principal

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """Raised by handlers for an HTTP error with a machine-readable code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class TokenTable:
    def __init__(self, tokens: Mapping[str, Principal]) -> None:
        self._by_digest = {hashlib.sha256(t.encode()).digest(): p for t, p in tokens.items()}

    @staticmethod
    def digest(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def principal(self, token: str) -> Principal | None:
        # A header may carry any bytes (aiohttp keeps non-UTF-8 ones as surrogates, which
        # cannot be encoded): such a token is simply unknown. Configured tokens are printable.
        if not token.isascii() or not token.isprintable():
            return None
        return self.by_digest(self.digest(token))

    def by_digest(self, digest: bytes) -> Principal | None:
        """The principal of a token known only by its digest (the console keeps no token)."""
        for known, principal in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return principal
        return None


TOKENS_KEY = web.AppKey("tokens", TokenTable)


def require(request: web.Request, *roles: str) -> Principal:
    """The caller's principal if it holds one of ``roles``; 401/403 otherwise."""
    table = request.app[TOKENS_KEY]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthenticated", "missing 'Authorization: Bearer <token>' header")
    principal = table.principal(token.strip())
    if principal is None:
        raise ApiError(401, "unauthenticated", "unknown API token")
    if roles and not principal.roles & set(roles):
        raise ApiError(403, "forbidden", f"this call needs one of the roles: {', '.join(roles)}")
    return principal
