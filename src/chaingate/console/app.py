"""The ops console: server-rendered pages under /ops, a sub-application of the gateway's app.

It reads through the store and acts only through the ops actions (ops/actions.py) and the
withdrawal core's functions, the very ones the API calls, so a rule holds on every surface.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp_session import get_session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

from chaingate.console import batches, format, pages, security
from chaingate.ops.actions import ACTION_ROLES, may

STATIC = Path(__file__).parent / "static"


def console_app(session_key: str) -> web.Application:
    storage = EncryptedCookieStorage(
        Fernet(session_key),
        cookie_name=security.COOKIE,
        max_age=security.SESSION_SECONDS,
        path="/ops",
        httponly=True,
        samesite="Strict",
    )
    app = web.Application(
        middlewares=[security.security_headers, session_middleware(storage), security.require_login]
    )
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("chaingate.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        context_processors=[_page_context],
    )
    env.filters.update(format.FILTERS)
    app.router.add_static("/static/", STATIC, name="static", append_version=True)
    app.router.add_get("/login", security.login_form)
    app.router.add_post("/login", security.login)
    app.router.add_post("/logout", security.logout)
    pages.routes(app)
    batches.routes(app)
    return app


async def _page_context(request: web.Request) -> dict[str, Any]:
    """What every page's layout needs: who is logged in, what they may do, the CSRF token."""
    who = request.get(security.PRINCIPAL_KEY)
    session = await get_session(request)
    return {
        "flash": session.pop("flash", None),
        "principal": who,
        "can": {action: who is not None and may(who, action) for action in ACTION_ROLES},
        "csrf": await security.csrf_token(request),
        "path": request.path,
    }


def disabled_app() -> web.Application:
    """Served at /ops when no session key is configured: says what to set, serves nothing."""

    async def disabled(_: web.Request) -> web.Response:
        return web.Response(
            status=503,
            text="ops console disabled: set CHAINGATE_CONSOLE_SESSION_KEY (a Fernet key) "
            "and restart the api role\n",
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", disabled)
    return app
