"""A close in flight when the bot was killed is finished at start-up, before any new entry.

A SIGKILL between writing a close order's intent and sending it leaves the position ``closing``
with an order the venue has never seen. A live venue (``adapters.order_flow.SendLedger``) then
answers "not found YET" (``OrderNotFoundYet``) for the request's venue-side expiry after the
executor starts (7 s), so the start-up reconciliation cannot resume the close; it used to wait for
the first periodic reconciliation (``reconcile.interval_seconds`` = 30 s later) while the strategy
loop went on entering other symbols (seen in a live rehearsal: the close finished 36-40 s after
start-up, one leg closed and the other open all that time, and two new entries were made first).
The paper venue answers "not found" at once, so the paper crash tests never saw it: here its
executor answers like a live one just after a restart.
"""

from __future__ import annotations

import dataclasses
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from adapters.errors import OrderNotFoundYet
from bot.app import Application
from bot.core.clock import ManualClock, parse_iso_utc
from bot.core.domain import LegSide
from bot.settings import Settings
from bot.wiring import PaperOptions, paper_wiring
from machines.position import PositionState

START_MS = parse_iso_utc("2026-03-01T00:00:00Z")
NOT_YET_S = 1.0  # the live venues' window is 7 s; shorter here to keep the test quick


class JustRestartedVenue:
    """The paper executor, answering a look-up of an order it does not know like a live executor
    does in the first seconds after a restart: "not found yet" (it may still arrive), then None."""

    def __init__(self, inner: Any, window_s: float) -> None:
        self.inner = inner
        self.until = time.monotonic() + window_s
        self.not_yet_answers = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get_order(self, venue: str, client_order_id: str):
        report = await self.inner.get_order(venue, client_order_id)
        if report is None and time.monotonic() < self.until:
            self.not_yet_answers += 1
            raise OrderNotFoundYet(venue, f"order {client_order_id} not found yet; it may still arrive")
        return report


def settings() -> Settings:
    base = Settings()
    return base.model_copy(update={
        "strategy": base.strategy.model_copy(update={"min_expected_net_usd": Decimal("-1000")}),
        "risk": base.risk.model_copy(update={"max_breakeven_hours": Decimal("1000000")}),
        "paper": base.paper.model_copy(update={"latency_ms": 5.0}),
    })


def wiring(tmp_path: Path, s: Settings, clock: ManualClock, venues: list[JustRestartedVenue] | None = None):
    w = paper_wiring(s, PaperOptions(seed=3, speed=1.0, db_path=tmp_path / "paper.sqlite", start_ts_ms=START_MS),
                     clock=clock)
    if venues is None:
        return w
    inner_open = w.open_executor

    async def open_executor(market, clk):
        venue = JustRestartedVenue(await inner_open(market, clk), NOT_YET_S)
        venues.append(venue)
        return venue

    return dataclasses.replace(w, open_executor=open_executor)


async def run_until_held(app: Application, clock: ManualClock, *, count: int, minutes: int) -> None:
    """Step the paper app a simulated minute at a time until it holds ``count`` positions."""
    for _ in range(minutes):
        clock.advance(60)
        await app.feed_step()
        await app.strategy_step()
        if len(app.engine.active_positions()) >= count:
            return


@pytest.mark.anyio
@pytest.mark.parametrize("unsent_order", [True, False], ids=["close-order-unsent", "no-close-order-yet"])
async def test_a_close_killed_before_its_order_left_is_finished_at_start_up(tmp_path: Path, monkeypatch,
                                                                          unsent_order: bool) -> None:
    """Also when the kill came before any close order was written (nothing pending to look up):
    the close used to wait for the end of the start-up reconciliation (its venue reads: 7-8 s in a
    live rehearsal, one leg open meanwhile)."""
    from bot.engine import TradingEngine

    s = settings()
    clock = ManualClock(START_MS)
    first = Application(s, wiring(tmp_path, s, clock))
    await first.start()
    try:
        await run_until_held(first, clock, count=1, minutes=30)
        pos = first.engine.active_positions()[0]
        assert pos.state == PositionState.MONITORING.value
        # The kill: the close began (persisted) and one leg's order intent was written, never sent.
        async with first.engine.lock_for(pos.position_id):
            pos.start_close(reason="shutdown")
            await first.engine._persist(pos)
            if unsent_order:
                req = first.engine._order(pos, LegSide.LONG, "close", pos.long_filled_base, attempt=0,
                                          reduce_only=True, emergency=True)
                await first.store.insert_order_intent(
                    first.engine._intent(pos.position_id, LegSide.LONG, "close", req, clock.now_ms()))
        position_id, symbol = pos.position_id, pos.symbol
    finally:
        await first.close()

    clock.advance(5)
    venues: list[JustRestartedVenue] = []
    at_reconcile: list[str | None] = []  # the position's state when the start-up reconciliation began
    original_reconcile = TradingEngine.reconcile

    async def reconcile(engine, *args, **kwargs):
        if not at_reconcile:
            held = engine.positions.get(position_id)
            at_reconcile.append(held.state if held is not None else None)
        return await original_reconcile(engine, *args, **kwargs)

    monkeypatch.setattr(TradingEngine, "reconcile", reconcile)
    second = Application(s, wiring(tmp_path, s, clock, venues))
    began = time.monotonic()
    await second.start()
    try:
        took = time.monotonic() - began
        assert (venues[0].not_yet_answers > 0) == unsent_order  # the look-up met the venue's "not found yet"
        restored = second.engine.positions.get(position_id)
        state = restored.state if restored is not None else PositionState.CLOSED.value
        # Before the strategy loop runs (no entry can come first), and without waiting for a
        # periodic reconciliation: the close is finished and verified flat at the venues.
        assert state == PositionState.CLOSED.value, f"still {state} after start-up (close not resumed)"
        venue_sizes = {(p.venue, p.symbol): p.size_base for p in await second.executor.positions(None)}
        assert all(size == 0 for (_v, sym), size in venue_sizes.items() if sym == symbol), venue_sizes
        assert took < NOT_YET_S + 5, f"start-up took {took:.1f} s"
        # finished before the start-up reconciliation's reads (seconds on a real venue), not after
        assert at_reconcile and at_reconcile[0] in (None, PositionState.CLOSED.value), at_reconcile
        assert await second.verify_flat()
    finally:
        await second.close()


class TimesOutOnce:
    """The paper executor whose first order on ``short`` legs times out before reaching the venue
    (never placed); looked up, that order is "not found yet" for ``window_s``, then not found."""

    def __init__(self, inner: Any, window_s: float) -> None:
        self.inner = inner
        self.window_s = window_s
        self.lost: dict[str, float] = {}  # client order id -> monotonic s of the timed-out send
        self.not_yet_answers = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def place_order(self, request):
        from adapters.errors import TemporaryVenueError
        from bot.core.domain import OrderSide

        if not self.lost and request.side is OrderSide.SELL and not request.reduce_only:
            self.lost[request.client_order_id] = time.monotonic()
            raise TemporaryVenueError(request.venue, "read timeout, outcome unknown")
        return await self.inner.place_order(request)

    async def get_order(self, venue: str, client_order_id: str):
        report = await self.inner.get_order(venue, client_order_id)
        sent = self.lost.get(client_order_id)
        if report is None and sent is not None and time.monotonic() - sent < self.window_s:
            self.not_yet_answers += 1
            raise OrderNotFoundYet(venue, f"order {client_order_id} not found yet; it may still arrive")
        return report


@pytest.mark.anyio
async def test_a_position_held_by_a_not_yet_found_order_goes_on_within_seconds(tmp_path: Path) -> None:
    """While running: an entry leg whose send timed out (never placed) is "not found yet" for the
    venue's expiry window; the entry waits. The strategy pass looks it up again about once a second,
    so the position is settled (the other leg hedged or unwound) within seconds of the answer
    becoming final, not at the next periodic reconciliation (30 s by default)."""
    s = settings()
    clock = ManualClock(START_MS)
    w = paper_wiring(s, PaperOptions(seed=3, speed=1.0, db_path=tmp_path / "paper.sqlite", start_ts_ms=START_MS),
                     clock=clock)
    inner_open = w.open_executor
    wrapped: list[TimesOutOnce] = []

    async def open_executor(market, clk):
        wrapped.append(TimesOutOnce(await inner_open(market, clk), NOT_YET_S))
        return wrapped[0]

    app = Application(s, dataclasses.replace(w, open_executor=open_executor))
    await app.start()
    try:
        for _ in range(30):
            clock.advance(60)
            await app.feed_step()
            await app.strategy_step()
            if wrapped[0].lost:
                break
        (lost_cid,) = wrapped[0].lost
        pos = next(p for p in app.engine.positions.values() if lost_cid in app.engine.orders_of(p.position_id))
        assert pos.state == PositionState.OPENING.value and app.engine.not_found_yet == {lost_cid}
        began = time.monotonic()
        while pos.state == PositionState.OPENING.value and time.monotonic() - began < NOT_YET_S + 5:
            await app.strategy_step()  # no reconciliation step is run here
            await anyio.sleep(0.2)
        assert pos.state != PositionState.OPENING.value, "still waiting on the order the venue never got"
        assert wrapped[0].not_yet_answers > 0 and not app.engine.not_found_yet
        sizes = {(p.venue, p.symbol): p.size_base for p in await app.executor.positions(None)}
        long_size = sizes.get((pos.long_venue, pos.symbol), Decimal(0))
        short_size = sizes.get((pos.short_venue, pos.symbol), Decimal(0))
        assert long_size == -short_size, sizes  # hedged again (or both flat): never one leg alone
    finally:
        await app.close()


@pytest.mark.anyio
async def test_an_answered_close_does_not_wait_for_another_positions_not_yet_found_order(
        tmp_path: Path, monkeypatch) -> None:
    """Two closes in flight at the kill: one with an unsent order (the venue says "not found yet"
    for its window), one whose orders are all answered. The second is finished at once, not after
    the first one's wait (a live rehearsal: one leg open ~7 s longer, then the unhedged breaker)."""
    from bot.engine import TradingEngine

    s = settings()
    clock = ManualClock(START_MS)
    first = Application(s, wiring(tmp_path, s, clock))
    await first.start()
    try:
        await run_until_held(first, clock, count=2, minutes=120)
        waiting, answered = first.engine.active_positions()[:2]
        for pos in (waiting, answered):
            async with first.engine.lock_for(pos.position_id):
                pos.start_close(reason="shutdown")
                await first.engine._persist(pos)
        req = first.engine._order(waiting, LegSide.LONG, "close", waiting.long_filled_base, attempt=0,
                                  reduce_only=True, emergency=True)
        await first.store.insert_order_intent(
            first.engine._intent(waiting.position_id, LegSide.LONG, "close", req, clock.now_ms()))
        waiting_id, answered_id = waiting.position_id, answered.position_id
    finally:
        await first.close()

    clock.advance(5)
    at_first_wait: list[str | None] = []  # the answered position's state when the wait first looks again
    original = TradingEngine.resume_not_found_yet

    async def resume_not_found_yet(engine, *args, **kwargs):
        if not at_first_wait:
            held = engine.positions.get(answered_id)
            at_first_wait.append(held.state if held is not None else None)
        return await original(engine, *args, **kwargs)

    monkeypatch.setattr(TradingEngine, "resume_not_found_yet", resume_not_found_yet)
    second = Application(s, wiring(tmp_path, s, clock, []))
    await second.start()
    try:
        assert at_first_wait and at_first_wait[0] in (None, PositionState.CLOSED.value), at_first_wait
        for position_id in (waiting_id, answered_id):
            restored = second.engine.positions.get(position_id)
            assert restored is None or restored.state == PositionState.CLOSED.value
        assert await second.verify_flat()
    finally:
        await second.close()
