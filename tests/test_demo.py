"""`chaingate demo` end to end against a test devnet (free ports) and a throwaway database pair."""

from __future__ import annotations

import dataclasses
import uuid

from chaingate.demo import Expected, Seen, format_units, problems, run_demo
from chaingate.devnet import postgres
from chaingate.devnet.manager import DevnetState


async def _drop(admin_dsn: str, *names: str) -> None:
    for name in names:
        await postgres.drop_database(postgres.server_of(admin_dsn), name)


async def test_demo_runs_the_main_job_and_exits_zero(
    devnet: DevnetState, pg_admin_dsn: str
) -> None:
    prefix = f"cg_demo_{uuid.uuid4().hex[:10]}"
    # The demo creates its databases beside the devnet's: here, on the test server.
    state = dataclasses.replace(devnet, database_url=pg_admin_dsn)
    lines: list[str] = []
    try:
        code = await run_demo(state=state, database_prefix=prefix, timeout=40, out=lines.append)
    finally:
        await _drop(pg_admin_dsn, prefix, f"{prefix}_ledger")
    report = "\n".join(lines)
    assert code == 0, report
    assert "PASS: all 7 deposits ended as expected" in report
    # Exact human amounts in the ledger section, next to their base units.
    assert "ethereum-devnet  NEXO           250  (250000000000000000000 base units)" in report
    assert "bitcoin-devnet   BTC            0.5  (50000000 base units)" in report
    assert "tron-devnet      USDT           100  (100000000 base units)" in report
    assert "network_mismatch bsc-devnet NEXO 10 user=alice" in report
    pushed = report.split("Alerts pushed to the webhook", 1)[1]
    assert "network_mismatch bsc-devnet NEXO 10 user=alice at " in pushed
    assert "raised and pushed to the webhook" in report
    assert "MISSING" not in report


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
