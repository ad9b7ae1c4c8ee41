"""The ops actions through the API: roles, notes, the audit row in the same transaction, and
the outbox and audit endpoints the ops command line and console read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.fernet import Fernet

from chaingate.api import ApiContext, build_app
from chaingate.errors import ConfigError
from chaingate.settings import Settings
from console_support import CONSOLE_TOKENS, MAKER, VIEWER, seed

Client = TestClient[Any, Any]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(db: asyncpg.Pool) -> AsyncIterator[Client]:
    ctx = ApiContext(db=db, networks={}, codecs={}, tokens=CONSOLE_TOKENS)
    async with TestClient(TestServer(build_app(ctx))) as client:
        yield client


async def audit_rows(db: asyncpg.Pool) -> list[tuple[str, str, Any]]:
    rows = await db.fetch("SELECT actor, action, details FROM audit_log ORDER BY id")
    return [(r["actor"], r["action"], r["details"]) for r in rows]


async def test_ack_keeps_the_note_and_writes_one_audit_row(api: Client, db: asyncpg.Pool) -> None:
    ids = await seed(db)
    url = f"/v1/alerts/{ids['mismatch']}/ack"
    refused = await api.post(url, json={"note": "x"}, headers=auth(VIEWER))
    assert refused.status == 403 and (await refused.json())["error"]["code"] == "forbidden"
    too_long = await api.post(url, json={"note": "x" * 1001}, headers=auth(MAKER))
    assert too_long.status == 422
    assert await audit_rows(db) == []

    done = await api.post(url, json={"note": "look-alike token"}, headers=auth(MAKER))
    assert (done.status, await done.json()) == (200, {"id": ids["mismatch"], "acknowledged": True})
    again = await api.post(url, headers=auth(MAKER))  # no body at all: still fine
    assert (await again.json())["already"] is True
    assert await audit_rows(db) == [("mara", "alert.ack", {"note": "look-alike token"})]
    row = await db.fetchrow("SELECT * FROM alerts WHERE id = $1", ids["mismatch"])
    assert (row["acknowledged_by"], row["acknowledged_note"]) == ("mara", "look-alike token")
    assert (await api.post("/v1/alerts/999999/ack", headers=auth(MAKER))).status == 404
    assert (await api.post("/v1/alerts/0/ack", headers=auth(MAKER))).status == 422


async def test_an_action_whose_audit_row_fails_changes_nothing(
    api: Client, db: asyncpg.Pool
) -> None:
    ids = await seed(db)
    # Make the audit insert fail: the acknowledgement must roll back with it.
    await db.execute(
        """CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'audit unavailable'; END; $$;
           CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log
               FOR EACH ROW EXECUTE FUNCTION refuse_audit();"""
    )
    failed = await api.post(f"/v1/alerts/{ids['mismatch']}/ack", headers=auth(MAKER))
    assert failed.status == 500
    assert await db.fetchval(
        "SELECT acknowledged_at IS NULL FROM alerts WHERE id = $1", ids["mismatch"]
    )
    failed = await api.post(f"/v1/outbox/{ids['parked']}/resend", headers=auth(MAKER))
    assert failed.status == 500
    assert await db.fetchval(
        "SELECT parked_at IS NOT NULL FROM ledger_outbox WHERE id = $1", ids["parked"]
    )


async def test_resend_only_a_parked_row_and_only_for_ops(api: Client, db: asyncpg.Pool) -> None:
    ids = await seed(db)
    listed = await (await api.get("/v1/outbox", headers=auth(VIEWER))).json()
    [parked] = listed["parked"]
    assert parked["id"] == ids["parked"]
    assert parked["response"] == {"error": {"code": "duplicate_deposit"}}
    assert "duplicate_deposit" in parked["last_error"]
    url = f"/v1/outbox/{ids['parked']}/resend"
    assert (await api.post(url, headers=auth(VIEWER))).status == 403
    done = await api.post(url, json={"note": "first credit reversed"}, headers=auth(MAKER))
    assert done.status == 200 and (await done.json())["due"] is True
    conflict = await api.post(url, headers=auth(MAKER))
    assert conflict.status == 409 and "not parked" in (await conflict.json())["error"]["message"]
    delivered = await db.fetchval(
        "SELECT min(id) FROM ledger_outbox WHERE delivered_at IS NOT NULL"
    )
    assert (await api.post(f"/v1/outbox/{delivered}/resend", headers=auth(MAKER))).status == 409
    assert (await api.post("/v1/outbox/424242/resend", headers=auth(MAKER))).status == 404
    [(actor, action, details)] = await audit_rows(db)
    assert (actor, action, details["note"]) == ("mara", "outbox.resend", "first credit reversed")


async def test_redeliver_and_the_audit_log_filters(api: Client, db: asyncpg.Pool) -> None:
    ids = await seed(db)
    for body in ({}, {"ids": []}, {"ids": ["1"]}, {"ids": [True]}, {"all": "yes"}):
        bad = await api.post("/v1/alerts/redeliver", json=body, headers=auth(MAKER))
        assert bad.status == 422, body
    # The webhook refused it for good (parked): redelivering un-parks it, else it never goes.
    await db.execute(
        "UPDATE alerts SET parked_at = now(), next_attempt_at = 'infinity' WHERE id = $1",
        ids["mismatch"],
    )
    done = await api.post(
        "/v1/alerts/redeliver", json={"ids": [ids["mismatch"]]}, headers=auth(MAKER)
    )
    assert await done.json() == {"due": 1}
    assert await db.fetchval(
        "SELECT parked_at IS NULL AND next_attempt_at <= now() FROM alerts WHERE id = $1",
        ids["mismatch"],
    )
    await api.post(f"/v1/alerts/{ids['mismatch']}/ack", headers=auth(MAKER))
    entries = await (
        await api.get("/v1/audit", params={"actor": "mara"}, headers=auth(VIEWER))
    ).json()
    assert [e["action"] for e in entries["entries"]] == ["alert.ack", "alert.redeliver"]
    only = await (
        await api.get("/v1/audit", params={"action": "alert.ack"}, headers=auth(VIEWER))
    ).json()
    assert len(only["entries"]) == 1
    first = await (await api.get("/v1/audit", params={"limit": "1"}, headers=auth(VIEWER))).json()
    assert [e["action"] for e in first["entries"]] == ["alert.ack"]
    page = await (
        await api.get("/v1/audit", params={"after": first["next"]}, headers=auth(VIEWER))
    ).json()
    assert [e["action"] for e in page["entries"]] == ["alert.redeliver"]
    assert page["next"] is None
    later = await api.get(
        "/v1/audit", params={"since": "2999-01-01T00:00:00+00:00"}, headers=auth(VIEWER)
    )
    assert (await later.json())["entries"] == []
    naive = await api.get("/v1/audit", params={"since": "2026-01-01"}, headers=auth(VIEWER))
    assert naive.status == 422


async def test_the_console_is_not_served_without_a_session_key(api: Client) -> None:
    page = await api.get("/ops/alerts")
    assert page.status == 503 and "CHAINGATE_CONSOLE_SESSION_KEY" in await page.text()


def test_a_malformed_session_key_is_a_config_error() -> None:
    env = {"CHAINGATE_DATABASE_URL": "postgresql://x@127.0.0.1/x"}
    assert Settings.from_env(env).console_session_key is None
    key = Fernet.generate_key().decode()
    assert Settings.from_env(env | {"CHAINGATE_CONSOLE_SESSION_KEY": key}).console_session_key
    with pytest.raises(ConfigError, match="CHAINGATE_CONSOLE_SESSION_KEY: expected a Fernet"):
        Settings.from_env(env | {"CHAINGATE_CONSOLE_SESSION_KEY": "hunter2"})


@pytest.mark.parametrize("tls", [True, False])
async def test_the_session_cookie_is_secure_exactly_when_served_over_tls(tls: bool) -> None:
    import ssl

    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from chaingate.console.security import COOKIE, security_headers

    async def handler(_: web.Request) -> web.StreamResponse:
        response = web.Response(text="ok")
        response.set_cookie(COOKIE, "sealed", httponly=True, samesite="Strict")
        return response

    context = ssl.create_default_context() if tls else None
    request = make_mocked_request("GET", "/ops/login", sslcontext=context)
    response = await security_headers(request, handler)
    assert bool(response.cookies[COOKIE]["secure"]) is tls
    assert response.headers["X-Frame-Options"] == "DENY"
