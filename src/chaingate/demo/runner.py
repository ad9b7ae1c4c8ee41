"""``chaingate demo``: devnet, fresh databases, the ledger and the gateway in-process, then the
scenario through the public API, judged by what the API and the ledger report."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from cryptography.fernet import Fernet

from chaingate.chains.registry import build_adapter, open_pool
from chaingate.demo import console, onchain, payments, sections, withdrawals
from chaingate.demo.outcomes import (
    BSC,
    BTC,
    ETH,
    TRON,
    USER,
    DemoError,
    Expected,
    Seen,
    format_units,
    problems,
)
from chaingate.demo.story import Story, shown, story_for
from chaingate.demo.webhook import alert_receiver
from chaingate.devnet import manager, postgres
from chaingate.devnet.bitcoin import LitecoinRpc
from chaingate.devnet.chains import TRON_HOT_ADDRESS, write_chains
from chaingate.devnet.config import DevnetConfig, free_ports
from chaingate.devnet.manager import ComponentUp, DevnetState
from chaingate.domain import Network
from chaingate.errors import ChaingateError
from chaingate.ledger.client import LedgerClient
from chaingate.ledger.reference.app import serve_reference_ledger
from chaingate.service import ROLES, run_service
from chaingate.settings import Settings, address_start_variable

OnConsole = Callable[[str, str], Awaitable[None]]
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,50}$")


@dataclasses.dataclass
class Verdict:
    code: int
    text: str


async def run_demo(
    *,
    keep_running: bool = False,
    config: DevnetConfig | None = None,
    state: DevnetState | None = None,
    database_prefix: str = "chaingate_demo",
    timeout: float = 180.0,
    story: Story | None = None,
    log_file: Path | None = None,
    tick: float = 0.7,
    on_console: OnConsole | None = None,
) -> int:
    """Run the demo; 0 only if every expected outcome happened. ``state`` skips `devnet up`.

    ``on_console(console_url, login_token)`` runs once the console shows the demo's data, while
    the gateway still runs (the screenshots, tests/test_screenshots.py); what it raises reaches
    the caller once the gateway has stopped.

    The devnet's database server holds the demo's databases; a devnet without one (tests) uses
    the server of ``CHAINGATE_DATABASE_URL``.
    """
    story = story or story_for(sys.stdout)
    try:
        verdict = await _run(keep_running, config, state, database_prefix, timeout, story,
                             log_file, tick, on_console)  # fmt: skip
    except DemoError as exc:
        verdict = Verdict(1, str(exc))
    story.verdict(verdict.code, verdict.text)
    story.close()
    return verdict.code


async def _run(
    keep_running: bool,
    config: DevnetConfig | None,
    state: DevnetState | None,
    database_prefix: str,
    timeout: float,
    story: Story,
    log_file: Path | None,
    tick: float,
    on_console: OnConsole | None = None,
) -> Verdict:
    if log_file is not None:
        story.step(f"the service's logs go to {shown(log_file)} (--verbose streams them here)")
    if state is None:
        cfg = config or DevnetConfig.default()
        story.step(f"devnet up under {shown(cfg.root)}")

        def ready(c: ComponentUp) -> None:
            how = "already running" if c.reused else "started"
            story.detail(f"{c.name:10} {how:15} {c.seconds:5.1f} s  {c.detail}".rstrip())

        state = await manager.up(cfg, os.environ, on_ready=ready)
    if state.database_url is None and os.environ.get("CHAINGATE_DATABASE_URL"):
        state = dataclasses.replace(state, database_url=os.environ["CHAINGATE_DATABASE_URL"])
    missing = [f for f in ("eth_url", "bsc_url", "eth_token", "bsc_token", "ltc_rpc_url",
                           "tron_url", "database_url") if getattr(state, f) is None]  # fmt: skip
    if missing:
        return Verdict(1, f"the devnet lacks {', '.join(missing)}; run `chaingate devnet status`")
    gateway_dsn, ledger_dsn = await _fresh_databases(str(state.database_url), database_prefix)
    story.step(
        f"fresh databases {database_prefix} (gateway, migrated) and {database_prefix}_ledger"
    )
    secret, token = secrets.token_hex(32), secrets.token_urlsafe(24)
    hook_secret = secrets.token_hex(32)
    async with (
        serve_reference_ledger("127.0.0.1", 0, ledger_dsn, secret.encode()) as ledger,
        alert_receiver(hook_secret.encode()) as (hook_url, pushed),
    ):
        story.step(f"reference ledger on {ledger}; alert webhook receiver on {hook_url} "
                   "(checks the HMAC signature)")  # fmt: skip
        settings = await _demo_settings(state, gateway_dsn, ledger, secret, token, story)
        settings = dataclasses.replace(
            settings, alert_webhook_url=hook_url, alert_webhook_secret=hook_secret.encode()
        )
        return await _with_service(
            settings, state, token, pushed, keep_running, timeout, story, tick, log_file, on_console
        )


async def _with_service(
    settings: Settings,
    state: DevnetState,
    token: str,
    pushed: list[dict[str, Any]],
    keep: bool,
    timeout: float,
    story: Story,
    tick: float,
    log_file: Path | None = None,
    on_console: OnConsole | None = None,
) -> Verdict:
    stop = asyncio.Event()
    service = asyncio.create_task(run_service(settings, list(ROLES), stop), name="demo-service")
    api_url = f"http://{settings.api_host}:{settings.api_port}"
    headers = {"Authorization": f"Bearer {token}"}
    verdict = Verdict(1, "the demo did not finish")
    try:
        async with (
            aiohttp.ClientSession(api_url, headers=headers) as http,
            LedgerClient(str(settings.ledger_url), settings.ledger_secret) as ledger,
        ):
            await _wait_for_api(http, service)
            story.step(f"gateway running: api {api_url}, roles {', '.join(ROLES)}")
            run = Run(http, ledger, state, settings, service, story, pushed, tick)
            verdict, expected = await _scenario(run, timeout)
            if verdict.code == 0:
                verdict = await _withdrawal_act(run, token, timeout, log_file, verdict)
            if verdict.code == 0:
                verdict = await _console_act(api_url, token, expected, keep, story, verdict)
            if verdict.code == 0 and on_console is not None:
                await on_console(f"{api_url}/ops/", console_token(token))
            if keep and not service.done():
                story.step(f"gateway keeps running at {api_url} (demo token: {token}); "
                           "Ctrl-C stops it")  # fmt: skip
                await _until_signal(service)
    except DemoError as exc:
        verdict = Verdict(1, str(exc))
    finally:
        stop.set()
        verdict = await _stop_service(service, verdict, story)
    return verdict


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
    state: DevnetState, dsn: str, ledger_url: str, secret: str, token: str, story: Story
) -> Settings:
    # chains/devnet, with genesis key 0 as the TRON devnet's hot wallet (devnet/chains.py)
    chains = write_chains(state.config.root / "demo-chains",
                          hot_addresses={TRON: TRON_HOT_ADDRESS})  # fmt: skip
    env = {
        "CHAINGATE_CHAINS_DIR": str(chains),
        "CHAINGATE_ETHEREUM_DEVNET_RPC": str(state.eth_url),
        "CHAINGATE_BSC_DEVNET_RPC": str(state.bsc_url),
        "CHAINGATE_BITCOIN_DEVNET_RPC": str(state.ltc_rpc_url),
        "CHAINGATE_TRON_DEVNET_URL": str(state.tron_url),
        "CHAINGATE_DATABASE_URL": dsn,
        "CHAINGATE_API_TOKENS": json.dumps(
            {
                token: {"principal": "demo", "roles": ["service", "viewer", "ops_maker"]},
                console_token(token): {"principal": "ops-demo", "roles": console.ROLES},
                **{
                    approver_token(token, n): {"principal": name, "roles": ["ops_approver"]}
                    for n, name in enumerate(APPROVERS)
                },
            }
        ),
        "CHAINGATE_CONSOLE_SESSION_KEY": Fernet.generate_key().decode(),
        "CHAINGATE_APPROVAL_SEAL_KEY": secrets.token_hex(32),
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
    story.step(f"deposit addresses from index {start} (earlier runs used other indexes)")
    settings = Settings.from_env(env)
    for name in (ETH, BSC, BTC, TRON):
        if name not in settings.networks:
            raise DemoError(f"{settings.chains_dir} has no network {name}")
    networks = {}
    for name, network in settings.networks.items():
        token_address = state.eth_token if name == ETH else state.bsc_token if name == BSC else None
        network = _check_token(network, token_address, story)
        # The devnet keeps its chains between runs: watch from the current head, not block 0.
        head = await _head(network)
        networks[name] = dataclasses.replace(network, start_height=head)
    story.step("watching from the current heads: "
               + ", ".join(f"{n} #{net.start_height}" for n, net in sorted(networks.items())))  # fmt: skip
    return dataclasses.replace(settings, networks=networks)


APPROVERS = ("ana-approver", "ben-approver")  # two distinct people: the quorum is 2


def approver_token(token: str, n: int) -> str:
    return f"approver{n}-" + hashlib.sha256(f"{n}:{token}".encode()).hexdigest()[:24]


def console_token(token: str) -> str:
    """The demo's console login token: its own principal, derived so the demo prints only it."""
    return "ops-" + hashlib.sha256(token.encode()).hexdigest()[:24]


def _check_token(network: Network, deployed: str | None, story: Story) -> Network:
    """The registry names the devnet NEXO by address; follow the devnet if it deployed elsewhere."""
    if deployed is None:
        return network
    assets = []
    for asset in network.assets:
        if asset.symbol == "NEXO" and asset.contract != deployed.lower():
            story.detail(f"note: {network.name} NEXO is at {deployed}, not {asset.contract} as "
                         "in chains/devnet; the demo uses the deployed one")  # fmt: skip
            asset = dataclasses.replace(asset, contract=deployed.lower())
        assets.append(asset)
    return dataclasses.replace(network, assets=tuple(assets))


async def _head(network: Network) -> int:
    async with open_pool(network) as pool:
        return (await build_adapter(network, pool).head()).number


async def _wait_for_api(http: aiohttp.ClientSession, service: asyncio.Task[None]) -> None:
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


async def _stop_service(service: asyncio.Task[None], verdict: Verdict, story: Story) -> Verdict:
    if not service.done():
        try:
            await asyncio.wait_for(asyncio.shield(service), timeout=20)
        except TimeoutError:
            service.cancel()
            return Verdict(1, "the gateway did not stop within 20 s; cancelled")
    if service.cancelled() or service.exception() is not None:
        return Verdict(1, f"the gateway ended with an error: {_task_error(service)}")
    story.step("gateway stopped")
    return verdict


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
def _step(what: str, story: Story) -> Iterator[None]:
    story.step(what)
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
    story: Story
    pushed: list[dict[str, Any]]  # alerts the demo's webhook receiver accepted
    tick: float  # seconds between mined blocks

    def decimals(self, network: str, asset: str) -> int | None:
        net = self.settings.networks.get(network)
        found = [a.decimals for a in net.assets if a.symbol == asset] if net else []
        return found[0] if found else None

    def solidity(self, network: str) -> bool:
        net = self.settings.networks.get(network)
        return bool(net and net.solidity_finality)


async def _withdrawal_act(
    run: Run, token: str, timeout: float, log_file: Path | None, verdict: Verdict
) -> Verdict:
    """Alice withdraws part of her deposits on Ethereum, Bitcoin and TRON: request, batch, two
    approvals, the signer in its own process, broadcast and confirmation; the ledger settles
    what it held, and the chains show what each recipient got and what each transaction paid."""
    story, settings = run.story, run.settings
    for name in (ETH, BTC, TRON):
        net = settings.networks.get(name)
        if net is None or not net.has_hot_wallet:
            return Verdict(1, f"{name} has no hot wallet in {settings.chains_dir}: no withdrawals")
    wanted = withdrawals.payouts(with_nexo=_nexo_deployed(run))
    desk = withdrawals.Desk(token, token, (approver_token(token, 0), approver_token(token, 1)))
    signer_env = {
        "CHAINGATE_DATABASE_URL": settings.database_url,
        "CHAINGATE_APPROVAL_SEAL_KEY": settings.approval_seal_key.decode(),
        "CHAINGATE_CHAINS_DIR": str(settings.chains_dir),
        "CHAINGATE_NETWORKS": ",".join((ETH, BTC, TRON)),
        "CHAINGATE_ETHEREUM_DEVNET_RPC": str(run.state.eth_url),
        "CHAINGATE_BITCOIN_DEVNET_RPC": str(run.state.ltc_rpc_url),
        "CHAINGATE_TRON_DEVNET_URL": str(run.state.tron_url),
    }
    folder = log_file.parent if log_file else Path(".devnet")
    usdt = str(settings.networks[TRON].asset("USDT").contract)
    assets = ", ".join(f"{p.asset} ({len(p.outputs)} output{'s' * (len(p.outputs) > 1)})"
                       for p in wanted)  # fmt: skip
    with _step(f"withdrawals: alice takes {assets} out, one batch each: requested, batched by "
               f"the maker, approved by {' and '.join(APPROVERS)}", story):  # fmt: skip
        before = (await _observe(run)).balances
        async with (
            aiohttp.ClientSession(str(run.state.tron_url)) as tron_http,
            payments.ltc_rpc(run.state) as ltc,
        ):
            tron = onchain.Tron(tron_http, usdt)
            snapshot = await tron.snapshot([p for p in wanted if p.network == TRON])
            async with withdrawals.signer_process(signer_env, folder, log_file) as pid:
                story.detail(f"signer running in its own process (pid {pid}) with the devnet hot "
                             "keys of " + ", ".join(f"{n} ({_hot_wallet(settings, n)})"
                                                    for n in (ETH, BTC, TRON)))  # fmt: skip
                batch_ids = await withdrawals.request_and_approve(run.http, desk, wanted)
                views = await _watch_batches(run, desk, batch_ids, timeout)
            found = withdrawals.problems(views)
            paid = [] if found else await _check_on_chain(run, desk, wanted, views, tron, ltc,
                                                          snapshot)  # fmt: skip
    for p in paid:
        found += p.problems()
    want: dict[tuple[str, str], int] = {}
    for payout in wanted:
        key = (payout.network, payout.asset)
        want[key] = want.get(key, before[key]) - payout.total
    # The confirmation reaches the ledger through the outbox: a moment after the API says so.
    seen = await _observe(run)
    deadline = time.monotonic() + 30
    while any(seen.balances.get(k) != v for k, v in want.items()) and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        seen = await _observe(run)
    if paid:
        story.show(onchain.section(paid))
    story.show(sections.balances(seen, run.decimals, " after the withdrawals"))
    for (network, asset), amount in want.items():
        if seen.balances.get((network, asset)) != amount:
            found.append(f"the ledger's {network} {asset} balance did not drop by exactly the "
                         "withdrawals")  # fmt: skip
    if found:
        return Verdict(1, "; ".join(found))
    return dataclasses.replace(
        verdict,
        text=verdict.text + f"; {len(batch_ids)} withdrawal batches on Ethereum, Bitcoin and "
        "TRON approved, signed, broadcast and confirmed, every recipient got exactly its amount "
        "on chain, the fees reported are the chains' and the ledger settled them",
    )


def _nexo_deployed(run: Run) -> bool:
    """The signer checks the registry's NEXO contract: withdraw NEXO only where it was deployed."""
    eth = run.settings.networks[ETH]
    return eth.asset("NEXO").contract == (run.state.eth_token or "").lower()


def _hot_wallet(settings: Settings, name: str) -> str:
    net = settings.networks[name]
    return net.hot_address or "m/84'/1'/1' of the devnet mnemonic"


async def _check_on_chain(
    run: Run,
    desk: withdrawals.Desk,
    wanted: list[withdrawals.Payout],
    views: list[dict[str, Any]],
    tron: onchain.Tron,
    ltc: LitecoinRpc,
    snapshot: tuple[onchain.Balances, set[str]],
) -> list[onchain.Paid]:
    """Each Bitcoin and TRON recipient's payment as its chain shows it; the txid and the fee of
    every transaction as a line of the story."""
    paid: list[onchain.Paid] = []
    for payout, view in zip(wanted, views, strict=True):
        if payout.network == ETH:
            continue
        shown_by_api = {}
        for output in view["outputs"]:
            path = f"/v1/withdrawals/{output['withdrawal_id']}"
            shown_by_api[output["to_address"]] = await withdrawals.api(run.http, desk.service,
                                                                       "GET", path)  # fmt: skip
        if payout.network == BTC:
            paid += await onchain.check_bitcoin(ltc, payout, shown_by_api)
        else:
            paid += await onchain.check_tron(tron, payout, snapshot, shown_by_api)
    for p in paid:
        energy, bandwidth = onchain.resources(p)
        extra = "" if p.energy is None else f", energy {energy}, bandwidth {bandwidth}"
        new = " (a new account)" if p.new_account else ""
        run.story.detail(f"{p.network} {p.asset} to {p.to}{new}: tx {p.txid}, fee {p.in_coin(p.fee)}"
                         f"{extra}")  # fmt: skip
    return paid


async def _watch_batches(
    run: Run, desk: withdrawals.Desk, batch_ids: list[int], timeout: float
) -> list[dict[str, Any]]:
    start = time.monotonic()
    async with payments.Miner(run.state) as miner:
        while True:
            if run.service.done():
                raise DemoError(f"the gateway stopped: {_task_error(run.service)}")
            views = await withdrawals.batch_views(run.http, desk, batch_ids)
            run.story.watch([withdrawals.section(views)])
            if withdrawals.done(views) or time.monotonic() - start > timeout:
                run.story.stop_watching()
                return views
            await miner.tick()
            await asyncio.sleep(run.tick)


async def _console_act(
    api_url: str, token: str, expected: list[Expected], keep: bool, story: Story, verdict: Verdict
) -> Verdict:
    """The ops console shows what the demo did: the demo logs in itself before it says so."""
    try:
        url = await console.check_console(api_url, console_token(token), expected)
    except (DemoError, aiohttp.ClientError) as exc:
        return Verdict(1, str(exc))
    story.step(f"ops console: {url} (log in with token {console_token(token)}); it shows these "
               "deposits and the alert" + ("" if keep else ", while the gateway runs: "
               "`chaingate demo --keep-running` keeps it up"))  # fmt: skip
    return dataclasses.replace(verdict, text=verdict.text + "; the ops console shows them")


async def _scenario(run: Run, timeout: float) -> tuple[Verdict, list[Expected]]:
    """The deposit act. A withdrawal act (batches from approval to confirmation, issue 10)
    follows the same shape: pay, watch its sections tick, check, add summary sections."""
    story, state = run.story, run.state
    with _step(f"deposit addresses for {USER} (POST /v1/deposit-addresses)", story):
        addr = {n: await _address(run.http, n) for n in (ETH, BTC, TRON)}
        for name, address in addr.items():
            story.detail(f"{name:16} {address}")
    nexo = run.settings.networks[ETH].asset("NEXO").contract if _nexo_deployed(run) else None
    coins = " and ".join(format_units(sats, 8) for sats in withdrawals.BTC_HOT_COINS)
    with _step(f"first the hot wallets, for the withdrawals later: {coins} BTC to Bitcoin's "
               "first receive addresses" + (", 10000 NEXO to Ethereum's" if nexo else "")
               + " (TRON's holds TRX and USDT from genesis)", story):  # fmt: skip
        await withdrawals.fund_hot_wallets(state, nexo, run.settings.networks[BTC])
    expected: list[Expected] = []
    with _step("Ethereum: 1.5 ETH, 250 NEXO and 0.0001 ETH (dust) from anvil account 0", story):
        expected += await payments.pay_ethereum(state, addr[ETH])
    with _step("BSC stand-in: 10 NEXO to the same 0x address (watch-only network)", story):
        expected.append(await payments.pay_bsc(state, addr[ETH]))
    with _step("Bitcoin (litecoind regtest): 0.5 BTC", story):
        expected.append(await payments.pay_bitcoin(state, addr[BTC]))
    with _step("TRON devnet: 25 TRX and 100 USDT", story):
        usdt = run.settings.networks[TRON].asset("USDT").contract
        expected += await payments.pay_tron(str(state.tron_url), str(usdt), addr[TRON])
    for e in expected:
        story.detail(f"{e.network:16} {e.label:12} tx {e.txid}")
    with _step(f"mining a block on every chain each {run.tick:g} s; the gateway counts "
               f"confirmations and credits the ledger (up to {timeout:.0f} s)", story):  # fmt: skip
        seen = await _wait_for_outcomes(run, expected, timeout)
    mismatch = [a for a in seen.alerts if a["kind"] == "network_mismatch"]
    story.step(f"{len(mismatch)} network-mismatch alert(s): NEXO sent over the BSC stand-in, "
               "a network where it is not enabled")  # fmt: skip
    story.show(sections.alerts(seen, run.decimals))
    story.show(sections.deposits(seen, run.decimals), sections.balances(seen, run.decimals))
    missing = problems(expected, seen)
    for problem in missing:
        story.detail(f"MISSING: {problem}")
    if missing:
        text = f"{len(missing)} expected outcome(s) did not happen within {timeout:.0f} s"
        return Verdict(1, text), expected
    text = (
        f"all {len(expected)} deposits ended as expected, the ledger balances are exact, and "
        "the network-mismatch alert was raised and pushed to the webhook"
    )
    return Verdict(0, text), expected


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
    seen = Seen([], {}, [])
    async with payments.Miner(run.state) as miner:
        while True:
            if run.service.done():
                raise DemoError(f"the gateway stopped: {_task_error(run.service)}")
            # A busy API or ledger is not an outcome: ask again until the deadline.
            with contextlib.suppress(DemoError, ChaingateError, aiohttp.ClientError, KeyError):
                seen = await _observe(run)
            run.story.watch([sections.payments(expected, seen, run.decimals, run.solidity)])
            if not problems(expected, seen) or time.monotonic() - start > timeout:
                run.story.stop_watching()
                return seen
            await miner.tick()
            await asyncio.sleep(run.tick)
