"""Maker-taker entries: the maker leg rests post-only, each of its fills is hedged at once.

Every scenario ends hedged or flat, checked against the paper venues' own positions and the audit of
the two SQLite files. Faults at every await point and restarts are in test_engine_faults.py.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from bot.core.domain import (
    BookLevel,
    ExecutionMode,
    FeeSchedule,
    LegSide,
    Liquidity,
    OrderBook,
    OrderSide,
    OrderStatus,
)
from bot.core.maker_taker import choose_maker_leg, leg_fee_rates, maker_limit_price, round_trip_rate_floor
from engine_harness import (
    MAKER_CONFIG,
    T0_MS,
    ScriptedExecutor,
    audit_files,
    make_harness,
    opportunity,
    shift_book,
    venue_exposure,
)
from machines.position import PositionState
from risk.trading_state import GateDecision, GateReason, IntentKind

pytestmark = pytest.mark.anyio


def thin_asks(venue: str, symbol: str, price: str, size: str, ts_ms: int = T0_MS) -> OrderBook:
    """A book whose only ask is ``size`` at ``price`` (bids far below): a partial trade-through."""
    return OrderBook(venue=venue, symbol=symbol, bids=(BookLevel(D("99.00"), D(100)),),
                     asks=(BookLevel(D(price), D(size)),), ts_ms=ts_ms)


async def step(h) -> None:
    """A market step: the venues match resting orders, then the engine works its makers."""
    h.executor.match_resting()
    await h.engine.work_makers()


def hedged_or_flat(h) -> None:
    exposure = venue_exposure(h.executor)
    for symbol in {s for _, s in exposure}:
        net = sum((size for (_, s), size in exposure.items() if s == symbol), D(0))
        assert net == 0, f"{symbol} is naked: {exposure}"


# ---------------------------------------------------------------------- pure choices
def test_maker_leg_is_the_larger_saving_and_long_on_a_tie() -> None:
    cheap_maker = FeeSchedule(maker_bps=D("-1"), taker_bps=D("5.5"))  # grvt-like: saves 6.5
    small_saving = FeeSchedule(maker_bps=D("1.5"), taker_bps=D("4.5"))  # hyperliquid-like: saves 3
    assert choose_maker_leg(small_saving, cheap_maker) is LegSide.SHORT
    assert choose_maker_leg(cheap_maker, small_saving) is LegSide.LONG
    assert choose_maker_leg(small_saving, small_saving) is LegSide.LONG
    rates = leg_fee_rates(small_saving, cheap_maker, ExecutionMode.MAKER_TAKER)
    assert (rates.long_entry, rates.short_entry) == (D("0.00045"), D("-0.0001"))
    assert (rates.long_exit, rates.short_exit) == (D("0.00045"), D("0.00055"))
    taker = leg_fee_rates(small_saving, cheap_maker, ExecutionMode.TAKER)
    assert taker.short_entry == taker.short_exit == D("0.00055")
    # The pruning floor never exceeds what either role really pays.
    assert round_trip_rate_floor(cheap_maker, ExecutionMode.MAKER_TAKER) == D("0.00045")
    assert round_trip_rate_floor(cheap_maker, ExecutionMode.TAKER) == D("0.0011")


def test_maker_price_joins_our_touch_and_backs_off_by_ticks() -> None:
    book = OrderBook("a", "X", bids=(BookLevel(D("99.99"), D(1)),), asks=(BookLevel(D("100.01"), D(1)),), ts_ms=0)
    assert maker_limit_price(book, OrderSide.BUY, tick_size=D("0.01")) == D("99.99")
    assert maker_limit_price(book, OrderSide.SELL, tick_size=D("0.01"), offset_ticks=2) == D("100.03")
    assert maker_limit_price(None, OrderSide.BUY, tick_size=D("0.01")) is None


# ---------------------------------------------------------------------- engine scenarios
async def test_full_maker_fill_is_hedged_by_a_taker_ioc(tmp_path) -> None:
    h = await make_harness(tmp_path, config=MAKER_CONFIG)
    pos = await h.engine.open_position(opportunity("AAA"), D("1.0"), "test")
    assert pos.state == PositionState.RESTING.value and pos.is_flat
    assert venue_exposure(h.executor) == {}
    await step(h)  # the book has not moved: a post-only order does not fill on touch
    assert pos.state == PositionState.RESTING.value and pos.is_flat
    shift_book(h.books, "alpha", "AAA", D("99.5"))  # asks 99.51..: traded through our 99.99 bid
    await step(h)
    assert pos.state == PositionState.MONITORING.value
    assert pos.long_filled_base == pos.short_filled_base == D("1.0")
    assert venue_exposure(h.executor) == {("alpha", "AAA"): D("1.0"), ("beta", "AAA"): D("-1.0")}
    fills = await h.store.list_fills(pos.position_id)
    maker = [f for f in fills if f.venue == "alpha"]
    assert [(f.price, f.liquidity) for f in maker] == [(D("99.99"), Liquidity.MAKER)]
    assert all(f.liquidity is Liquidity.TAKER for f in fills if f.venue == "beta")
    assert len(h.engine.metrics.maker_fill_windows_ms) == 1 and h.engine.metrics.maker_fills_hedged == 1
    await h.aclose()
    assert audit_files(h.db_path).problems == {}


async def test_each_partial_maker_fill_is_hedged_at_once_and_the_rest_cancelled(tmp_path) -> None:
    h = await make_harness(tmp_path, config=MAKER_CONFIG)
    pos = await h.engine.open_position(opportunity("BBB"), D("1.0"), "test")
    h.books.set(thin_asks("alpha", "BBB", "99.98", "0.3"), "alpha", "BBB")
    await step(h)
    assert (pos.state, pos.long_filled_base, pos.short_filled_base) == (PositionState.RESTING.value, D("0.3"), D("0.3"))
    h.books.set(thin_asks("alpha", "BBB", "99.97", "0.4", T0_MS + 1), "alpha", "BBB")
    await step(h)
    assert (pos.long_filled_base, pos.short_filled_base) == (D("0.7"), D("0.7"))
    hedged_or_flat(h)
    h.clock.advance(31)  # past maker_timeout_s: the rest (0.3) is cancelled
    await step(h)
    assert pos.state == PositionState.MONITORING.value and pos.target_size_base == D("0.7")
    orders = {o.client_order_id: o for o in await h.store.list_orders(pos.position_id)}
    maker = [o for o in orders.values() if o.request.post_only]
    assert len(maker) == 1 and maker[0].status is OrderStatus.CANCELED and maker[0].filled_base == D("0.7")
    assert h.executor._resting.get(("alpha", "BBB"), {}) == {}
    assert len(h.engine.metrics.maker_fill_windows_ms) == 2
    await h.aclose()
    assert audit_files(h.db_path).problems == {}


async def test_unfilled_maker_times_out_flat(tmp_path) -> None:
    h = await make_harness(tmp_path, config=MAKER_CONFIG)
    pos = await h.engine.open_position(opportunity("CCC"), D("1.0"), "test")
    h.clock.advance(30)
    await step(h)
    assert pos.state == PositionState.CLOSED.value and pos.is_flat
    assert venue_exposure(h.executor) == {} and h.executor._resting.get(("alpha", "CCC"), {}) == {}
    await h.aclose()
    assert audit_files(h.db_path).problems == {}


async def test_post_only_that_would_cross_is_rejected_and_the_entry_ends_flat(tmp_path) -> None:
    h = await make_harness(tmp_path, config=MAKER_CONFIG)
    # Our price is read from one book; the venue sees a crossed market by the time it arrives.
    h.engine._book = lambda venue, symbol: OrderBook(venue, symbol, bids=(BookLevel(D("100.05"), D(1)),),
                                                    asks=(BookLevel(D("100.06"), D(1)),), ts_ms=T0_MS)
    pos = await h.engine.open_position(opportunity("DDD"), D("1.0"), "test")
    assert pos.state == PositionState.CLOSED.value and pos.is_flat
    [order] = await h.store.list_orders(pos.position_id)
    assert order.status is OrderStatus.REJECTED and "post_only" in (order.reason or "")
    await h.aclose()


async def test_a_hedge_that_finds_no_liquidity_ends_the_rest_and_is_unwound(tmp_path) -> None:
    h = await make_harness(tmp_path, config=MAKER_CONFIG)
    pos = await h.engine.open_position(opportunity("EEE"), D("1.0"), "test")
    h.books.set(None, "beta", "EEE")  # the hedge venue's book is gone
    h.books.set(thin_asks("alpha", "EEE", "99.98", "0.5"), "alpha", "EEE")
    await step(h)
    # The hedge failed: the rest is cancelled at once and repair unwinds the maker fill.
    assert pos.state == PositionState.CLOSED.value and pos.is_flat
    assert venue_exposure(h.executor) == {} and h.executor._resting.get(("alpha", "EEE"), {}) == {}
    await h.aclose()
    assert audit_files(h.db_path).problems == {}


async def test_maker_side_follows_the_fees(tmp_path) -> None:
    h = await make_harness(tmp_path, config=MAKER_CONFIG)
    h.engine._fees = {"alpha": FeeSchedule(D("2"), D("5")), "beta": FeeSchedule(D("-1"), D("5"))}.get
    pos = await h.engine.open_position(opportunity("FFF"), D("1.0"), "test")
    [order] = await h.store.list_orders(pos.position_id)
    assert order.request.venue == "beta" and order.leg is LegSide.SHORT and order.request.limit_price == D("100.01")
    shift_book(h.books, "beta", "FFF", D("100.5"))  # bids 100.49..: traded through our 100.01 ask
    await step(h)
    assert pos.state == PositionState.MONITORING.value
    await h.aclose()


async def test_close_and_flatten_of_a_resting_entry_cancel_it_and_end_flat(tmp_path) -> None:
    h = await make_harness(tmp_path, config=MAKER_CONFIG)
    pos = await h.engine.open_position(opportunity("AAA"), D("1.0"), "test")
    h.books.set(thin_asks("alpha", "AAA", "99.98", "0.3"), "alpha", "AAA")
    h.executor.match_resting()  # a maker fill the engine has not seen yet
    assert await h.engine.flatten_all("shutdown")
    assert pos.state == PositionState.CLOSED.value
    assert venue_exposure(h.executor) == {} and h.executor._resting.get(("alpha", "AAA"), {}) == {}
    await h.aclose()
    assert audit_files(h.db_path).problems == {}


async def test_restart_while_resting_applies_missed_fills_and_hedges_them(tmp_path) -> None:
    h = await make_harness(tmp_path, config=MAKER_CONFIG)
    pos = await h.engine.open_position(opportunity("BBB"), D("1.0"), "test")
    pid = pos.position_id
    h.books.set(thin_asks("alpha", "BBB", "99.98", "0.6"), "alpha", "BBB")
    h.executor.match_resting()  # filled at the venue while the bot is down
    books, clock = h.books, h.clock
    await h.aclose()
    h2 = await make_harness(tmp_path, config=MAKER_CONFIG, books=books, clock=clock)
    assert await h2.engine.restore() == 1
    restored = h2.engine.positions[pid]
    assert restored.state == PositionState.RESTING.value and pid in h2.engine._makers
    await h2.engine.reconcile()
    assert (restored.long_filled_base, restored.short_filled_base) == (D("0.6"), D("0.6"))
    assert restored.state == PositionState.RESTING.value  # still within its timeout: keeps resting
    hedged_or_flat(h2)
    clock.advance(31)
    await h2.engine.reconcile()
    assert restored.state == PositionState.MONITORING.value and restored.target_size_base == D("0.6")
    await h2.aclose()
    assert audit_files(h2.db_path).problems == {}


async def test_lost_hedge_answer_is_resolved_by_reconciliation(tmp_path) -> None:
    h = await make_harness(tmp_path, config=MAKER_CONFIG)
    scripted = ScriptedExecutor(h.executor)
    h.engine.executor = scripted
    scripted.on("ack_lost_down", venue="beta", purpose="repair")  # the hedge executed, its answer lost
    pos = await h.engine.open_position(opportunity("CCC"), D("1.0"), "test")
    shift_book(h.books, "alpha", "CCC", D("99.5"))
    await step(h)
    assert pos.state == PositionState.RESTING.value  # cannot settle while the hedge is unknown
    h.clock.advance(61)  # the hedge venue is back
    await h.engine.reconcile()
    assert pos.state == PositionState.MONITORING.value and pos.long_filled_base == pos.short_filled_base == D("1.0")
    hedged_or_flat(h)
    await h.aclose()
    assert audit_files(h.db_path).problems == {}


async def test_a_halt_cancels_a_resting_maker_and_keeps_what_was_hedged(tmp_path) -> None:
    h = await make_harness(tmp_path, config=MAKER_CONFIG)
    pos = await h.engine.open_position(opportunity("DDD"), D("1.0"), "test")
    h.books.set(thin_asks("alpha", "DDD", "99.98", "0.4"), "alpha", "DDD")
    await step(h)
    assert pos.state == PositionState.RESTING.value and pos.long_filled_base == pos.short_filled_base == D("0.4")
    # A breaker halts entries; hedges (repairs) still pass.
    h.engine._gate = lambda intent: GateDecision(intent.kind is not IntentKind.OPEN, GateReason.HALTED_DENIES)
    h.books.set(thin_asks("alpha", "DDD", "99.97", "0.2", T0_MS + 1), "alpha", "DDD")
    await step(h)  # the fill that raced the halt is hedged, then the rest is cancelled
    assert pos.state == PositionState.MONITORING.value and pos.target_size_base == D("0.6")
    assert h.executor._resting.get(("alpha", "DDD"), {}) == {}
    hedged_or_flat(h)
    await h.aclose()
    assert audit_files(h.db_path).problems == {}
