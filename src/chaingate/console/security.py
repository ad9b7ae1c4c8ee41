"""Console safety: the session (a Fernet-encrypted cookie), login and logout, CSRF, roles, and
the security headers on every page.

The session holds the SHA-256 digest of the operator's API token, never the token: the token
table is asked for the principal on every request, so a token removed from the configuration
ends its sessions at once, and a role change applies on the next page.
"""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Any

import aiohttp_jinja2
import structlog
from aiohttp import web
from aiohttp_session import get_session, new_session

from chaingate.api.auth import TOKENS_KEY, Handler
from chaingate.api.common import CTX_KEY
from chaingate.settings import Principal
from chaingate.store import audit

log = structlog.get_logger(__name__)

COOKIE = "chaingate_console"
SESSION_SECONDS = 8 * 3600
PRINCIPAL_KEY = web.RequestKey("console_principal", Principal)
PUBLIC = ("/ops/login", "/ops/static/")

# No inline script or style anywhere: every script and sheet is a file under /ops/static.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def refused(request: web.Request, status: int, message: str) -> web.Response:
    response = aiohttp_jinja2.render_template(
        "refused.html", request, {"status": status, "message": message}, status=status
    )
    return response


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # a 404 of the router is a response too
        exc.headers.update(HEADERS)
        raise
    response.headers.update(HEADERS)
    morsel = response.cookies.get(COOKIE)
    if morsel is not None and request.secure:
        # Secure only when served over TLS, else the browser would drop it on plain http.
        # (Behind a TLS-terminating proxy, aiohttp's forwarded-header support must say so.)
        morsel["secure"] = True
    return response


@web.middleware
async def require_login(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every page but the login form needs a principal; every POST a valid CSRF token."""
    if request.path.startswith(PUBLIC[1]):
        return await handler(request)
    session = await get_session(request)
    if request.method == "POST":
        form = await request.post()
        expected = session.get("csrf")
        given = form.get("csrf")
        if (
            not isinstance(expected, str)
            or not isinstance(given, str)
            or not hmac.compare_digest(expected.encode(), given.encode())
        ):
            log.warning("console_csrf_refused", path=request.path)
            return refused(request, 403, "This form has expired or was not sent from the console.")
    if request.path == PUBLIC[0]:
        return await handler(request)
    principal = principal_of_session(request, session)
    if principal is None:
        return see_other("/ops/login")
    request[PRINCIPAL_KEY] = principal
    return await handler(request)


def principal_of_session(request: web.Request, session: Any) -> Principal | None:
    digest = session.get("token_sha256")
    if not isinstance(digest, str) or session.get("expires", 0) < time.time():
        return None
    try:
        raw = bytes.fromhex(digest)
    except ValueError:
        return None
    return request.config_dict[TOKENS_KEY].by_digest(raw)


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL_KEY]


async def csrf_token(request: web.Request) -> str:
    """The session's CSRF token (made on first use); every form carries it."""
    session = await get_session(request)
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


async def login_form(request: web.Request) -> web.Response:
    return aiohttp_jinja2.render_template(
        "login.html", request, {"csrf": await csrf_token(request), "error": None}
    )


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    token = str(form.get("token", "")).strip()
    table = request.config_dict[TOKENS_KEY]
    found = table.principal(token) if token else None
    if found is None or not found.roles & {"viewer", "ops_maker", "ops_approver"}:
        log.warning("console_login_refused")
        return aiohttp_jinja2.render_template(
            "login.html",
            request,
            {"csrf": await csrf_token(request), "error": "Unknown token, or not an ops token."},
            status=401,
        )
    # A new session (new CSRF token) on login: a session fixed before login is worth nothing.
    session = await new_session(request)
    session["token_sha256"] = table.digest(token).hex()
    session["expires"] = int(time.time()) + SESSION_SECONDS
    session["csrf"] = secrets.token_urlsafe(32)
    async with request.config_dict[CTX_KEY].db.acquire() as conn:
        await audit.record(conn, found.name, "console.login", None, {})
    log.info("console_login", principal=found.name)
    return see_other("/ops/")


async def logout(request: web.Request) -> web.Response:
    session = await get_session(request)
    session.invalidate()
    log.info("console_logout", principal=principal(request).name)
    return see_other("/ops/login")
