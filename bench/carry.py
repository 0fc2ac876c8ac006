"""Benchmark: what carry costs the scanner and the engine, against perp-perp measured in the same run.

    python bench/carry.py [--runs 30] [--symbols 100] [--cycles 200] [--out bench/results/carry.json]

1. Scanner: the simulated market (3 perp venues, ``--symbols`` symbols) ranked with perp-perp only
   (reference) and with two spot markets beside the perps and ``pair_kinds`` = both (carry), each on a
   fresh snapshot per run (snapshot build not timed); median and p95 wall time of ``rank_opportunities``
   and the ratio carry / reference.
2. Engine: ``--cycles`` entry + exit cycles through the real engine and paper venues (tmp files), a
   perp-perp pair (reference) and a same-venue carry pair (spot buy grossed up for its base-coin fee,
   wallet baseline read, dust released at the close); median wall time per cycle and the ratio.

Prints one JSON object and writes it to ``--out``. Timings only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import anyio  # noqa: E402

from bot.core.domain import PairKind  # noqa: E402
from bot.scanner import rank_opportunities  # noqa: E402
from paper.sim_market import SimMarketConfig, SimulatedMarket  # noqa: E402

T0 = 1_767_225_600_000


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


def bench_scanner(runs: int, symbols: int) -> dict:
    ref_ms, carry_ms, carry_pairs = [], [], 0
    for run in range(runs):
        at = T0 + run * 3_600_000
        for spot, out in (((), ref_ms), (("sim-8h", "sim-mixed"), carry_ms)):
            market = SimulatedMarket(SimMarketConfig(symbol_count=symbols, spot_venues=spot), seed=run, start_ts_ms=T0)
            market.advance_to(at)
            snapshot = market.snapshot()
            kinds = [PairKind.PERP_PERP, PairKind.SPOT_PERP] if spot else [PairKind.PERP_PERP]
            started = time.perf_counter()
            ranked = rank_opportunities(snapshot, notional_usd=Decimal(1000), horizon_hours=Decimal(336),
                                        max_quote_age_ms=180_000, limit=20, pair_kinds=kinds)
            out.append((time.perf_counter() - started) * 1000)
            if spot:
                carry_pairs += sum(1 for o in ranked if o.pair_kind is PairKind.SPOT_PERP)
    return {
        "runs": runs, "symbols": symbols,
        "reference_perp_perp_ms": {"median": round(statistics.median(ref_ms), 3), "p95": round(_p95(ref_ms), 3)},
        "with_carry_ms": {"median": round(statistics.median(carry_ms), 3), "p95": round(_p95(carry_ms), 3)},
        "ratio_carry_over_reference": round(statistics.median(carry_ms) / statistics.median(ref_ms), 3),
        "carry_pairs_in_top20_total": carry_pairs,
    }


async def _cycles(carry: bool, cycles: int) -> list[float]:
    from engine_harness import opportunity  # noqa: PLC0415
    from test_carry_engine import carry_harness, carry_opp  # noqa: PLC0415

    times = []
    with tempfile.TemporaryDirectory() as tmp:
        h, _ = await carry_harness(Path(tmp))
        symbols = ("AAA", "BBB", "CCC", "DDD")
        for n in range(cycles):
            symbol = symbols[n % len(symbols)]
            opp = carry_opp(symbol) if carry else replace(opportunity(symbol, "alpha", "beta"), size_base=Decimal(1))
            started = time.perf_counter()
            pos = await h.engine.open_position(opp, Decimal(1), "bench")
            await h.engine.close_position(pos, "bench_exit")
            times.append((time.perf_counter() - started) * 1000)
            assert pos.state == "closed" or getattr(pos.state, "value", None) == "closed", pos
            h.engine.evict_closed()
        assert not await h.engine.venue_sizes(), "bench left exposure"
        await h.aclose()
    return times


def bench_engine(cycles: int) -> dict:
    ref = anyio.run(_cycles, False, cycles)
    carry = anyio.run(_cycles, True, cycles)
    return {
        "cycles": cycles,
        "reference_perp_perp_cycle_ms": {"median": round(statistics.median(ref), 3), "p95": round(_p95(ref), 3)},
        "carry_cycle_ms": {"median": round(statistics.median(carry), 3), "p95": round(_p95(carry), 3)},
        "ratio_carry_over_reference": round(statistics.median(carry) / statistics.median(ref), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "carry.json")
    args = parser.parse_args()
    from loguru import logger

    logger.remove()
    result = {"scanner": bench_scanner(args.runs, args.symbols), "engine": bench_engine(args.cycles)}
    text = json.dumps(result, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
