"""The ops command line over the API, end to end: a maker creates a batch and two approvers
approve it with `chaingate ops batches ...`, each in their own process with their own token;
the refusals come back as one clear line with the right exit status."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import pytest

from console_support import (
    ALICE,
    BOB,
    MAKER,
    VIEWER,
    Console,
    ops_cli,
    request_withdrawals,
    seed,
    serve_console,
)


@pytest.fixture(scope="module")
async def gateway(pg_admin_dsn: str) -> AsyncIterator[Console]:
    async with serve_console(pg_admin_dsn) as served:
        yield served


async def test_ops_cli_creates_and_approves_a_batch_through_the_api(gateway: Console) -> None:
    url = gateway.url
    withdrawals = await request_withdrawals(url, 3, "cli-batch")
    code, out = await ops_cli(url, MAKER, "withdrawals", "list", "--status", "requested")
    assert code == 0 and len(out.strip().splitlines()) == 1 + 3, out
    assert re.search(r"requested\s+ethereum-devnet\s+ETH\s+750000000000000000\s", out), out

    code, out = await ops_cli(
        url, MAKER, "batches", "create", "--network", "ethereum-devnet", "--asset", "ETH", "--json"
    )
    assert code == 0, out
    made = json.loads(out)
    batch_id, content_hash = made["id"], made["content_hash"]
    assert made["status"] == "pending_approval" and made["output_count"] == 3

    code, out = await ops_cli(url, VIEWER, "batches", "show", str(batch_id))
    assert code == 0 and f"content hash: {content_hash}" in out
    assert "1.500000000000000000" in out and "made by:      mara" in out
    assert len(re.findall(r"\sbatched\s*$", out, flags=re.MULTILINE)) == 3

    approve = ("batches", "approve", str(batch_id), "--content-hash")
    code, out = await ops_cli(url, MAKER, *approve, content_hash)
    assert code == 2 and "HTTP 403" in out and "ops_approver" in out  # a maker only makes
    code, out = await ops_cli(url, ALICE, *approve, content_hash)
    assert (code, out.strip()) == (0, f"batch {batch_id} approved; status pending_approval")
    code, out = await ops_cli(url, ALICE, *approve, content_hash)
    assert code == 1 and "already approved" in out and "HTTP 409" in out  # one vote each
    code, out = await ops_cli(url, BOB, *approve, "ab" * 32)
    assert code == 1 and "review the batch again" in out  # stale hash: nothing recorded
    code, out = await ops_cli(url, BOB, *approve, content_hash)
    assert (code, out.strip()) == (0, f"batch {batch_id} approved; status approved")

    code, out = await ops_cli(url, VIEWER, "batches", "list", "--status", "approved")
    assert code == 0 and re.search(rf"#{batch_id}\s+approved\s+ethereum-devnet\s+ETH\s+3\s", out)
    assert "2/2" in out
    code, out = await ops_cli(url, VIEWER, "withdrawals", "show", str(withdrawals[0]), "--json")
    assert code == 0 and json.loads(out)["status"] == "approved"
    assert (
        await gateway.db.fetchval("SELECT count(*) FROM signer_jobs WHERE batch_id = $1", batch_id)
        == 1
    )


async def seeded(gateway: Console) -> dict[str, int]:
    if not gateway.ids:
        gateway.ids.update(await seed(gateway.db))
    return gateway.ids


async def test_ops_cli_shows_every_network(gateway: Console) -> None:
    await seeded(gateway)
    code, out = await ops_cli(gateway.url, MAKER, "networks")
    assert code == 0, out
    eth = next(line for line in out.splitlines() if line.startswith("ethereum-devnet"))
    assert re.search(r"1293\s+1290\s+3\s+3.0\s+no\s+primary:ok\s+gw-1:4242:9f3a\s+3$", eth), eth
    assert "backup:DOWN" in out
    assert "public-rpc:WRONG-CHAIN" in out  # an endpoint of another chain says so


async def test_ops_cli_acknowledges_an_alert_and_resends_a_parked_row(gateway: Console) -> None:
    url, ids = gateway.url, await seeded(gateway)
    code, out = await ops_cli(url, VIEWER, "alerts", "list", "--severity", "critical")
    assert code == 0 and "network_mismatch" in out and "ledger_rejected" in out, out
    ack = ("alerts", "ack", str(ids["mismatch"]), "--note", "look-alike token; user told")
    code, out = await ops_cli(url, VIEWER, *ack)
    assert code == 2 and "HTTP 403" in out  # a viewer only looks
    code, out = await ops_cli(url, ALICE, *ack)
    assert code == 0, out
    code, out = await ops_cli(url, BOB, "alerts", "ack", str(ids["mismatch"]), "--note", "again")
    assert "already acknowledged" in out, out  # a repeat changes nothing (the note stays)
    code, out = await ops_cli(url, ALICE, "alerts", "ack", "424242", "--note", "x")
    assert code == 2 and "HTTP 404" in out, out
    row = await gateway.db.fetchrow(
        "SELECT acknowledged_by, acknowledged_note FROM alerts WHERE id = $1", ids["mismatch"]
    )
    assert tuple(row) == ("alice", "look-alike token; user told")

    code, out = await ops_cli(url, VIEWER, "outbox", "list", "--json")
    assert code == 0, out
    listed = json.loads(out)
    assert ids["parked"] in [r["id"] for r in listed["parked"]], listed
    resend = ("outbox", "resend", str(ids["parked"]), "--note", "first credit reversed")
    code, out = await ops_cli(url, MAKER, *resend)
    assert code == 0, out
    code, out = await ops_cli(url, MAKER, *resend)
    assert code == 1 and "HTTP 409" in out, out  # no longer parked
    audit = await gateway.db.fetch(
        "SELECT actor, action FROM audit_log WHERE action IN ('alert.ack', 'outbox.resend')"
        " ORDER BY id"
    )
    assert [tuple(r) for r in audit] == [("alice", "alert.ack"), ("mara", "outbox.resend")]


async def test_ops_cli_refusals_are_one_clear_line(gateway: Console) -> None:
    url = gateway.url
    code, out = await ops_cli(url, "not-a-known-token-00001", "alerts", "list")
    assert code == 2 and out.startswith("chaingate ops alerts list: unknown API token (HTTP 401")
    code, out = await ops_cli(
        url, MAKER, "batches", "create", "--network", "dogecoin", "--asset", "DOGE"
    )
    assert code == 2 and "unknown network 'dogecoin'" in out and "HTTP 422" in out
    code, out = await ops_cli(url, VIEWER, "batches", "reject", "1", "--reason", "x", "--fail")
    assert code == 2 and "HTTP 403" in out
    code, out = await ops_cli("http://127.0.0.1:9", MAKER, "batches", "list")
    assert code == 2 and "cannot reach the gateway API at 127.0.0.1:9" in out
    assert len(out.strip().splitlines()) == 1  # one line, no traceback
