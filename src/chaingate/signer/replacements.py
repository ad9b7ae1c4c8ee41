"""Same-nonce replacement of a stuck withdrawal transaction, signed by the signer.

The tracker asks (``signer_replacements``: the live transaction and fresh fee figures); the
signer checks the batch exactly as before it first signed (seals, quorum, content hash,
registry, its per-transaction limit), then signs the SAME transfer (recipient, amount, token,
gas, nonce) with fees raised by at least the nodes' replacement bump and still under the
approved fee cap. Under the allocator lease, in one transaction, the old row steps aside and
the new one is recorded; only then can the broadcaster send it. Whichever of the two is mined,
the withdrawal is paid once: they share the nonce.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import asyncpg
import structlog

from chaingate.chains.evm.txbuilder import (
    EvmTransfer,
    FeeCapError,
    FeeQuote,
    Fees,
    bump_fees,
    unsigned_transaction,
)
from chaingate.domain import NetworkKind
from chaingate.domain.batch_content import BatchContent, BatchOutput
from chaingate.domain.signing_plan import TronPlan
from chaingate.errors import FencedOut, KeystoreError, SignerError, ValidationError
from chaingate.signer.checks import Refused, check_limits
from chaingate.signer.evm import sign_evm
from chaingate.store import leases
from chaingate.store.queue import Claim, LeasedQueue, backoff
from chaingate.store.signer import (
    SIGNER_REPLACEMENTS,
    SignedRow,
    live_tx,
    load_batch,
    replace_tx,
)

if TYPE_CHECKING:
    from chaingate.signer.service import Outcome, Signer

log = structlog.get_logger(__name__)


def replacement_queue(signer: Signer) -> LeasedQueue:
    return LeasedQueue(
        signer.db,
        SIGNER_REPLACEMENTS,
        holder=signer.holder,
        lease_seconds=signer.settings.lease_seconds,
    )


async def replace_once(signer: Signer, limit: int = 1) -> list[Outcome]:
    queue = replacement_queue(signer)
    claims = await queue.claim(limit)
    async with queue.keep_alive(claims):
        return [await _replace(signer, queue, claim) for claim in claims]


async def _replace(signer: Signer, queue: LeasedQueue, claim: Claim) -> Outcome:
    from chaingate.signer.service import REPLACEABLE, Outcome, allocator_lease_name

    async with signer.db.acquire() as conn:
        old = await live_tx(conn, int(claim.record["tx_id"]))
        material = await load_batch(conn, old["batch_id"]) if old is not None else None
    if old is None or material is None:
        await queue.complete(claim)  # mined, failed or replaced meanwhile: nothing to do
        return Outcome(claim.id, "done_already")
    try:
        content, network = signer.verify(material, REPLACEABLE)
        if network.kind is NetworkKind.BITCOIN:
            from chaingate.signer.bitcoin_job import replace_bitcoin_batch

            return await replace_bitcoin_batch(
                signer, queue, claim, old, material, content, network
            )
        plan = signer.plan_of(claim, network, sender=str(old["from_address"]))
        [output] = [o for o in content.outputs if o.withdrawal_id == old["withdrawal_id"]]
        if isinstance(plan, TronPlan):
            return await _rebuild_tron(signer, queue, claim, old, content, output, plan)
        # The same withdrawal again: its per-transaction limit applies, the day's tally does not
        # count it a second time.
        check_limits(
            dataclasses.replace(content, outputs=(output,)),
            signer.settings.limit(content.network, content.asset),
            0,
        )
        gas = int(old["gas_limit"])
        fees = bump_fees(
            Fees(int(old["max_fee_per_gas"]), int(old["max_priority_fee_per_gas"])),
            FeeQuote(plan.next_base_fee, plan.recent_tips),
            cap=content.fee_cap // gas,
        )
    except Refused as exc:
        await signer.refuse(queue, claim, material.batch.id, material, exc)
        return Outcome(claim.id, "refused")
    except (FeeCapError, ValidationError) as exc:
        await queue.fail(claim, str(exc), backoff(claim.attempts, 5.0, 300.0))
        log.warning("replacement_not_signed", tx_id=old["id"], error=str(exc))
        return Outcome(claim.id, "deferred")
    assert network.chain_id is not None
    # The address that signed the stuck transaction, which after a key rotation is no longer
    # the registry's hot address: its nonce, its key, its allocator.
    sender = str(old["from_address"])
    try:
        key = signer.settings.keys.key_for(sender)
    except KeystoreError as exc:
        await queue.fail(claim, str(exc), backoff(claim.attempts, 30.0, 3600.0))
        log.error("replacement_key_missing", tx_id=old["id"], address=sender)
        return Outcome(claim.id, "deferred")
    transfer = EvmTransfer(
        chain_id=network.chain_id,
        nonce=int(old["nonce"]),
        to=output.destination,
        amount=output.amount,
        contract=content.contract,
        gas=gas,
        fees=fees,
    )
    name = allocator_lease_name(network.name, sender)
    lease = await leases.acquire(signer.db, name, signer.holder, signer.settings.allocator_ttl)
    if lease is None:
        await queue.defer([claim], 1.0)
        return Outcome(claim.id, "deferred")
    try:
        signed = sign_evm(unsigned_transaction(transfer), key)
        row = SignedRow(
            batch_id=material.batch.id,
            withdrawal_id=output.withdrawal_id,
            network=network.name,
            from_address=sender,
            nonce=transfer.nonce,
            raw_tx=signed.raw.hex(),
            txid=signed.txid,
            fee_cap=content.fee_cap,
            max_fee_per_gas=fees.max_fee_per_gas,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
            gas_limit=gas,
            signer_epoch=lease.epoch,
        )
        async with signer.db.acquire() as conn, conn.transaction():
            await leases.check(conn, lease)
            replaced = await replace_tx(conn, int(old["id"]), row)
            if not await queue.complete(claim, conn=conn):
                raise FencedOut("the replacement request was claimed by another signer")
    except FencedOut as exc:
        log.warning("replacement_fenced_out", tx_id=old["id"], error=str(exc))
        return Outcome(claim.id, "deferred")
    finally:
        await leases.release(signer.db, lease)
    log.info(
        "withdrawal_tx_replaced" if replaced else "replacement_not_needed",
        network=network.name,
        old_txid=old["txid"],
        txid=signed.txid,
        nonce=transfer.nonce,
        max_fee_per_gas=fees.max_fee_per_gas,
    )
    return Outcome(claim.id, "signed" if replaced else "done_already")


async def _rebuild_tron(
    signer: Signer,
    queue: LeasedQueue,
    claim: Claim,
    old: asyncpg.Record,
    content: BatchContent,
    output: BatchOutput,
    plan: TronPlan,
) -> Outcome:
    """TRON: a NEW transaction for a withdrawal whose transaction expired unmined (the tracker
    asks only once the solidified chain proves it dead). Its reference block must be newer than
    the old expiration, the evidence the signer can check itself; then, under the allocator
    lease and in one database transaction, the old row steps aside and the new one goes in."""
    from chaingate.signer.service import Outcome, allocator_lease_name
    from chaingate.signer.tron import tron_rows

    network = signer.settings.networks[content.network]
    async with signer.db.acquire() as conn:
        expiration = await conn.fetchval(
            "SELECT expiration_ms FROM withdrawal_txs WHERE id = $1", old["id"]
        )
    if expiration is None or plan.ref_timestamp <= int(expiration):
        await queue.fail(claim, "the old transaction is not provably expired", 5.0)
        return Outcome(claim.id, "deferred")
    sender = str(old["from_address"])
    key = signer.settings.keys.key_for(sender)
    name = allocator_lease_name(network.name, sender, network.kind.value)
    lease = await leases.acquire(signer.db, name, signer.holder, signer.settings.allocator_ttl)
    if lease is None:
        await queue.defer([claim], 1.0)
        return Outcome(claim.id, "deferred")
    try:
        one = dataclasses.replace(content, outputs=(output,))
        [row] = tron_rows(int(old["batch_id"]), one, network, plan, key, lease.epoch)
        async with signer.db.acquire() as conn, conn.transaction():
            await leases.check(conn, lease)
            rebuilt = await replace_tx(conn, int(old["id"]), row)
            if not await queue.complete(claim, conn=conn):
                raise FencedOut("the rebuild request was claimed by another signer")
    except FencedOut as exc:
        log.warning("rebuild_fenced_out", tx_id=old["id"], error=str(exc))
        return Outcome(claim.id, "deferred")
    except Refused as exc:  # the bytes do not say the approved output: nothing signed
        await signer.refuse(queue, claim, int(old["batch_id"]), None, exc)
        return Outcome(claim.id, "refused")
    except (FeeCapError, ValidationError, SignerError) as exc:
        await queue.fail(claim, str(exc), backoff(claim.attempts, 5.0, 300.0))
        log.warning("rebuild_not_signed", tx_id=old["id"], error=str(exc))
        return Outcome(claim.id, "deferred")
    finally:
        await leases.release(signer.db, lease)
    log.info(
        "tron_withdrawal_rebuilt" if rebuilt else "rebuild_not_needed",
        network=network.name,
        old_txid=old["txid"],
        txid=row.txid,
        expiration_ms=row.expiration_ms,
    )
    return Outcome(claim.id, "signed" if rebuilt else "done_already")
