"""The paper application driven step by step on a manual clock: entries, halt/resume, breakers,
absurd market data, funding accrual, and the shutdown flatten."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bot.app import CONTROL_HALT_KEY, Application
from bot.wiring import PaperOptions, paper_wiring
from bot.core.clock import ManualClock, parse_iso_utc
from bot.settings import Settings
from machines.bot import BotState
from storage import MachineKind

START_MS = parse_iso_utc("2026-03-01T00:00:00Z")


def easy_settings(**faults: float) -> Settings:
    """Settings under which the strategy enters readily (the point is the plumbing, not the edge)."""
    base = Settings()
    return base.model_copy(update={
        "strategy": base.strategy.model_copy(update={"min_expected_net_usd": Decimal("-1000")}),
        "risk": base.risk.model_copy(update={"max_breakeven_hours": Decimal("1000000")}),
        "paper": base.paper.model_copy(update={
            "latency_ms": 5.0,
            "faults": base.paper.faults.model_copy(update=faults),
        }),
    })


async def make_app(tmp_path: Path, settings: Settings) -> tuple[Application, ManualClock]:
    clock = ManualClock(START_MS)
    app = Application(settings, paper_wiring(
        settings, PaperOptions(seed=3, speed=1.0, db_path=tmp_path / "paper.sqlite", start_ts_ms=START_MS), clock=clock))
    await app.start()
    return app, clock


async def run_minutes(app: Application, clock: ManualClock, minutes: int) -> None:
    for _ in range(minutes):
        clock.advance(60)
        await app.feed_step()
        await app.strategy_step()


@pytest.mark.anyio
async def test_entries_open_hedged_positions_and_funding_accrues(tmp_path: Path) -> None:
    app, clock = await make_app(tmp_path, easy_settings())
    try:
        await run_minutes(app, clock, 130)
        assert app.engine is not None
        active = app.engine.active_positions()
        assert 1 <= len(active) <= app.settings.strategy.max_positions
        for pos in active:
            assert pos.state.value == "monitoring"
            assert pos.long_filled_base == pos.short_filled_base == pos.target_size_base
        assert len({p.symbol for p in active}) == len(active), "one position per symbol"
        assert any(v != 0 for v in app.engine.funding_usd.values()), "hourly settlements pay the held legs"
        # the paper wiring asks the market only for the settlements of keys the venues ever held
        assert app.market._settle_keys == app.executor.settlement_keys  # type: ignore[attr-defined]
        await app.flatten("shutdown")
        assert await app.verify_flat()
        assert all(p.exit_reason == "shutdown" for p in app.engine.positions.values() if p.exit_reason)
    finally:
        await app.close()


@pytest.mark.anyio
async def test_manual_halt_blocks_entries_and_resume_allows_them(tmp_path: Path) -> None:
    app, clock = await make_app(tmp_path, easy_settings())
    try:
        assert app.store is not None and app.engine is not None
        await app.store.set_kv(CONTROL_HALT_KEY, "manual: test", clock.now_ms())
        await app.poll_control()
        assert app.bot.state is BotState.HALTED
        await run_minutes(app, clock, 30)
        assert app.engine.positions == {}, "no entry while halted"
        events = await app.store.list_events(kind="halt")
        assert events and "manual" in events[0].message
        await app.store.set_kv(CONTROL_HALT_KEY, "", clock.now_ms())
        await app.poll_control()
        await run_minutes(app, clock, 30)
        assert app.bot.state is not BotState.HALTED
        assert app.engine.positions, "entries resume after the halt is cleared"
    finally:
        await app.close()


@pytest.mark.anyio
async def test_venue_breaker_keeps_entries_off_a_failing_venue(tmp_path: Path) -> None:
    app, clock = await make_app(tmp_path, easy_settings())
    try:
        assert app.executor is not None and app.engine is not None
        now = clock.now_ms()
        for _ in range(app.settings.risk.venue_error_threshold):
            app._on_venue_result("sim-hourly", False)
        assert app.board.venue_open("sim-hourly")
        await run_minutes(app, clock, 5)
        assert app.engine.positions, "entries continue on the healthy venues"
        for pos in app.engine.positions.values():
            assert "sim-hourly" not in (pos.long_venue, pos.short_venue)
        assert clock.now_ms() > now
    finally:
        await app.close()


@pytest.mark.anyio
async def test_absurd_quotes_are_rejected_and_never_traded(tmp_path: Path) -> None:
    # Every quote and book absurd (NaN / zero price / huge rate): validation rejects them all.
    app, clock = await make_app(tmp_path, easy_settings(absurd_quote_probability=1.0))
    try:
        await run_minutes(app, clock, 20)
        assert app.engine is not None
        assert app.engine.positions == {}
        assert app.market.rejected_quote_count > 0
        assert app.market.quotes() == [] or all(q.mark_price > 0 for q in app.market.quotes())
    finally:
        await app.close()


@pytest.mark.anyio
async def test_restart_resumes_open_positions_from_the_database(tmp_path: Path) -> None:
    settings = easy_settings()
    app, clock = await make_app(tmp_path, settings)
    await run_minutes(app, clock, 20)
    assert app.engine is not None
    held = {p.position_id: (p.long_filled_base, p.short_filled_base) for p in app.engine.active_positions()}
    assert held
    await app.close()  # a crash: nothing flattened

    restarted = Application(settings, paper_wiring(settings, PaperOptions(
        seed=3, speed=1.0, db_path=tmp_path / "paper.sqlite", start_ts_ms=clock.now_ms()), clock=clock))
    await restarted.start()
    try:
        assert restarted.engine is not None
        again = {p.position_id: (p.long_filled_base, p.short_filled_base) for p in restarted.engine.active_positions()}
        assert again == held
        venue = {(p.venue, p.symbol): p.size_base for p in await restarted.executor.positions(None)}
        for pos in restarted.engine.active_positions():
            assert venue[(pos.long_venue, pos.symbol)] == pos.long_filled_base
            assert venue[(pos.short_venue, pos.symbol)] == -pos.short_filled_base
        await restarted.flatten("shutdown")
        assert await restarted.verify_flat()
    finally:
        await restarted.close()


@pytest.mark.anyio
async def test_a_leg_vanishing_at_the_venue_triggers_an_emergency_exit_and_ends_flat(tmp_path: Path) -> None:
    from bot.core.domain import OrderRequest, OrderSide, OrderType

    app, clock = await make_app(tmp_path, easy_settings())
    try:
        await run_minutes(app, clock, 10)
        assert app.engine is not None and app.executor is not None
        pos = app.engine.active_positions()[0]
        # The venue closes the short leg behind the bot's back (a liquidation, an operator in the UI).
        await app.executor.place_order(OrderRequest(
            client_order_id="liquidation0001", venue=pos.short_venue, symbol=pos.symbol,
            side=OrderSide.BUY,
            size_base=pos.short_filled_base, order_type=OrderType.MARKET, reduce_only=True))
        await run_minutes(app, clock, 3)
        await app.reconcile_step()
        assert pos.state.value == "closed"
        assert pos.exit_reason in ("leg_missing", "delta_drift")
        venue = {(p.venue, p.symbol): p.size_base for p in await app.executor.positions(None)}
        assert venue.get((pos.long_venue, pos.symbol), 0) == 0
        assert venue.get((pos.short_venue, pos.symbol), 0) == 0
    finally:
        await app.close()


@pytest.mark.anyio
async def test_trading_is_active_right_after_start_up(tmp_path: Path) -> None:
    # The first market data must clear the stale-data breakers at once (at --speed 1 the first
    # feed step is a whole step_seconds away).
    app, _clock = await make_app(tmp_path, easy_settings())
    try:
        assert app.board.trading_state().value == "active"
        assert app.bot.state is BotState.SCANNING
    finally:
        await app.close()


@pytest.mark.anyio
async def test_an_entry_fires_the_bot_begin_open_once_its_orders_are_away_and_records_it(tmp_path: Path) -> None:
    """The bot machine's "begin_open" is off the entry orders' path (fired once both legs have
    started, ``Application._orders_away``), and still recorded with the entry."""
    app, clock = await make_app(tmp_path, easy_settings())
    try:
        assert app.engine is not None and app.store is not None
        executor = app.engine.executor
        original = executor.place_order
        bot_states_at_entry_orders: list[BotState] = []

        async def place_order(request):
            if request.client_order_id[22] == "o":  # an entry order (purpose "open")
                bot_states_at_entry_orders.append(app.bot.state)
            return await original(request)

        executor.place_order = place_order  # type: ignore[method-assign]
        for _ in range(130):
            clock.advance(60)
            await app.feed_step()
            await app.strategy_step()
            if bot_states_at_entry_orders:
                break
        assert bot_states_at_entry_orders == [BotState.SCANNING, BotState.SCANNING]
        assert app.engine.active_positions()
        transitions = await app.store.list_transitions(machine=MachineKind.BOT)
        opening = [t for t in transitions if t.trigger == "begin_open"]
        assert len(opening) == 1 and (opening[0].source, opening[0].dest) == ("scanning", "opening")
    finally:
        await app.close()
