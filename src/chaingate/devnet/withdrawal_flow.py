"""One withdrawal batch end to end through the service API, as the people involved do it.

For the demo and tests on a devnet where the gateway (``--roles api,watchers,dispatcher`` and
``broadcaster``) and ``chaingate signer`` already run: the ledger's service account requests
the withdrawals, a maker batches them, two approvers approve the content hash they read, and
the batch is followed until every withdrawal is final. Only the API is used (no database, no
keys), with a token per role.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from chaingate.errors import ChaingateError

FINAL = frozenset({"confirmed", "failed", "cancelled"})


class FlowError(ChaingateError):
    """Raised when the API refuses a step of the flow or the batch does not end in time."""


@dataclass(frozen=True, slots=True)
class FlowTokens:
    """Bearer tokens: the ledger's service account, a maker and two distinct approvers."""

    service: str
    maker: str
    approvers: tuple[str, str]


async def run_withdrawal_batch(
    api_url: str,
    tokens: FlowTokens,
    network: str,
    asset: str,
    outputs: Sequence[tuple[str, int]],
    *,
    user_id: str = "demo-user",
    timeout: float = 120.0,
) -> list[dict[str, Any]]:
    """Request ``outputs`` (destination, base units), batch, approve twice, and wait until each
    withdrawal is final; the withdrawals as the API shows them at the end."""
    async with aiohttp.ClientSession(base_url=api_url.rstrip("/") + "/") as http:

        async def call(token: str, method: str, path: str, body: Any = None) -> Any:
            headers = {"Authorization": f"Bearer {token}"}
            async with http.request(method, path, json=body, headers=headers) as resp:
                answer = await resp.json()
                if resp.status >= 300:
                    raise FlowError(f"{method} /{path}: HTTP {resp.status} {answer}")
                return answer

        ids = []
        for destination, amount in outputs:
            request = {
                "request_id": f"flow-{uuid.uuid4().hex}",
                "user_id": user_id,
                "network": network,
                "asset": asset,
                "to_address": destination,
                "amount": str(amount),
            }
            ids.append((await call(tokens.service, "POST", "v1/withdrawals", request))["id"])
        batch = await call(tokens.maker, "POST", "v1/batches", {"network": network, "asset": asset})
        missing = set(ids) - {o["withdrawal_id"] for o in batch["outputs"]}
        if missing:
            raise FlowError(f"batch {batch['id']} left out withdrawals {sorted(missing)}")
        for approver in tokens.approvers:
            await call(
                approver,
                "POST",
                f"v1/batches/{batch['id']}/approvals",
                {"content_hash": batch["content_hash"]},
            )
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            views = [await call(tokens.service, "GET", f"v1/withdrawals/{i}") for i in ids]
            if all(v["status"] in FINAL for v in views):
                return views
            if asyncio.get_running_loop().time() > deadline:
                states = {v["id"]: v["status"] for v in views}
                raise FlowError(f"batch {batch['id']} not final after {timeout:.0f} s: {states}")
            await asyncio.sleep(0.5)
