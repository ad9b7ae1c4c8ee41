"""The devnet really starts, reports and stops real nodes (anvil, litecoind, PostgreSQL, TRON)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from bitcoinlib.encoding import pubkeyhash_to_addr_bech32

from chaingate.devnet import manager, nodes, postgres
from chaingate.devnet.bitcoin import LitecoinRpc
from chaingate.devnet.config import DevnetConfig, DevnetError
from chaingate.devnet.manager import DevnetState
from chaingate.devnet.processes import group_members, pid_alive
from chaingate.devnet.testing import running_devnet

HAS_DEPLOYER = manager._load_deployer() is not None
ALL = ("eth", "bsc", "litecoind", "tron", "postgres")
MARKERS = {
    "eth": "anvil",
    "bsc": "anvil",
    "litecoind": "litecoind",
    "tron": nodes.TRON_MODULE,
    "postgres": "postgres",
}


@pytest.fixture(scope="module")
async def devnet(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[DevnetConfig, DevnetState]]:
    root = tmp_path_factory.mktemp("devnet")
    # The machine has a server on 5432: force the throwaway cluster so that path runs for real.
    async with running_devnet(root, components=ALL, force_pg_cluster=True) as state:
        yield state.config, state


async def _rpc(url: str, method: str, params: list[Any]) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        ) as resp,
    ):
        return (await resp.json())["result"]


def _ltc(state: DevnetState) -> LitecoinRpc:
    assert state.ltc_rpc_url is not None
    creds, host = state.ltc_rpc_url.removeprefix("http://").rsplit("@", 1)
    user, password = creds.split(":", 1)
    return LitecoinRpc(f"http://{host}", user, password, wallet=state.ltc_wallet)


def _expected_states() -> dict[str, str]:
    expected = dict.fromkeys(ALL, "running")
    if not nodes.tron_available():
        expected["tron"] = "unavailable"
    return expected


async def test_up_starts_every_component_and_status_says_running(devnet: Any) -> None:
    cfg, state = devnet
    report = await manager.status(cfg)
    assert {c.name: c.state for c in report.components} == _expected_states()
    assert state.database_source == "cluster"
    assert repr(state).count("chaingate:") == 0  # the litecoind password stays out of reprs
    assert report.lines()[0].split() == ["COMPONENT", "STATE", "PID", "DETAIL"]


async def test_up_again_reuses_running_components(devnet: Any) -> None:
    cfg, state = devnet
    again = await manager.up(cfg)
    assert again.pids == state.pids
    assert (again.eth_token, again.bsc_token) == (state.eth_token, state.bsc_token)


@pytest.mark.skipif(not HAS_DEPLOYER, reason="chaingate.devnet.evm_contracts not merged yet")
async def test_nexo_token_is_deployed_on_both_anvils(devnet: Any) -> None:
    _, state = devnet
    for url, token, chain_id in (
        (state.eth_url, state.eth_token, 31337),
        (state.bsc_url, state.bsc_token, 31338),
    ):
        assert await _rpc(url, "eth_chainId", []) == hex(chain_id)
        symbol = await _rpc(url, "eth_call", [{"to": token, "data": "0x95d89b41"}, "latest"])
        raw = bytes.fromhex(symbol[2:])
        length = int.from_bytes(raw[32:64], "big")
        assert raw[64 : 64 + length].decode() == "NEXO"
        decimals = await _rpc(url, "eth_call", [{"to": token, "data": "0x313ce567"}, "latest"])
        assert int(decimals, 16) == 18


async def test_payment_to_a_bcrt_displayed_program_is_in_the_block(devnet: Any) -> None:
    _, state = devnet
    program = os.urandom(20)
    shown = pubkeyhash_to_addr_bech32(program, prefix="bcrt")  # what the gateway displays
    async with _ltc(state) as rpc:
        txid = await rpc.send_to_script(shown, 12_345_678)
        [block_hash] = await rpc.mine(1)
        block = await rpc.call("getblock", block_hash, 2, wallet=False)
    [tx] = [tx for tx in block["tx"] if tx["txid"] == txid]
    [out] = [o for o in tx["vout"] if o["scriptPubKey"]["hex"] == "0014" + program.hex()]
    assert out["value"] == Decimal("0.12345678")
    # The node names the same script with its own hrp; deposits must match by script.
    assert out["scriptPubKey"]["addresses"][0].startswith("rltc1")


async def test_replacement_drops_the_payment_and_reorg_helpers_work(devnet: Any) -> None:
    _, state = devnet
    script = bytes.fromhex("0014") + os.urandom(20)
    async with _ltc(state) as rpc:
        original = await rpc.send_to_script(script, 50_000_000, replaceable=True)
        replacement = await rpc.replace_dropping_payment(original)
        mempool = await rpc.call("getrawmempool", wallet=False)
        assert replacement in mempool and original not in mempool
        [block_hash] = await rpc.mine(1)
        block = await rpc.call("getblock", block_hash, 2, wallet=False)
        paid = [
            o for tx in block["tx"] for o in tx["vout"] if o["scriptPubKey"]["hex"] == script.hex()
        ]
        assert paid == []
        height = await rpc.call("getblockcount", wallet=False)
        await rpc.invalidate(block_hash)
        assert await rpc.call("getblockcount", wallet=False) == height - 1
        await rpc.reconsider(block_hash)
        assert await rpc.call("getbestblockhash", wallet=False) == block_hash


async def test_throwaway_cluster_accepts_connections(devnet: Any) -> None:
    _, state = devnet
    conn = await asyncpg.connect(state.database_url)
    try:
        assert (
            await conn.fetchval("SELECT current_database()") == state.database_url.rsplit("/", 1)[1]
        )
        assert await conn.fetchval("SELECT inet_server_addr()::text") == "127.0.0.1/32"
    finally:
        await conn.close()


async def test_killed_process_is_reported_and_up_restarts_it(devnet: Any) -> None:
    cfg, _ = devnet
    before = await manager.status(cfg)
    pid = before.of("eth").pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # the npm wrapper dies; its anvil child is orphaned
    await asyncio.sleep(0.2)
    assert (await manager.status(cfg)).of("eth").state == "dead-pid"
    state = await manager.up(cfg)
    assert state.pids["eth"] != pid
    after = await manager.status(cfg)
    assert after.of("eth").state == "running"
    assert group_members(pid, "anvil") == []  # the orphan was killed, not left holding the port
    if HAS_DEPLOYER:
        assert state.eth_url and state.eth_token
        code = await _rpc(state.eth_url, "eth_getCode", [state.eth_token, "latest"])
        assert code not in ("0x", "")


async def test_a_hung_process_is_not_answering(devnet: Any) -> None:
    cfg, _ = devnet
    pid = (await manager.status(cfg)).of("bsc").pid
    assert pid is not None
    members = group_members(pid, "anvil")
    for member in members:
        os.kill(member, signal.SIGSTOP)
    try:
        assert (await manager.status(cfg)).of("bsc").state == "not-answering"
    finally:
        for member in members:
            os.kill(member, signal.SIGCONT)
    assert (await manager.status(cfg)).of("bsc").state == "running"


async def test_down_stops_everything_and_leaves_no_process(tmp_path: Path) -> None:
    cfg = DevnetConfig.for_tests(
        tmp_path / "dn", components=("eth", "litecoind", "postgres"), force_pg_cluster=True
    )
    try:
        state = await manager.up(cfg)
        groups = {name: group_members(pid, MARKERS[name]) for name, pid in state.pids.items()}
        assert all(groups.values())
    finally:
        await manager.down(cfg)
    for name, members in groups.items():
        assert not any(pid_alive(pid, MARKERS[name]) for pid in members), name
    report = await manager.status(cfg)
    assert {c.state for c in report.components} == {"stopped"}
    postgres.remove_cluster(cfg)


async def test_failed_up_is_torn_down_completely(tmp_path: Path) -> None:
    env = {"CHAINGATE_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nothing"}
    with pytest.raises(DevnetError, match="env database does not answer"):
        async with running_devnet(tmp_path, components=("eth", "postgres"), env=env):
            pass
    leftovers = [name for name in os.listdir(tmp_path) if name.startswith("devnet")]
    assert leftovers == []  # every attempt's folder is gone
    assert _processes_mentioning(str(tmp_path)) == []


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc_dir in Path("/proc").iterdir():
        try:
            if proc_dir.name.isdigit() and text.encode() in (proc_dir / "cmdline").read_bytes():
                found.append(int(proc_dir.name))
        except OSError:
            continue
    return found


async def test_database_resolution_order(tmp_path: Path) -> None:
    cfg = DevnetConfig.for_tests(tmp_path, components=("postgres",))
    env_url = "postgresql://someone:secret@127.0.0.1:5432/elsewhere"
    choice = await postgres.resolve_external({"CHAINGATE_DATABASE_URL": env_url}, cfg)
    assert choice is not None and (choice.source, choice.dsn) == ("env", env_url)
    assert "secret" not in repr(choice)
    local = await postgres.resolve_external({}, cfg)  # this machine serves 5432
    assert local is not None and local.source == "local" and local.created
    try:
        assert await postgres.answers(local.dsn)
    finally:
        await postgres.drop_database(postgres.LOCAL_SERVER, cfg.database_name)


def test_config_refuses_other_hosts() -> None:
    with pytest.raises(DevnetError):
        DevnetConfig(root=Path("/tmp/x"), project_root=Path("/tmp"), host="0.0.0.0")
    assert sys.version_info >= (3, 11)
