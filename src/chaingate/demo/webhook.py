"""The demo's alert webhook receiver: what another team's system would do with the pushes.

It verifies each push's signature with the shared secret (``ledger/signing.verify``, the same
scheme as the ledger contract), drops repeats by alert id (delivery is at least once), and keeps
the alerts it accepted for the demo report.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from chaingate.ledger.errors import SignatureError
from chaingate.ledger.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


@contextlib.asynccontextmanager
async def alert_receiver(secret: bytes) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """Serve on a free local port; yields (webhook URL, alerts received so far)."""
    received: list[dict[str, Any]] = []

    async def accept(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            verify(
                secret,
                request.headers.get(TIMESTAMP_HEADER),
                raw,
                request.headers.get(SIGNATURE_HEADER),
                now=time.time(),
            )
        except SignatureError as exc:
            return web.json_response({"error": {"code": exc.code, "message": str(exc)}}, status=401)
        alert = json.loads(raw)
        if all(a["id"] != alert["id"] for a in received):
            received.append(alert)
        return web.json_response({"accepted": alert["id"]})

    app = web.Application()
    app.router.add_post("/alerts", accept)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/alerts", received
    finally:
        await runner.cleanup()
