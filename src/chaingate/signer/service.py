"""``chaingate signer``: the key-holding process. It signs only jobs of approved batches.

One pass: claim planned jobs from ``signer_jobs`` (the leased queue), and for each
1. load what the database says about the batch and check it all again (``signer/checks.py``):
   seals, quorum, the content hash recomputed from the outputs to be signed, the registry, the
   signer's own limits. A failure parks the job with a critical alert, and nothing is signed;
2. take the allocator lease of the hot address (``allocator:evm:<network>:<address>``; another
   signer holding it means: try the job again shortly);
3. in ONE database transaction: check the lease's fencing epoch, allocate the nonces after the
   last one recorded (or the chain's pending nonce when that is higher: someone else used the
   key, which is alerted), sign one transaction per output, insert the signed bytes, and
   complete the job with its lease token. A deposed allocator or a lost job lease rolls all of
   it back, so two signers (or a restarted one) never record two transactions at one nonce.

A crash anywhere before the commit leaves nothing behind: the job's lease runs out and the job
is signed again, from scratch, with the same nonces.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from chaingate import crashpoints
from chaingate.chains.evm.txbuilder import (
    DEFAULT_GAS_MARGIN_PERCENT,
    EvmTransfer,
    FeeCapError,
    FeeQuote,
    choose_fees,
    gas_limit,
    unsigned_transaction,
)
from chaingate.delivery import run_passes
from chaingate.domain import AlertKind, AlertSeverity, Network, NetworkKind, NewAlert
from chaingate.domain.batch_content import BatchContent
from chaingate.domain.signing_plan import EvmPlan, TronPlan
from chaingate.errors import ChaingateError, FencedOut, ValidationError
from chaingate.signer.checks import Refused, check_limits, verify_batch
from chaingate.signer.config import SignerSettings
from chaingate.signer.evm import sign_evm
from chaingate.signer.keystore import HotKey
from chaingate.signer.tron import HotWalletShort, tron_rows
from chaingate.store import leases
from chaingate.store.alerts import raise_alert
from chaingate.store.batches import unheld
from chaingate.store.queue import Claim, LeasedQueue, backoff, worker_name
from chaingate.store.signer import (
    SIGNER_JOBS,
    BatchMaterial,
    SignedRow,
    clear_plan,
    insert_signed,
    load_batch,
    nonce_state,
    plan_of,
    signed_in_last_day,
)

log = structlog.get_logger(__name__)
_SIGNABLE = frozenset({"approved", "signing"})
_FAMILIES = frozenset(
    {NetworkKind.EVM, NetworkKind.TRON, NetworkKind.BITCOIN}
)  # the families the signer signs for
# A replacement re-signs a withdrawal of a batch that is already out.
REPLACEABLE = frozenset({"signing", "signed", "broadcast"})


class _LeaseLost(Exception):
    """The job's lease token no longer matches: another signer owns the job now."""


@dataclass(frozen=True, slots=True)
class Outcome:
    job_id: int
    result: str  # signed | refused | deferred | replanned | done_already


def allocator_lease_name(network: str, address: str, family: str = "evm") -> str:
    # TRON's base58 addresses are case-sensitive: only hex (EVM) addresses are folded
    shown = address.lower() if family == "evm" else address
    return f"allocator:{family}:{network}:{shown}"


class Signer:
    def __init__(self, db: asyncpg.Pool, settings: SignerSettings, *, holder: str | None = None):
        self._db = self.db = db
        self._settings = self.settings = settings
        self.holder = holder or worker_name("signer")
        self._queue = LeasedQueue(
            db, SIGNER_JOBS, holder=self.holder, lease_seconds=settings.lease_seconds
        )

    async def run(self, stop: asyncio.Event) -> None:
        await run_passes(
            self._pass, stop, interval=self._settings.poll_interval, batch_size=1, event="signer"
        )

    async def _pass(self) -> int:
        from chaingate.signer.replacements import replace_once

        return len(await self.sign_once()) + len(await replace_once(self))

    async def sign_once(self, limit: int = 1) -> list[Outcome]:
        """Claim up to ``limit`` planned jobs and work each; what became of them."""
        claims = await self._queue.claim(limit)
        outcomes = []
        async with self._queue.keep_alive(claims):
            for claim in claims:
                try:
                    outcomes.append(await self._work(claim))
                except ChaingateError as exc:
                    # Nothing was recorded (the write is one transaction): try again later.
                    log.error("signer_job_error", job_id=claim.id, error=str(exc)[:300])
                    await self._queue.fail(claim, str(exc), backoff(claim.attempts, 2.0, 300.0))
                    outcomes.append(Outcome(claim.id, "deferred"))
        return outcomes

    async def _work(self, claim: Claim) -> Outcome:
        batch_id = int(claim.record["batch_id"])
        async with self._db.acquire() as conn:
            material = await load_batch(conn, batch_id)
        if material is None:
            await self.refuse(
                self._queue, claim, batch_id, None, Refused("no_batch", f"batch {batch_id} is gone")
            )
            return Outcome(claim.id, "refused")
        if material.signed_txs:
            # Recorded by an earlier run whose completion was lost: never sign twice.
            await self._queue.complete(claim)
            return Outcome(claim.id, "done_already")
        async with self._db.acquire() as conn:
            waiting = await unheld(conn, [o.withdrawal_id for o in material.outputs])
        if waiting:
            # The ledger has not acknowledged holding these funds yet (or refused, and the
            # withdrawal is being cancelled): nothing is signed before it has.
            await self._queue.defer([claim], 2.0)
            log.info("signer_waits_for_ledger_holds", batch_id=batch_id, withdrawals=waiting[:10])
            return Outcome(claim.id, "deferred")
        try:
            content, network = self.verify(material, _SIGNABLE)
            if network.kind is NetworkKind.BITCOIN:
                from chaingate.signer.bitcoin_job import sign_bitcoin_batch

                return await sign_bitcoin_batch(self, claim, material, content, network)
            plan = self.plan_of(claim, network)
        except Refused as exc:
            await self.refuse(self._queue, claim, batch_id, material, exc)
            return Outcome(claim.id, "refused")
        except ValidationError as exc:
            log.warning("signer_plan_unusable", job_id=claim.id, batch_id=batch_id, error=str(exc))
            async with self._db.acquire() as conn:
                await clear_plan(conn, claim.id, claim.token)
            return Outcome(claim.id, "replanned")
        return await self._sign(claim, material, content, network, plan)

    def verify(
        self, material: BatchMaterial, statuses: frozenset[str]
    ) -> tuple[BatchContent, Network]:
        """Every check of ``signer/checks.py`` on what the database says about a batch."""
        batch = material.batch
        if batch.status not in statuses:
            raise Refused("status", f"batch {batch.id} is {batch.status}, not approved")
        network = self._settings.networks.get(batch.network)
        if network is None or network.kind not in _FAMILIES:
            raise Refused(
                "unknown_network", f"batch {batch.id}: the signer serves no {batch.network}"
            )
        content = verify_batch(
            batch,
            material.outputs,
            material.withdrawals,
            material.approvals,
            network=network,
            seal_key=self._settings.seal_key,
            quorum=self._settings.quorum,
        )
        return content, network

    def plan_of(
        self, claim: Claim, network: Network, sender: str | None = None
    ) -> EvmPlan | TronPlan:
        """The claimed plan, fresh and for ``sender`` (default: the registry's hot address)."""
        data = self.fresh_plan(claim)
        expected = sender or network.hot_address
        if network.kind is NetworkKind.TRON:
            tron = TronPlan.from_json(data)
            if expected is None or tron.from_address != expected:
                raise ValidationError("the plan names another address than the one that signs")
            return tron
        plan = EvmPlan.from_json(data)
        if expected is None or plan.from_address != expected.lower():
            raise ValidationError("the plan names another address than the one that signs")
        return plan

    def fresh_plan(self, claim: Claim) -> dict[str, Any]:
        """The claimed job's plan as stored; ValidationError when there is none or it is old."""
        planned_at = claim.record["planned_at"]
        age = (datetime.now(UTC) - planned_at).total_seconds() if planned_at else None
        if age is None or age > self._settings.plan_max_age:
            raise ValidationError("the plan is stale (fees move): the planner makes a new one")
        return plan_of(claim.record)

    async def _sign(
        self,
        claim: Claim,
        material: BatchMaterial,
        content: BatchContent,
        network: Network,
        plan: EvmPlan | TronPlan,
    ) -> Outcome:
        assert network.hot_address is not None
        key = self._settings.keys.key_for(network.hot_address)
        name = allocator_lease_name(network.name, network.hot_address, network.kind.value)
        lease = await leases.acquire(self._db, name, self.holder, self._settings.allocator_ttl)
        if lease is None:
            await self._queue.defer([claim], 1.0)  # another signer allocates for this address
            return Outcome(claim.id, "deferred")
        try:
            async with self._db.acquire() as conn, conn.transaction():
                check_limits(
                    content,
                    self._settings.limit(content.network, content.asset),
                    await signed_in_last_day(conn, content.network, content.asset),
                )
                await leases.check(conn, lease)
                if isinstance(plan, TronPlan):
                    rows = tron_rows(material.batch.id, content, network, plan, key, lease.epoch)
                else:
                    rows = await self._allocate_and_sign(
                        conn, material.batch.id, content, network, plan, key, lease
                    )
                crashpoints.crash_point(crashpoints.SIGNED_BEFORE_RECORD)
                await insert_signed(conn, rows)
                if not await self._queue.complete(claim, conn=conn):
                    raise _LeaseLost
            crashpoints.crash_point(crashpoints.RECORDED_BEFORE_RELEASE)
        except Refused as exc:
            await self.refuse(self._queue, claim, material.batch.id, material, exc)
            return Outcome(claim.id, "refused")
        except FeeCapError as exc:
            await self._fee_cap_alert(claim, material, str(exc))
            return Outcome(claim.id, "deferred")
        except HotWalletShort as exc:
            await self._fee_cap_alert(claim, material, str(exc), AlertKind.HOT_WALLET_SHORT)
            return Outcome(claim.id, "deferred")
        except (FencedOut, _LeaseLost) as exc:
            log.warning("signer_fenced_out", job_id=claim.id, error=type(exc).__name__)
            return Outcome(claim.id, "deferred")
        except asyncpg.UniqueViolationError as exc:
            # The database's last line (one live transaction per nonce and address): another
            # allocator recorded this nonce, which the lease should have made impossible.
            log.error("signer_nonce_taken", job_id=claim.id, constraint=exc.constraint_name)
            return Outcome(claim.id, "deferred")
        finally:
            await leases.release(self._db, lease)
        log.info(
            "batch_signed",
            batch_id=material.batch.id,
            network=network.name,
            txs=len(rows),
            first_nonce=rows[0].nonce,
            expiration_ms=rows[0].expiration_ms,
            epoch=lease.epoch,
        )
        return Outcome(claim.id, "signed")

    async def _allocate_and_sign(  # EVM: nonces after the last recorded one
        self,
        conn: asyncpg.Connection,
        batch_id: int,
        content: BatchContent,
        network: Network,
        plan: EvmPlan,
        key: HotKey,
        lease: leases.Lease,
    ) -> list[SignedRow]:
        assert network.hot_address is not None and network.chain_id is not None
        state = await nonce_state(conn, network.name, network.hot_address)
        if state.holes:
            await self.alert(
                conn,
                AlertKind.NONCE_GAP,
                f"{network.name} {network.hot_address}: recorded nonces have holes "
                f"{list(state.holes)}; transactions after them cannot be mined",
                f"nonce_gap:{network.name}:{network.hot_address}:{state.holes[0]}",
                network.name,
            )
        first = plan.chain_nonce if state.next_nonce is None else state.next_nonce
        if state.next_nonce is not None and plan.chain_nonce > state.next_nonce:
            # The chain counts more transactions from the hot address than we recorded: the key
            # was used outside chaingate. Continue after them, loudly.
            await self.alert(
                conn,
                AlertKind.HOT_KEY_USED_ELSEWHERE,
                f"{network.name} {network.hot_address}: the chain's pending nonce "
                f"{plan.chain_nonce} is above the next recorded {state.next_nonce}",
                f"hot_key_used_elsewhere:{network.name}:{plan.chain_nonce}",
                network.name,
            )
            first = plan.chain_nonce
        quote = FeeQuote(plan.next_base_fee, plan.recent_tips)
        rows = []
        for index, output in enumerate(content.outputs):
            gas = gas_limit(
                plan.gas.get(output.withdrawal_id), content.contract, DEFAULT_GAS_MARGIN_PERCENT
            )
            fees = choose_fees(quote, cap=content.fee_cap // gas)
            transfer = EvmTransfer(
                chain_id=network.chain_id,
                nonce=first + index,
                to=output.destination,
                amount=output.amount,
                contract=content.contract,
                gas=gas,
                fees=fees,
            )
            signed = sign_evm(unsigned_transaction(transfer), key)
            rows.append(
                SignedRow(
                    batch_id=batch_id,
                    withdrawal_id=output.withdrawal_id,
                    network=network.name,
                    from_address=network.hot_address,
                    nonce=transfer.nonce,
                    raw_tx=signed.raw.hex(),
                    txid=signed.txid,
                    fee_cap=content.fee_cap,
                    max_fee_per_gas=fees.max_fee_per_gas,
                    max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
                    gas_limit=gas,
                    signer_epoch=lease.epoch,
                )
            )
        return rows

    async def refuse(
        self,
        queue: LeasedQueue,
        claim: Claim,
        batch_id: int,
        material: BatchMaterial | None,
        exc: Refused,
    ) -> None:
        """Park the job (or replacement) with a critical alert; nothing is signed."""
        batch = material.batch if material else None
        async with self._db.acquire() as conn, conn.transaction():
            if not await queue.park(claim, f"{exc.reason}: {exc}", conn=conn):
                return
            await raise_alert(
                conn,
                NewAlert(
                    kind=AlertKind.SIGNER_REFUSED,
                    severity=AlertSeverity.CRITICAL,
                    network=batch.network if batch else None,
                    asset=batch.asset if batch else None,
                    message=f"the signer refused batch {batch_id}: {exc}"[:2000],
                    details={"batch_id": batch_id, "reason": exc.reason},
                    dedup_key=f"signer_refused:{batch_id}:{exc.reason}",
                ),
            )
        log.error("signer_refused", claim_id=claim.id, batch_id=batch_id, reason=exc.reason)

    async def _fee_cap_alert(
        self,
        claim: Claim,
        material: BatchMaterial,
        error: str,
        kind: AlertKind = AlertKind.FEE_CAP_TOO_LOW,
    ) -> None:
        retry_in = backoff(claim.attempts, 5.0, 300.0)
        await self._queue.fail(claim, error, retry_in)
        async with self._db.acquire() as conn:
            await self.alert(
                conn,
                kind,
                f"batch {material.batch.id}: {error}; retried in {retry_in:.0f} s",
                f"{kind}:{material.batch.id}",
                material.batch.network,
                severity=AlertSeverity.WARNING,
            )

    async def alert(
        self,
        conn: asyncpg.Connection,
        kind: AlertKind,
        message: str,
        dedup_key: str,
        network: str,
        severity: AlertSeverity = AlertSeverity.CRITICAL,
    ) -> None:
        await raise_alert(
            conn,
            NewAlert(
                kind=kind, severity=severity, message=message, dedup_key=dedup_key, network=network
            ),
        )
        log.error(kind, network=network, message=message)
