"""The signer's Bitcoin path: ONE transaction per approved batch, its coins locked as it is stored.

After the batch passed every check of ``signer/checks.py`` (seals, quorum, the content hash of
the outputs and fee cap, the registry, the withdrawals), the signer
1. builds the transaction itself from the plan (``domain/signing_plan.BitcoinPlan``): the
   batch's outputs in withdrawal order (each destination's script from its own registry copy),
   the plan's coins with scripts it derives from the hot wallet's key (a coin the key does not
   own is refused by ``sign_p2wpkh``), change to ITS derivation of the plan's change index (so
   change can only go to our own address), at the plan's fee rate, which must lie within the
   registry's floor and cap; the fee must stay under the approved fee cap;
2. takes the allocator lease of the hot wallet (``allocator:bitcoin:<network>``);
3. in ONE database transaction: checks the lease's fencing epoch and its own limits, inserts the
   signed bytes, locks every input to that row (``store.wallet.lock``: a coin locked to another
   transaction or spent rolls all of it back), records the change as our own unconfirmed coin,
   and completes the job. A crash before the commit leaves nothing; after it, only these bytes
   are ever broadcast, and no other transaction of ours can spend these coins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
import structlog

from chaingate.chains.bitcoin.addresses import BitcoinAddresses
from chaingate.chains.bitcoin.coinselect import Coin, InsufficientFunds
from chaingate.chains.bitcoin.rawtx import decode_tx
from chaingate.chains.bitcoin.txbuilder import (
    DEFAULT_INCREMENTAL_RELAY_FEE,
    BatchTx,
    FeeCapExceeded,
    TxOut,
    build_batch,
    estimate_vsize,
    fee_for,
)
from chaingate.domain import Network
from chaingate.domain.batch_content import BatchContent
from chaingate.domain.signing_plan import BitcoinPlan
from chaingate.errors import FencedOut, ValidationError
from chaingate.signer.bitcoin import SignedBitcoinTx, sign_p2wpkh
from chaingate.signer.checks import Refused, check_limits
from chaingate.signer.hotwallet import HotWallet, hot_wallet
from chaingate.store import leases, wallet
from chaingate.store.queue import Claim, LeasedQueue, backoff
from chaingate.store.signer import BatchMaterial, clear_plan, signed_in_last_day
from chaingate.store.wallet import CoinsTaken, WalletAddress

if TYPE_CHECKING:
    from chaingate.signer.service import Outcome, Signer

log = structlog.get_logger(__name__)
HOT_WALLET = "hot-wallet"  # withdrawal_txs.from_address of a Bitcoin batch


def allocator_lease_name(network: str) -> str:
    return f"allocator:bitcoin:{network}"


async def _record_tx(
    conn: asyncpg.Connection,
    batch_id: int,
    network: str,
    signed: SignedBitcoinTx,
    content: BatchContent,
    lease: leases.Lease,
) -> int:
    """The batch's signed transaction (the whole batch: no withdrawal of its own), under the
    allocator's epoch; its id."""
    return int(
        await conn.fetchval(
            """INSERT INTO withdrawal_txs (batch_id, withdrawal_id, network, from_address,
                                           raw_tx, txid, fee_cap, signer_epoch)
               VALUES ($1, NULL, $2, $3, $4, $5, $6, $7) RETURNING id""",
            batch_id,
            network,
            HOT_WALLET,
            signed.raw.hex(),
            signed.txid,
            content.fee_cap,
            lease.epoch,
        )
    )


def build_signed(
    content: BatchContent, network: Network, plan: BitcoinPlan, hot: HotWallet
) -> tuple[BatchTx, SignedBitcoinTx]:
    """The batch's one transaction from the plan, built and signed by the signer's own rules;
    ValidationError (replan) or FeeCapExceeded (alert) when the plan cannot make it."""
    if not network.min_fee_rate <= plan.fee_rate <= network.max_fee_rate:
        raise ValidationError(
            f"plan fee rate {plan.fee_rate} sat/kvB is outside the registry's "
            f"{network.min_fee_rate}..{network.max_fee_rate}"
        )
    codec = BitcoinAddresses(network)
    payments = [
        TxOut(o.amount, bytes.fromhex(codec.match_key(o.destination))) for o in content.outputs
    ]
    coins = [
        Coin(c.txid, c.vout, c.amount, hot.script(c.chain, c.index), c.chain, c.index, True)
        for c in plan.coins
    ]
    batch = build_batch(
        payments,
        (),
        change_script=hot.change_script(plan.change_index),
        fee_rate=plan.fee_rate,
        fee_cap=content.fee_cap,
        required=coins,
    )
    return batch, sign_p2wpkh(batch, hot.key)


async def sign_bitcoin_batch(
    signer: Signer,
    claim: Claim,
    material: BatchMaterial,
    content: BatchContent,
    network: Network,
) -> Outcome:
    from chaingate.signer.service import Outcome

    settings = signer.settings
    try:
        plan = BitcoinPlan.from_json(signer.fresh_plan(claim))
        hot = hot_wallet(network, settings.keys)
        batch, signed = build_signed(content, network, plan, hot)
    except FeeCapExceeded as exc:
        await signer._fee_cap_alert(claim, material, str(exc))
        return Outcome(claim.id, "deferred")
    except (InsufficientFunds, ValidationError) as exc:
        log.warning(
            "signer_plan_unusable", job_id=claim.id, batch_id=material.batch.id, error=str(exc)
        )
        async with signer.db.acquire() as conn:
            await clear_plan(conn, claim.id, claim.token)
        return Outcome(claim.id, "replanned")
    lease = await leases.acquire(
        signer.db, allocator_lease_name(network.name), signer.holder, settings.allocator_ttl
    )
    if lease is None:
        await signer._queue.defer([claim], 1.0)  # another signer allocates coins here
        return Outcome(claim.id, "deferred")
    try:
        async with signer.db.acquire() as conn, conn.transaction():
            check_limits(
                content,
                settings.limit(content.network, content.asset),
                await signed_in_last_day(conn, content.network, content.asset),
            )
            await leases.check(conn, lease)
            tx_id = await _record_tx(conn, material.batch.id, network.name, signed, content, lease)
            await wallet.lock(conn, network.name, batch.coins, tx_id, signed.txid)
            change = batch.change
            if change is not None and batch.change_index is not None:
                address = WalletAddress("hot", 1, plan.change_index, change.script.hex())
                await wallet.add_own_change(
                    conn, network.name, signed.txid, batch.change_index, change.amount, address
                )
            if not await signer._queue.complete(claim, conn=conn):
                raise FencedOut("the job's lease was lost")
    except Refused as exc:
        await signer.refuse(signer._queue, claim, material.batch.id, material, exc)
        return Outcome(claim.id, "refused")
    except CoinsTaken as exc:
        # A coin of the plan went to another batch meanwhile: plan again (nothing recorded).
        log.warning("signer_coins_taken", job_id=claim.id, error=str(exc))
        async with signer.db.acquire() as conn:
            await clear_plan(conn, claim.id, claim.token)
        return Outcome(claim.id, "replanned")
    except FencedOut as exc:
        log.warning("signer_fenced_out", job_id=claim.id, error=str(exc))
        return Outcome(claim.id, "deferred")
    finally:
        await leases.release(signer.db, lease)
    log.info(
        "batch_signed",
        batch_id=material.batch.id,
        network=network.name,
        txid=signed.txid,
        inputs=len(batch.coins),
        outputs=len(batch.tx.outputs),
        fee=batch.fee,
        vsize=signed.vsize,
        epoch=lease.epoch,
    )
    return Outcome(claim.id, "signed")


async def replace_bitcoin_batch(
    signer: Signer,
    queue: LeasedQueue,
    claim: Claim,
    old: asyncpg.Record,
    material: BatchMaterial,
    content: BatchContent,
    network: Network,
) -> Outcome:
    """Sign a BIP125 replacement of the batch's stuck transaction ``old``: the same payments
    (built from the approved content, as the first time), every input of ``old``, a higher fee
    and fee rate, within the approved fee cap. Recorded with the coins moved over to it in one
    transaction under the allocator lease."""
    from chaingate.signer.service import Outcome

    try:
        plan = BitcoinPlan.from_json(signer.fresh_plan(claim))
        hot = hot_wallet(network, signer.settings.keys)
        batch, signed = build_signed(content, network, plan, hot)
        previous = decode_tx(bytes.fromhex(old["raw_tx"]))
        amounts = {(c.txid, c.vout): c.amount for c in plan.coins}
        if not set(previous.spends) <= set(amounts):
            raise ValidationError("a replacement must spend every input of the original")
        old_fee = sum(amounts[s] for s in previous.spends) - sum(o.sats for o in previous.outputs)
        old_vsize = estimate_vsize(
            len(previous.spends), [bytes.fromhex(o.script) for o in previous.outputs]
        )
        incremental = plan.incremental_rate or DEFAULT_INCREMENTAL_RELAY_FEE
        if batch.fee < old_fee + fee_for(signed.vsize, incremental) or (
            batch.fee * old_vsize <= old_fee * batch.vsize
        ):
            raise ValidationError(
                f"replacement fee {batch.fee} does not beat {old_fee} by the BIP125 rules"
            )
        check_limits(content, signer.settings.limit(content.network, content.asset), 0)
    except Refused as exc:
        await signer.refuse(queue, claim, material.batch.id, material, exc)
        return Outcome(claim.id, "refused")
    except (FeeCapExceeded, InsufficientFunds, ValidationError) as exc:
        await queue.fail(claim, str(exc), backoff(claim.attempts, 5.0, 300.0))
        log.warning("replacement_not_signed", tx_id=old["id"], error=str(exc))
        return Outcome(claim.id, "deferred")
    lease = await leases.acquire(
        signer.db,
        allocator_lease_name(network.name),
        signer.holder,
        signer.settings.allocator_ttl,
    )
    if lease is None:
        await queue.defer([claim], 1.0)
        return Outcome(claim.id, "deferred")
    try:
        async with signer.db.acquire() as conn, conn.transaction():
            await leases.check(conn, lease)
            stepped_aside = await conn.fetchval(
                """UPDATE withdrawal_txs SET status = 'replaced'
                    WHERE id = $1 AND replaced_by IS NULL AND done_at IS NULL
                      AND status IN ('signed', 'broadcast') RETURNING 1""",
                old["id"],
            )
            if stepped_aside is None:
                raise FencedOut("the stuck transaction is no longer live")
            new_id = await _record_tx(conn, material.batch.id, network.name, signed, content, lease)
            await conn.execute(
                "UPDATE withdrawal_txs SET replaced_by = $2 WHERE id = $1", old["id"], new_id
            )
            # the original's coins move over to the replacement, new ones are locked to it
            await conn.execute(
                "UPDATE wallet_coins SET locked_by = $2 WHERE locked_by = $1", old["id"], new_id
            )
            await wallet.lock(conn, network.name, batch.coins, new_id, signed.txid)
            await wallet.conflict_own_change(conn, network.name, old["txid"], signed.txid)
            change = batch.change
            if change is not None and batch.change_index is not None:
                address = WalletAddress("hot", 1, plan.change_index, change.script.hex())
                await wallet.add_own_change(
                    conn, network.name, signed.txid, batch.change_index, change.amount, address
                )
            if not await queue.complete(claim, conn=conn):
                raise FencedOut("the replacement request was claimed by another signer")
    except (FencedOut, CoinsTaken) as exc:
        log.warning("replacement_not_recorded", tx_id=old["id"], error=str(exc))
        return Outcome(claim.id, "deferred")
    finally:
        await leases.release(signer.db, lease)
    log.info(
        "withdrawal_tx_replaced",
        network=network.name,
        old_txid=old["txid"],
        txid=signed.txid,
        old_fee=old_fee,
        fee=batch.fee,
        fee_rate=batch.fee_rate,
    )
    return Outcome(claim.id, "signed")
