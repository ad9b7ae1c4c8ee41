"""Approved batches for signer tests, written to the database with real seals.

Stands in for the withdrawal API (w-core's half of issue 10) where a test is about the signer
alone: the rows and seals are exactly what the API writes (domain/approvals.py,
domain/batch_content.py); the end-to-end tests go through the API itself.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from chaingate.domain import Network
from chaingate.domain.approvals import Act, seal, seal_approval
from chaingate.domain.batch_content import CONTENT_HASH_VERSION, BatchContent, BatchOutput
from chaingate.domain.batch_content import content_hash as hash_of
from chaingate.domain.signing_plan import EvmPlan
from chaingate.ledger.messages import withdrawal_event_key
from chaingate.registry import load_registry
from chaingate.settings import PROJECT_ROOT
from chaingate.signer.checks import SignerLimit
from chaingate.signer.config import SignerSettings
from chaingate.signer.keystore import KeyRing, hot_key

SEAL_KEY = b"signer-test-seal-key-0123456789abcdef"
# anvil's account 9 of "test test ... junk": the devnet hot address in the registry.
HOT_KEY = bytes.fromhex("2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6")
HOT_ADDRESS = "0xa0ee7a142d267c1f36714e4a8f75612f20a79720"
ETH = 10**18
GWEI = 10**9


def devnet_networks(chains: Path | None = None) -> dict[str, Network]:
    return load_registry(chains or PROJECT_ROOT / "chains" / "devnet", {}, None)


def signer_settings(
    database_url: str,
    networks: dict[str, Network] | None = None,
    *,
    per_transaction: int = 50 * ETH,
    per_day: int = 500 * ETH,
    **overrides: object,
) -> SignerSettings:
    nets = networks or devnet_networks()
    limits = {
        ("ethereum-devnet", "ETH"): SignerLimit(per_transaction, per_day),
        ("ethereum-devnet", "NEXO"): SignerLimit(per_transaction * 1000, per_day * 1000),
    }
    return SignerSettings(
        database_url=database_url,
        networks=nets,
        keys=KeyRing([hot_key(HOT_KEY)]),
        seal_key=SEAL_KEY,
        quorum=2,
        limits=limits,
        **overrides,  # type: ignore[arg-type]
    )


def plan_for(
    outputs: Sequence[tuple[int, str, int]], *, chain_nonce: int = 0, token: bool = False
) -> EvmPlan:
    return EvmPlan(
        from_address=HOT_ADDRESS,
        chain_nonce=chain_nonce,
        next_base_fee=1 * GWEI,
        recent_tips=(1 * GWEI,),
        gas={wid: 60_000 for wid, _, _ in outputs} if token else {},
    )


async def approved_batch(
    db: asyncpg.Pool,
    network: Network,
    asset_symbol: str,
    amounts: Sequence[tuple[str, int]],
    *,
    approvers: Sequence[str] = ("alice", "bob"),
    maker: str = "mallory-maker",
    plan: bool = True,
    chain_nonce: int = 0,
    held: bool = True,
) -> int:
    """An approved batch of ``amounts`` (destination, amount) with its signer job; its id."""
    asset = network.asset(asset_symbol)
    assert asset.withdrawal_limits is not None
    fee_cap = asset.withdrawal_limits.fee_cap
    now = datetime.now(UTC)
    async with db.acquire() as conn, conn.transaction():
        batch_id = await conn.fetchval(
            """INSERT INTO batches (network, asset, chain_id, contract, decimals, fee_cap, total,
                                    output_count, content_hash, content_version, maker, made_at,
                                    maker_seal, status)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $10, $11, '', 'approved')
               RETURNING id""",
            network.name,
            asset.symbol,
            network.chain_id,
            asset.contract,
            asset.decimals,
            fee_cap,
            sum(a for _, a in amounts),
            len(amounts),
            CONTENT_HASH_VERSION,
            maker,
            now,
        )
        outputs = []
        for destination, amount in amounts:
            wid = await conn.fetchval(
                """INSERT INTO withdrawals (request_id, request_hash, user_id, network, asset,
                                            destination, amount, status, batch_id, requested_by)
                   VALUES ($1, 'h', 'user-1', $2, $3, $4, $5, 'approved', $6, 'ledger-service')
                   RETURNING id""",
                uuid.uuid4().hex,
                network.name,
                asset.symbol,
                destination,
                amount,
                batch_id,
            )
            outputs.append(BatchOutput(wid, destination, amount))
            if held:  # the ledger acknowledged holding the funds (its event was delivered)
                await conn.execute(
                    """INSERT INTO ledger_outbox (idempotency_key, kind, payload, delivered_at)
                       VALUES ($1, 'withdrawal_event', '{}'::jsonb, now())""",
                    withdrawal_event_key(wid, "requested"),
                )
            await conn.execute(
                "INSERT INTO batch_outputs (batch_id, withdrawal_id, destination, amount)"
                " VALUES ($1, $2, $3, $4)",
                batch_id,
                wid,
                destination,
                amount,
            )
        content = BatchContent.of(
            network=network.name,
            chain_id=network.chain_id,
            asset=asset.symbol,
            contract=asset.contract,
            decimals=asset.decimals,
            outputs=outputs,
            fee_cap=fee_cap,
        )
        digest = hash_of(content)
        await conn.execute(
            "UPDATE batches SET content_hash = $2, maker_seal = $3 WHERE id = $1",
            batch_id,
            digest,
            seal(SEAL_KEY, Act.MAKE, batch_id, digest, maker, now),
        )
        for principal in approvers:
            approval = seal_approval(SEAL_KEY, batch_id, digest, principal, now)
            await conn.execute(
                "INSERT INTO approvals (batch_id, content_hash, principal, approved_at, seal)"
                " VALUES ($1, $2, $3, $4, $5)",
                batch_id,
                digest,
                principal,
                now,
                approval.seal,
            )
        triples = [(o.withdrawal_id, o.destination, o.amount) for o in outputs]
        job_plan = plan_for(triples, chain_nonce=chain_nonce, token=asset.contract is not None)
        await conn.execute(
            "INSERT INTO signer_jobs (batch_id, plan, planned_at) VALUES ($1, $2::text::jsonb, $3)",
            batch_id,
            json.dumps(job_plan.to_json()) if plan else None,
            now if plan else None,
        )
    return int(batch_id)
