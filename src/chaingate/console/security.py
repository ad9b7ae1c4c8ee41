"""Console safety: the session, login and logout, CSRF, roles, and the security headers on every
page.

The Fernet-encrypted cookie carries a random session id and the CSRF token; the session itself
lives in the database (store/console_sessions.py), so logging out ends it for every copy of the
cookie. The session row holds the SHA-256 digest of the operator's API token, never the token:
the token table is asked for the principal on every request, so a token removed from the
configuration ends its sessions at once, and a role change applies on the next page.
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
from chaingate.store import audit, console_sessions

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


def error_page(request: web.Request, status: int, reason: str) -> web.Response:
    return aiohttp_jinja2.render_template(
        "refused.html",
        request,
        {"status": status, "message": reason},
        status=status,
    )


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            exc.headers.update(HEADERS)
            raise
        # A page of the console's own (a 404, a 405 for a GET of an action's URL): left to the
        # gateway's JSON error handler it would go out without these headers.
        response = error_page(request, exc.status, exc.reason)
        if isinstance(exc, web.HTTPMethodNotAllowed):
            response.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
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
        try:
            form = await request.post()
        except ValueError as exc:  # a malformed body (a broken multipart): no form, no action
            log.warning("console_form_unreadable", path=request.path, error_type=type(exc).__name__)
            return refused(request, 400, "This form could not be read.")
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
    principal = await principal_of_session(request, session)
    if principal is None:
        return see_other("/ops/login")
    request[PRINCIPAL_KEY] = principal
    return await handler(request)


async def principal_of_session(request: web.Request, session: Any) -> Principal | None:
    session_id = session.get("sid")
    if not isinstance(session_id, str) or session.get("expires", 0) < time.time():
        return None
    async with request.config_dict[CTX_KEY].db.acquire() as conn:
        digest = await console_sessions.token_of(conn, session_id)
    if digest is None:  # logged out (on any copy of the cookie), or expired
        return None
    return request.config_dict[TOKENS_KEY].by_digest(digest)


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
    # A new session id and CSRF token on login: a cookie fixed before login is worth nothing.
    session = await new_session(request)
    session_id = secrets.token_urlsafe(32)
    session["sid"] = session_id
    session["expires"] = int(time.time()) + SESSION_SECONDS
    session["csrf"] = secrets.token_urlsafe(32)
    async with request.config_dict[CTX_KEY].db.acquire() as conn, conn.transaction():
        await console_sessions.begin(
            conn, session_id, found.name, table.digest(token), SESSION_SECONDS
        )
        await audit.record(conn, found.name, "console.login", None, {})
    log.info("console_login", principal=found.name)
    return see_other("/ops/")


async def logout(request: web.Request) -> web.Response:
    session = await get_session(request)
    session_id = session.get("sid")
    if isinstance(session_id, str):
        # Ended on the server: a copy of this cookie (a shared screen, a proxy log) is now void.
        async with request.config_dict[CTX_KEY].db.acquire() as conn, conn.transaction():
            await console_sessions.end(conn, session_id)
            await audit.record(conn, principal(request).name, "console.logout", None, {})
    session.invalidate()
    log.info("console_logout", principal=principal(request).name)
    return see_other("/ops/login")
