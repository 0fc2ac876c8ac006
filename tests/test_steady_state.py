"""Running for months: venue history out of memory, closed positions retired, loops on a deadline
schedule, O(1) freshness, lazy books, precomputed calibration."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest
from test_paper_executor import T0, make_env, order

from bot.app import Application
from bot.core.clock import ManualClock, parse_iso_utc
from bot.core.domain import FundingSettlement, OrderSide
from bot.market_view import LazyMapping, take_snapshot
from bot.ops.terminal import status_line
from bot.pacing import Pacer
from bot.settings import Settings
from bot.wiring import PaperOptions, paper_wiring
from paper.calibration import REAL_FUNDING_STATS, fit_funding_model
from paper.fitted_models import FITTED_MODELS
from paper.sim_market import SimMarketConfig, SimulatedMarket
from risk.breakers import BreakerBoard, BreakerSettings

START_MS = parse_iso_utc("2026-03-01T00:00:00Z")
DAY_MS = 86_400_000


# -- simulated venues: history older than the window answered from the store --------------------------

@pytest.mark.anyio
async def test_venue_history_leaves_memory_and_is_still_answered_from_the_store() -> None:
    env = make_env()
    ex = env.ex
    report = await ex.place_order(order(OrderSide.BUY, "0.5", cid="old-buy"))
    settlement = FundingSettlement("alpha", "BTC", T0 + 3_600_000, D("0.0001"), D(8), D(100))
    [payment] = ex.settle_funding(settlement)
    fills_before = await ex.fills_since("alpha", 0)
    env.clock.now = T0 + 3 * DAY_MS
    dropped = ex.prune_history(env.clock.now)
    assert dropped >= 3, "the order, its fill and the payment left memory"
    assert not ex._orders and not ex._venue_fills["alpha"] and not ex._funding["alpha"]
    assert await ex.get_order("alpha", "old-buy") == report
    assert await ex.fills_since("alpha", 0) == fills_before
    assert await ex.funding_payments_since("alpha", 0) == [payment]
    assert ex.settle_funding(settlement) == [payment], "a settlement already paid is not paid twice"
    assert await ex.get_order("alpha", "never-sent") is None
    again = await ex.place_order(order(OrderSide.BUY, "0.5", cid="old-buy"))
    assert again == report, "re-sending an old client order id is idempotent, not a second order"
    # the position itself is state, not history: it stays
    assert [p.size_base for p in await ex.positions("alpha")] == [D("0.5")]


@pytest.mark.anyio
async def test_a_repeated_funding_read_before_the_horizon_is_answered_once_from_the_store() -> None:
    # Reconciliation asks every venue for its funding since the latest payment recorded (0 when
    # none) every pass: the store is read again only after a new payment was written there.
    env = make_env()
    ex = env.ex
    await ex.place_order(order(OrderSide.BUY, "0.5", cid="buy"))
    [first] = ex.settle_funding(FundingSettlement("alpha", "BTC", T0 + 3_600_000, D("0.0001"), D(8), D(100)))
    env.clock.now = T0 + 3 * DAY_MS
    assert ex.prune_history(env.clock.now) >= 1
    store_reads: list[tuple[str, int]] = []
    funding_since = ex._store.funding_since

    def counted(venue: str, since_ts_ms: int):
        store_reads.append((venue, since_ts_ms))
        return funding_since(venue, since_ts_ms)

    ex._store.funding_since = counted
    for _ in range(3):
        assert await ex.funding_payments_since("alpha", 0) == [first]
    assert store_reads == [("alpha", 0)]
    answer = await ex.funding_payments_since("alpha", 0)
    answer.clear()  # a caller's list is its own
    assert await ex.funding_payments_since("alpha", 0) == [first]
    [second] = ex.settle_funding(FundingSettlement("alpha", "BTC", env.clock.now, D("0.0001"), D(8), D(100)))
    assert await ex.funding_payments_since("alpha", 0) == [first, second]
    assert len(store_reads) == 2
    assert await ex.funding_payments_since("alpha", 1) == [first, second]  # another question: asked
    assert len(store_reads) == 3


# -- engine: closed positions retired, indexes, totals ---------------------------------------------------

def _easy_settings() -> Settings:
    base = Settings()
    return base.model_copy(update={
        "strategy": base.strategy.model_copy(update={"min_expected_net_usd": D(-1000)}),
        "risk": base.risk.model_copy(update={"max_breakeven_hours": D(1000000)}),
        "exit": base.exit.model_copy(update={"max_hold_hours": D(2), "min_hold_hours": D(1)}),
    })


@pytest.mark.anyio
async def test_closed_positions_leave_memory_but_not_the_database_or_the_totals(tmp_path: Path) -> None:
    clock = ManualClock(START_MS)
    settings = _easy_settings()
    app = Application(settings, paper_wiring(settings, PaperOptions(
        seed=3, speed=1.0, db_path=tmp_path / "paper.sqlite", start_ts_ms=START_MS), clock=clock))
    await app.start()
    try:
        engine = app.engine
        assert engine is not None and app.store is not None
        for _ in range(8 * 60):
            clock.advance(60)
            await app.feed_step()
            await app.strategy_step()
            if clock.now_ms() % 1_800_000 == 0:
                await app.reconcile_step()
        await app.reconcile_step()
        assert engine.retired_count > 0, "positions held past max_hold closed and were retired"
        closed_rows = [r for r in await app.store.list_positions() if r.state == "closed"]
        assert len(closed_rows) == engine.closed_count(), "the database keeps every closed position"
        assert all(p.state.value != "closed" for p in engine.positions.values())
        assert set(engine.orders) == {cid for pid in engine.positions for cid in engine.orders_of(pid)}
        assert not set(engine._locks) - set(engine.positions)
        assert not set(app.entry_info) - set(engine.positions)
        totals_fees = D(0)
        for row in await app.store.list_positions():
            totals_fees += sum((f.fee_usd for f in await app.store.list_fills(row.id)), D(0))
        assert engine.total_fees_usd() == totals_fees, "retired fees stay in the totals"
        for pos in engine.active_positions():  # indexed lookups agree with a scan
            assert engine.owner_of(pos.long_venue, pos.symbol)[0] is pos
            assert engine.owner_of(pos.short_venue, pos.symbol)[0] is pos
        assert "closed=" in status_line(app)
    finally:
        await app.close()


# -- loops: a deadline schedule and measured lag --------------------------------------------------------

@pytest.mark.anyio
async def test_pacer_keeps_the_rate_and_reports_falling_behind_once() -> None:
    clock = ManualClock(START_MS)
    behind: list[int] = []
    pacer = Pacer("strategy", clock, 60, first_delay_s=0, on_behind=lambda p, lag: behind.append(lag))
    starts = []
    for n in range(5):
        await pacer.wait()
        starts.append(clock.now_ms())
        clock.advance(20)  # 20 s of work: the next tick still starts on its 60 s grid
    assert [s - START_MS for s in starts] == [0, 60_000, 120_000, 180_000, 240_000]
    assert pacer.stats().max_lag_ms == 0
    clock.advance(600)  # the work took 10 minutes: far behind
    lag = await pacer.wait()
    assert lag > 2 * 60_000 and pacer.behind and pacer.missed_ticks >= 9
    assert behind == [lag]
    clock.advance(1000)
    await pacer.wait()
    assert behind == [lag], "said once"


@pytest.mark.anyio
async def test_app_loops_record_lag_and_say_once_when_they_cannot_keep_up(tmp_path: Path) -> None:
    clock = ManualClock(START_MS)
    settings = Settings()
    app = Application(settings, paper_wiring(settings, PaperOptions(
        seed=3, speed=1.0, db_path=tmp_path / "paper.sqlite", start_ts_ms=START_MS), clock=clock))
    await app.start()
    try:
        pacer = app.pacers["strategy"]
        await pacer.wait()
        clock.advance(3600)
        await pacer.wait()
        await app.reconcile_step()  # flushes pending events
        events = await app.store.list_events(kind="loop_behind")
        assert len(events) == 1 and "cannot keep up" in events[0].message and "strategy" in events[0].message
        report = app.lag_report()
        assert report["strategy"]["behind"] and report["strategy"]["max_lag_ms"] == 3_540_000
        assert "BEHIND: strategy" in status_line(app)
    finally:
        await app.close()


# -- breaker board: freshness in O(1) ---------------------------------------------------------------------

def test_record_quote_without_a_state_change_returns_the_same_board() -> None:
    board = BreakerBoard.create(["A", "B"], BreakerSettings(stale_quote_max_age_ms=5_000))
    board, events = board.record_quote("A", 1_000, 1_000)
    assert events and not board.stale["A"].is_open
    same, events = board.record_quote("A", 2_000, 2_000)
    assert same is board and events == ()
    assert board.last_quote_ts_ms["A"] == 2_000
    same, _ = board.record_quote("A", 1_500, 2_100)  # a late, older quote never lowers it
    assert board.last_quote_ts_ms["A"] == 2_000
    board, events = board.tick(7_001)
    assert board.stale["A"].is_open and events


# -- lazy books -------------------------------------------------------------------------------------------

def test_snapshot_builds_only_the_books_it_reads() -> None:
    market = SimulatedMarket(SimMarketConfig(symbol_count=50), seed=4, start_ts_ms=START_MS)
    market.advance_to(START_MS + 60_000)
    snapshot = take_snapshot(market, START_MS + 60_000)
    books = snapshot.books
    assert isinstance(books, LazyMapping)
    assert books  # truthiness reads one book, not all
    assert books.fetched == 1
    key = next(iter(snapshot.quotes))
    assert books.get(key) == market.book(*key)
    assert books.get(("nowhere", "BTC")) is None and ("nowhere", "BTC") not in books
    assert books.fetched <= 3
    assert dict(books) == {(b.venue, b.symbol): b for b in market.books()}, "iteration still sees every book"


def test_fitted_models_are_the_fits_of_the_constants() -> None:
    for name, (stats, model) in FITTED_MODELS.items():
        assert stats == REAL_FUNDING_STATS[name], f"regenerate: python bench/calibrate.py --write-models ({name})"
        assert model == fit_funding_model(stats)
    assert set(FITTED_MODELS) == set(REAL_FUNDING_STATS)
