"""The demo's last line before the verdict: the ops console's address and a token to log in with,
after the demo logged in itself and saw its deposits and the mismatch alert on the console."""

from __future__ import annotations

import re

import aiohttp

from chaingate.demo.outcomes import USER, DemoError, Expected, txid_key

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ROLES = ["viewer", "ops_maker"]  # sees every page and may make batches; approvers are others


async def check_console(api_url: str, token: str, expected: list[Expected]) -> str:
    """Log in at ``/ops/login`` with ``token`` (CSRF field and session cookie, as a browser
    does) and find every payment of the demo on the deposits page; the console's URL."""
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1, an IP address
    async with aiohttp.ClientSession(api_url, cookie_jar=jar) as http:
        await login(http, token)
        async with http.get("/ops/deposits", params={"user": USER}) as resp:
            page = (await resp.text()).lower()
        missing = [e.label for e in expected if txid_key(e.txid)[:10] not in page]
        if resp.status != 200 or missing:
            raise DemoError(f"ops console: the deposits page lacks {', '.join(missing) or '?'}")
        async with http.get("/ops/alerts") as resp:
            if resp.status != 200 or "network_mismatch" not in await resp.text():
                raise DemoError("ops console: the alerts page lacks the network-mismatch alert")
    return f"{api_url}/ops/"


async def login(http: aiohttp.ClientSession, token: str) -> None:
    """Log in as a browser does: the login form's CSRF field, then the session cookie."""
    async with http.get("/ops/login") as resp:
        form = await resp.text()
    found = _CSRF.search(form)
    if resp.status != 200 or found is None:
        raise DemoError(f"ops console: GET /ops/login answered HTTP {resp.status}")
    async with http.post("/ops/login", data={"token": token, "csrf": found.group(1)}) as resp:
        if resp.status != 200 or "login" in resp.url.path:
            raise DemoError(f"ops console: login refused (HTTP {resp.status})")
