"""A long paper run in-process (default universe) on a virtual clock: memory and per-position cost over time.

    python bench/scale_year.py [--days 365] [--strategy-minutes 30] [--reconcile-minutes 60]

Drives the real ``Application`` (simulated market, paper venues, SQLite) the way the supervisor's
loops do, but on a ``VirtualClock`` for speed: each strategy interval the market is advanced (every
60 s market step is simulated; funding settles hourly), then a strategy pass runs; reconciliation
runs on its own interval. Samples once per simulated day: RSS, tracemalloc-traced bytes, the
engine's maps (positions, orders, locks...), positions closed so far and the wall time of the
per-position operations (``owner_of``, ``held_views``, ``_has_unknown_orders``) measured on the
live engine. Prints JSON; ``bench/scale.py`` embeds it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.app import Application
from bot.core.clock import VirtualClock, parse_iso_utc
from bot.settings import Settings
from bot.wiring import PaperOptions, paper_wiring

START_MS = parse_iso_utc("2026-01-01T00:00:00Z")
DAY_MS = 86_400_000


def rss_kb() -> int:
    """Current resident set size in KiB (Linux /proc; falls back to the peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _per_position_op_us(app: Application, repeats: int = 200) -> dict[str, float]:
    """Mean wall microseconds of the per-position lookups on the engine as it is now."""
    engine = app.engine
    assert engine is not None
    venues = app.market.venues()
    symbols = getattr(app.market, "symbols", list)()
    keys = [(v, s) for v in venues for s in symbols][:64] or [("x", "y")]
    out = {}
    t0 = time.perf_counter_ns()
    for n in range(repeats):
        venue, symbol = keys[n % len(keys)]
        engine.owner_of(venue, symbol)
    out["owner_of_us"] = (time.perf_counter_ns() - t0) / repeats / 1000
    ids = list(engine.positions) or ["none"]
    t0 = time.perf_counter_ns()
    for n in range(repeats):
        engine._has_unknown_orders(ids[n % len(ids)])
    out["has_unknown_orders_us"] = (time.perf_counter_ns() - t0) / repeats / 1000
    t0 = time.perf_counter_ns()
    for _ in range(repeats // 10):
        app.held_views(include_unhedged=True)
    out["held_views_us"] = (time.perf_counter_ns() - t0) / (repeats // 10) / 1000
    return out


async def run_year(days: int, strategy_minutes: int, reconcile_minutes: int, seed: int = 7) -> dict:
    from loguru import logger

    logger.remove()  # logging I/O is not what is measured
    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        clock = VirtualClock(START_MS)
        wiring = paper_wiring(settings, PaperOptions(seed=seed, speed=1.0, db_path=Path(tmp) / "paper.sqlite",
                                                     start_ts_ms=START_MS), clock=clock)
        app = Application(settings, wiring)
        await app.start()
        assert app.engine is not None
        step_ms = strategy_minutes * 60_000
        reconcile_ms = reconcile_minutes * 60_000
        samples = []
        wall0 = time.perf_counter()
        last_reconcile = START_MS
        steps_per_day = DAY_MS // step_ms
        for day in range(1, days + 1):
            day_wall = time.perf_counter()
            for n in range(steps_per_day):
                now = START_MS + (day - 1) * DAY_MS + (n + 1) * step_ms
                clock.set(now)
                await app.feed_step()
                await app.strategy_step()
                if now - last_reconcile >= reconcile_ms:
                    await app.reconcile_step()
                    last_reconcile = now
            gc.collect()
            engine = app.engine
            sample = {
                "day": day,
                "rss_kb": rss_kb(),
                "wall_s_day": round(time.perf_counter() - day_wall, 3),
                "closed_positions": engine.closed_count(),
                "open_positions": len(engine.active_positions()),
                "engine_positions": len(engine.positions),
                "engine_orders": len(engine.orders),
                "engine_locks": len(engine._locks),
                "engine_attempts": len(engine._attempts),
                "entry_info": len(app.entry_info),
            }
            if day == 1 or day % 7 == 0 or day == days:
                sample.update({k: round(v, 3) for k, v in _per_position_op_us(app).items()})
            samples.append(sample)
        total_wall = time.perf_counter() - wall0
        await app.flatten("shutdown")
        flat = await app.verify_flat()
        await app.close()
    by_day = {s["day"]: s for s in samples}
    first = by_day.get(7, samples[0])
    last = samples[-1]
    ops = [s for s in samples if "owner_of_us" in s]
    early = [s for s in ops if s["day"] <= max(14, days // 10)]
    late = [s for s in ops if s["day"] > days - max(14, days // 10)]

    def mean(rows: list[dict], key: str) -> float:
        return sum(r[key] for r in rows) / len(rows) if rows else 0.0

    return {
        "days": days,
        "cadence": {"market_step_s": settings.sim.step_seconds, "strategy_every_min": strategy_minutes,
                    "reconcile_every_min": reconcile_minutes},
        "universe": {"symbols": settings.sim.symbols, "venues": list(settings.sim.venues)},
        "wall_s": round(total_wall, 1),
        "rss_day7_kb": first["rss_kb"],
        "rss_last_kb": last["rss_kb"],
        "rss_growth_day7_to_last_mb": round((last["rss_kb"] - first["rss_kb"]) / 1024, 2),
        "rss_growth_target_mb": 5,
        "positions_closed": last["closed_positions"],
        "engine_maps_at_end": {k: last[k] for k in ("engine_positions", "engine_orders", "engine_locks",
                                                    "engine_attempts", "entry_info")},
        "per_position_ops_us_early": {k: round(mean(early, k), 3) for k in ("owner_of_us", "has_unknown_orders_us", "held_views_us")},
        "per_position_ops_us_late": {k: round(mean(late, k), 3) for k in ("owner_of_us", "has_unknown_orders_us", "held_views_us")},
        "flat_at_end": flat,
        "samples_weekly": [s for s in samples if s["day"] % 7 == 0 or s["day"] in (1, days)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--strategy-minutes", type=int, default=30)
    parser.add_argument("--reconcile-minutes", type=int, default=60)
    args = parser.parse_args(argv)
    result = asyncio.run(run_year(args.days, args.strategy_minutes, args.reconcile_minutes))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
