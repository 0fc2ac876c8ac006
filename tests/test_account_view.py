"""The live account view (bot.account_view, bot.order_activity): stale or failed balances deny
entries, and a venue-size read older than our last order on a (venue, symbol) is never used by
the leg-missing / delta-drift exits. Driven through the real application on the paper venues
with the live view swapped in (the view itself does not know the mode)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest

from bot.account_view import AccountUnknown, CachedAccount
from bot.app import Application
from bot.core.clock import ManualClock, parse_iso_utc
from bot.order_activity import ActivityTrackingExecutor, OrderActivity
from bot.settings import Settings
from bot.wiring import PaperOptions, paper_wiring

START_MS = parse_iso_utc("2026-03-01T00:00:00Z")
D = Decimal


def easy_settings() -> Settings:
    base = Settings()
    return base.model_copy(update={
        "strategy": base.strategy.model_copy(update={"min_expected_net_usd": D("-1000"), "max_positions": 1}),
        "risk": base.risk.model_copy(update={"max_breakeven_hours": D("1000000")}),
        "paper": base.paper.model_copy(update={"latency_ms": 0.0, "faults": base.paper.faults.model_copy(update={
            "reject_probability": 0.0, "timeout_probability": 0.0, "partial_fill_probability": 0.0,
            "latency_spike_probability": 0.0, "venue_outage_probability": 0.0,
            "stale_quote_probability": 0.0, "absurd_quote_probability": 0.0})}),
    })


async def make_app(tmp_path: Path, *, max_age_s: float) -> tuple[Application, ManualClock, CachedAccount]:
    """The paper application with the live account view: a cached view (refreshed only when a test
    says so: its background task is not running) over an executor that records order activity."""
    settings = easy_settings()
    clock = ManualClock(START_MS)
    base = paper_wiring(settings, PaperOptions(seed=3, speed=1.0, db_path=tmp_path / "paper.sqlite",
                                               start_ts_ms=START_MS), clock=clock)
    activity = OrderActivity()
    account = CachedAccount(clock, activity, refresh_s=3600, max_age_s=max_age_s)

    async def open_executor(market, clk):
        return ActivityTrackingExecutor(await base.open_executor(market, clk), activity)

    app = Application(settings, dataclasses.replace(base, account=account, open_executor=open_executor))
    await app.start()
    return app, clock, account


async def step(app: Application, clock: ManualClock, seconds: float = 60) -> None:
    clock.advance(seconds)
    await app.feed_step()
    await app.strategy_step()


@pytest.mark.anyio
async def test_a_stale_balance_reading_denies_every_entry(tmp_path: Path) -> None:
    app, clock, account = await make_app(tmp_path, max_age_s=30)
    try:
        for _ in range(20):  # each pass is 60 s after the only reading (taken at start-up)
            await step(app, clock)
        assert app.engine is not None and app.engine.positions == {}, "no entry on a stale equity"
        assert app._equity_cache == {}
        with pytest.raises(AccountUnknown, match="old"):
            await account.balances_usd()
        # The same market with a fresh reading before each pass enters: only the freshness bound denied.
        for _ in range(20):
            clock.advance(60)
            await account.refresh()
            await app.feed_step()
            await app.strategy_step()
            if app.engine.positions:
                break
        assert app.engine.positions, "a fresh reading allows entries"
    finally:
        await app.close()


class FailingBalances:
    """An executor whose balance read fails (everything else is the wrapped one's)."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    async def balances_usd(self):
        raise ConnectionError("venue down")


@pytest.mark.anyio
async def test_a_failed_balance_reading_makes_equity_unknown_and_denies_entries(tmp_path: Path) -> None:
    app, clock, account = await make_app(tmp_path, max_age_s=3600)
    try:
        assert app.executor is not None and app.engine is not None
        await account.attach(FailingBalances(app.executor), app.engine.venue_sizes)  # reads once: fails
        with pytest.raises(AccountUnknown, match="failed"):
            await account.balances_usd()
        assert dict(await account.venue_sizes()) == {}, "the positions read still succeeded"
        for _ in range(20):
            await step(app, clock)
        assert app.engine.positions == {}, "no entry while equity is unknown"
        assert app._equity_cache == {}
    finally:
        await app.close()


@pytest.mark.anyio
async def test_a_position_opened_after_the_size_read_is_not_closed_as_leg_missing(tmp_path: Path) -> None:
    app, clock, account = await make_app(tmp_path, max_age_s=100_000)
    try:
        assert app.engine is not None
        stale_read = account.sizes_reading
        assert stale_read is not None and stale_read.value == {}, "read at start-up: the venues hold nothing"
        for _ in range(30):
            await step(app, clock)
            if app.engine.active_positions():
                break
        (pos,) = app.engine.active_positions()
        assert pos.state.value == "monitoring"
        assert account.sizes_reading is stale_read, "no refresh ran: the only reading predates the entry"
        sizes = await app._venue_sizes()
        assert sizes is not None
        assert sizes.get((pos.long_venue, pos.symbol), D(0)) is None
        assert sizes.get((pos.short_venue, pos.symbol), D(0)) is None
        for _ in range(5):  # the old reading (both legs absent) would close it as leg_missing at once
            await step(app, clock)
        assert pos.state.value == "monitoring" and pos.exit_reason is None
        (view,) = app.held_views(venue_sizes=sizes)
        assert view.long_venue_size_base is None and view.short_venue_size_base is None
        # A read that starts after the entry is used, and it sees both legs.
        await account.refresh()
        fresh = await app._venue_sizes()
        assert fresh is not None
        assert fresh[(pos.long_venue, pos.symbol)] == pos.long_filled_base > 0
        assert fresh[(pos.short_venue, pos.symbol)] == -pos.short_filled_base < 0
        await step(app, clock)
        assert pos.state.value == "monitoring"
    finally:
        await app.close()


@pytest.mark.anyio
async def test_a_fresh_read_that_shows_a_leg_gone_still_closes_the_position(tmp_path: Path) -> None:
    """The view hides nothing it can vouch for: a leg removed at the venue after our last order is
    seen by the next read and the position exits as leg_missing (same as the direct reads)."""
    app, clock, account = await make_app(tmp_path, max_age_s=100_000)
    try:
        assert app.engine is not None and app.executor is not None
        for _ in range(30):
            await step(app, clock)
            if app.engine.active_positions():
                break
        (pos,) = app.engine.active_positions()
        from bot.core.domain import OrderRequest, OrderSide, OrderType

        # The venue closes the short leg behind the bot's back (a liquidation): sent to the paper
        # venue directly, so it is not our order activity.
        inner = app.executor._inner
        await inner.place_order(OrderRequest(
            client_order_id="liquidation0001", venue=pos.short_venue, symbol=pos.symbol, side=OrderSide.BUY,
            size_base=pos.short_filled_base, order_type=OrderType.MARKET, reduce_only=True))
        await account.refresh()
        await step(app, clock)
        assert pos.exit_reason == "leg_missing"
    finally:
        await app.close()


def test_activity_orders_reads_and_order_events() -> None:
    activity = OrderActivity()
    key = ("bybit", "BTC")
    before = activity.next_seq()
    activity.begin(key)
    during = activity.next_seq()
    assert not activity.is_settled_since(key, during), "an order in flight: no read judges that key"
    activity.end(key)
    assert not activity.is_settled_since(key, before) and not activity.is_settled_since(key, during)
    after = activity.next_seq()
    assert activity.is_settled_since(key, after)
    assert activity.is_settled_since(("bybit", "ETH"), before), "other symbols are not affected"
    activity.begin(("bybit", "*"))
    activity.end(("bybit", "*"))
    assert not activity.is_settled_since(("bybit", "ETH"), after), "a venue-wide cancel affects every symbol"
