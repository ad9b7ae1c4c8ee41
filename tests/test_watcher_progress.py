"""A catching-up watcher reports blocks done, blocks to go, blocks/s and time left, at most every
few seconds, in its log and in network_progress (read by GET /v1/networks and the console)."""

from __future__ import annotations

import aiohttp
import asyncpg
import pytest
from structlog.testing import capture_logs

from chaingate.demo.console import login
from chaingate.store import progress
from chaingate.watcher.progress import CatchUp


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_progress_is_measured_and_reported_at_most_every_few_seconds() -> None:
    clock = Clock()
    tracker = CatchUp("ethereum-devnet", behind=200, every=5.0, clock=clock)
    with capture_logs() as logs:
        first = tracker.observe(cursor=0, head=10_000)
        clock.now += 1
        assert tracker.observe(cursor=500, head=10_000) is None  # too soon after the first
        clock.now += 4
        later = tracker.observe(cursor=2_000, head=10_000)
    assert first is not None and first.catching_up and first.done == 0
    assert first.blocks_per_second is None and first.eta_seconds is None
    assert later is not None
    assert (later.done, later.to_go) == (2_000, 8_000)
    assert later.blocks_per_second == pytest.approx(400.0)  # 2,000 blocks in 5 s
    assert later.eta_seconds == pytest.approx(20.0)
    events = [e for e in logs if e["event"] == "watcher_catching_up"]
    assert len(events) == 2
    assert events[-1] | {"network": "ethereum-devnet", "done": 2000, "to_go": 8000,
                         "blocks_per_s": 400.0, "eta_s": 20} == events[-1]  # fmt: skip


def test_catching_up_ends_with_one_caught_up_line_at_once() -> None:
    clock = Clock()
    tracker = CatchUp("bitcoin-devnet", behind=40, every=5.0, clock=clock)
    tracker.observe(cursor=100, head=1_000)
    clock.now += 2
    with capture_logs() as logs:
        done = tracker.observe(cursor=1_000, head=1_001)  # not waiting out the interval
        clock.now += 1
        quiet = tracker.observe(cursor=1_001, head=1_001)
    assert done is not None and not done.catching_up and done.eta_seconds is None
    assert quiet is None
    assert [e["event"] for e in logs] == ["watcher_caught_up"]
    assert logs[0]["blocks"] == 900


async def test_progress_is_recorded_for_the_api(db: asyncpg.Pool) -> None:
    clock = Clock()
    tracker = CatchUp("tron-devnet", behind=100, every=5.0, clock=clock)
    await tracker.after_step(db, cursor=10, head=5_000)
    clock.now += 10
    await tracker.after_step(db, cursor=1_010, head=5_000)
    async with db.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM network_progress WHERE network = 'tron-devnet'")
    assert row is not None
    assert (row["head"], row["cursor"], row["catching_up"], row["blocks_done"]) == (
        5_000, 1_010, True, 1_000,
    )  # fmt: skip
    assert row["blocks_per_second"] == pytest.approx(100.0)
    assert row["eta_seconds"] == pytest.approx(39.9)
    async with db.acquire() as conn:
        view = (await progress.catch_up_views(conn))["tron-devnet"]
    assert view | {"catching_up": True, "blocks_done": 1_000, "blocks_to_go": 3_990,
                   "blocks_per_second": 100.0, "eta_seconds": 40} == view  # fmt: skip


async def test_the_console_networks_page_shows_a_watcher_catching_up(pg_admin_dsn: str) -> None:
    from console_support import VIEWER, serve_console

    async with serve_console(pg_admin_dsn) as console:
        async with console.db.acquire() as conn:
            await progress.record(conn, "bitcoin-devnet", 5_000, 1_010, True, 1_000, 100.0, 39.9)
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(console.url, cookie_jar=jar) as http:
            await login(http, VIEWER)
            async with http.get("/ops/networks") as resp:
                page = await resp.text()
    assert resp.status == 200
    assert "catching up: 1,000 done · 100 blk/s · ~40 s left" in page
