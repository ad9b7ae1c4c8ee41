"""`chaingate demo` end to end against the test devnet (free ports) and a throwaway database pair."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from chaingate.demo import Expected, Seen, format_units, problems
from chaingate.demo.onchain import Paid
from chaingate.devnet import DevnetError, postgres
from chaingate.devnet.chains import DEVNET_CHAINS, TRON_HOT_ADDRESS, TRON_HOT_KEY, write_chains
from chaingate.devnet.manager import DevnetState
from chaingate.registry import load_network
from chaingate.signer.keystore import tron_address


async def _drop(admin_dsn: str, *names: str) -> None:
    for name in names:
        await postgres.drop_database(postgres.server_of(admin_dsn), name)


def _json_event(line: str) -> bool:
    try:
        return "event" in json.loads(line)
    except (ValueError, TypeError):
        return False


def _table_rows(text: str, title: str) -> list[list[str]]:
    """The body rows of the rich table printed under ``title`` (its cells, stripped)."""
    lines = iter(text.split(title, 1)[1].splitlines())
    for line in lines:  # the rest of the title (it may wrap), the header
        if line.startswith("┡"):
            break
    rows = []
    for line in lines:
        if not line.startswith("│"):
            break
        rows.append([cell.strip() for cell in line.strip("│").split("│")])
    return rows


async def test_demo_once_tells_the_story_logs_to_a_file_and_matches_the_ledger(
    devnet: DevnetState, pg_admin_dsn: str
) -> None:
    """`chaingate demo --once` as a person runs it, on the test devnet (its own ports)."""
    prefix = f"cg_demo_{uuid.uuid4().hex[:10]}"
    # The test devnet has no database of its own: the demo uses the test server's.
    env = {**os.environ, "CHAINGATE_DATABASE_URL": pg_admin_dsn}
    argv = ["demo", "--once", "--devnet", str(devnet.config.root), "--database-prefix", prefix,
            "--timeout", "90", "--tick", "0.3"]  # fmt: skip
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chaingate.cli", *argv, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        raw_out, raw_err = await asyncio.wait_for(proc.communicate(), timeout=240)
        out, err = raw_out.decode(), raw_err.decode()
        ledger = await asyncpg.connect(postgres.with_database(pg_admin_dsn, f"{prefix}_ledger"))
        try:
            rows = await ledger.fetch(
                "SELECT network, asset, amount FROM refledger.balances WHERE user_id = 'alice'"
            )
        finally:
            await ledger.close()
    finally:
        await _drop(pg_admin_dsn, prefix, f"{prefix}_ledger")
    assert proc.returncode == 0, out + err
    assert out.rstrip().endswith("(exit code 0)"), out
    assert "PASS: all 7 deposits ended as expected" in out
    # Each withdrawal batch moved from approval to confirmation, in view: every output's row.
    outputs = [("ETH", r"0\.4", "0x"), ("NEXO", "100", "0x"), ("BTC", r"0\.1", "[0-9a-f]"),
               ("BTC", r"0\.05", "[0-9a-f]"), ("TRX", "5", "[0-9a-f]"), ("TRX", "2", "[0-9a-f]"),
               ("USDT", "40", "[0-9a-f]")]  # fmt: skip
    for asset, amount, txid in outputs:
        row = rf"#\d+\s+{asset}\s+\S+\s+{amount}\s+2 / 2\s+"
        assert re.search(row + r"approved\s+approved", out), out
        assert re.search(row + rf"completed\s+confirmed\s+{txid}", out), out
    assert (
        "5 withdrawal batches on Ethereum, Bitcoin and TRON approved, signed, broadcast and "
        "confirmed, every recipient got exactly its amount on chain" in out
    )
    # Bitcoin and TRON on chain: each recipient received its amount, the fee the gateway
    # reported is the chain's; one Bitcoin transaction for the batch, its txid and fee shown.
    chain = _table_rows(out, "Bitcoin and TRON withdrawals on chain")
    assert [(r[0], r[2], r[3]) for r in chain if r[0]] == [
        ("BTC", "0.1", "0.1"), ("BTC", "0.05", "0.05"), ("TRX", "5", "5"), ("TRX", "2", "2"),
        ("USDT", "40", "40")]  # fmt: skip
    assert all(r[4] == r[5] != "-" for r in chain if r[0]), chain
    btc = re.findall(r"bitcoin-devnet BTC to bcrt1\w+: tx ([0-9a-f]{64}), fee 0\.\d+ BTC", out)
    assert len(btc) == 2 and len(set(btc)) == 1, out
    new_account = re.search(r"tron-devnet TRX to T\w+ \(a new account\): tx [0-9a-f]{64}, fee "
                            r"1\.1\d* TRX, energy 0, bandwidth", out)  # fmt: skip
    usdt = re.search(r"tron-devnet USDT to T\w+: tx [0-9a-f]{64}, fee [\d.]+ TRX, energy [1-9]\d*,"
                     r" bandwidth", out)  # fmt: skip
    assert new_account and usdt, out
    # The ops console's address and a login token, after the demo logged in there itself.
    assert re.search(r"==> ops console: http://127\.0\.0\.1:\d+/ops/ \(log in with token ops-", out)
    assert "; the ops console shows them (exit code 0)" in out
    # The story, not the service's logs: no JSON log line on the terminal, nothing on stderr.
    assert not [line for line in out.splitlines() if _json_event(line)], out
    assert err == ""
    log_file = devnet.config.root / "demo.log"
    assert f"the service's logs go to {log_file}" in out
    logged = log_file.read_text().splitlines()
    assert logged and all(_json_event(line) for line in logged), logged[:5]
    records = [json.loads(line) for line in logged]
    events = [r["event"] for r in records]
    # One `deposits_credited` event per crediting pass (the per-deposit line is debug).
    assert sum(r["count"] for r in records if r["event"] == "deposits_credited") == 5
    delivered = [r["kind"] for r in records if r["event"] == "ledger_outbox_delivered"]
    assert delivered.count("credit") == 5 and "withdrawal_event" in delivered, delivered
    assert "alert_pushed" in events and "service_started" in events
    # The payment's row changed in front of the user: sent or confirming first, then credited
    # with its confirmations as "n / required". TRON's, which waits for its solidified block
    # (19 behind): anvil mines the three Ethereum payments at once, so on a busy machine the
    # ETH row's first line can already say credited (docs/demo.txt once did).
    before = re.search(r"tron-devnet\s+TRX\s+25\s+(-|\d+ / 2)\s+(sent|confirming)", out)
    after = re.search(r"tron-devnet\s+TRX\s+25\s+\d+ / 2\s+credited", out)
    assert before and after and before.start() < after.start(), out
    assert re.search(r"ethereum-devnet\s+ETH\s+1\.5\s+\d+ / 3\s+credited", out), out
    # The summary says what the ledger holds, to the base unit.
    # The last balances table: after the withdrawals settled.
    title = "Ledger balances of alice"
    summary = {(r[0], r[1]): int(r[3]) for r in _table_rows(title + out.rsplit(title, 1)[1], title)}
    assert summary == {(r["network"], r["asset"]): int(r["amount"]) for r in rows}
    assert summary == {
        ("bitcoin-devnet", "BTC"): 50_000_000 - 15_000_000,  # 0.1 + 0.05 BTC withdrawn
        ("ethereum-devnet", "ETH"): 15 * 10**17 - 4 * 10**17,  # 0.4 ETH withdrawn
        ("ethereum-devnet", "NEXO"): 250 * 10**18 - 100 * 10**18,  # 100 NEXO withdrawn
        ("tron-devnet", "TRX"): 25_000_000 - 7_000_000,  # 5 + 2 TRX withdrawn
        ("tron-devnet", "USDT"): 100_000_000 - 40_000_000,  # 40 USDT withdrawn
    }
    alert = _table_rows(out, "Alerts (GET /v1/alerts")
    assert [
        "#1",
        "critical",
        "network_mismatch",
        "bsc-devnet",
        "NEXO",
        "10",
        "alice",
        "yes",
    ] in alert


def test_format_units_is_exact_for_large_amounts() -> None:
    assert format_units(1_500_000_000_000_000_000, 18) == "1.5"
    assert format_units(123_456_789_012_345_678_901_234_567, 18) == "123456789.012345678901234567"
    assert format_units(1, 8) == "0.00000001"
    assert format_units(25_000_000, 6) == "25"
    assert format_units(7, 0) == "7"


def test_a_missing_credit_or_an_extra_balance_is_reported_not_passed() -> None:
    eth = Expected("1.5 ETH", "ethereum-devnet", "ETH", 15 * 10**17, 18, "credited", txid="0xAB")
    dust = Expected("dust", "ethereum-devnet", "ETH", 10**14, 18, "rejected", "dust", txid="0xcd")
    deposits = [
        {"network": "ethereum-devnet", "asset": "ETH", "txid": "0xab", "status": "credited",
         "reason": None, "amount": str(15 * 10**17)},
        {"network": "ethereum-devnet", "asset": "ETH", "txid": "0xcd", "status": "credited",
         "reason": None, "amount": str(10**14)},
    ]  # fmt: skip
    # The dust was credited (a bug) and the ledger holds it: both must be reported.
    seen = Seen(deposits, {("ethereum-devnet", "ETH"): 15 * 10**17 + 10**14}, [])
    found = problems([eth, dust], seen)
    assert any("dust on ethereum-devnet: credited" in p for p in found)
    assert "ledger balance ethereum-devnet ETH is 1.5001, expected 1.5" in found
    # The right outcome passes.
    deposits[1].update(status="rejected", reason="dust")
    assert (
        problems([eth, dust], Seen(deposits, {("ethereum-devnet", "ETH"): 15 * 10**17}, [])) == []
    )


def test_the_demo_registry_names_the_tron_hot_wallet_and_nothing_else_changes(
    tmp_path: Path,
) -> None:
    out = write_chains(tmp_path / "chains", hot_addresses={"tron-devnet": TRON_HOT_ADDRESS},
                       start_heights={"bitcoin-devnet": 7})  # fmt: skip
    networks = {n: load_network(out / f"{n}.toml", {}) for n in ("tron-devnet", "bitcoin-devnet")}
    assert networks["tron-devnet"].hot_address == TRON_HOT_ADDRESS
    assert networks["tron-devnet"].has_hot_wallet and networks["bitcoin-devnet"].has_hot_wallet
    assert networks["bitcoin-devnet"].start_height == 7
    assert tron_address(bytes.fromhex(TRON_HOT_KEY)) == TRON_HOT_ADDRESS  # the signer's key
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in DEVNET_CHAINS.iterdir())
    with pytest.raises(DevnetError, match="already names a hot_address"):
        write_chains(tmp_path / "again", ["ethereum-devnet"],
                     hot_addresses={"ethereum-devnet": "0x" + "11" * 20})  # fmt: skip


def test_a_withdrawal_the_chain_disagrees_with_is_reported_not_passed() -> None:
    right = Paid("tron-devnet", "TRX", 6, "T-new", 5_000_000, 5_000_000, "ab" * 32, 1_100_000,
                 1_100_000, 0, 0, 0, new_account=True)  # fmt: skip
    assert right.problems() == []
    short_paid = dataclasses.replace(right, received=4_999_999)
    assert "the chain shows 4999999 received, not 5000000" in short_paid.problems()[0]
    wrong_fee = dataclasses.replace(right, fee=0)
    assert "the gateway reported fee 0, the chain 1100000" in wrong_fee.problems()[0]
    assert dataclasses.replace(right, fee=None).problems()  # no fee reported at all
