"""Event-driven strategy passes: in the live wiring a book update wakes the strategy loop at once
(bot.market_trigger); paper and backtest keep the timer only. Against the local emulator."""

from __future__ import annotations

import gc
import io
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from bot.core.clock import ManualClock, ScaledClock, utc_now_ms
from bot.market_trigger import MARKET, TIMER, MarketTrigger
from bot.pacing import Pacer
from bot.settings import Settings
from bot.wiring import PaperOptions, paper_wiring

VENUES = ["bybit", "hyperliquid"]


def live_settings(tmp_path: Path, base_urls: dict[str, str]) -> Settings:
    base = Settings()
    from bot.settings import VenueSection

    return base.model_copy(update={
        "bot": base.bot.model_copy(update={"log_path": tmp_path / "bot.log.jsonl"}),
        "live": base.live.model_copy(update={"venues": VENUES, "symbols": ["BTC"]}),
        # Nothing is worth entering, and the timer's next pass is an hour away: any second pass
        # can only come from the market-data trigger.
        "strategy": base.strategy.model_copy(update={"min_expected_net_usd": Decimal("1000000"),
                                                     "loop_interval_seconds": 3600.0}),
        "venues": {v: VenueSection(base_url=base_urls[v]) for v in VENUES},
    })


@pytest.mark.anyio
async def test_a_book_update_wakes_a_strategy_pass_in_the_live_wiring(tmp_path: Path) -> None:
    from adapters.registry import LiveVenueConfig, build_live_session
    from bot.app import Application
    from bot.wiring import live_wiring
    from paper.emulator import start_emulator

    with start_emulator(VENUES, state_path=tmp_path / "v.sqlite") as emu:
        env = {"BYBIT_API_KEY": emu.credentials["bybit"].key, "BYBIT_API_SECRET": emu.credentials["bybit"].secret,
               "HYPERLIQUID_WALLET_ADDRESS": emu.credentials["hyperliquid"].key,
               "HYPERLIQUID_PRIVATE_KEY": emu.credentials["hyperliquid"].secret}
        settings = live_settings(tmp_path, emu.base_urls)
        session = await build_live_session({v: LiveVenueConfig(base_url=emu.base_urls[v]) for v in VENUES}, env,
                                           symbols=["BTC"], max_slippage_bps=Decimal(30))
        try:
            await session.setup()
            wiring = live_wiring(settings, session, tmp_path / "live.sqlite", ScaledClock(utc_now_ms(), 1.0))
            assert wiring.trigger is not None and wiring.account is not None
            app = Application(settings, wiring, status_out=io.StringIO())
            # Live data arrives by itself: the feed step (freshness for the stale-data breakers) runs
            # every second, not every sim.step_seconds (60), so a late first quote is not a minute stale.
            assert app.pacers["feed"].interval_ms == 1000 < settings.sim.step_seconds * 1000
            passes: list[int] = []  # trigger notifications seen when each pass began
            original = app.strategy_step

            async def counted_step() -> None:
                passes.append(wiring.trigger.notifications)
                await original()
            app.strategy_step = counted_step  # type: ignore[method-assign]
            async with anyio.create_task_group() as tg:
                for task in wiring.background:
                    tg.start_soon(task)
                await app.start()
                assert app.bot.allows_entries
                # Live freezes its start-up heap (bot.heap): collections never walk the markets' tables.
                assert wiring.freeze_heap_after_start and app.heap.frozen and gc.get_freeze_count() > 0
                tg.start_soon(app.strategy_loop)
                with anyio.fail_after(120):  # the first pass is due at once; the next timer tick in an hour
                    while len(passes) < 3:
                        await anyio.sleep(0.01)
                assert wiring.trigger.market_wakes >= 2
                assert wiring.trigger.timer_wakes <= 1
                assert passes[2] > passes[1] > 0, "each woken pass follows new book updates"
                assert wiring.account.reads >= 1 and await wiring.account.balances_usd()
                # live.spare_connections (2): the ccxt venue's pool holds two idle connections, opened
                # in the background (adapters.ccxt_common.connection_reserve); pybit's Bybit has none
                reserves = [t.__self__ for t in wiring.background if type(getattr(t, "__self__", None)).__name__
                            == "ConnectionReserve"]
                assert [r.venue for r in reserves] == ["hyperliquid"]
                with anyio.fail_after(10):
                    while max(reserves[0].idle_counts().values(), default=0) < 2:
                        await anyio.sleep(0.05)
                tg.cancel_scope.cancel()
            await app.close()
            assert not app.heap.frozen and gc.get_freeze_count() == 0
        finally:
            await session.close()


def test_paper_has_no_trigger_and_no_cached_account(tmp_path: Path) -> None:
    wiring = paper_wiring(Settings(), PaperOptions(seed=1, speed=1.0, db_path=tmp_path / "p.sqlite", start_ts_ms=0),
                          clock=ManualClock(0))
    assert wiring.trigger is None and wiring.account is None
    assert not wiring.freeze_heap_after_start
    assert wiring.feed_step_seconds is None, "paper steps its market every sim.step_seconds"


@pytest.mark.anyio
async def test_updates_coalesce_and_a_running_pass_absorbs_them() -> None:
    trigger = MarketTrigger()
    pacer = Pacer("strategy", ScaledClock(utc_now_ms(), 1.0), 3600.0, first_delay_s=3600.0)
    for _ in range(50):
        trigger.notify("bybit", "BTC")
    with anyio.fail_after(30):
        assert await trigger.wait(pacer) == MARKET
    assert not trigger.pending, "fifty updates made one pass"
    trigger.notify("bybit", "BTC")  # arrives while that pass runs
    trigger.notify("hyperliquid", "BTC")
    with anyio.fail_after(30):
        assert await trigger.wait(pacer) == MARKET
    assert trigger.market_wakes == 2
    due = Pacer("strategy", ScaledClock(utc_now_ms(), 1.0), 3600.0, first_delay_s=0.0)
    with anyio.fail_after(30):
        assert await trigger.wait(due) == TIMER, "no update: the timer's tick"


@pytest.mark.anyio
async def test_updates_that_do_not_matter_do_not_wake() -> None:
    trigger = MarketTrigger(matters=lambda venue, symbol: symbol == "BTC")
    trigger.notify("bybit", "DOGE")
    assert not trigger.pending
    trigger.notify("bybit", "BTC")
    assert trigger.pending
