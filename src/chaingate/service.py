"""``chaingate run``: the roles of one instance in one TaskGroup, stopped by a single event."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from contextlib import AsyncExitStack, suppress
from functools import partial
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from chaingate.alerting import AlertPusher, WebhookSink
from chaingate.alerting.endpoints import wrong_chain_alerts
from chaingate.api import ApiContext, build_app
from chaingate.api.accesslog import StructuredAccessLogger
from chaingate.api.issuance import open_address_history
from chaingate.api.server import ApiRunner
from chaingate.chains.base import ChainAdapter
from chaingate.chains.registry import address_codec, build_adapter, open_pool
from chaingate.domain import NetworkKind
from chaingate.errors import ChaingateError, ConfigError
from chaingate.ledger.client import LedgerClient
from chaingate.ledger.dispatcher import OutboxDispatcher
from chaingate.metrics import ReconcileMetrics, WatcherMetrics
from chaingate.providers import EndpointPool
from chaingate.providers.metrics import ProviderMetrics
from chaingate.settings import Settings
from chaingate.store import connect_pool, leases
from chaingate.store.migrate import pending_migrations
from chaingate.watcher import Watcher
from chaingate.watcher.reconcile import reconciler_for
from chaingate.watcher.status import publish_status
from chaingate.watcher.supervisor import SupervisorMetrics, TaskStatus, supervise

log = structlog.get_logger(__name__)
ROLES = ("api", "watchers", "dispatcher", "broadcaster")


def parse_roles(text: str | None) -> list[str]:
    if not text:
        return list(ROLES)
    roles = [r.strip() for r in text.split(",") if r.strip()]
    for role in roles:
        if role not in ROLES:
            raise ConfigError(f"--roles: unknown role {role!r} (one of {', '.join(ROLES)})")
    return roles


async def run_service(settings: Settings, roles: Collection[str], stop: asyncio.Event) -> None:
    registry = CollectorRegistry()
    db = await connect_pool(settings.database_url, max_size=5 + 2 * len(settings.networks))
    try:
        async with db.acquire() as conn:
            missing = await pending_migrations(conn)
        if missing:
            raise ConfigError(
                f"database schema is behind ({', '.join(missing)}): run 'chaingate migrate'"
            )
        await _run_roles(settings, roles, stop, db, registry)
    except BaseExceptionGroup as group:
        # A role failed and the TaskGroup stopped the others: report the first failure we can
        # explain in one line (the CLI prints it), not a traceback of the whole group.
        known = group.subgroup(ChaingateError)
        if known is not None:
            raise _first(known) from group
        raise
    finally:
        await db.close()


async def _run_roles(
    settings: Settings,
    roles: Collection[str],
    stop: asyncio.Event,
    db: asyncpg.Pool,
    registry: CollectorRegistry,
) -> None:
    watcher_metrics = WatcherMetrics(registry)
    provider_metrics = ProviderMetrics(registry)
    reconcile_metrics = ReconcileMetrics(registry)
    async with AsyncExitStack() as stack:
        pools: dict[str, EndpointPool] = {}
        adapters: dict[str, ChainAdapter] = {}
        if "watchers" in roles:
            for network in settings.networks.values():
                pool = await stack.enter_async_context(
                    open_pool(network, provider_metrics, wrong_chain_alerts(db))
                )
                pools[network.name] = pool
                adapters[network.name] = build_adapter(network, pool)
        statuses: dict[str, TaskStatus] = {}
        supervisor_metrics = SupervisorMetrics(registry)
        instance = leases.new_holder_id()  # one id per process: the holder of its leases
        async with asyncio.TaskGroup() as tasks:

            def supervised(name: str, task: str, run: Callable[[], Awaitable[None]]) -> None:
                # Each network's tasks are contained: a crash restarts that task, nothing else.
                status = statuses.setdefault(f"{task}:{name}", TaskStatus())
                job = supervise(name, task, run, stop, status, metrics=supervisor_metrics)
                tasks.create_task(job, name=f"{task}:{name}")

            for name, adapter in adapters.items():
                watcher = Watcher(
                    adapter,
                    db,
                    metrics=watcher_metrics,
                    holder=instance,
                    lease_ttl=settings.watcher_lease_seconds,
                )
                supervised(name, "watcher", partial(watcher.run, stop))
                # Health tracking needs every endpoint's head, not just the one answering.
                supervised(name, "heads", partial(_probe_heads, pools[name], stop))
                # Head and endpoint health for GET /v1/networks, whichever process serves it.
                supervised(
                    name,
                    "status",
                    partial(
                        publish_status,
                        db,
                        name,
                        pools[name],
                        instance,
                        stop,
                        _status_interval(adapter),
                    ),
                )
                # The safety net for deposits the watcher cannot see (internal transfers without
                # tracing, validator withdrawals): None where the network is not reconciled.
                reconciler = reconciler_for(adapter, db, reconcile_metrics)
                if reconciler is not None:
                    supervised(name, "reconcile", partial(reconciler.run, stop))
            if "dispatcher" in roles:
                if not settings.ledger_url:
                    raise ConfigError("CHAINGATE_LEDGER_URL: required by the dispatcher role")
                client = await stack.enter_async_context(
                    LedgerClient(settings.ledger_url, settings.ledger_secret)
                )
                dispatcher = OutboxDispatcher(
                    db,
                    client,
                    registry=registry,
                    lease_seconds=settings.outbox_lease_seconds,
                    # Woken by the outbox's NOTIFY at commit; 0.5 s polling stays the backstop.
                    listen=partial(asyncpg.connect, settings.database_url),
                )
                tasks.create_task(dispatcher.run(stop, 0.5), name="dispatcher")
                await _start_alert_pusher(settings, db, registry, stack, tasks, stop)
            if "broadcaster" in roles:
                await _start_broadcasters(settings, db, pools, provider_metrics, stack, tasks, stop)
            if "api" in roles:
                tasks.create_task(
                    _serve_api(settings, db, registry, pools, statuses, stop), name="api"
                )
            log.info("service_started", roles=sorted(roles), networks=sorted(settings.networks))


async def _start_alert_pusher(
    settings: Settings,
    db: asyncpg.Pool,
    registry: CollectorRegistry,
    stack: AsyncExitStack,
    tasks: asyncio.TaskGroup,
    stop: asyncio.Event,
) -> None:
    """Push stored alerts to the webhook (part of the dispatcher role), when one is configured."""
    if not settings.alert_webhook_url:
        log.warning("alert_webhook_not_configured", hint="set CHAINGATE_ALERT_WEBHOOK_URL")
        return
    sink = await stack.enter_async_context(
        WebhookSink(settings.alert_webhook_url, settings.alert_webhook_secret)
    )
    pusher = AlertPusher(db, sink, registry=registry, lease_seconds=settings.outbox_lease_seconds)
    tasks.create_task(pusher.run(stop, 1.0), name="alert-pusher")


async def _start_broadcasters(
    settings: Settings,
    db: asyncpg.Pool,
    pools: dict[str, EndpointPool],
    metrics: ProviderMetrics,
    stack: AsyncExitStack,
    tasks: asyncio.TaskGroup,
    stop: asyncio.Event,
) -> None:
    """Plan, send and track withdrawals on every EVM or TRON network with a hot address and
    every Bitcoin network with a hot wallet (``hot_xpub``)."""
    from chaingate.chains.bitcoin.rpc import BitcoinRpc
    from chaingate.chains.evm.rpc import EvmRpc
    from chaingate.withdrawals.bitcoin_tracker import BitcoinBroadcaster
    from chaingate.withdrawals.broadcaster import Broadcaster
    from chaingate.withdrawals.tron import TronBroadcaster

    for network in settings.networks.values():
        if not network.has_hot_wallet:
            continue
        pool = pools.get(network.name)
        if pool is None:
            pool = await stack.enter_async_context(open_pool(network, metrics))
            pools[network.name] = pool
        lease = settings.outbox_lease_seconds
        broadcaster: Broadcaster = (
            TronBroadcaster(db, network, pool, lease_seconds=lease)
            if network.kind is NetworkKind.TRON
            else BitcoinBroadcaster(db, network, BitcoinRpc(pool), lease_seconds=lease)
            if network.kind is NetworkKind.BITCOIN
            else Broadcaster(db, network, EvmRpc(pool, network.name), lease_seconds=lease)
        )
        tasks.create_task(broadcaster.run(stop), name=f"broadcaster:{network.name}")


async def _serve_api(
    settings: Settings,
    db: asyncpg.Pool,
    registry: CollectorRegistry,
    pools: dict[str, EndpointPool],
    statuses: dict[str, TaskStatus],
    stop: asyncio.Event,
) -> None:
    ctx = ApiContext(
        db=db,
        networks=settings.networks,
        codecs={name: address_codec(n) for name, n in settings.networks.items()},
        tokens=settings.api_tokens,
        registry=registry,
        approval_quorum=settings.approval_quorum,
        seal_key=settings.approval_seal_key,
        console_session_key=settings.console_session_key,
        address_start=settings.address_start,
        address_history=open_address_history,
    )
    if settings.console_session_key is None:
        log.warning("console_disabled", hint="set CHAINGATE_CONSOLE_SESSION_KEY to serve /ops")
    for name, pool in pools.items():
        ctx.readiness[f"endpoints:{name}"] = _endpoint_probe(pool)
    for key, status in statuses.items():
        # Per network: a halted watcher (reorg below the window) needs an operator and makes
        # the instance unready; a crashing one is restarted and shown, the rest keeps serving.
        ctx.readiness[key] = partial(_status_probe, status)
    runner = ApiRunner(
        build_app(ctx),
        access_log=logging.getLogger("aiohttp.access"),
        access_log_class=StructuredAccessLogger,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.api_host, settings.api_port)
        await site.start()
        log.info("api_listening", host=settings.api_host, port=settings.api_port)
        await stop.wait()
    finally:
        await runner.cleanup()


def _endpoint_probe(pool: EndpointPool) -> Callable[[], tuple[bool, Any]]:
    """Ready while at least one endpoint of the network is healthy."""

    def probe() -> tuple[bool, Any]:
        health = pool.health_snapshot()
        return any(h.healthy for h in health), [
            {
                "endpoint": h.name,
                "healthy": h.healthy,
                "head": h.head,
                "benched_reason": h.benched_reason,
                "chain_check": h.chain_check.value,
            }
            for h in health
        ]

    return probe


def _status_probe(status: TaskStatus) -> tuple[bool, Any]:
    return status.ok, status.details()


async def _probe_heads(pool: EndpointPool, stop: asyncio.Event) -> None:
    interval = 5.0
    while not stop.is_set():
        try:
            await pool.best_head()
        except ChaingateError as exc:
            log.warning("head_probe_failed", network=pool.network, error=type(exc).__name__)
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


def _status_interval(adapter: ChainAdapter) -> float:
    """Publish about as often as the watcher polls, within 1-5 s."""
    return min(5.0, max(1.0, 2 * adapter.network.poll_interval))


def _first(group: BaseExceptionGroup[ChaingateError]) -> ChaingateError:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        return exc
    raise AssertionError("empty exception group")
