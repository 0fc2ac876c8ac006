"""1,000 entry-and-exit cycles under heavy injected venue faults must lose nothing.

Faults (paper.fault_injection): reject 0.2, timeout 0.2 (half of them executed before the
"timeout": an ambiguous outcome the engine must look up), partial IOC fills 0.3, and venue-down
windows (each venue request has a 2% chance to take its venue down for 2 s of clock time; the
test clock advances 1 s per settling pass). Positions are opened and closed in concurrent batches
of three with reconciliation running over and over beside them, as the supervisor's loops do; every
venue request yields to the event loop at random points, so the tasks really interleave. In about
one phase in ten the whole process is "killed" in-process at a random await point (everything
cancelled; committed writes stay, memory is lost) and a new engine is restored from the two files.

After a final reconcile + flatten pass: no exposure on any venue, every position closed, and the
two SQLite files pass the audit (no duplicate or unintended orders, no over-fills, each closed
position's own fills net to zero on each venue). The unhedged windows are printed, not asserted.

The maker-taker variant runs the same faults, crashes and racing reconciler with maker-taker entries:
between entries and settling, market steps trade through the resting maker orders by random sizes
(none, partial, full), the venues match and the engine hedges; after every settling pass no symbol may
be naked across venues, and the end state is flat, closed and audited.
"""

from __future__ import annotations

import random
import sqlite3
import time
from contextlib import asynccontextmanager
from dataclasses import replace
from decimal import Decimal as D

import anyio
import anyio.lowlevel
import pytest

from engine_harness import (
    MAKER_CONFIG,
    SYMBOLS,
    VENUES,
    DeepBooks,
    assert_never_monitoring_unhedged,
    audit_files,
    make_harness,
    opportunity,
    venue_exposure,
)
from bot.core.domain import BookLevel, LegSide, OrderBook
from machines.position import PositionState
from paper.fault_injection import FaultPlan
from paper.venue_store import venue_store_path_for

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SEEDS = (11, 23, 37, 41)
CYCLES_PER_SEED = 250  # 4 x 250 = 1,000 entry-and-exit cycles
BATCH = 3
MAX_SETTLE_PASSES = 60
CRASH_PROBABILITY = 0.1  # per phase: an in-process kill at a random await point, then a restart


def heavy_faults(seed: int) -> FaultPlan:
    return FaultPlan(seed=seed, reject_probability=0.2, timeout_probability=0.2, partial_fill_probability=0.3,
                     venue_down_probability=0.02, venue_down_s=2.0)


@asynccontextmanager
async def racing_reconciler(h):
    """Reconcile over and over while the body runs (the supervisor's reconcile loop, sped up)."""
    done = anyio.Event()
    passes = 0

    async def loop() -> None:
        nonlocal passes
        while not done.is_set():
            await h.engine.reconcile()
            passes += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(loop)
        try:
            yield
        finally:
            done.set()


async def settle(h, want_closed: bool) -> None:
    """Reconcile (and re-issue closes) until every position is hedged/closed, or closed."""
    engine = h.engine
    for _ in range(MAX_SETTLE_PASSES):
        active = engine.active_positions()
        pending = [p for p in active if want_closed or p.state != PositionState.MONITORING.value]
        if not pending:
            return
        h.clock.advance(1)
        await engine.reconcile()
        if want_closed:
            for pos in list(engine.active_positions()):
                await engine.close_position(pos, "test_exit")
        assert_never_monitoring_unhedged(engine)
    stuck = [p for p in engine.active_positions() if want_closed or p.state != PositionState.MONITORING.value]
    raise AssertionError(f"positions did not settle after {MAX_SETTLE_PASSES} passes: {stuck}")


async def phase(h, start_tasks, crash_after_turns: int | None) -> bool:
    """Run one phase (tasks started by ``start_tasks``) with a reconciler racing it. With
    ``crash_after_turns``, everything is cancelled after that many event-loop turns, wherever it
    is (an in-process kill -9: committed writes stay, memory is abandoned). True if it crashed."""
    with anyio.CancelScope() as kill_scope:
        async with anyio.create_task_group() as outer:
            if crash_after_turns is not None:
                async def killer() -> None:
                    for _ in range(crash_after_turns):
                        await anyio.lowlevel.checkpoint()
                    kill_scope.cancel()

                outer.start_soon(killer)
            async with racing_reconciler(h):
                async with anyio.create_task_group() as tg:
                    start_tasks(tg)
            outer.cancel_scope.cancel()
    return kill_scope.cancelled_caught


# Maker-taker runs: the maker leg rests up to 5 clock seconds (the settling passes advance 1 s each).
FAULT_MAKER_CONFIG = replace(MAKER_CONFIG, maker_timeout_s=5.0)


async def restart(h, seed: int, n: int, config=None):
    """A new engine, executor and store connections on the same files, restored (a process restart)."""
    await h.aclose()
    extra = {} if config is None else {"config": config, "books": h.books}
    h2 = await make_harness(h.db_path.parent, faults=heavy_faults(seed * 1000 + n), interleave_seed=seed * 1000 + n,
                            clock=h.clock, **extra)
    await h2.engine.restore()
    return h2


def traded_through(venue: str, symbol: str, leg: LegSide, size: D, ts_ms: int) -> OrderBook:
    """A book that trades through a maker order resting at the deep book's touch (bid 99.99 for a
    long maker, ask 100.01 for a short one) with ``size`` of depth beyond it: a full or partial fill."""
    if leg is LegSide.LONG:
        return OrderBook(venue, symbol, bids=(BookLevel(D("99.90"), D(100)),),
                         asks=(BookLevel(D("99.98"), size), BookLevel(D("100.05"), D(100))), ts_ms=ts_ms)
    return OrderBook(venue, symbol, bids=(BookLevel(D("100.02"), size), BookLevel(D("99.95"), D(100))),
                     asks=(BookLevel(D("100.10"), D(100)),), ts_ms=ts_ms)


async def market_moves(h, rng: random.Random) -> None:
    """Market steps while maker orders rest: each maker venue's book trades through its order by a
    random size (none, partial, or all), the venues match, the engine hedges; then the deep books
    come back (a post-only order at the touch never fills on touch)."""
    for _ in range(rng.randint(1, 3)):
        moved = []
        for pid, work in list(h.engine._makers.items()):
            pos = h.engine.positions.get(pid)
            if pos is None or rng.random() < 0.3:
                continue
            size = D(rng.randint(1, 15)) / 10
            h.books.set(traded_through(work.venue, pos.symbol, work.leg, size, h.clock.now_ms()), work.venue, pos.symbol)
            moved.append((work.venue, pos.symbol))
        h.executor.match_resting()
        for venue, symbol in moved:
            h.books.set(DeepBooks().book(venue, symbol), venue, symbol)
        await h.engine.work_makers()
        await anyio.lowlevel.checkpoint()


def assert_hedged_or_flat(h) -> None:
    """Every symbol's venue exposure nets to zero across venues: no naked leg anywhere."""
    exposure = venue_exposure(h.executor)
    for symbol in {s for _, s in exposure}:
        net = sum((size for (_, s), size in exposure.items() if s == symbol), D(0))
        assert net == 0, f"{symbol} naked after settling: {exposure}"


async def run_seed(tmp_path, seed: int, cycles: int, *, maker: bool = False) -> dict:
    config = FAULT_MAKER_CONFIG if maker else None
    extra = {} if config is None else {"config": config}
    h = await make_harness(tmp_path / f"seed{seed}", faults=heavy_faults(seed), interleave_seed=seed, **extra)
    rng = random.Random(seed)
    opened = crashes = orders_sent = 0
    position_ids: set[str] = set()
    windows: list[float] = []

    async def crash_and_restart():
        nonlocal h, crashes, orders_sent
        crashes += 1
        position_ids.update(h.engine.positions)
        windows.extend(h.engine.metrics.unhedged_windows_ms)
        orders_sent += h.engine.metrics.orders_sent
        h = await restart(h, seed, crashes, config)

    while opened < cycles:
        batch = min(BATCH, cycles - opened)
        entries = []
        for symbol in rng.sample(SYMBOLS, batch):
            long_venue, short_venue = rng.sample(VENUES, 2)
            entries.append((opportunity(symbol, long_venue, short_venue), D(rng.randint(5, 30)) / 10))

        def start_entries(tg) -> None:
            for opp, size in entries:
                tg.start_soon(h.engine.open_position, opp, size, "fault test")

        if await phase(h, start_entries, rng.randint(1, 60) if rng.random() < CRASH_PROBABILITY else None):
            await crash_and_restart()
        opened += batch
        assert_never_monitoring_unhedged(h.engine)
        if maker:
            def start_market(tg) -> None:
                tg.start_soon(market_moves, h, rng)

            if await phase(h, start_market, rng.randint(1, 80) if rng.random() < CRASH_PROBABILITY else None):
                await crash_and_restart()
            assert_never_monitoring_unhedged(h.engine)
        await settle(h, want_closed=False)
        if maker:
            assert_hedged_or_flat(h)
        h.clock.advance(1)

        def start_exits(tg) -> None:
            for pos in h.engine.active_positions():
                tg.start_soon(h.engine.close_position, pos, "test_exit")

        if await phase(h, start_exits, rng.randint(1, 60) if rng.random() < CRASH_PROBABILITY else None):
            await crash_and_restart()
        await settle(h, want_closed=True)

    # Final pass: reconcile and flatten everything until the venues confirm flat.
    for _ in range(MAX_SETTLE_PASSES):
        h.clock.advance(3)
        await h.engine.reconcile()
        if await h.engine.flatten_all("final") and not venue_exposure(h.executor):
            break
    h.clock.advance(10)  # past every outage window, so the venues can be asked
    remaining = await h.executor.positions()
    states = {p.state.value for p in h.engine.positions.values()}
    position_ids.update(h.engine.positions)
    windows.extend(h.engine.metrics.unhedged_windows_ms)
    orders_sent += h.engine.metrics.orders_sent
    await h.aclose()
    audit = audit_files(h.db_path)
    with sqlite3.connect(venue_store_path_for(h.db_path)) as ven:
        maker_fills = ven.execute("SELECT COUNT(*) FROM venue_fills WHERE liquidity = 'maker'").fetchone()[0]
    return {"remaining": remaining, "maker_fills": maker_fills, "states": states, "audit": audit, "windows": windows,
            "positions": len(position_ids), "orders_sent": orders_sent, "crashes": crashes, "cycles": opened}


async def test_thousand_cycles_under_heavy_faults_end_flat_with_no_duplicates(tmp_path):
    started = time.perf_counter()
    windows: list[float] = []
    total_cycles = total_positions = total_orders = total_crashes = 0
    for seed in SEEDS:
        result = await run_seed(tmp_path, seed, CYCLES_PER_SEED)
        audit = result["audit"]
        assert result["remaining"] == [], f"seed {seed}: exposure left {result['remaining']}"
        # (after a crash-restart late in the run the engine may hold no position at all)
        assert result["states"] <= {"closed"}, f"seed {seed}: states {result['states']}"
        assert audit.venue_positions == {}, f"seed {seed}: venue file shows {audit.venue_positions}"
        assert audit.problems == {}, f"seed {seed}: {audit.problems}"
        assert audit.unrecorded_fills == [], f"seed {seed}: fills the bot never recorded {audit.unrecorded_fills}"
        # Every position that reached the database is closed (a crash before its intent was
        # written leaves no row, and nothing was sent for it).
        assert set(audit.states) == {"closed"} and audit.states["closed"] <= result["positions"]
        windows += result["windows"]
        total_positions += result["positions"]
        total_cycles += result["cycles"]
        total_orders += result["orders_sent"]
        total_crashes += result["crashes"]
    assert total_cycles == len(SEEDS) * CYCLES_PER_SEED
    ordered = sorted(windows)
    assert total_crashes > 0
    print(f"\n{total_cycles} cycles ({total_positions} positions), {total_crashes} crash-restarts, {total_orders} orders sent, "
          f"{len(windows)} unhedged windows; "
          f"max unhedged window {ordered[-1]:.3f} ms, p50 {ordered[len(ordered) // 2]:.3f} ms, "
          f"p99 {ordered[int(len(ordered) * 0.99)]:.3f} ms; wall {time.perf_counter() - started:.1f} s")


MAKER_SEEDS = (5, 17)
MAKER_CYCLES_PER_SEED = 120


async def test_maker_taker_cycles_under_heavy_faults_hedge_every_maker_fill_and_end_flat(tmp_path):
    """The same faults, crashes and racing reconciler with maker-taker entries: makers rest, the market
    trades through them by random sizes (partial and full fills), the engine hedges each fill. After
    every settling pass no symbol is naked; at the end everything is closed, flat and audited."""
    windows: list[float] = []
    maker_fills = crashes = 0
    for seed in MAKER_SEEDS:
        result = await run_seed(tmp_path, seed, MAKER_CYCLES_PER_SEED, maker=True)
        audit = result["audit"]
        assert result["remaining"] == [], f"seed {seed}: exposure left {result['remaining']}"
        assert result["states"] <= {"closed"}, f"seed {seed}: states {result['states']}"
        assert audit.venue_positions == {} and audit.problems == {}, f"seed {seed}: {audit.problems}"
        assert audit.unrecorded_fills == [], f"seed {seed}: {audit.unrecorded_fills}"
        maker_fills += result["maker_fills"]
        crashes += result["crashes"]
        windows += result["windows"]
    assert maker_fills > 50, f"only {maker_fills} maker fills: the scenario did not exercise the maker path"
    assert crashes > 0
    ordered = sorted(windows)
    print(f"\nmaker-taker: {maker_fills} maker fills, {crashes} crash-restarts, {len(windows)} unhedged windows, "
          f"p50 {ordered[len(ordered) // 2]:.3f} ms, p99 {ordered[int(len(ordered) * 0.99)]:.3f} ms")
