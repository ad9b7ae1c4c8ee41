"""The outgoing side as separate real processes on the session's anvil, for end-to-end tests.

- ``chaingate run --roles api,watchers,dispatcher``: the API, the watcher (its verified chain is
  what the tracker counts confirmations on) and the outbox dispatcher into the reference ledger;
- ``chaingate run --roles broadcaster`` (one or more): planner, broadcaster, tracker;
- ``chaingate signer`` (one or more): the keys, on devnet from CHAINGATE_SIGNER_DEVNET_KEYS.

Each can be killed with SIGKILL and started again. Withdrawals go in through the API with real
tokens (service, a maker, two approvers); outcomes are read back through the API and on chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from chaingate.devnet import postgres
from chaingate.devnet.chains import write_chains
from chaingate.devnet.tron_node import GENESIS_KEYS
from chaingate.ledger.client import LedgerClient
from chaingate.ledger.reference.app import serve_reference_ledger
from chaingate.settings import PROJECT_ROOT
from signer_support import HOT_ADDRESS, HOT_KEY, SEAL_KEY
from tron_support import TronKey, TronNode

CHAINGATE = str(Path(sys.executable).parent / "chaingate")
TOKENS = {
    "svc": ("svc-token-000000000001", "ledger-service", ["service", "viewer"]),
    "maker": ("maker-token-0000000001", "olga-maker", ["ops_maker", "viewer"]),
    "alice": ("alice-token-0000000001", "alice", ["ops_approver", "viewer"]),
    "bob": ("bob-token-000000000001", "bob", ["ops_approver", "viewer"]),
}
LEDGER_SECRET = "withdrawal-e2e-ledger-secret-01"
REORG_WINDOW = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chains_dir(folder: Path, token: str, start_height: int) -> Path:
    """chains/devnet's ethereum-devnet with this anvil's token and a recent start height."""
    text = (PROJECT_ROOT / "chains" / "devnet" / "ethereum-devnet.toml").read_text()
    text = text.replace("0x5FbDB2315678afecb367f032d93F642f64180aa3", token)
    text = text.replace("start_height = 0", f"start_height = {start_height}")
    text = text.replace("confirmations = 3", "confirmations = 2")
    text = text.replace("replace_after = 20.0", "replace_after = 3.0")
    # Confirmed transactions stay watched for reorgs until this deep: short, for the tests.
    text = text.replace("reorg_window = 64", f"reorg_window = {REORG_WINDOW}")
    out = folder / "chains"
    out.mkdir(exist_ok=True)
    (out / "ethereum-devnet.toml").write_text(text)
    return out


def signer_limits(folder: Path, per_transaction_eth: int = 50) -> Path:
    path = folder / "signer-limits.toml"
    per_tx = per_transaction_eth * 10**18
    path.write_text(
        f'[ethereum-devnet.ETH]\nper_transaction = "{per_tx}"\nper_day = "{per_tx * 100}"\n'
        f'[ethereum-devnet.NEXO]\nper_transaction = "{per_tx * 1000}"\n'
        f'per_day = "{per_tx * 100_000}"\n'
    )
    return path


@dataclass
class Stack:
    folder: Path
    database_url: str
    eth_url: str
    ledger_url: str
    chains: Path
    api_port: int
    ledger_dsn: str
    procs: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    network: str = "ethereum-devnet"  # what withdrawals and batches name
    # environment of another network's stack (the TRON one replaces the EVM variables)
    network_env: dict[str, str] = field(default_factory=dict)
    signer_env: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINGATE_")}
        env.update(
            CHAINGATE_DATABASE_URL=self.database_url,
            CHAINGATE_CHAINS_DIR=str(self.chains),
            CHAINGATE_NETWORKS="ethereum-devnet",
            CHAINGATE_ETHEREUM_DEVNET_RPC=self.eth_url,
            CHAINGATE_APPROVAL_SEAL_KEY=SEAL_KEY.decode(),
            CHAINGATE_LOG_FORMAT="json",
            CHAINGATE_LOG_LEVEL="info",
            # Short leases: a process killed with SIGKILL leaves its claims for this long.
            CHAINGATE_OUTBOX_LEASE_SECONDS="3",
            CHAINGATE_SIGNER_LEASE_SECONDS="3",
        )
        env.update(self.network_env)
        env.update(extra)
        return env

    async def start(self, name: str, argv: Sequence[str], **extra: str) -> None:
        with (self.folder / f"{name}.log").open("ab") as log:
            self.procs[name] = await asyncio.create_subprocess_exec(
                CHAINGATE, *argv, env=self.env(**extra), stdout=log, stderr=log
            )

    async def start_core(self) -> None:
        tokens = {t: {"principal": p, "roles": r} for t, p, r in TOKENS.values()}
        await self.start(
            "core",
            ["run", "--roles", "api,watchers,dispatcher"],
            CHAINGATE_API_TOKENS=json.dumps(tokens),
            CHAINGATE_API_PORT=str(self.api_port),
            CHAINGATE_LEDGER_URL=self.ledger_url,
            CHAINGATE_LEDGER_SECRET=LEDGER_SECRET,
        )

    async def start_broadcaster(self, name: str = "broadcaster", **extra: str) -> None:
        await self.start(name, ["run", "--roles", "broadcaster"], **extra)

    async def start_signer(
        self, name: str = "signer", per_transaction_eth: int = 50, **extra: str
    ) -> None:
        await self.start(
            name,
            ["signer"],
            **(
                self.signer_env
                or {
                    "CHAINGATE_SIGNER_DEVNET_KEYS": HOT_KEY.hex(),
                    "CHAINGATE_SIGNER_LIMITS": str(signer_limits(self.folder, per_transaction_eth)),
                }
            ),
            **extra,
        )

    async def died(self, name: str) -> int | None:
        """The exit code of a process that ended by itself (None while it runs)."""
        proc = self.procs.get(name)
        return None if proc is None else proc.returncode

    async def kill(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()

    async def stop_all(self) -> None:
        for name in list(self.procs):
            proc = self.procs[name]
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    await self.kill(name)
            self.procs.pop(name, None)

    def starts(self, name: str) -> int:
        """How often ``name`` got up and running (its "started" log lines)."""
        path = self.folder / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text.count('"signer_started"') + text.count('"service_started"')

    async def wait_crashed(self, name: str, point: str, seconds: float = 60) -> None:
        """Until ``name`` killed itself with SIGKILL at crash point ``point``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while await self.died(name) != -signal.SIGKILL:
            if loop.time() > deadline:
                raise AssertionError(f"{name} never reached {point}:\n" + self.logs(name, 20))
            await asyncio.sleep(0.05)

    def running(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.returncode is None

    def logs(self, name: str, lines: int = 40) -> str:
        path = self.folder / f"{name}.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    # --- the API ----------------------------------------------------------------------------

    async def api(self, who: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        token = TOKENS[who][0]
        url = f"http://127.0.0.1:{self.api_port}{path}"
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                method, url, json=body, headers={"Authorization": f"Bearer {token}"}
            ) as resp,
        ):
            return resp.status, await resp.json()

    async def ops(self, who: str, *argv: str) -> str:
        """``chaingate ops ...`` as ``who`` (over the API, with that principal's token)."""
        cli = await asyncio.create_subprocess_exec(
            CHAINGATE, "ops", *argv,
            env=self.env(
                CHAINGATE_OPS_TOKEN=TOKENS[who][0],
                CHAINGATE_API_URL=f"http://127.0.0.1:{self.api_port}",
            ),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await cli.communicate()
        assert cli.returncode == 0, out.decode(errors="replace")
        return out.decode(errors="replace")

    async def wait_api(self, seconds: float = 60) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            try:
                status, _ = await self.api("svc", "GET", "/v1/withdrawals?limit=1")
                if status == 200:
                    return
            except aiohttp.ClientError:
                pass
            core = self.procs.get("core")
            assert core is None or core.returncode is None, self.logs("core")
            assert loop.time() < deadline, "the API never came up:\n" + self.logs("core")
            await asyncio.sleep(0.2)

    async def withdraw(self, user: str, asset: str, to: str, amount: int) -> int:
        status, body = await self.api(
            "svc",
            "POST",
            "/v1/withdrawals",
            {
                "request_id": uuid.uuid4().hex,
                "user_id": user,
                "network": self.network,
                "asset": asset,
                "to_address": to,
                "amount": str(amount),
            },
        )
        assert status == 201, body
        return int(body["id"])

    async def approved_batch(self, asset: str) -> dict[str, Any]:
        status, batch = await self.api(
            "maker", "POST", "/v1/batches", {"network": self.network, "asset": asset}
        )
        assert status == 201, batch
        for approver in ("alice", "bob"):
            status, body = await self.api(
                approver,
                "POST",
                f"/v1/batches/{batch['id']}/approvals",
                {"content_hash": batch["content_hash"]},
            )
            assert status in (200, 201), body
        return dict(batch)

    async def withdrawal(self, withdrawal_id: int) -> dict[str, Any]:
        status, body = await self.api("svc", "GET", f"/v1/withdrawals/{withdrawal_id}")
        assert status == 200, body
        return dict(body)

    async def final(
        self, ids: list[int], seconds: float = 90, logs: Sequence[str] = ("signer", "broadcaster")
    ) -> dict[int, dict[str, Any]]:
        """The withdrawals' views once each is confirmed or failed (AssertionError with the
        processes' last log lines when one is not within ``seconds``)."""
        views: dict[int, dict[str, Any]] = {}

        async def all_final() -> bool:
            for wid in ids:
                views[wid] = await self.withdrawal(wid)
            return all(v["status"] in ("confirmed", "failed") for v in views.values())

        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not await all_final():
            if loop.time() > deadline:
                raise AssertionError(
                    f"not final: {[(w, v['status']) for w, v in views.items()]}\n"
                    + "\n".join(self.logs(n, 15) for n in (*logs, "core"))
                )
            await asyncio.sleep(0.1)
        return views

    # --- the reference ledger, read directly ----------------------------------------------

    async def ledger_events(self, ids: list[int]) -> dict[int, list[str]]:
        """The statuses the ledger heard of each withdrawal, in order."""
        conn = await asyncpg.connect(self.ledger_dsn)
        try:
            rows = await conn.fetch(
                """SELECT withdrawal_id, status FROM refledger.withdrawal_events
                    WHERE withdrawal_id = ANY($1::text[]) ORDER BY created_at, idempotency_key""",
                [str(i) for i in ids],
            )
        finally:
            await conn.close()
        events: dict[int, list[str]] = {i: [] for i in ids}
        for row in rows:
            events[int(row["withdrawal_id"])].append(row["status"])
        return events

    async def ledger_holds(self, ids: list[int]) -> list[str]:
        """The statuses of the ledger's holds of these withdrawals."""
        conn = await asyncpg.connect(self.ledger_dsn)
        try:
            rows = await conn.fetch(
                "SELECT status FROM refledger.holds WHERE withdrawal_id = ANY($1::text[])",
                [str(i) for i in ids],
            )
        finally:
            await conn.close()
        return [r["status"] for r in rows]

    async def ledger_settled(self, ids: list[int]) -> bool:
        holds = await self.ledger_holds(ids)
        return len(holds) == len(ids) and set(holds) == {"settled"}


async def fund_user(
    ledger_url: str, user: str, network: str, asset: str, amount: int, decimals: int, position: str
) -> None:
    """Credit ``user`` ``amount`` of ``asset`` in the reference ledger (what a deposit would
    have done), so the withdrawals a test requests have funds to hold."""
    async with LedgerClient(ledger_url, LEDGER_SECRET.encode()) as ledger:
        await ledger.post(
            "/credits",
            {
                "idempotency_key": f"credit:{user}:{asset}:{uuid.uuid4().hex}",
                "user_id": user,
                "network": network,
                "asset": asset,
                "amount": str(amount),
                "decimals": decimals,
                "txid": uuid.uuid4().hex * 2,
                "position": position,
                "block_number": 1,
            },
        )


# --- the TRON devnet's stack ------------------------------------------------------------------

TRON_NET = "tron-devnet"
TRON_HOT = TronKey.genesis(0)  # holds the registry's devnet USDT and a million TRX
TRON_USDT = "TAeZ9H8GSk8HggrZ1yGPM3sgLLteD3JDWd"  # the registry's devnet USDT
TRX = 1_000_000


@contextlib.asynccontextmanager
async def tron_stack(
    tron_url: str, pg_admin_dsn: str, folder: Path, user: str, mine_every: float = 0.3
) -> AsyncIterator[tuple[Stack, TronNode]]:
    """The core process (API, watchers, dispatcher) on the TRON devnet with its own database
    and reference ledger, ``user`` credited 10,000 TRX and USDT, and a block mined every
    ``mine_every`` seconds.
    Signers and broadcasters are the test's to start (``start_signer``/``start_broadcaster``)."""
    node = TronNode(tron_url)
    head = await node.mine(1)
    chains = write_chains(
        folder / "chains",
        [TRON_NET],
        start_heights={TRON_NET: head},
        hot_addresses={TRON_NET: TRON_HOT.address},
    )
    limits = folder / "signer-limits.toml"
    limits.write_text(
        "".join(
            f'[tron-devnet.{a}]\nper_transaction = "{10**6 * TRX}"\nper_day = "{10**8 * TRX}"\n'
            for a in ("TRX", "USDT")
        )
    )
    server = postgres.server_of(pg_admin_dsn)
    async with (
        postgres.scratch_database(server, "cg_tw", migrate=True) as dsn,
        postgres.scratch_database(server, "cg_tw_ledger") as ledger_dsn,
        serve_reference_ledger("127.0.0.1", 0, ledger_dsn, LEDGER_SECRET.encode()) as ledger_url,
    ):
        for asset in ("TRX", "USDT"):
            await fund_user(ledger_url, user, TRON_NET, asset, 10_000 * TRX, 6, "native")
        s = Stack(
            folder=folder,
            database_url=dsn,
            eth_url="",
            ledger_url=ledger_url,
            chains=chains,
            api_port=free_port(),
            ledger_dsn=ledger_dsn,
            network=TRON_NET,
            network_env={"CHAINGATE_NETWORKS": TRON_NET, "CHAINGATE_TRON_DEVNET_URL": tron_url},
            signer_env={
                "CHAINGATE_SIGNER_DEVNET_KEYS": GENESIS_KEYS[0],
                "CHAINGATE_SIGNER_LIMITS": str(limits),
            },
        )

        async def keep_mining() -> None:
            while True:
                await asyncio.sleep(mine_every)
                await node.mine(1)

        miner = asyncio.create_task(keep_mining())
        try:
            await s.start_core()
            await s.wait_api()
            yield s, node
        finally:
            miner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await miner
            await s.stop_all()


# --- the chain, read directly (what really happened) -------------------------------------------


async def rpc(url: str, method: str, *params: Any) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        ) as resp,
    ):
        body = await resp.json()
    assert "error" not in body, body
    return body["result"]


async def eth_balance(url: str, address: str) -> int:
    return int(await rpc(url, "eth_getBalance", address, "latest"), 16)


async def hot_nonce(url: str) -> int:
    return int(await rpc(url, "eth_getTransactionCount", HOT_ADDRESS, "latest"), 16)


async def hot_transactions(url: str, first_block: int) -> list[dict[str, Any]]:
    """Every mined transaction from the hot address since ``first_block``."""
    head = int(await rpc(url, "eth_blockNumber"), 16)
    found = []
    for number in range(first_block, head + 1):
        block = await rpc(url, "eth_getBlockByNumber", hex(number), True)
        found += [tx for tx in block["transactions"] if tx["from"].lower() == HOT_ADDRESS]
    return found
