"""Carry (long spot / short perp) through the real engine and paper venues, faults and crashes included.

The spot market "alpha:spot" sits beside the perp venue "alpha" (and "beta"): 0.1 % spot fees taken in the
base coin on buys, spot lot 0.001 (perp lot 0.1), and a wallet that already holds 5 coins of the user's
that the bot must never sell. Every test ends with zero naked exposure: either hedged in monitoring
or flat with the wallet back at its baseline, checked at the venues and in the two SQLite files.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D
from pathlib import Path

import pytest

from engine_harness import (
    FAST_CONFIG,
    FEES,
    T0_MS,
    TICK,
    DeepBooks,
    Harness,
    ScriptedExecutor,
    YieldingLatency,
    allow_all,
    audit_files,
    deep_book,
    opportunity,
)
from adapters.errors import TemporaryVenueError
from bot.core.clock import ManualClock
from bot.core.domain import FeeSchedule, FundingSettlement, Instrument, InstrumentKind, spot_market
from bot.engine import TradingEngine
from machines.position import PositionState
from paper.executor import PaperExecutor
from paper.fault_injection import FaultPlan
from paper.venue_store import VenueStore, venue_store_path_for
from storage import AsyncStorage

pytestmark = pytest.mark.anyio

SPOT = spot_market("alpha")
SPOT_LOT = D("0.001")
SPOT_FEES = FeeSchedule(maker_bps=D(10), taker_bps=D(10))
ALL_FEES = {**FEES, SPOT: SPOT_FEES}
USER_COINS = D(5)
SYMBOL = "AAA"
CARRY_SYMBOLS = ("AAA", "BBB", "CCC", "DDD")


def spot_books() -> DeepBooks:
    books = DeepBooks()
    for symbol in CARRY_SYMBOLS:
        books.books[(SPOT, symbol)] = deep_book(SPOT, symbol)
        books.instruments[(SPOT, symbol)] = Instrument(
            venue=SPOT, symbol=symbol, venue_symbol=f"{symbol}USDT", tick_size=TICK, lot_size_base=SPOT_LOT,
            min_size_base=SPOT_LOT, funding_interval_hours=D(1), kind=InstrumentKind.SPOT)
    return books


async def carry_harness(tmp_path: Path, *, books: DeepBooks | None = None, clock: ManualClock | None = None,
                        scripted: bool = False, config=FAST_CONFIG, faults: FaultPlan | None = None,
                        interleave_seed: int | None = None) -> tuple[Harness, ScriptedExecutor | None]:
    db_path = tmp_path / "bot.sqlite"
    books = books or spot_books()
    clock = clock or ManualClock(T0_MS)
    store = await AsyncStorage.open(db_path)
    venue_store = VenueStore.open(venue_store_path_for(db_path))
    timing = {} if interleave_seed is None else {"sleep": YieldingLatency(interleave_seed)}
    paper = PaperExecutor(books, ALL_FEES, store=venue_store, latency_s=0.0 if interleave_seed is None else 0.001,
                          clock_now_ms=clock.now_ms, faults=faults, **timing,
                          spot_wallet_seed_base={(SPOT, s): USER_COINS for s in CARRY_SYMBOLS})
    executor = ScriptedExecutor(paper) if scripted else paper
    engine = TradingEngine(executor=executor, store=store, clock=clock, config=config, book=books.book,
                           instrument=books.instrument, gate=allow_all, known_venues=(*FEES, SPOT),
                           fees=ALL_FEES.get)
    h = Harness(engine, paper, store, venue_store, books, clock, db_path)
    return h, executor if scripted else None


def carry_opp(symbol: str = SYMBOL, size: D = D(1)):
    return replace(opportunity(symbol, long_venue=SPOT, short_venue="alpha"), long_rate=D(0), size_base=size)


async def wallet(h: Harness, symbol: str = SYMBOL) -> D:
    return (await h.executor.spot_wallet_base(SPOT)).get(symbol, D(0))


async def perp(h: Harness, symbol: str = SYMBOL, venue: str = "alpha") -> D:
    return sum((p.size_base for p in await h.executor.positions(venue) if p.symbol == symbol), D(0))


async def assert_no_naked_exposure(h: Harness, symbol: str = SYMBOL) -> None:
    """Hedged (spot above baseline = perp short, within one perp lot) or flat (wallet at baseline within a lot)."""
    bot_spot = await wallet(h, symbol) - h.engine.spot_baselines.get((SPOT, symbol), D(0))
    short = -await perp(h, symbol)
    assert short >= 0
    assert abs(bot_spot - short) < D("0.1"), (bot_spot, short)
    assert await wallet(h, symbol) >= USER_COINS  # the user's coins are never sold
    for pos in h.engine.positions.values():
        if pos.symbol == symbol and pos.state != PositionState.CLOSED.value:
            assert pos.state == PositionState.MONITORING.value, pos
    audit = carry_audit(h)
    assert not audit, audit


def carry_audit(h: Harness) -> dict:
    audit = audit_files(h.db_path)
    return audit.problems


async def test_carry_opens_collects_perp_funding_only_and_closes_flat(tmp_path):
    h, _ = await carry_harness(tmp_path)
    pos = await h.engine.open_position(carry_opp(), D(1), "test carry")
    assert pos.state == PositionState.MONITORING.value
    # Spot bought gross 1.002 (1 / 0.999 rounded up to the spot lot); the wallet got 1.002 x 0.999.
    assert await wallet(h) == USER_COINS + D("1.002") * D("0.999")
    assert pos.long_filled_base == D("1.000998") and pos.short_filled_base == D(1)
    assert h.engine.spot_baselines[(SPOT, SYMBOL)] == USER_COINS
    assert await perp(h) == D(-1)

    # Funding: the perp short receives; the spot market pays nothing.
    paid = []
    for venue in ("alpha", SPOT):
        paid += h.executor.settle_funding(FundingSettlement(venue=venue, symbol=SYMBOL, ts_ms=T0_MS + 3_600_000,
                                                            rate=D("0.0001"), interval_hours=D(1), mark_price=D(100)))
    assert [p.venue for p in paid] == ["alpha"] and paid[0].amount_usd == D("0.0100")
    assert await h.engine.record_funding(paid) == 1

    assert await h.engine.close_position(pos, "test_exit")
    assert pos.state == PositionState.CLOSED.value
    # Sold 1.000 (whole spot lots); 0.000998 dust released to the user; wallet - baseline = 0.
    assert await wallet(h) == USER_COINS + D("0.000998")
    assert h.engine.spot_baselines[(SPOT, SYMBOL)] == USER_COINS + D("0.000998")
    assert await perp(h) == 0
    assert not await h.engine.venue_sizes()

    # The totals add up to the cent with the cash that moved at the venues.
    totals = await h.store.run(lambda s: s.position_totals(pos.position_id))
    assert totals.is_flat and totals.realized_pnl_usd is not None
    # Cash that moved at the venues, computed independently from the venues' own fills: sells in,
    # buys out, USD-charged fees out (a base-coin fee is already missing from the coins), funding in.
    venue_fills = [f for v in (SPOT, "alpha") for f in await h.executor.fills_since(v, 0)]
    venue_cash = sum(((f.price * f.size_base) * (1 if f.side.value == "sell" else -1)
                      - (f.fee_usd if f.fee_base == 0 else 0) for f in venue_fills), D(0)) + paid[0].amount_usd
    dust_value = D("0.000998") * D("99.99")  # the released coins, at the closing sell price
    assert totals.released_dust_usd == dust_value
    assert round(totals.realized_pnl_usd, 2) == round(venue_cash + dust_value, 2)
    assert totals.funding_usd == D("0.0100")
    await assert_no_naked_exposure(h)
    await h.aclose()


async def test_spot_fill_without_perp_is_repaired_to_a_hedge(tmp_path):
    h, ex = await carry_harness(tmp_path, scripted=True)
    ex.on("reject", venue="alpha", purpose="open")
    pos = await h.engine.open_position(carry_opp(), D(1), "spot fills, perp rejected")
    assert pos.state == PositionState.MONITORING.value
    assert -await perp(h) == D(1)  # the repair sold the perp sized to the net spot received
    await assert_no_naked_exposure(h)
    await h.aclose()


async def test_spot_fill_without_perp_is_unwound_when_the_perp_never_fills(tmp_path):
    h, ex = await carry_harness(tmp_path, scripted=True)
    ex.on("reject", venue="alpha", times=-1)
    pos = await h.engine.open_position(carry_opp(), D(1), "perp venue refuses everything")
    assert pos.state == PositionState.CLOSED.value
    assert await perp(h) == 0
    # The spot bought was sold back (whole lots); the sub-lot dust left to the user, never below baseline.
    assert USER_COINS <= await wallet(h) < USER_COINS + SPOT_LOT
    await assert_no_naked_exposure(h)
    await h.aclose()


async def test_perp_fill_without_spot_is_repaired_by_buying_spot_net_of_its_fee(tmp_path):
    h, ex = await carry_harness(tmp_path, scripted=True)
    ex.on("reject", venue=SPOT, purpose="open")
    pos = await h.engine.open_position(carry_opp(), D(1), "perp fills, spot rejected")
    assert pos.state == PositionState.MONITORING.value
    assert pos.long_filled_base >= pos.short_filled_base == D(1)
    assert await wallet(h) - USER_COINS == pos.long_filled_base
    await assert_no_naked_exposure(h)
    await h.aclose()


async def test_a_carry_is_never_called_hedged_while_its_perp_is_a_whole_lot_ahead_of_its_spot(tmp_path):
    """A 2.8 carry: the spot entry is rejected, the perp fills only 0.1 (one perp lot) and the repair's
    spot buys fill only 0.001 each (thin books): a perp short of 0.1 against ~0.003 of spot is NOT a
    hedge, although the gap is within one perp lot, because the spot leg can be bought in 0.001 steps.
    (The tolerance used to be one lot of the coarser perp: this position was called "hedged at
    0.000999" with 0.1 short, a naked leg.) Once the book is deep again the repair completes the hedge
    to within one spot lot."""
    books = spot_books()
    books.set(deep_book(SPOT, SYMBOL, levels=1, level_size=D("0.001")), SPOT, SYMBOL)
    books.set(deep_book("alpha", SYMBOL, levels=1, level_size=D("0.1")), "alpha", SYMBOL)
    h, ex = await carry_harness(tmp_path, books=books, scripted=True)
    ex.on("reject", venue=SPOT, purpose="open")
    pos = await h.engine.open_position(carry_opp(), D("2.8"), "spot rejected, perp and spot thin")
    assert await perp(h) == D("-0.1")
    assert pos.state == PositionState.RECOVERING.value, (pos.state, pos.long_filled_base)
    books.set(deep_book(SPOT, SYMBOL), SPOT, SYMBOL)
    for _ in range(3):
        h.clock.advance(1)
        await h.engine.reconcile()
    assert pos.state == PositionState.MONITORING.value
    assert D(0) <= pos.long_filled_base - pos.short_filled_base < SPOT_LOT
    assert await wallet(h) - USER_COINS == pos.long_filled_base
    await assert_no_naked_exposure(h)
    await h.aclose()


async def test_perp_fill_without_spot_is_unwound_when_spot_never_fills(tmp_path):
    h, ex = await carry_harness(tmp_path, scripted=True)
    ex.on("reject", venue=SPOT, times=-1)
    pos = await h.engine.open_position(carry_opp(), D(1), "spot market refuses everything")
    assert pos.state == PositionState.CLOSED.value
    assert await perp(h) == 0 and await wallet(h) == USER_COINS
    await assert_no_naked_exposure(h)
    await h.aclose()


async def test_partial_spot_fill_sizes_the_hedge_to_the_net_base_received(tmp_path):
    books = spot_books()
    # Only 0.5 coin on the spot asks within the slippage cap: the spot leg fills partially.
    books.set(deep_book(SPOT, SYMBOL, levels=1, level_size=D("0.5")), SPOT, SYMBOL)
    h, _ = await carry_harness(tmp_path, books=books)
    pos = await h.engine.open_position(carry_opp(), D(1), "thin spot book")
    assert pos.state == PositionState.MONITORING.value
    spot_net = await wallet(h) - USER_COINS
    assert spot_net == D("0.5") * D("0.999")
    # The perp was trimmed to the whole perp lots nearest the net spot held (0.4995 -> 0.5).
    assert -await perp(h) == D("0.5")
    assert abs(-await perp(h) - spot_net) < D("0.1")
    await assert_no_naked_exposure(h)
    await h.aclose()


async def test_unreadable_wallet_means_no_carry_entry(tmp_path):
    h, _ = await carry_harness(tmp_path)
    h.executor.down_for(SPOT, 60)
    pos = await h.engine.open_position(carry_opp(), D(1), "wallet unreadable")
    assert pos.state == PositionState.CLOSED.value
    assert await perp(h) == 0 and not h.executor._orders
    await h.aclose()


async def test_a_spot_short_is_refused(tmp_path):
    h, _ = await carry_harness(tmp_path)
    with pytest.raises(ValueError, match="cannot be shorted"):
        await h.engine.open_position(replace(carry_opp(), long_venue="alpha", short_venue=SPOT), D(1), "short spot")
    assert not h.executor._orders
    await h.aclose()


@pytest.mark.parametrize("venue", [SPOT, "alpha"])
async def test_crash_after_one_carry_leg_executed_restarts_hedged_or_flat(tmp_path, venue):
    """kill -9 right after one entry leg executed at its venue (its answer never recorded): a new
    engine restores from the files, reconciles against the wallet and the perp, and ends with no
    naked leg."""
    clock = ManualClock(T0_MS)
    books = spot_books()
    h, ex = await carry_harness(tmp_path, books=books, clock=clock, scripted=True)
    ex.on("crash_after", venue=venue, purpose="open")
    with pytest.raises(BaseExceptionGroup):  # the Crash, out of the concurrent dispatch
        await h.engine.open_position(carry_opp(), D(1), "crash mid-entry")
    await h.aclose()

    h2, _ = await carry_harness(tmp_path, books=books, clock=clock)
    assert await h2.engine.restore() == 1
    await h2.engine.reconcile()
    await h2.engine.reconcile()
    await assert_no_naked_exposure(h2)
    (pos,) = h2.engine.positions.values()
    assert pos.state in (PositionState.MONITORING.value, PositionState.CLOSED.value)
    assert await h2.engine.flatten_all("shutdown")
    assert not await h2.engine.venue_sizes()
    assert await wallet(h2) >= USER_COINS
    await assert_no_naked_exposure(h2)
    await h2.aclose()


async def test_crash_during_carry_exit_restarts_and_finishes_flat(tmp_path):
    clock = ManualClock(T0_MS)
    books = spot_books()
    h, ex = await carry_harness(tmp_path, books=books, clock=clock, scripted=True)
    pos = await h.engine.open_position(carry_opp(), D(1), "open")
    assert pos.state == PositionState.MONITORING.value
    ex.on("crash_after", venue=SPOT, purpose="close")
    with pytest.raises(BaseExceptionGroup):  # the Crash, out of the concurrent dispatch
        await h.engine.close_position(pos, "exit")
    await h.aclose()

    h2, _ = await carry_harness(tmp_path, books=books, clock=clock)
    await h2.engine.restore()
    await h2.engine.reconcile()
    assert await h2.engine.flatten_all("shutdown")
    assert not await h2.engine.venue_sizes()
    assert await perp(h2) == 0
    assert USER_COINS <= await wallet(h2) < USER_COINS + SPOT_LOT
    await assert_no_naked_exposure(h2)
    await h2.aclose()


async def test_answer_lost_on_spot_buy_is_looked_up_not_resent(tmp_path):
    h, ex = await carry_harness(tmp_path, scripted=True)
    ex.on("ack_lost", venue=SPOT, purpose="open")
    pos = await h.engine.open_position(carry_opp(), D(1), "spot answer lost")
    assert pos.state == PositionState.MONITORING.value
    assert await wallet(h) - USER_COINS == pos.long_filled_base == D("1.000998")  # bought once, not twice
    await assert_no_naked_exposure(h)
    await h.aclose()


async def test_wallet_unreadable_during_close_is_not_called_flat(tmp_path):
    h, _ = await carry_harness(tmp_path)
    pos = await h.engine.open_position(carry_opp(), D(1), "open")

    original = h.executor.spot_wallet_base

    async def broken(market):
        raise TemporaryVenueError(market, "wallet endpoint down")

    h.executor.spot_wallet_base = broken  # type: ignore[method-assign]
    assert not await h.engine.close_position(pos, "exit")
    assert pos.state != PositionState.CLOSED.value  # never declared flat without reading the wallet
    h.executor.spot_wallet_base = original  # type: ignore[method-assign]
    await h.engine.reconcile()
    assert pos.state == PositionState.CLOSED.value
    await assert_no_naked_exposure(h)
    await h.aclose()


# ---------------------------------------------------------------------- randomized faults and crashes
FAULT_SEEDS = (5, 17, 29, 43)
FAULT_CYCLES = 100  # per seed: carry entries and exits under heavy faults, some phases killed mid-way


def heavy_faults(seed: int) -> FaultPlan:
    return FaultPlan(seed=seed, reject_probability=0.2, timeout_probability=0.2, partial_fill_probability=0.3,
                     venue_down_probability=0.02, venue_down_s=2.0)


def committed_exposure(h: Harness) -> dict[tuple[str, str], D]:
    """What the paper venues hold for the bot, read from their committed state (no request, so no
    injected fault): perp positions, and spot wallets minus the engine's baselines (below a lot = dust)."""
    out = {}
    for (venue, symbol), p in h.executor._positions.items():
        size = p.size_base
        if venue.endswith(":spot"):
            size -= h.engine.spot_baselines.get((venue, symbol), size)
            if abs(size) < SPOT_LOT:
                size = D(0)
        if size != 0:
            out[(venue, symbol)] = size
    return out


def assert_carry_legs_within_tolerance(h: Harness) -> None:
    """A carry position in monitoring holds both legs, equal within its tolerance (one perp lot)."""
    for pos in h.engine.positions.values():
        if pos.state == PositionState.MONITORING.value:
            assert pos.long_filled_base > 0 and pos.short_filled_base > 0, pos
            assert abs(pos.long_filled_base - pos.short_filled_base) <= pos.tolerance_base, pos


async def settle_carry(h: Harness, want_closed: bool) -> None:
    for _ in range(80):
        pending = [p for p in h.engine.active_positions()
                   if want_closed or p.state != PositionState.MONITORING.value]
        if not pending:
            return
        h.clock.advance(1)
        await h.engine.reconcile()
        if want_closed:
            for pos in list(h.engine.active_positions()):
                await h.engine.close_position(pos, "test_exit")
        assert_carry_legs_within_tolerance(h)
    raise AssertionError(f"carry positions did not settle: {h.engine.active_positions()}")


@pytest.mark.slow
@pytest.mark.parametrize("seed", FAULT_SEEDS)
async def test_carry_under_heavy_faults_and_crashes_leaves_no_naked_leg(tmp_path, seed):
    """Rejects, timeouts (half executed), partial fills and venue-down windows on the spot market and the
    perps alike, requests interleaving, reconciliation racing the entries and exits, and about one phase
    in eight killed in-process (then a restart from the files). Carry pairs alternate between same-venue
    (alpha:spot / alpha) and cross-venue (alpha:spot / beta). After each settling pass no symbol is naked
    beyond one perp lot; at the end everything is flat, the user's coins untouched, the files audited."""
    from test_engine_faults import phase  # the fault suite's phase runner (racing reconciler, kill)

    import random

    rng = random.Random(seed)
    clock = ManualClock(T0_MS)
    books = spot_books()
    n = 0

    async def fresh(restore: bool):
        nonlocal n
        n += 1
        h, _ = await carry_harness(tmp_path, books=books, clock=clock, faults=heavy_faults(seed * 100 + n),
                                   interleave_seed=seed * 100 + n)
        if restore:
            await h.engine.restore()
        return h

    h = await fresh(False)
    crashes = 0
    for cycle in range(0, FAULT_CYCLES, 2):
        symbols = rng.sample(CARRY_SYMBOLS, 2)
        entries = [(replace(carry_opp(sym), short_venue=rng.choice(("alpha", "beta"))), D(rng.randint(5, 30)) / 10)
                   for sym in symbols]

        def start_entries(tg) -> None:
            for opp, size in entries:
                tg.start_soon(h.engine.open_position, opp, size, "carry fault test")

        if await phase(h, start_entries, rng.randint(1, 60) if rng.random() < 0.125 else None):
            crashes += 1
            await h.aclose()
            h = await fresh(True)
        await settle_carry(h, want_closed=False)
        sizes = committed_exposure(h)
        for sym in CARRY_SYMBOLS:
            net = sum((v for (venue, s), v in sizes.items() if s == sym), D(0))
            assert abs(net) < D("0.1"), (sym, sizes)

        def start_exits(tg) -> None:
            for pos in h.engine.active_positions():
                tg.start_soon(h.engine.close_position, pos, "test_exit")

        h.clock.advance(1)
        if await phase(h, start_exits, rng.randint(1, 60) if rng.random() < 0.125 else None):
            crashes += 1
            await h.aclose()
            h = await fresh(True)
        await settle_carry(h, want_closed=True)

    for _ in range(40):
        h.clock.advance(3)
        await h.engine.reconcile()
        if await h.engine.flatten_all("final") and not committed_exposure(h):
            break
    assert not committed_exposure(h)
    for (venue, sym), p in h.executor._positions.items():
        if venue == SPOT:
            assert p.size_base >= USER_COINS  # the user's coins are never sold
        else:
            assert p.size_base == 0
    assert all(p.state == PositionState.CLOSED.value for p in h.engine.positions.values())
    problems = carry_audit(h)
    assert not problems, problems
    print(f"seed {seed}: {crashes} crash(es) survived")
    await h.aclose()


class _KillRightAfterDustWrite:
    """The engine's store, with an in-process kill (``scope`` cancelled) the moment a spot-dust write
    returns: the process dies between that write and whatever the engine stores next."""

    def __init__(self, store: AsyncStorage, scope) -> None:
        self._store = store
        self._scope = scope
        self.kills = 0

    def __getattr__(self, name: str):
        attr = getattr(self._store, name)
        if name not in ("set_kv", "release_spot_dust"):
            return attr

        async def write_then_die(*args, **kwargs):
            result = await attr(*args, **kwargs)
            if name == "release_spot_dust" or str(args[0]).startswith("spot_dust:"):
                self.kills += 1
                self._scope.cancel()
            return result

        return write_then_die


async def test_a_crash_while_releasing_spot_dust_never_releases_it_twice(tmp_path):
    """Killed right after the dust write of a carry close, restarted from the files and closed again:
    the dust is released exactly once (the baseline rises once, the totals value it once, flat), the
    user's coins untouched. (The release used to be three writes; a kill between them released the
    same coins twice after the restart and the totals were no longer flat.)"""
    import anyio

    clock = ManualClock(T0_MS)
    books = spot_books()
    h, _ = await carry_harness(tmp_path, books=books, clock=clock)
    pos = await h.engine.open_position(carry_opp(), D(1), "test carry")
    assert pos.state == PositionState.MONITORING.value
    with anyio.CancelScope() as kill:
        killer = _KillRightAfterDustWrite(h.store, kill)
        h.engine.store = killer
        await h.engine.close_position(pos, "test_exit")
    assert killer.kills == 1 and kill.cancelled_caught
    await h.aclose()

    h2, _ = await carry_harness(tmp_path, books=books, clock=clock)
    await h2.engine.restore()
    for _ in range(5):
        clock.advance(1)
        await h2.engine.reconcile()
        for open_pos in list(h2.engine.active_positions()):
            await h2.engine.close_position(open_pos, "test_exit")
    assert not h2.engine.active_positions()
    dust = D("0.000998")  # 1.002 bought x 0.999 (fee in coins) - 1.000 sold
    assert D(await h2.store.get_kv(f"spot_dust:{pos.position_id}:{SPOT}")) == dust
    assert h2.engine.spot_baselines[(SPOT, SYMBOL)] == USER_COINS + dust
    assert await wallet(h2) == USER_COINS + dust
    totals = await h2.store.run(lambda s: s.position_totals(pos.position_id))
    assert totals.is_flat and totals.released_dust_usd == dust * D("99.99")
    assert not carry_audit(h2)
    await h2.aclose()
