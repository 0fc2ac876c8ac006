"""The trading engine against the paper executor: entry, repair, exit, restore, reconciliation.

Books are deep (price 100, tick 0.01, lot 0.1, 100 base per level) unless a test thins one; the
gate allows everything; the clock is manual. Every test ends by auditing the two SQLite files
(tests/engine_harness.py::audit_files): no duplicate or unintended orders, no over-fills, the
venues' positions equal what the open positions hold.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import anyio
import pytest

from bot.core.domain import BookLevel, LegSide, OrderBook, OrderRequest, OrderSide, OrderStatus, OrderType, TimeInForce
from engine_harness import (
    FAST_CONFIG,
    T0_MS,
    ScriptedExecutor,
    assert_never_monitoring_unhedged,
    audit_files,
    make_harness,
    opportunity,
    purpose_of,
    venue_exposure,
)
from bot.core import orders_first
from machines.position import PositionState
from storage import client_order_id

pytestmark = pytest.mark.anyio

ONE = D("1.0")


def venue_sizes(h) -> dict[tuple[str, str], D]:
    return venue_exposure(h.executor)


def assert_clean(h) -> None:
    audit = audit_files(h.db_path)
    assert audit.problems == {}, audit.problems
    assert audit.unrecorded_fills == []
    assert_never_monitoring_unhedged(h.engine)


async def orders_of(h, position_id: str) -> list[tuple[str, str, str | None, D]]:
    rows = await h.store.list_orders(position_id)
    return [(o.purpose.value, o.leg.value, o.status.value if o.status else None, o.filled_base) for o in rows]


async def transitions_of(h, position_id: str) -> list[tuple[str, str]]:
    return [(t.source, t.dest) for t in await h.store.list_transitions(entity_id=position_id)]


# ------------------------------------------------------------------------------------------ entry
async def test_a_free_position_lock_is_taken_without_yielding_and_a_held_one_still_waits(tmp_path):
    """The entry path takes its position's lock without letting every ready task run first (live:
    the three venues' stream handlers would sit between the decision and the orders)."""
    h = await make_harness(tmp_path)
    order: list[str] = []

    async def other() -> None:
        order.append("other task")

    async def second_holder() -> None:
        async with h.engine.lock_for("p1"):
            order.append("second holder")

    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        async with h.engine.lock_for("p1"):
            order.append("locked")
            tg.start_soon(second_holder)
            await anyio.wait_all_tasks_blocked()
            assert order == ["locked", "other task"], "a held lock must still make the next holder wait"
        # released: the waiting holder gets it
    assert order == ["locked", "other task", "second holder"]
    await h.aclose()


async def test_clean_entry_ends_monitoring_with_both_legs_at_target(tmp_path):
    h = await make_harness(tmp_path)
    pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")

    assert pos.state == PositionState.MONITORING
    assert (pos.long_filled_base, pos.short_filled_base, pos.target_size_base) == (ONE, ONE, ONE)
    assert venue_sizes(h) == {("alpha", "AAA"): ONE, ("beta", "AAA"): -ONE}
    fills = await h.store.list_fills(pos.position_id)
    # One level of the deep book covers 1.0: buy at the best ask 100.01, sell at the best bid 99.99.
    assert sorted((f.venue, f.side.value, f.price, f.size_base) for f in fills) == [
        ("alpha", "buy", D("100.01"), ONE), ("beta", "sell", D("99.99"), ONE)]
    assert sorted(await orders_of(h, pos.position_id)) == [
        ("open", "long", "filled", ONE), ("open", "short", "filled", ONE)]
    assert await transitions_of(h, pos.position_id) == [("scanning", "opening"), ("opening", "monitoring")]
    row = await h.store.get_position(pos.position_id)
    assert (row.state, row.long_size_base, row.short_size_base) == ("monitoring", ONE, ONE)
    # Fees: 5 bps taker on 100.01 and 99.99 notional.
    assert h.engine.fees_usd[pos.position_id] == D("100.01") * D("0.0005") + D("99.99") * D("0.0005")
    assert len(h.engine.metrics.dispatch_skew_ns) == 1
    assert_clean(h)
    await h.aclose()


async def test_open_refuses_a_second_position_on_a_held_venue_symbol(tmp_path):
    h = await make_harness(tmp_path)
    await h.engine.open_position(opportunity("AAA", "alpha", "beta"), ONE, "test")
    with pytest.raises(ValueError, match="already held"):
        await h.engine.open_position(opportunity("AAA", "beta", "gamma"), ONE, "test")
    assert venue_sizes(h) == {("alpha", "AAA"): ONE, ("beta", "AAA"): -ONE}
    await h.aclose()


async def test_rejected_leg_is_repaired_to_a_full_hedge(tmp_path):
    h = await make_harness(tmp_path)
    scripted = ScriptedExecutor(h.executor)
    scripted.on("reject", venue="beta", purpose="open")
    h.engine.executor = scripted

    pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")

    assert pos.state == PositionState.MONITORING
    assert (pos.long_filled_base, pos.short_filled_base, pos.target_size_base) == (ONE, ONE, ONE)
    assert sorted(await orders_of(h, pos.position_id)) == [
        ("open", "long", "filled", ONE), ("open", "short", "rejected", D(0)), ("repair", "short", "filled", ONE)]
    assert await transitions_of(h, pos.position_id) == [
        ("scanning", "opening"), ("opening", "recovering"), ("recovering", "monitoring")]
    assert venue_sizes(h) == {("alpha", "AAA"): ONE, ("beta", "AAA"): -ONE}
    # The long leg stood alone from its fill until the repair filled: one window, measured.
    assert len(h.windows_ms) == 1 and h.windows_ms[0] >= 0
    assert_clean(h)
    await h.aclose()


async def test_leg_that_can_never_fill_is_unwound_to_flat(tmp_path):
    h = await make_harness(tmp_path)
    scripted = ScriptedExecutor(h.executor)
    scripted.on("reject", venue="beta", times=-1)
    h.engine.executor = scripted

    pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")

    assert pos.state == PositionState.CLOSED
    assert pos.is_flat
    assert venue_sizes(h) == {}
    purposes = [purpose_of(cid) for cid in scripted.placed]
    assert sorted(purposes) == ["open", "open", "repair", "repair", "repair", "unwind"]
    orders = await orders_of(h, pos.position_id)
    assert ("unwind", "long", "filled", ONE) in orders
    assert await transitions_of(h, pos.position_id) == [
        ("scanning", "opening"), ("opening", "recovering"), ("recovering", "closed")]
    assert_clean(h)
    await h.aclose()


async def test_both_legs_rejected_closes_without_repair(tmp_path):
    h = await make_harness(tmp_path)
    scripted = ScriptedExecutor(h.executor)
    scripted.on("reject", purpose="open", times=2)
    h.engine.executor = scripted

    pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")

    assert pos.state == PositionState.CLOSED
    assert len(scripted.placed) == 2  # nothing to repair, nothing to unwind
    assert await transitions_of(h, pos.position_id) == [("scanning", "opening"), ("opening", "closed")]
    assert_clean(h)
    await h.aclose()


def thin_bids(venue: str, symbol: str, levels: list[tuple[str, str]]) -> OrderBook:
    asks = tuple(BookLevel(D("100") + D("0.01") * (i + 1), D(100)) for i in range(10))
    return OrderBook(venue, symbol, tuple(BookLevel(D(p), D(s)) for p, s in levels), asks, T0_MS)


async def test_partial_fill_is_completed_by_a_widening_repair(tmp_path):
    h = await make_harness(tmp_path)
    # The short leg sells into bids: 0.4 at 99.99 then 100 at 99.80. The entry's bound is
    # 99.99 x (1 - 10 bps) = 99.89 (floored to the tick), so it fills 0.4. Repair attempt 1 uses
    # the same bound (nothing left above it); attempt 2 widens by 10 bps to 99.79 and fills 0.6.
    h.books.set(thin_bids("beta", "AAA", [("99.99", "0.4"), ("99.80", "100")]), "beta", "AAA")

    pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")

    assert pos.state == PositionState.MONITORING
    assert (pos.long_filled_base, pos.short_filled_base, pos.target_size_base) == (ONE, ONE, ONE)
    orders = await h.store.list_orders(pos.position_id)
    short = [(o.purpose.value, o.attempt, o.request.limit_price, o.status.value, o.filled_base)
             for o in orders if o.leg is LegSide.SHORT]
    assert short == [
        ("open", 0, D("99.89"), "canceled", D("0.4")),
        ("repair", 1, D("99.89"), "canceled", D("0")),
        ("repair", 2, D("99.79"), "filled", D("0.6")),
    ]
    assert venue_sizes(h) == {("alpha", "AAA"): ONE, ("beta", "AAA"): -ONE}
    assert_clean(h)
    await h.aclose()


async def test_partial_fill_that_cannot_be_completed_keeps_the_hedged_part(tmp_path):
    h = await make_harness(tmp_path)
    # Only 0.4 is ever available within any repair bound on the short side.
    h.books.set(thin_bids("beta", "AAA", [("99.99", "0.4"), ("90", "100")]), "beta", "AAA")

    pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")

    assert pos.state == PositionState.MONITORING
    # The excess 0.6 of the long leg was unwound reduce-only; the 0.4 hedge is the new target.
    assert (pos.long_filled_base, pos.short_filled_base, pos.target_size_base) == (D("0.4"), D("0.4"), D("0.4"))
    assert ("unwind", "long", "filled", D("0.6")) in await orders_of(h, pos.position_id)
    assert venue_sizes(h) == {("alpha", "AAA"): D("0.4"), ("beta", "AAA"): D("-0.4")}
    row = await h.store.get_position(pos.position_id)
    assert (row.state, row.target_size_base, row.long_size_base, row.short_size_base) == (
        "monitoring", D("0.4"), D("0.4"), D("0.4"))
    assert_clean(h)
    await h.aclose()


# ------------------------------------------------------------------------------------------- exit
async def test_exit_closes_both_legs_and_verifies_flat_at_the_venues(tmp_path):
    h = await make_harness(tmp_path)
    pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")

    assert await h.engine.close_position(pos, "max_hold") is True

    assert pos.state == PositionState.CLOSED and pos.is_flat
    assert venue_sizes(h) == {}
    assert sorted(await orders_of(h, pos.position_id)) == [
        ("close", "long", "filled", ONE), ("close", "short", "filled", ONE),
        ("open", "long", "filled", ONE), ("open", "short", "filled", ONE)]
    closes = [o for o in await h.store.list_orders(pos.position_id) if o.purpose.value == "close"]
    assert all(o.request.reduce_only for o in closes)
    assert await transitions_of(h, pos.position_id) == [
        ("scanning", "opening"), ("opening", "monitoring"), ("monitoring", "closing"), ("closing", "closed")]
    row = await h.store.get_position(pos.position_id)
    assert (row.state, row.exit_reason, row.closed_at_ts_ms) == ("closed", "max_hold", T0_MS)
    assert_clean(h)
    await h.aclose()


async def test_exit_waits_for_venue_confirmation_when_positions_cannot_be_read(tmp_path):
    h = await make_harness(tmp_path)
    pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")
    scripted = ScriptedExecutor(h.executor)
    h.engine.executor = scripted

    # The close orders fill, then the venue goes down before flatness can be verified.
    async def positions_down(venue=None):
        from adapters.errors import TemporaryVenueError
        raise TemporaryVenueError(venue or "alpha", "scripted outage")

    scripted.positions = positions_down  # type: ignore[method-assign]
    assert await h.engine.close_position(pos, "max_hold") is False
    assert pos.state == PositionState.CLOSING and pos.is_flat
    assert [e.kind for e in await h.store.list_events(entity_id=pos.position_id)] == ["close_unverified"]

    h.engine.executor = h.executor  # the venue answers again
    findings = await h.engine.reconcile()
    assert findings == []
    assert pos.state == PositionState.CLOSED
    assert_clean(h)
    await h.aclose()


async def test_foreign_size_at_exit_is_not_absorbed_and_is_left_to_the_orphan_policy(tmp_path):
    h = await make_harness(tmp_path)
    pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")
    # Something outside the engine added 0.3 to the long venue's position (e.g. a manual trade).
    await h.executor.place_order(OrderRequest("manual-1", "alpha", "AAA", OrderSide.BUY, D("0.3")))

    assert await h.engine.close_position(pos, "max_hold") is True

    # Our own 1.0 is closed; the 0.3 nobody's fills explain is neither adopted nor traded by the exit.
    assert pos.state == PositionState.CLOSED
    assert venue_sizes(h) == {("alpha", "AAA"): D("0.3")}
    kinds = [e.kind for e in await h.store.list_events(entity_id=pos.position_id)]
    assert kinds == ["foreign_exposure"]
    # The next reconciliation reports it as an orphan (policy "alert" here) and the symbol is refused.
    findings = await h.engine.reconcile()
    assert [(f.kind, f.venue, f.symbol, f.actual_base) for f in findings] == [("orphan", "alpha", "AAA", D("0.3"))]
    assert h.engine.orphaned_symbols() == {"AAA"}
    await h.aclose()


async def test_foreign_size_beside_an_open_position_never_resizes_it(tmp_path):
    h = await make_harness(tmp_path)
    pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")
    await h.executor.place_order(OrderRequest("manual-1", "alpha", "AAA", OrderSide.BUY, ONE))

    findings = await h.engine.reconcile()

    assert [(f.kind, f.venue, f.expected_base, f.actual_base) for f in findings] == [
        ("foreign_exposure", "alpha", ONE, D("2.0"))]
    assert (pos.state, pos.long_filled_base, pos.short_filled_base) == (PositionState.MONITORING, ONE, ONE)
    assert h.engine.orphaned_symbols() == {"AAA"}
    assert venue_sizes(h) == {("alpha", "AAA"): D("2.0"), ("beta", "AAA"): D("-1.0")}
    # A venue holding LESS than our fills (e.g. a liquidation) is still adopted (shrink) and repaired.
    await h.executor.place_order(OrderRequest("manual-2", "alpha", "AAA", OrderSide.SELL, D("1.5")))
    await h.engine.reconcile()
    adjusted = [e.message for e in await h.store.list_events(entity_id=pos.position_id) if e.kind == "leg_adjusted"]
    assert adjusted == ["long leg on alpha set to venue's 0.5 (was 1.0)"]
    # The repair completed the hedge again with our own order: legs equal, venue equal to our fills.
    assert (pos.state, pos.long_filled_base, pos.short_filled_base) == (PositionState.MONITORING, ONE, ONE)
    assert venue_sizes(h) == {("alpha", "AAA"): ONE, ("beta", "AAA"): -ONE}
    assert h.engine.orphaned_symbols() == frozenset()
    await h.aclose()


# ---------------------------------------------------------------------------------------- restore
async def test_restore_rebuilds_open_positions_and_their_order_history(tmp_path):
    h = await make_harness(tmp_path)
    a = await h.engine.open_position(opportunity("AAA"), ONE, "test")
    b = await h.engine.open_position(opportunity("BBB", "beta", "gamma"), D("2.0"), "test")
    c = await h.engine.open_position(opportunity("CCC"), ONE, "test")
    assert await h.engine.close_position(c, "test")
    await h.aclose()

    h2 = await make_harness(tmp_path, clock=h.clock)
    assert await h2.engine.restore() == 2
    restored = h2.engine.positions
    assert set(restored) == {a.position_id, b.position_id}
    ra, rb = restored[a.position_id], restored[b.position_id]
    assert (ra.state, ra.long_filled_base, ra.short_filled_base) == (PositionState.MONITORING, ONE, ONE)
    assert (rb.symbol, rb.long_venue, rb.short_venue, rb.long_filled_base, rb.short_filled_base) == (
        "BBB", "beta", "gamma", D("2.0"), D("2.0"))
    assert h2.engine.fees_usd[a.position_id] == h.engine.fees_usd[a.position_id]
    assert await h2.engine.reconcile() == []
    # New orders after a restart never reuse a client order id: the close of A is attempt 0,
    # its open was attempt 0 of another purpose; a second close attempt would be attempt 1.
    assert await h2.engine.close_position(ra, "test")
    assert await h2.engine.close_position(rb, "test")
    assert venue_sizes(h2) == {}
    assert_clean(h2)
    await h2.aclose()


async def test_restart_after_intents_persisted_but_never_sent_closes_cleanly(tmp_path):
    h = await make_harness(tmp_path)
    scripted = ScriptedExecutor(h.executor)
    scripted.on("crash_before", venue="alpha", purpose="open")
    scripted.on("crash_before", venue="beta", purpose="open")
    h.engine.executor = scripted
    with pytest.raises(BaseExceptionGroup):
        await h.engine.open_position(opportunity("AAA"), ONE, "test")
    pid = next(iter(h.engine.positions))
    await h.aclose()

    h2 = await make_harness(tmp_path, clock=h.clock)
    assert await h2.engine.restore() == 1
    assert h2.engine.positions[pid].state == PositionState.OPENING
    await h2.engine.reconcile()
    pos = h2.engine.positions[pid]
    assert pos.state == PositionState.CLOSED
    assert sorted(await orders_of(h2, pid)) == [("open", "long", "rejected", D(0)), ("open", "short", "rejected", D(0))]
    assert venue_sizes(h2) == {}
    assert_clean(h2)
    await h2.aclose()


async def test_restart_after_crash_between_venue_fill_and_record_applies_the_fill(tmp_path):
    h = await make_harness(tmp_path)
    scripted = ScriptedExecutor(h.executor)
    scripted.on("crash_after", venue="beta", purpose="open")
    h.engine.executor = scripted
    with pytest.raises(BaseExceptionGroup):
        await h.engine.open_position(opportunity("AAA"), ONE, "test")
    pid = next(iter(h.engine.positions))
    await h.aclose()
    # The venue holds the short fill that the bot never recorded.
    audit = audit_files(h.db_path)
    assert any("beta" in u for u in audit.unrecorded_fills)

    h2 = await make_harness(tmp_path, clock=h.clock)
    await h2.engine.restore()
    await h2.engine.reconcile()
    pos = h2.engine.positions[pid]
    assert pos.state == PositionState.MONITORING
    assert (pos.long_filled_base, pos.short_filled_base) == (ONE, ONE)
    assert venue_sizes(h2) == {("alpha", "AAA"): ONE, ("beta", "AAA"): -ONE}
    assert sorted(await orders_of(h2, pid)) == [("open", "long", "filled", ONE), ("open", "short", "filled", ONE)]
    assert_clean(h2)
    await h2.aclose()


async def test_kill_after_the_entry_journal_before_its_rows_restores_and_resolves_both_orders(tmp_path):
    """A taker-taker entry's intent is one journal row before its orders leave; its normal rows
    follow once they are away. A kill between the two (both orders executed at the venues): the
    restart writes the rows out, restores the position and resolves both orders by client id."""
    import sqlite3

    class Killed(BaseException):
        pass

    h = await make_harness(tmp_path)

    async def killed(*_args):
        raise Killed("process killed before the entry's normal rows were written")

    h.store.settle_entry_journal = killed  # type: ignore[method-assign]
    with pytest.raises(BaseException):
        await h.engine.open_position(opportunity("AAA"), ONE, "test")
    pid = next(iter(h.engine.positions))
    await h.aclose()
    assert venue_sizes(h) == {("alpha", "AAA"): ONE, ("beta", "AAA"): -ONE}  # both orders were sent
    raw = sqlite3.connect(h.db_path)
    try:  # on disk: the journal row only (nothing in the normal tables yet)
        assert raw.execute("SELECT COUNT(*) FROM positions").fetchone()[0] == 0
        assert raw.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0
        assert [r[0] for r in raw.execute("SELECT position_id FROM entry_journal")] == [pid]
    finally:
        raw.close()

    h2 = await make_harness(tmp_path, clock=h.clock)
    assert await h2.engine.restore() == 1
    assert h2.engine.positions[pid].state == PositionState.OPENING
    await h2.engine.reconcile()
    pos = h2.engine.positions[pid]
    assert pos.state == PositionState.MONITORING
    assert (pos.long_filled_base, pos.short_filled_base) == (ONE, ONE)
    assert sorted(await orders_of(h2, pid)) == [("open", "long", "filled", ONE), ("open", "short", "filled", ONE)]
    assert [(t.source, t.dest) for t in await h2.store.list_transitions(entity_id=pid)][0] == ("scanning", "opening")
    assert_clean(h2)
    await h2.aclose()


async def test_an_entry_answer_is_recorded_only_after_its_journalled_rows(tmp_path):
    """Each leg writes the journalled entry's normal rows before it records its answer, also when the
    orders-away step could not write them (here it fails: logged, the rows stay pending for the legs),
    so no answer ever meets a missing order row."""
    import inspect

    h = await make_harness(tmp_path)
    real_settle, real_run = h.store.settle_entry_journal, h.store.run
    failed_away: list[bool] = []
    pending_at_answers: list[list[str]] = []

    async def settle(*args):
        if any(frame.function == "_orders_away" for frame in inspect.stack()):
            failed_away.append(True)
            raise OSError("disk busy")
        return await real_settle(*args)

    async def run(fn):
        pending_at_answers.append(await real_run(lambda s: s.pending_entry_journal()))
        return await real_run(fn)

    h.store.settle_entry_journal = settle  # type: ignore[method-assign]
    h.store.run = run  # type: ignore[method-assign]
    pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")
    assert pos.state == PositionState.MONITORING
    assert len(failed_away) <= 1  # (the paper venues may answer before that step runs)
    assert len(pending_at_answers) >= 2 and all(p == [] for p in pending_at_answers), pending_at_answers
    assert sorted(await orders_of(h, pos.position_id)) == [("open", "long", "filled", ONE),
                                                           ("open", "short", "filled", ONE)]
    await h.aclose()


# ----------------------------------------------------------------------------------- reconciliation
async def test_reconcile_applies_a_fill_whose_answer_was_lost(tmp_path):
    h = await make_harness(tmp_path)
    scripted = ScriptedExecutor(h.executor)
    # The short leg executes, the answer is lost and the venue is unreachable for 60 s (lookups fail).
    scripted.on("ack_lost_down", venue="beta", purpose="open")
    h.engine.executor = scripted

    pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")

    assert pos.state == PositionState.OPENING
    assert (pos.long_filled_base, pos.short_filled_base) == (ONE, D(0))
    assert [e.kind for e in await h.store.list_events(entity_id=pos.position_id)] == ["entry_outcome_unknown"]
    assert await h.engine.close_position(pos, "test") is False  # an unknown entry cannot be closed yet

    findings = await h.engine.reconcile()  # venue still down: nothing is guessed
    assert {f.kind for f in findings} == {"venue_unreachable"}
    assert pos.state == PositionState.OPENING

    h.clock.advance(61)
    assert await h.engine.reconcile() == []
    assert pos.state == PositionState.MONITORING
    assert (pos.long_filled_base, pos.short_filled_base) == (ONE, ONE)
    assert sorted(await orders_of(h, pos.position_id)) == [("open", "long", "filled", ONE), ("open", "short", "filled", ONE)]
    # The lost order was looked up, never re-sent.
    assert scripted.placed.count(client_order_id(pos.position_id, "open", LegSide.SHORT, 0)) == 1
    assert_clean(h)
    await h.aclose()


async def test_timeout_after_execution_is_resolved_by_lookup_not_resent(tmp_path):
    h = await make_harness(tmp_path)
    scripted = ScriptedExecutor(h.executor)
    scripted.on("ack_lost", venue="alpha", purpose="open")
    scripted.on("lose", venue="beta", purpose="open")
    h.engine.executor = scripted

    pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")

    # Long: executed, found by lookup. Short: never executed, lookup says no such order -> repair.
    assert pos.state == PositionState.MONITORING
    assert sorted(await orders_of(h, pos.position_id)) == [
        ("open", "long", "filled", ONE), ("open", "short", "rejected", D(0)), ("repair", "short", "filled", ONE)]
    assert venue_sizes(h) == {("alpha", "AAA"): ONE, ("beta", "AAA"): -ONE}
    assert_clean(h)
    await h.aclose()


async def test_reconcile_repairs_a_leg_changed_behind_the_engines_back(tmp_path):
    h = await make_harness(tmp_path)
    pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")
    # 0.4 of the short leg disappears at the venue (e.g. a partial liquidation).
    await h.executor.place_order(OrderRequest("liq-1", "beta", "AAA", OrderSide.BUY, D("0.4"), reduce_only=True))

    findings = await h.engine.reconcile()

    assert [(f.kind, f.venue, f.expected_base, f.actual_base) for f in findings] == [
        ("leg_mismatch", "beta", D("-1.0"), D("-0.6"))]
    assert pos.state == PositionState.MONITORING
    # Repair completes the hedge back to the target on the short venue.
    assert (pos.long_filled_base, pos.short_filled_base) == (ONE, ONE)
    assert venue_sizes(h) == {("alpha", "AAA"): ONE, ("beta", "AAA"): -ONE}
    await h.aclose()


async def test_orphan_venue_position_is_reported_under_alert_policy(tmp_path):
    h = await make_harness(tmp_path)
    await h.executor.place_order(OrderRequest("stray-1", "gamma", "FFF", OrderSide.SELL, D("0.5")))

    findings = await h.engine.reconcile()

    assert [(f.kind, f.venue, f.symbol, f.actual_base) for f in findings] == [("orphan", "gamma", "FFF", D("-0.5"))]
    assert venue_sizes(h) == {("gamma", "FFF"): D("-0.5")}  # alert only: left alone
    events = await h.store.list_events(kind="orphan_position")
    assert len(events) == 1 and "alert only" in events[0].message
    await h.aclose()


async def test_orphan_venue_positions_are_flattened_under_flatten_policy(tmp_path):
    h = await make_harness(tmp_path, config=replace(FAST_CONFIG, orphan_policy="flatten"))
    await h.executor.place_order(OrderRequest("stray-1", "gamma", "FFF", OrderSide.BUY, D("0.5")))
    await h.executor.place_order(OrderRequest("stray-2", "gamma", "EEE", OrderSide.BUY, D("0.3")))
    await h.executor.place_order(OrderRequest("stray-3", "alpha", "EEE", OrderSide.BUY, D("0.2")))

    findings = await h.engine.reconcile()

    assert sorted((f.kind, f.venue, f.symbol) for f in findings) == [
        ("orphan", "alpha", "EEE"), ("orphan", "gamma", "EEE"), ("orphan", "gamma", "FFF")]
    # Both orphans on gamma were found in the same millisecond: each gets its own flatten order.
    assert venue_sizes(h) == {}
    assert await h.engine.reconcile() == []
    await h.aclose()


async def test_duplicate_client_order_id_never_executes_twice(tmp_path):
    h = await make_harness(tmp_path)
    req = OrderRequest("dup-1", "alpha", "AAA", OrderSide.BUY, ONE, OrderType.LIMIT, D("100.05"), TimeInForce.IOC)
    first = await h.executor.place_order(req)
    second = await h.executor.place_order(req)
    assert first == second and first.status is OrderStatus.FILLED
    assert venue_sizes(h) == {("alpha", "AAA"): ONE}
    assert len(h.executor._order_fills[("alpha", "dup-1")]) == 1

    # Through the engine: an entry leg whose answer is lost is looked up by its client order id;
    # the engine never sends that id again, and every id it sends is new.
    scripted = ScriptedExecutor(h.executor)
    scripted.on("ack_lost", purpose="open", times=2)
    h.engine.executor = scripted
    pos = await h.engine.open_position(opportunity("BBB"), ONE, "test")
    assert await h.engine.close_position(pos, "test")
    assert len(scripted.placed) == len(set(scripted.placed)) == 4
    assert pos.state == PositionState.CLOSED
    await h.aclose()


# ----------------------------------------------------------------- reconciliation racing an order
async def race_reconcile_with_held_entry(h, action: str):
    scripted = ScriptedExecutor(h.executor)
    scripted.on(action, venue="beta", purpose="open")
    h.engine.executor = scripted
    result: dict = {}

    async def open_it() -> None:
        result["pos"] = await h.engine.open_position(opportunity("AAA"), ONE, "test")

    async def reconcile_it() -> None:
        result["findings"] = await h.engine.reconcile()

    async with anyio.create_task_group() as tg:
        tg.start_soon(open_it)
        await scripted.holding.wait()  # the short entry leg is in flight
        tg.start_soon(reconcile_it)
        for _ in range(50):  # let reconciliation run as far as it can while the order is in flight
            await anyio.sleep(0)
        scripted.release.set()
    return result["pos"], result["findings"]


async def test_reconcile_does_not_judge_an_order_still_in_flight(tmp_path):
    h = await make_harness(tmp_path)
    pos, findings = await race_reconcile_with_held_entry(h, "hold_before")

    assert findings == []
    assert pos.state == PositionState.MONITORING
    # The in-flight leg must not have been written off as "not found" while it was being sent.
    assert sorted(await orders_of(h, pos.position_id)) == [("open", "long", "filled", ONE), ("open", "short", "filled", ONE)]
    assert await transitions_of(h, pos.position_id) == [("scanning", "opening"), ("opening", "monitoring")]
    assert_clean(h)
    await h.aclose()


async def test_reconcile_does_not_fault_a_position_whose_fill_is_being_recorded(tmp_path):
    h = await make_harness(tmp_path)
    # The venue has executed the short leg; the engine has not seen the answer yet.
    pos, findings = await race_reconcile_with_held_entry(h, "hold_after")

    assert findings == []
    assert pos.state == PositionState.MONITORING
    assert await transitions_of(h, pos.position_id) == [("scanning", "opening"), ("opening", "monitoring")]
    assert_clean(h)
    await h.aclose()


async def test_restart_after_venue_truth_was_adopted_restores_and_reconciles(tmp_path):
    h = await make_harness(tmp_path)
    pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")
    # 0.4 of the short leg disappears at the venue; reconciliation adopts the venue's size (no
    # fill records that) and repairs the hedge with a 0.4 repair fill.
    await h.executor.place_order(OrderRequest("liq-1", "beta", "AAA", OrderSide.BUY, D("0.4"), reduce_only=True))
    await h.engine.reconcile()
    assert (pos.state, pos.long_filled_base, pos.short_filled_base) == (PositionState.MONITORING, ONE, ONE)
    await h.aclose()

    # The bot's own fills now sum to 1.4 on the short leg while the venue holds 1.0: a restart
    # must still come up (not refuse the row) and end hedged at what the venue holds.
    h2 = await make_harness(tmp_path, clock=h.clock)
    assert await h2.engine.restore() == 1
    await h2.engine.reconcile()
    restored = h2.engine.positions[pos.position_id]
    assert (restored.state, restored.long_filled_base, restored.short_filled_base) == (
        PositionState.MONITORING, ONE, ONE)
    assert await h2.engine.close_position(restored, "test")
    assert venue_sizes(h2) == {}
    await h2.aclose()


async def test_restart_mid_close_beside_foreign_size_closes_ours_and_leaves_the_foreign_as_orphan(tmp_path):
    h = await make_harness(tmp_path)
    pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")
    await h.executor.place_order(OrderRequest("manual-1", "alpha", "AAA", OrderSide.BUY, D("0.3")))
    scripted = ScriptedExecutor(h.executor)
    scripted.on("crash_after", venue="alpha", purpose="close")
    h.engine.executor = scripted
    # The bot dies right after its close order executed on the long venue.
    with pytest.raises(BaseExceptionGroup):
        await h.engine.close_position(pos, "test")
    await h.aclose()

    h2 = await make_harness(tmp_path, clock=h.clock)
    assert await h2.engine.restore() == 1
    await h2.engine.reconcile()
    restored = h2.engine.positions[pos.position_id]
    assert restored.state == PositionState.CLOSED and restored.is_flat
    # Only the 0.3 nobody's fills explain is left; it is an orphan, never absorbed into the position.
    assert venue_sizes(h2) == {("alpha", "AAA"): D("0.3")}
    await h2.engine.reconcile()
    assert h2.engine.orphaned == {("alpha", "AAA"): D("0.3")}
    await h2.aclose()


async def test_entry_whose_intent_could_not_be_written_sends_nothing_and_leaves_no_ghost(tmp_path):
    import sqlite3

    h = await make_harness(tmp_path)
    real_write = h.store.journal_entry_intent  # the entry intent's write (on the entry's critical path)
    calls = {"n": 0}

    async def failing_once(*args):
        calls["n"] += 1
        if calls["n"] == 1:
            raise sqlite3.OperationalError("database is locked")
        return await real_write(*args)

    h.store.journal_entry_intent = failing_once  # type: ignore[method-assign]
    with pytest.raises(sqlite3.OperationalError):
        await h.engine.open_position(opportunity("AAA"), ONE, "test")

    assert venue_sizes(h) == {}  # nothing was sent without its intent on disk
    assert h.engine.active_positions() == []  # and the engine does not track a position the DB lacks
    assert await h.engine.reconcile() == []
    pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")  # the symbol is free again
    assert pos.state == PositionState.MONITORING
    await h.aclose()


async def test_market_data_steps_behind_an_entry_from_its_decision_to_its_orders(tmp_path):
    """From the moment an entry is decided (its intent transaction included) until both legs have
    started, market-data handlers step behind it (``orders_first``); the window always closes, also
    when the intent could not be written."""
    import sqlite3

    from bot.core import orders_first

    h = await make_harness(tmp_path)
    real_write = h.store.journal_entry_intent
    during_write: list[bool] = []
    fail = {"next": True}

    async def recording(*args):
        during_write.append(orders_first.in_progress())
        if fail["next"]:
            fail["next"] = False
            raise sqlite3.OperationalError("disk I/O error")
        return await real_write(*args)

    h.store.journal_entry_intent = recording  # type: ignore[method-assign]
    with pytest.raises(sqlite3.OperationalError):
        await h.engine.open_position(opportunity("AAA"), ONE, "test")
    assert not orders_first.in_progress()  # a failed entry leaves no window open
    pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")
    assert pos.state == PositionState.MONITORING
    assert during_write == [True, True]
    assert not orders_first.in_progress()
    await h.aclose()


async def test_gate_closing_between_the_two_entry_legs_still_ends_hedged_or_flat(tmp_path):
    from risk.trading_state import TradingState, gate_order

    h = await make_harness(tmp_path)
    seen: list[str] = []

    def halting_gate(intent):
        # ACTIVE for the first entry leg, HALTED from then on (a breaker opened mid-entry).
        seen.append(intent.kind.value)
        return gate_order(TradingState.ACTIVE if len(seen) == 1 else TradingState.HALTED, intent)

    h.engine._gate = halting_gate
    pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")

    # The second leg is denied; completing the naked leg is an emergency repair and goes through.
    assert seen[:3] == ["open", "open", "repair"]
    assert pos.state == PositionState.MONITORING
    assert (pos.long_filled_base, pos.short_filled_base) == (ONE, ONE)
    denied = [e for e in await h.store.list_events(entity_id=pos.position_id) if e.kind == "order_denied"]
    assert len(denied) == 1
    assert_clean(h)
    await h.aclose()


async def test_ordinary_exit_is_not_forced_through_a_halted_gate_but_an_emergency_exit_is(tmp_path):
    from risk.trading_state import TradingState, gate_order

    h = await make_harness(tmp_path)
    pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")
    seen: list[tuple[str, bool]] = []

    def halted(intent):
        seen.append((intent.kind.value, intent.emergency))
        return gate_order(TradingState.HALTED, intent)

    h.engine._gate = halted
    # A discretionary exit (max hold) while HALTED: the position stays hedged, nothing is sent,
    # and it is not turned into an "unwind" that the gate lets through as an emergency.
    assert await h.engine.close_position(pos, "max_hold") is False
    assert pos.state == PositionState.MONITORING
    assert venue_sizes(h) == {("alpha", "AAA"): ONE, ("beta", "AAA"): -ONE}
    assert sorted(await orders_of(h, pos.position_id)) == [("open", "long", "filled", ONE), ("open", "short", "filled", ONE)]

    assert await h.engine.close_position(pos, "liquidation_risk", emergency=True) is True
    assert pos.state == PositionState.CLOSED and venue_sizes(h) == {}
    assert ("close", True) in seen
    assert_clean(h)
    await h.aclose()


async def test_on_orders_away_runs_once_both_entry_legs_are_with_the_executor(tmp_path):
    """The engine's ``on_orders_away`` hook (live: the collector hold ends there) runs after each
    entry leg has reached the executor and before either answer is in."""
    h = await make_harness(tmp_path)
    inner = h.engine.executor
    started: list[str] = []
    seen: list[tuple[int, str]] = []
    in_progress: list[bool] = []
    release = anyio.Event()

    class Gated:
        def __getattr__(self, name):
            return getattr(inner, name)

        async def place_order(self, request):
            started.append(request.client_order_id)
            in_progress.append(orders_first.in_progress())  # market-data handlers step behind the legs
            await release.wait()  # the answer is held until the hook has run
            return await inner.place_order(request)

    def away() -> None:
        seen.append((len(started), pos_state()))
        release.set()

    def pos_state() -> str:
        return next(iter(h.engine.positions.values())).state

    h.engine.executor = Gated()
    h.engine._on_orders_away = away
    with anyio.fail_after(30):
        pos = await h.engine.open_position(opportunity("AAA"), ONE, "test")
    assert seen == [(2, "opening")]
    assert in_progress == [True, True] and not orders_first.in_progress()
    assert pos.state == PositionState.MONITORING
    await h.aclose()


async def test_market_data_handlers_step_behind_a_dispatch_in_progress():
    """``behind_orders`` is free when no dispatch is in progress; during one it yields, so a handler
    already queued runs after the legs started after it (bounded: ``MAX_YIELDS`` loop passes)."""
    order: list[str] = []
    with anyio.fail_after(10):
        await orders_first.behind_orders()  # idle: returns at once
        orders_first.begin()
        try:
            async def handler() -> None:
                await orders_first.behind_orders()
                order.append("book applied")

            async def leg() -> None:
                order.append("leg started")
                orders_first.end()

            async with anyio.create_task_group() as tg:
                tg.start_soon(handler)  # queued first, like a book delivered during the pass
                tg.start_soon(leg)
        finally:
            orders_first.end()
        assert order == ["leg started", "book applied"]
        orders_first.begin()  # a dispatch that never ends delays a handler by MAX_YIELDS passes at most
        try:
            await orders_first.behind_orders()
        finally:
            orders_first.end()
    assert not orders_first.in_progress()
