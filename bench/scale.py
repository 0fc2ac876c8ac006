"""Benchmark: keeping up with a large universe, and running for months. One JSON object on stdout.

    python bench/scale.py [--wall-seconds 20] [--speed 3600] [--symbols 500] [--venues 10]
                          [--updates 20000] [--compare-every 10] [--year-days 365] [--reference-commit b7ec582]
                          [--parts decision ...] [--merge-into bench/results/scale.json]

``--parts`` runs only the parts named; ``--merge-into`` writes them into an existing result file,
keeping the other parts' figures (``runs_by_part`` says when and under what load each was measured).

Four parts, each against a reference measured in the same run:

1. ``paper``: the real application on the simulated market (``--symbols`` x ``--venues``) at
   ``--speed`` on a scaled clock, its feed, strategy and reconciliation loops running for
   ``--wall-seconds`` (after start-up). Counted: strategy passes and reconciliations per simulated
   hour against nominal (3600 / interval), stale-data breaker openings, each loop's lag (this tree
   only). The same script runs on the pre-change tree (``git archive --reference-commit``) as the
   reference; ratios are ours / reference. Each run is a subprocess (``bench/scale_run.py``).
2. ``decision``: cost of one market update at 500 x 8 (``bench/scan.py``'s synthetic universe):
   a random (venue, symbol) funding rate changes, then the incremental ranker re-evaluates what
   that can change and reads the top 5 (``IncrementalRanker.apply`` + ``top``) and the exit rules
   run (``ExitWatch``: positions on that symbol re-priced, all re-decided if the best changed), vs a
   full re-rank (``rank_opportunities``, limit 5) of the same snapshot every ``--compare-every``
   updates, which is also compared with the incremental top 5 and the exit plan with ``plan_exits``
   of every held position (must be equal). Wall and thread-CPU
   p50/p90/p99/p99.9/max in ms over ``--updates`` updates, the load average before and after.
3. ``startup``: ``python -m bot scan`` wall time in this tree vs the reference tree (which
   re-fits the calibration at every start), and the fit itself.
4. ``year``: ``bench/scale_year.py``'s in-process paper run (default universe) over
   ``--year-days`` simulated days: RSS growth from day 7 to the end, per-position operation cost
   early vs late. 0 days skips it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scan import NOW_TS_MS, VENUES, build_universe
from bot.core.domain import MarketSnapshot
from bot.exit_watch import ExitWatch
from bot.incremental import IncrementalRanker, RankSettings, full_rank
from bot.market_view import LazyMapping  # noqa: F401
from bot.strategy import HeldView, plan_exits

DEFAULT_REFERENCE_COMMIT = "b7ec582"
PARTS = ["paper", "decision", "startup", "year"]  # the application shell before this changes


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def reference_tree(commit: str, into: Path) -> Path:
    """The project as of ``commit`` (git archive, no .git) under ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def run_paper(tree: Path, args: argparse.Namespace, speed: float) -> dict:
    """``bench/scale_run.py`` (of THIS tree) importing the application from ``tree``."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, str(ROOT / "bench" / "scale_run.py"), "--symbols", str(args.symbols),
           "--venues", str(args.venues), "--speed", str(speed), "--wall-seconds", str(args.wall_seconds),
           "--warmup-seconds", str(args.warmup_seconds)]
    done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True,
                          timeout=args.wall_seconds * 4 + 300)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout)


def paper_part(args: argparse.Namespace, ref: Path | None, speed: float) -> dict:
    ours = run_paper(ROOT, args, speed)
    out: dict = {"speed": speed, "symbols": args.symbols, "venues": args.venues,
                 "wall_seconds": args.wall_seconds, "warmup_seconds": args.warmup_seconds, "ours": ours}
    if ref is not None:
        theirs = run_paper(ref, args, speed)
        out["reference"] = theirs
        ratios = {}
        for key in ("strategy_passes_per_sim_hour", "reconciles_per_sim_hour"):
            if ours.get(key) is not None and theirs.get(key):
                ratios[key] = round(ours[key] / theirs[key], 2)
        out["ratio_ours_over_reference"] = ratios
    nominal = ours.get("nominal", {})
    if "strategy_passes_per_sim_hour" in ours:
        out["within_5pct_of_nominal"] = {
            "strategy": abs(ours["strategy_passes_per_sim_hour"] / nominal["strategy_passes_per_sim_hour"] - 1) <= 0.05,
            "reconcile": abs(ours["reconciles_per_sim_hour"] / nominal["reconciles_per_sim_hour"] - 1) <= 0.05,
        }
    return out


def decision_part(updates: int, seed: int = 7, compare_every: int = 10) -> dict:
    """Per-update decision cost at 500 x 8: incremental vs a full re-rank, on the same snapshots."""
    venues = sorted(VENUES)
    snapshot = build_universe(seed, 500, venues, 20)
    quotes = dict(snapshot.quotes)  # updated in place, as a live feed's quote map would be
    snapshot = replace(snapshot, quotes=quotes)
    settings = RankSettings(notional_usd=Decimal(1000), horizon_hours=Decimal(72), max_quote_age_ms=60_000)
    ranker = IncrementalRanker(settings, per_symbol=5)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    ranker.rebuild(snapshot)
    first = ranker.top(snapshot, 5)
    rebuild_ms = (time.perf_counter() - t0) * 1000
    out = _decision_loop(snapshot, quotes, ranker, settings, updates, seed, compare_every, first)
    out["start_up_rebuild_and_first_top_ms"] = round(rebuild_ms, 1)
    out["load_avg_at_start"] = [round(x, 2) for x in load_before]
    out["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def _held(snapshot: MarketSnapshot, ranked) -> list[HeldView]:
    views = []
    for n, opp in enumerate(ranked[:3]):
        views.append(HeldView(position_id=f"p{n}", symbol=opp.symbol, long_venue=opp.long_venue,
                              short_venue=opp.short_venue, size_base=opp.size_base or Decimal(1),
                              entry_spread_hourly=opp.spread_hourly, entry_ts_ms=NOW_TS_MS - 3_600_000,
                              notional_usd=opp.notional_usd, accrued_funding_usd=Decimal(0),
                              fees_paid_usd=Decimal(0)))
    return views


def _stats(samples: list[float], digits: int = 4) -> dict:
    if not samples:
        return {"count": 0}
    return {"count": len(samples), "p50": round(statistics.median(samples), digits),
            "p90": round(_pct(samples, 0.90), digits), "p99": round(_pct(samples, 0.99), digits),
            "p999": round(_pct(samples, 0.999), digits), "max": round(max(samples), digits),
            "over_0.2ms": sum(1 for x in samples if x >= 0.2)}


def _decision_loop(snapshot, quotes, ranker, settings, updates, seed, compare_every, first) -> dict:
    from bot.app import strategy_params
    from bot.settings import Settings

    params = strategy_params(Settings())
    rng = random.Random(seed + 1)
    keys = sorted(quotes)
    held = _held(snapshot, first)
    held_symbols = {view.symbol for view in held}
    watch = ExitWatch(params, held)
    watch.plan(snapshot, first[0] if first else None)
    repriced_before = watch.repriced
    wall_ms: list[float] = []
    cpu_ms: list[float] = []  # this thread's CPU time: excludes time the OS gave other processes
    hot_wall: list[float] = []  # updates of a symbol held or among the current top 5
    hot_cpu: list[float] = []
    full_wall: list[float] = []
    full_cpu: list[float] = []
    mismatches = compared = best_changes = exit_mismatches = 0
    looks_before, evaluated_before = ranker.reranked, ranker.evaluated
    top = first
    gc.collect()
    gc.disable()
    try:
        for n in range(updates):
            key = keys[rng.randrange(len(keys))]  # every key equally likely, as a live feed's updates
            hot = key[1] in held_symbols or any(o.symbol == key[1] for o in top)
            old = quotes[key]
            shift = Decimal(rng.randint(-300, 300)).scaleb(-7)
            quotes[key] = replace(old, rate_per_interval=old.rate_per_interval + shift)
            best_before = top[0] if top else None
            start, cpu_start = time.perf_counter_ns(), time.thread_time_ns()
            ranker.apply(snapshot, (key,))
            top = ranker.top(snapshot, 5)
            best = top[0] if top else None
            # The exit rules (ExitWatch): the positions holding the changed symbol are priced again;
            # every position is decided again only when the best alternative (rotate rule) changed.
            exits = watch.plan(snapshot, best, (key[1],))
            wall = (time.perf_counter_ns() - start) / 1e6
            cpu = (time.thread_time_ns() - cpu_start) / 1e6
            wall_ms.append(wall)
            cpu_ms.append(cpu)
            best_changes += best != best_before
            if hot:
                hot_wall.append(wall)
                hot_cpu.append(cpu)
            if n % compare_every == 0:  # the full re-rank is ~100x slower: timed on every 10th update
                start, cpu_start = time.perf_counter_ns(), time.thread_time_ns()
                full = full_rank(snapshot, settings, 5)
                full_wall.append((time.perf_counter_ns() - start) / 1e6)
                full_cpu.append((time.thread_time_ns() - cpu_start) / 1e6)
                compared += 1
                mismatches += full != top
                exit_mismatches += exits != plan_exits(snapshot, held, params, full[0] if full else None)
    finally:
        gc.enable()
    p99_wall, p99_cpu = _pct(wall_ms, 0.99), _pct(cpu_ms, 0.99)
    return {
        "universe": "500 symbols x 8 venues, 20 levels (bench/scan.py build_universe)",
        "updates": updates,
        "incremental_wall_ms": _stats(wall_ms),
        "incremental_cpu_ms": _stats(cpu_ms),
        "incremental_updates_of_held_or_top5_symbols": {"wall_ms": _stats(hot_wall), "cpu_ms": _stats(hot_cpu)},
        "full_rerank_wall_ms": _stats(full_wall, 3),
        "full_rerank_cpu_ms": _stats(full_cpu, 3),
        "speedup_p50_wall": round(statistics.median(full_wall) / statistics.median(wall_ms), 1),
        "speedup_p50_cpu": round(statistics.median(full_cpu) / statistics.median(cpu_ms), 1),
        "target_p99_ms": 0.2,
        "p99_meets_target": {"wall": p99_wall < 0.2, "cpu": p99_cpu < 0.2},
        "equal_to_full_rerank": {"compared": compared, "mismatches": mismatches,
                                 "exit_plan_mismatches_vs_plan_exits_of_all_held": exit_mismatches,
                                 "note": f"every {compare_every}th update, the whole top 5 (every field)"},
        "work": {"symbols_looked_at": ranker.reranked - looks_before,
                 "pairs_evaluated": ranker.evaluated - evaluated_before, "best_changes": best_changes,
                 "positions_repriced": watch.repriced - repriced_before},
        "includes": "apply(one key) + top(5) + ExitWatch.plan: the positions holding the symbol priced again, "
                    "all 3 held positions decided again when the best opportunity changed (rotate rule)",
        "gc": "disabled during the loop (both sides)",
    }


def startup_part(ref: Path | None, repeats: int = 5) -> dict:
    """``python -m bot scan`` start-up, ours vs the reference tree (runs alternated, best of
    ``repeats``): wall time and the child's CPU time (user + system: what start-up costs, less
    sensitive to a loaded machine than wall), the modules it imports; and the fit alone."""
    from paper.calibration import REAL_FUNDING_STATS, fit_funding_model

    def scan_once(tree: Path) -> tuple[float, float]:
        env = dict(os.environ, PYTHONPATH=str(tree))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bot", "scan", "--limit", "3"], cwd=str(tree), env=env,
                       check=True, capture_output=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    def modules(tree: Path) -> int:
        env = dict(os.environ, PYTHONPATH=str(tree))
        code = ("import io, contextlib, sys\nfrom bot.cli import main\n"
                "with contextlib.redirect_stdout(io.StringIO()):\n    main(['scan', '--limit', '3'])\n"
                "print(len(sys.modules))")
        done = subprocess.run([sys.executable, "-c", code], cwd=str(tree), env=env, check=True,
                              capture_output=True, text=True)
        return int(done.stdout.strip().splitlines()[-1])

    t0 = time.perf_counter()
    for stats in ("binance", "bybit", "hyperliquid"):
        fit_funding_model(REAL_FUNDING_STATS[stats])
    fit_s = time.perf_counter() - t0
    trees = {"ours": ROOT} if ref is None else {"ours": ROOT, "reference": ref}
    for tree in trees.values():
        scan_once(tree)  # compiles the tree's bytecode (the reference is a fresh archive)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    load_before = os.getloadavg()
    for _ in range(repeats):
        for name, tree in trees.items():  # alternated: a load spike hits both
            runs[name].append(scan_once(tree))
    out: dict = {"calibration_fit_s_three_models": round(fit_s, 3), "scan_best_of": repeats,
                 "load_avg_at_start": [round(x, 2) for x in load_before],
                 "load_avg_at_end": [round(x, 2) for x in os.getloadavg()]}
    for name, tree in trees.items():
        out[f"scan_wall_s_{name}"] = round(min(wall for wall, _ in runs[name]), 3)
        out[f"scan_cpu_s_{name}"] = round(min(cpu for _, cpu in runs[name]), 3)
        out[f"scan_modules_imported_{name}"] = modules(tree)
    if ref is not None:
        out["saved_s"] = round(out["scan_wall_s_reference"] - out["scan_wall_s_ours"], 3)
        out["saved_cpu_s"] = round(out["scan_cpu_s_reference"] - out["scan_cpu_s_ours"], 3)
        out["note"] = ("the reference re-fits the calibration at every start (the fit above) but its "
                       "simulated market is pure Python: ours imports numpy (the vectorised market)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wall-seconds", type=float, default=20.0)
    parser.add_argument("--speed", type=float, default=3600.0)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--venues", type=int, default=10)
    parser.add_argument("--warmup-seconds", type=float, default=5.0)
    parser.add_argument("--paper-speeds", type=float, nargs="*", default=None,
                        help="run the paper part at each of these speeds (default: --speed only)")
    parser.add_argument("--updates", type=int, default=20000, help="decision part: market updates timed")
    parser.add_argument("--compare-every", type=int, default=10,
                        help="decision part: time a full re-rank and compare it with the incremental top every N updates")
    parser.add_argument("--year-days", type=int, default=365)
    parser.add_argument("--reference-commit", default=DEFAULT_REFERENCE_COMMIT)
    parser.add_argument("--skip", action="append", default=[], choices=PARTS)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=None, help="run only these parts")
    parser.add_argument("--merge-into", type=Path, default=None,
                        help="also write the result into this JSON file, replacing only the parts run "
                             "(e.g. bench/results/scale.json)")
    args = parser.parse_args(argv)
    if args.parts is not None:
        args.skip = [part for part in PARTS if part not in args.parts]
    result: dict = {"reference_commit": args.reference_commit, "cpu_count": os.cpu_count(),
                    "load_avg_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        ref: Path | None = None
        if "paper" not in args.skip or "startup" not in args.skip:  # the parts with a reference tree
            try:
                ref = reference_tree(args.reference_commit, Path(tmp))
            except (subprocess.CalledProcessError, OSError) as exc:
                result["reference_error"] = str(exc)
        if "decision" not in args.skip:
            result["decision"] = decision_part(args.updates, compare_every=args.compare_every)
        if "startup" not in args.skip:
            result["startup"] = startup_part(ref)
        if "paper" not in args.skip:
            result["paper"] = [paper_part(args, ref, speed) for speed in args.paper_speeds or [args.speed]]
    if "year" not in args.skip and args.year_days > 0:
        from bench.scale_year import run_year

        result["year"] = asyncio.run(run_year(args.year_days, 30, 60))
    result["load_avg_at_end"] = os.getloadavg()
    result["parts_run"] = [part for part in PARTS if part in result]
    if args.merge_into is not None:
        merged = json.loads(args.merge_into.read_text()) if args.merge_into.exists() else {}
        runs = merged.get("runs_by_part", {})
        for part in result["parts_run"]:
            merged[part] = result[part]
            runs[part] = {"utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                          "load_avg_at_start": result["load_avg_at_start"], "cpu_count": result["cpu_count"]}
        merged["runs_by_part"] = runs
        args.merge_into.write_text(json.dumps(merged, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
