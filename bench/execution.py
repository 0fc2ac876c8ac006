"""Execution benchmark: leg dispatch skew, unhedged window per entry, SIGTERM-to-flat time, and
maker-taker entries against taker-taker ones.

Runs the real TradingEngine against the paper executor on the built-in simulated market with
``--latency-ms`` (default 50) of network latency on every venue, and compares, in the same run,
against a reference that sends the two legs one after the other (what a naive bot does).

    python bench/execution.py [--cycles 100] [--positions 20] [--latency-ms 50] > execution.json

Prints JSON: dispatch skew p50/p99 (ms), unhedged window per entry p50/p99 (ms), flatten time for
``--positions`` open positions (concurrent, as on SIGTERM) and the sequential reference, and ratios.

``maker_taker`` (``--maker-cycles``, default 60), once per ``--maker-steps-s`` (default 60 and 10):
on one simulated market timeline (its own manual clock stepping one market step at a time), each cycle runs a taker-taker round trip (open, close at once) and
then a maker-taker one on the same pair (the maker rests until the market trades through it, each
fill hedged at once, the rest cancelled after ``maker_timeout_s``; then closed taker-taker).
Reported: the unhedged window of every maker fill (detected -> hedged, wall ms, with the paper
latency) p50/p99, the maker fill rate, and the round-trip cost (fees + price PnL of both legs, per
1,000 USD of notional actually filled, funding excluded) of each mode, and the saving.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.core.clock import ManualClock, ScaledClock, utc_now_ms  # noqa: E402
from bot.core.domain import ZERO, ExecutionMode, Opportunity, OrderSide  # noqa: E402
from bot.engine import EngineConfig, TradingEngine  # noqa: E402
from bot.market_view import take_snapshot  # noqa: E402
from bot.scanner import rank_opportunities  # noqa: E402
from paper.executor import PaperExecutor  # noqa: E402
from paper.sim_market import SimMarketConfig, SimulatedMarket  # noqa: E402
from paper.venue_store import VenueStore  # noqa: E402
from risk.trading_state import TradingState, gate_order  # noqa: E402
from storage import AsyncStorage  # noqa: E402


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def one_per_symbol(market: SimulatedMarket, now_ms: int, count: int) -> list[Opportunity]:
    """The best pair of ``count`` distinct symbols (profitable or not: this measures execution)."""
    ranked = rank_opportunities(take_snapshot(market, now_ms), notional_usd=Decimal(1000),
                                horizon_hours=Decimal(72), max_quote_age_ms=10**9)
    chosen: dict[str, Opportunity] = {}
    for opp in ranked:
        chosen.setdefault(opp.symbol, opp)
    return list(chosen.values())[:count]


async def build(workdir: Path, latency_s: float, symbols: int) -> tuple[TradingEngine, SimulatedMarket, ScaledClock]:
    start = utc_now_ms()
    clock = ScaledClock(start, 1.0)
    market = SimulatedMarket(SimMarketConfig(symbol_count=symbols), seed=11, start_ts_ms=start)
    market.advance_to(start + 60_000)
    store = await AsyncStorage.open(workdir / "bench.sqlite")
    executor = PaperExecutor(market, market.fee_schedules(), store=VenueStore.open(workdir / "bench.venues.sqlite"),
                             latency_s=latency_s, clock_now_ms=clock.now_ms,
                             starting_balance_usd=Decimal(10**7))
    engine = TradingEngine(
        executor=executor, store=store, clock=clock,
        config=EngineConfig(max_slippage_bps=Decimal(50), leg_timeout_s=5.0),
        book=market.book, instrument=market.instrument,
        gate=lambda intent: gate_order(TradingState.ACTIVE, intent),
        known_venues=market.venues(),
    )
    return engine, market, clock


async def measure_cycles(engine: TradingEngine, market: SimulatedMarket, clock: ScaledClock, cycles: int) -> dict:
    opportunities = one_per_symbol(market, clock.now_ms(), 10)
    entry_windows: list[float] = []
    for i in range(cycles):
        opp = opportunities[i % len(opportunities)]
        before = len(engine.metrics.unhedged_windows_ms)
        pos = await engine.open_position(opp, opp.size_base, "bench")
        entry_windows.extend(engine.metrics.unhedged_windows_ms[before:])
        await engine.close_position(pos, "bench")
    skew_ms = [ns / 1e6 for ns in engine.metrics.dispatch_skew_ns]
    return {
        "cycles": cycles,
        "dispatch_skew_ms": {"p50": percentile(skew_ms, 50), "p99": percentile(skew_ms, 99), "samples": len(skew_ms)},
        "unhedged_window_per_entry_ms": {"p50": percentile(entry_windows, 50), "p99": percentile(entry_windows, 99),
                                         "samples": len(entry_windows)},
    }


async def measure_flatten(engine: TradingEngine, market: SimulatedMarket, clock: ScaledClock, positions: int,
                          *, sequential: bool) -> float:
    for opp in one_per_symbol(market, clock.now_ms(), positions):
        await engine.open_position(opp, opp.size_base, "bench")
    opened = len(engine.active_positions())
    if opened < positions:
        raise RuntimeError(f"only {opened} of {positions} positions opened")
    started = time.perf_counter()
    if sequential:
        for pos in engine.active_positions():
            await engine.close_position(pos, "shutdown", emergency=True)
    else:
        await engine.flatten_all("shutdown")
    flat = not engine.active_positions() and not any(p.size_base for p in await engine.executor.positions(None))
    elapsed = time.perf_counter() - started
    if not flat:
        raise RuntimeError("not flat after flatten")
    return elapsed


async def sequential_skew_ms(engine: TradingEngine, market: SimulatedMarket, clock: ScaledClock, samples: int) -> float:
    """Reference: the gap between the two legs when sent one after the other (leg-by-leg)."""
    gaps = []
    for opp in one_per_symbol(market, clock.now_ms(), min(samples, 10)):
        pos = await engine.open_position(opp, opp.size_base, "bench")
        await engine.close_position(pos, "bench")
        t0 = time.perf_counter()
        await engine.executor.get_order(opp.long_venue, "does-not-exist")  # one round trip, as leg 1 would take
        gaps.append((time.perf_counter() - t0) * 1000)
    return percentile(gaps, 50) or 0.0


def _engine(executor: PaperExecutor, store: AsyncStorage, clock, market: SimulatedMarket,
            config: EngineConfig) -> TradingEngine:
    return TradingEngine(
        executor=executor, store=store, clock=clock, config=config, book=market.book, instrument=market.instrument,
        gate=lambda intent: gate_order(TradingState.ACTIVE, intent), known_venues=market.venues(),
        fees=market.fee_schedules().get,
    )


async def _round_trip_cost(engine: TradingEngine, position_id: str) -> tuple[Decimal, Decimal, Decimal]:
    """(fees USD, price loss USD = buys - sells, long-leg entry notional filled USD) over the position's fills."""
    fees, price_loss, entry_notional = ZERO, ZERO, ZERO
    orders = {o.client_order_id: o for o in await engine.store.list_orders(position_id)}
    for f in await engine.store.list_fills(position_id):
        notional = f.price * f.size_base
        fees += f.fee_usd
        price_loss += -notional if f.side is OrderSide.SELL else notional
        order = orders[f.client_order_id]
        if order.purpose.value in ("open", "repair") and order.leg is not None and order.leg.value == "long":
            entry_notional += notional
    return fees, price_loss, entry_notional


def _mean(values: list[Decimal]) -> Decimal | None:
    return sum(values, ZERO) / len(values) if values else None


def _fmt(value: Decimal | None) -> str | None:
    return None if value is None else str(round(value, 4))


async def measure_maker_taker(workdir: Path, latency_s: float, cycles: int, maker_timeout_s: float,
                             step_s: int = 60) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    start = utc_now_ms() // 3_600_000 * 3_600_000
    clock = ManualClock(start)
    market = SimulatedMarket(SimMarketConfig(symbol_count=12, step_seconds=step_s), seed=11, start_ts_ms=start)
    market.advance_to(start + step_s * 1000)
    clock.advance(step_s)
    executor = PaperExecutor(market, market.fee_schedules(), store=VenueStore.open(workdir / "mt.venues.sqlite"),
                             latency_s=latency_s, clock_now_ms=clock.now_ms, starting_balance_usd=Decimal(10**7))
    base = EngineConfig(max_slippage_bps=Decimal(50), leg_timeout_s=5.0)
    taker = _engine(executor, await AsyncStorage.open(workdir / "taker.sqlite"), clock, market, base)
    maker = _engine(executor, await AsyncStorage.open(workdir / "maker.sqlite"), clock, market,
                    EngineConfig(max_slippage_bps=Decimal(50), leg_timeout_s=5.0,
                                 execution=ExecutionMode.MAKER_TAKER, maker_timeout_s=maker_timeout_s))
    per_1000: dict[str, dict[str, list[Decimal]]] = {
        mode: {"fees": [], "price": [], "total": []} for mode in ("taker_taker", "maker_taker")}

    async def record(engine: TradingEngine, mode: str, position_id: str) -> None:
        fees, price, notional = await _round_trip_cost(engine, position_id)
        if notional:
            for key, value in (("fees", fees), ("price", price), ("total", fees + price)):
                per_1000[mode][key].append(value / notional * 1000)

    filled = steps = 0
    for i in range(cycles):
        opportunities = one_per_symbol(market, clock.now_ms(), 6)
        opp = opportunities[i % len(opportunities)]
        pos = await taker.open_position(opp, opp.size_base, "bench")
        await taker.close_position(pos, "bench")
        await record(taker, "taker_taker", pos.position_id)
        pos = await maker.open_position(opp, opp.size_base, "bench")
        while pos.state == "resting":
            clock.advance(step_s)
            steps += 1
            await executor.advance(market.advance_to(clock.now_ms()))
            await maker.work_makers()
        if not pos.is_flat:
            filled += 1
            await maker.close_position(pos, "bench")
        await record(maker, "maker_taker", pos.position_id)
    windows = maker.metrics.maker_fill_windows_ms
    mean = {mode: {key: _mean(v) for key, v in parts.items()} for mode, parts in per_1000.items()}

    def saved(key: str) -> Decimal | None:
        a, b = mean["taker_taker"][key], mean["maker_taker"][key]
        return None if a is None or b is None else a - b
    for engine in (taker, maker):
        await engine.store.aclose()
    return {
        "cycles": cycles,
        "maker_timeout_s": maker_timeout_s,
        "market_step_s": step_s,
        "market_steps_resting": steps,
        "maker_entries_filled": filled,
        "maker_fill_rate": filled / cycles,
        "maker_fills_hedged": maker.metrics.maker_fills_hedged,
        "unhedged_window_per_maker_fill_ms": {"p50": percentile(windows, 50), "p99": percentile(windows, 99),
                                              "samples": len(windows)},
        "round_trip_cost_usd_per_1000_notional": {
            mode: {key: _fmt(value) for key, value in parts.items()} for mode, parts in mean.items()
        },
        "saved_per_round_trip_usd_per_1000_notional": {key: _fmt(saved(key)) for key in ("fees", "price", "total")},
        "ratio_total_cost_maker_over_taker": (
            float(mean["maker_taker"]["total"] / mean["taker_taker"]["total"])
            if mean["maker_taker"]["total"] is not None and mean["taker_taker"]["total"] else None),
        "samples": {mode: len(parts["total"]) for mode, parts in per_1000.items()},
        "notes": "same simulated market timeline; a taker-taker round trip opens and closes at once, a maker-taker "
                 "one waits for a trade-through (adverse selection included), hedges each fill and closes "
                 "taker-taker; cost = fees + price PnL of both legs per 1,000 USD filled; funding excluded",
    }


async def main_async(args: argparse.Namespace) -> dict:
    latency_s = args.latency_ms / 1000
    with tempfile.TemporaryDirectory() as tmp:
        engine, market, clock = await build(Path(tmp), latency_s, symbols=max(24, args.positions + 4))
        cycles = await measure_cycles(engine, market, clock, args.cycles)
        concurrent_s = await measure_flatten(engine, market, clock, args.positions, sequential=False)
        sequential_s = await measure_flatten(engine, market, clock, args.positions, sequential=True)
        reference_skew = await sequential_skew_ms(engine, market, clock, 5)
        await engine.store.aclose()
        maker_taker = [await measure_maker_taker(Path(tmp) / f"step{step}", latency_s, args.maker_cycles,
                                                 args.maker_timeout_s, step)
                       for step in args.maker_steps_s] if args.maker_cycles else None
    skew_p99 = cycles["dispatch_skew_ms"]["p99"] or 0.0
    return {
        "benchmark": "execution",
        "latency_ms": args.latency_ms,
        **cycles,
        "reference_leg_by_leg_skew_ms_p50": reference_skew,
        "skew_ratio_reference_over_ours": (reference_skew / skew_p99) if skew_p99 else None,
        "flatten": {
            "positions": args.positions,
            "concurrent_s": concurrent_s,
            "sequential_reference_s": sequential_s,
            "ratio_sequential_over_concurrent": sequential_s / concurrent_s,
        },
        "targets": {"dispatch_skew_p99_ms": 1.0, "flatten_s": 0.5},
        "meets_targets": {"dispatch_skew": skew_p99 < 1.0, "flatten": concurrent_s < 0.5},
        "maker_taker": maker_taker,
        "notes": "flatten = cancel resting orders, close every position concurrently (reduce-only IOC), verify flat "
                 "against the venues' own positions; measured in-process from the start of the flatten to verified flat",
    }


def main() -> None:
    from loguru import logger

    logger.remove()  # the engine's transition log would drown the JSON
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--positions", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--maker-cycles", type=int, default=60, help="maker-taker vs taker-taker cycles (0 skips)")
    parser.add_argument("--maker-timeout-s", type=float, default=300.0, help="maker order rest, simulated seconds")
    parser.add_argument("--maker-steps-s", type=int, nargs="+", default=[60, 10],
                        help="simulated market step(s) for the maker-taker comparison (prices jump once per step)")
    print(json.dumps(anyio.run(main_async, parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
