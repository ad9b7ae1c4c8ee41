"""``chaingate demo``: devnet, fresh databases, the ledger and the gateway in-process, then the
scenario through the public API, judged by what the API and the ledger report."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import secrets
import signal
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import asyncpg

from chaingate.chains.registry import build_adapter, open_pool
from chaingate.demo import payments
from chaingate.demo.outcomes import (
    BSC,
    BTC,
    ETH,
    TRON,
    USER,
    DemoError,
    Expected,
    Out,
    Seen,
    format_units,
    problems,
    progress,
    report,
)
from chaingate.demo.webhook import alert_receiver
from chaingate.devnet import manager, postgres
from chaingate.devnet.config import DevnetConfig, free_ports
from chaingate.devnet.manager import DevnetState
from chaingate.domain import Network
from chaingate.errors import ChaingateError
from chaingate.ledger.client import LedgerClient
from chaingate.ledger.reference.app import serve_reference_ledger
from chaingate.service import ROLES, run_service
from chaingate.settings import PROJECT_ROOT, Settings, address_start_variable

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,50}$")


def _printer(line: str) -> None:
    print(line, flush=True)


async def run_demo(
    *,
    keep_running: bool = False,
    config: DevnetConfig | None = None,
    state: DevnetState | None = None,
    database_prefix: str = "chaingate_demo",
    timeout: float = 180.0,
    out: Out = _printer,
) -> int:
    """Run the demo; 0 only if every expected outcome happened. ``state`` skips `devnet up`."""
    if state is None:
        out("==> devnet up (.devnet/, fixed ports)")
        state = await manager.up(config or DevnetConfig.default(), os.environ)
    missing = [f for f in ("eth_url", "bsc_url", "eth_token", "bsc_token", "ltc_rpc_url",
                           "tron_url", "database_url") if getattr(state, f) is None]  # fmt: skip
    if missing:
        out(f"FAIL: the devnet lacks {', '.join(missing)}; run `chaingate devnet status`")
        return 1
    try:
        gateway_dsn, ledger_dsn = await _fresh_databases(str(state.database_url), database_prefix)
        out(
            f"==> fresh databases {database_prefix} (gateway, migrated) and {database_prefix}_ledger"
        )
        secret, token = secrets.token_hex(32), secrets.token_urlsafe(24)
        hook_secret = secrets.token_hex(32)
        async with (
            serve_reference_ledger("127.0.0.1", 0, ledger_dsn, secret.encode()) as ledger,
            alert_receiver(hook_secret.encode()) as (hook_url, pushed),
        ):
            out(f"==> reference ledger on {ledger}")
            out(f"==> alert webhook receiver on {hook_url} (verifies the HMAC signature)")
            settings = await _demo_settings(state, gateway_dsn, ledger, secret, token, out)
            settings = dataclasses.replace(
                settings, alert_webhook_url=hook_url, alert_webhook_secret=hook_secret.encode()
            )
            return await _with_service(settings, state, token, pushed, keep_running, timeout, out)
    except DemoError as exc:
        out(f"FAIL: {exc}")
        return 1


async def _with_service(
    settings: Settings,
    state: DevnetState,
    token: str,
    pushed: list[dict[str, Any]],
    keep: bool,
    timeout: float,
    out: Out,
) -> int:
    stop = asyncio.Event()
    service = asyncio.create_task(run_service(settings, list(ROLES), stop), name="demo-service")
    api_url = f"http://{settings.api_host}:{settings.api_port}"
    headers = {"Authorization": f"Bearer {token}"}
    code = 1
    try:
        async with (
            aiohttp.ClientSession(api_url, headers=headers) as http,
            LedgerClient(str(settings.ledger_url), settings.ledger_secret) as ledger,
        ):
            await _wait_for_api(http, service, out)
            out(f"==> gateway running: api {api_url}, roles {', '.join(ROLES)}")
            run = Run(http, ledger, state, settings, service, out, pushed)
            code = await _scenario(run, timeout)
            if keep and not service.done():
                out(f"==> gateway keeps running at {api_url} (demo token: {token});"
                    " Ctrl-C stops it")  # fmt: skip
                await _until_signal(service)
    except DemoError as exc:
        out(f"FAIL: {exc}")
    finally:
        stop.set()
        code = await _stop_service(service, code, out)
    return code


async def _fresh_databases(devnet_dsn: str, prefix: str) -> tuple[str, str]:
    """Drop and re-create ``<prefix>`` (gateway, migrated) and ``<prefix>_ledger``."""
    if not _DB_NAME.match(prefix):
        raise DemoError(f"invalid demo database name {prefix!r}")
    server = postgres.server_of(devnet_dsn)
    try:
        gateway_dsn = await postgres.fresh_database(server, prefix, migrate=True)
        ledger_dsn = await postgres.fresh_database(server, f"{prefix}_ledger")
    except (OSError, asyncpg.PostgresError) as exc:  # the message names no DSN
        raise DemoError(f"preparing the demo databases: {type(exc).__name__}: {exc}") from exc
    return gateway_dsn, ledger_dsn


async def _demo_settings(
    state: DevnetState, dsn: str, ledger_url: str, secret: str, token: str, out: Out
) -> Settings:
    env = {
        "CHAINGATE_CHAINS_DIR": str(PROJECT_ROOT / "chains" / "devnet"),
        "CHAINGATE_ETHEREUM_DEVNET_RPC": str(state.eth_url),
        "CHAINGATE_BSC_DEVNET_RPC": str(state.bsc_url),
        "CHAINGATE_BITCOIN_DEVNET_RPC": str(state.ltc_rpc_url),
        "CHAINGATE_TRON_DEVNET_URL": str(state.tron_url),
        "CHAINGATE_DATABASE_URL": dsn,
        "CHAINGATE_API_TOKENS": json.dumps(
            {token: {"principal": "demo", "roles": ["service", "viewer", "ops_maker"]}}
        ),
        "CHAINGATE_LEDGER_URL": ledger_url,
        "CHAINGATE_LEDGER_SECRET": secret,
        "CHAINGATE_API_PORT": str(free_ports(1)[0]),
    }
    # The devnet keeps its chains between runs, so the addresses an earlier run issued have
    # history and the address-index guard refuses a fresh database that starts at 0 again
    # (rightly). Each run starts where no run has been, as ops would (docs/runbook.md 7a).
    start = 1_000_000 + secrets.randbelow(2**30)
    for name in (ETH, BTC, TRON):
        env[address_start_variable(name)] = str(start)
    out(f"==> deposit addresses from index {start} (earlier runs used other indexes)")
    settings = Settings.from_env(env)
    for name in (ETH, BSC, BTC, TRON):
        if name not in settings.networks:
            raise DemoError(f"{settings.chains_dir} has no network {name}")
    networks = {}
    for name, network in settings.networks.items():
        token_address = state.eth_token if name == ETH else state.bsc_token if name == BSC else None
        network = _check_token(network, token_address, out)
        # The devnet keeps its chains between runs: watch from the current head, not block 0.
        head = await _head(network)
        networks[name] = dataclasses.replace(network, start_height=head)
    out("==> watching from the current heads: "
        + ", ".join(f"{n} #{net.start_height}" for n, net in sorted(networks.items())))  # fmt: skip
    return dataclasses.replace(settings, networks=networks)


def _check_token(network: Network, deployed: str | None, out: Out) -> Network:
    """The registry names the devnet NEXO by address; follow the devnet if it deployed elsewhere."""
    if deployed is None:
        return network
    assets = []
    for asset in network.assets:
        if asset.symbol == "NEXO" and asset.contract != deployed.lower():
            out(f"    note: {network.name} NEXO is at {deployed}, not {asset.contract} as in "
                "chains/devnet; the demo uses the deployed one")  # fmt: skip
            asset = dataclasses.replace(asset, contract=deployed.lower())
        assets.append(asset)
    return dataclasses.replace(network, assets=tuple(assets))


async def _head(network: Network) -> int:
    async with open_pool(network) as pool:
        return (await build_adapter(network, pool).head()).number


async def _wait_for_api(http: aiohttp.ClientSession, service: asyncio.Task[None], out: Out) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if service.done():
            raise DemoError(f"the gateway stopped while starting: {_task_error(service)}")
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get("/healthz") as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.2)
    raise DemoError("the gateway API did not answer /healthz within 30 s")


def _task_error(task: asyncio.Task[None]) -> str:
    if task.cancelled():
        return "cancelled"
    exc: BaseException | None = task.exception()
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]  # the TaskGroup's first failure is the one that matters
    return f"{type(exc).__name__}: {exc}" if exc else "exited without error"


async def _stop_service(service: asyncio.Task[None], code: int, out: Out) -> int:
    if not service.done():
        try:
            await asyncio.wait_for(asyncio.shield(service), timeout=20)
        except TimeoutError:
            service.cancel()
            out("FAIL: the gateway did not stop within 20 s; cancelled")
            return 1
    if service.cancelled() or service.exception() is not None:
        out(f"FAIL: the gateway ended with an error: {_task_error(service)}")
        return 1
    out("==> gateway stopped")
    return code


async def _until_signal(service: asyncio.Task[None]) -> None:
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted.set)
    try:
        waiter = asyncio.create_task(interrupted.wait())
        await asyncio.wait({waiter, service}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


@contextlib.contextmanager
def _step(what: str, out: Out) -> Iterator[None]:
    out(f"==> {what}")
    try:
        yield
    except DemoError:
        raise
    except Exception as exc:
        raise DemoError(f"{what}: {type(exc).__name__}: {exc}") from exc


@dataclasses.dataclass
class Run:
    http: aiohttp.ClientSession  # the gateway API, with the demo token
    ledger: LedgerClient
    state: DevnetState
    settings: Settings
    service: asyncio.Task[None]
    out: Out
    pushed: list[dict[str, Any]]  # alerts the demo's webhook receiver accepted

    def decimals(self, network: str, asset: str) -> int | None:
        net = self.settings.networks.get(network)
        found = [a.decimals for a in net.assets if a.symbol == asset] if net else []
        return found[0] if found else None


async def _scenario(run: Run, timeout: float) -> int:
    out, state = run.out, run.state
    with _step(f"deposit addresses for {USER} (POST /v1/deposit-addresses)", out):
        addr = {n: await _address(run.http, n) for n in (ETH, BTC, TRON)}
        for name, address in addr.items():
            out(f"    {name:16} {address}")
    expected: list[Expected] = []
    with _step("Ethereum: 1.5 ETH, 250 NEXO and 0.0001 ETH (dust) from anvil account 0", out):
        expected += await payments.pay_ethereum(state, addr[ETH])
    with _step("BSC stand-in: 10 NEXO to the same 0x address (watch-only network)", out):
        expected.append(await payments.pay_bsc(state, addr[ETH]))
    with _step("Bitcoin (litecoind regtest): 0.5 BTC, then 2 blocks", out):
        expected.append(await payments.pay_bitcoin(state, addr[BTC]))
    with _step("TRON devnet: 25 TRX and 100 USDT, then mine until solidified", out):
        usdt = run.settings.networks[TRON].asset("USDT").contract
        expected += await payments.pay_tron(str(state.tron_url), str(usdt), addr[TRON])
    for e in expected:
        what = f"{format_units(e.amount, e.decimals)} {e.asset}"
        out(f"    {e.network:16} {what:12} tx {e.txid}")
    with _step(f"waiting for the gateway (up to {timeout:.0f} s)", out):
        seen = await _wait_for_outcomes(run, expected, timeout)
    report(seen, run.decimals, out)
    missing = problems(expected, seen)
    for problem in missing:
        out(f"  MISSING: {problem}")
    if missing:
        out(f"FAIL: {len(missing)} expected outcome(s) did not happen within {timeout:.0f} s")
        return 1
    out(f"PASS: all {len(expected)} deposits ended as expected, the ledger balances are exact,"
        " and the network-mismatch alert was raised and pushed to the webhook")  # fmt: skip
    return 0


async def _address(http: aiohttp.ClientSession, network: str) -> str:
    async with http.post("/v1/deposit-addresses", json={"user_id": USER, "network": network}) as r:
        body = await r.json()
        if r.status not in (200, 201):
            raise DemoError(f"POST /v1/deposit-addresses {network}: HTTP {r.status} {body}")
        return str(body["address"])


async def _api_list(run: Run, path: str, key: str, **query: str) -> list[dict[str, Any]]:
    async with run.http.get(path, params={"limit": "1000", **query}) as resp:
        body = await resp.json()
        if resp.status != 200:
            raise DemoError(f"GET {path}: HTTP {resp.status} {body}")
        return list(body[key])


async def _observe(run: Run) -> Seen:
    deposits = await _api_list(run, "/v1/deposits", "deposits", user_id=USER)
    alerts = await _api_list(run, "/v1/alerts", "alerts")
    answer = await run.ledger.get("/balances", {"user_id": USER})
    balances = {(b["network"], b["asset"]): int(b["amount"]) for b in answer["balances"]}
    return Seen(deposits, balances, alerts, list(run.pushed))


async def _wait_for_outcomes(run: Run, expected: list[Expected], timeout: float) -> Seen:
    start = time.monotonic()
    last, last_print = "", 0.0
    seen = Seen([], {}, [])
    while True:
        if run.service.done():
            raise DemoError(f"the gateway stopped: {_task_error(run.service)}")
        try:
            seen = await _observe(run)
            line = progress(expected, seen)
        except (DemoError, ChaingateError, aiohttp.ClientError, KeyError) as exc:
            # A busy API or ledger is not an outcome: keep asking until the deadline.
            line = f"cannot observe ({type(exc).__name__}: {exc}); retrying"
        elapsed = time.monotonic() - start
        if not problems(expected, seen) or elapsed > timeout:
            return seen
        if line != last or elapsed - last_print >= 10:
            run.out(f"    [{elapsed:5.1f}s] {line}")
            last, last_print = line, elapsed
        await asyncio.sleep(0.5)
