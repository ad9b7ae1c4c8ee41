"""A withdrawal desk for tests: the service API over real HTTP on a real database, the
reference ledger over real HTTP fed by the outbox dispatcher, and one token per role."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from chaingate.api import ApiContext, build_app
from chaingate.chains.registry import address_codec
from chaingate.ledger.client import LedgerClient
from chaingate.ledger.dispatcher import OutboxDispatcher
from chaingate.settings import Principal
from harness import LEDGER_SECRET, SERVICE_TOKEN, TOKENS, devnet_network

SEAL_KEY = b"test-approval-seal-key-0123456789abcdef"
ETH = "ethereum-devnet"
# anvil's well-known accounts: valid EIP-55 destinations.
DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
DEST2 = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
ETHER = 10**18


def token(name: str) -> str:
    return f"test-{name}-token-00000000001"


PRINCIPALS = {
    "service": ("ledger-service", {"service", "viewer"}),
    "viewer": ("auditor", {"viewer"}),
    "maker": ("mia", {"ops_maker"}),
    "alice": ("alice", {"ops_approver"}),
    "bob": ("bob", {"ops_approver"}),
    "carol": ("carol", {"ops_approver"}),
    "mo": ("mo", {"ops_maker", "ops_approver"}),  # a maker who may also approve others' batches
}
ALL_TOKENS = {
    **TOKENS,
    **{token(k): Principal(name, frozenset(roles)) for k, (name, roles) in PRINCIPALS.items()},
}


@dataclasses.dataclass
class Desk:
    api: TestClient[Any, Any]
    db: asyncpg.Pool
    ledger: LedgerClient
    dispatcher: OutboxDispatcher

    async def call(
        self, method: str, path: str, who: str, body: Any = None, **params: str
    ) -> tuple[int, Any]:
        bearer = SERVICE_TOKEN if who == "service" else token(who)
        resp = await self.api.request(
            method,
            path,
            json=body,
            params=params or None,
            headers={"Authorization": f"Bearer {bearer}"},
        )
        return resp.status, await resp.json()

    async def withdraw(self, user: str, amount: int, /, **changes: Any) -> tuple[int, Any]:
        body = {
            "request_id": f"req-{uuid.uuid4().hex[:12]}",
            "user_id": user,
            "network": ETH,
            "asset": "ETH",
            "to_address": DEST,
            "amount": str(amount),
            **changes,
        }
        return await self.call("POST", "/v1/withdrawals", "service", body)

    async def make_batch(self, asset: str = "ETH", who: str = "maker") -> dict[str, Any]:
        status, batch = await self.call(
            "POST", "/v1/batches", who, {"network": ETH, "asset": asset}
        )
        assert status == 201, batch
        return dict(batch)

    async def approve(self, batch: dict[str, Any], who: str) -> tuple[int, Any]:
        return await self.call(
            "POST",
            f"/v1/batches/{batch['id']}/approvals",
            who,
            {"content_hash": batch["content_hash"]},
        )

    async def deliver(self) -> None:
        """Deliver everything deliverable to the ledger."""
        while await self.dispatcher.dispatch_once():
            pass

    async def fund(self, user: str, amount: int, asset: str = "ETH") -> None:
        await self.ledger.post(
            "/credits",
            {
                "idempotency_key": f"credit-{uuid.uuid4().hex}",
                "user_id": user,
                "network": ETH,
                "asset": asset,
                "amount": str(amount),
                "decimals": 18,
                "txid": "0x" + uuid.uuid4().hex * 2,
                "position": "native",
                "block_number": 1,
            },
        )

    async def books(self, user: str, asset: str = "ETH") -> tuple[int, int]:
        """(balance, held) of ``user`` at the reference ledger."""
        answer = await self.ledger.get("/balances", {"user_id": user})
        for b in answer["balances"]:
            if (b["network"], b["asset"]) == (ETH, asset):
                return int(b["amount"]), int(b["held"])
        return 0, 0

    async def statuses(self, *ids: int) -> list[str]:
        rows = await self.db.fetch(
            "SELECT status FROM withdrawals WHERE id = ANY($1::bigint[]) ORDER BY id", list(ids)
        )
        return [r["status"] for r in rows]


@asynccontextmanager
async def desk(db: asyncpg.Pool, ledger_url: str, quorum: int = 2) -> AsyncIterator[Desk]:
    networks = {
        n.name: n
        for n in (
            devnet_network(name, "http://127.0.0.1:1")
            for name in (ETH, "bsc-devnet", "bitcoin-devnet", "tron-devnet")
        )
    }
    ctx = ApiContext(
        db=db,
        networks=networks,
        codecs={name: address_codec(n) for name, n in networks.items()},
        tokens=ALL_TOKENS,
        approval_quorum=quorum,
        seal_key=SEAL_KEY,
    )
    async with (
        TestClient(TestServer(build_app(ctx))) as api,
        LedgerClient(ledger_url, LEDGER_SECRET) as ledger,
    ):
        dispatcher = OutboxDispatcher(db, ledger, base_backoff=0.05, retry_wait=0.01)
        yield Desk(api, db, ledger, dispatcher)
