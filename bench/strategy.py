"""Strategy benchmark: the walk-forward protocol of the README, with the shipped defaults.

Parameters and defaults were chosen on the TRAINING window only (the first eight months of the
shared data, 2025-08-21 .. 2026-04-20); the TEST window (2026-04-20 .. end) is reported as it comes
out and is never tuned on. Both windows are run through ``python -m bot backtest`` (the real
application) with the shipped settings; a backtest starting at the window's start loads the
``forecast.warmup_hours`` before it as history, exactly as a bot started then would.

    python bench/strategy.py [--data ../shared/data/funding] > strategy.json

Prints, per window, for ours and both references (hold_best_pair, naive): net USD, APR on capital,
fees, funding, positions, average hold, hit rate, max drawdown; and for ours the calibration of
forecast net against realised net per position (slope and correlation), raw and hold-adjusted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "funding"
WINDOWS = {
    # The training window starts after the first forecast.warmup_hours (672 h) of data.
    "train": ("2025-09-18T05:00:00Z", "2026-04-20T00:00:00Z"),
    "test": ("2026-04-20T00:00:00Z", None),
}
FIELDS = ("net_usd", "apr_on_capital_pct", "fees_usd", "funding_usd", "positions", "average_hold_hours",
          "hit_rate_pct", "max_drawdown_usd", "capital_used_usd")


def _run_window(data: Path, start: str, end: str | None, work: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    args = [sys.executable, "-m", "bot", "backtest", "--data", str(data), "--from", start, "--json",
            "--db", str(work / f"{start[:10]}.sqlite")]
    if end:
        args += ["--to", end]
    started = time.perf_counter()
    proc = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(json.dumps({"error": proc.stderr.strip()[-2000:]}))
    summary = json.loads(proc.stdout)
    summary["_wall_s"] = round(time.perf_counter() - started, 1)
    return summary


def scan_calibration(data: Path, start_iso: str, end_iso: str | None, every_hours: int = 24) -> dict:
    """The numbers a user sees in ``scan``: every ``every_hours`` in the window, for every pair of
    venues on an asset, the forecast spread (the bot's own forecaster, warmed up as the bot is)
    against the spread the pair really paid over the next ``strategy.horizon_hours``."""
    sys.path.insert(0, str(REPO))
    import bisect
    from decimal import Decimal

    from bot.backtest.command import replay_market
    from bot.core.clock import parse_iso_utc
    from bot.core.history import load_market_history
    from bot.forecast import SpreadForecaster
    from bot.params import forecast_params
    from bot.settings import Settings

    settings = Settings()
    horizon_h = int(settings.strategy.horizon_hours)
    hour_ms = 3_600_000
    history, prices = load_market_history(data)
    market = replay_market(history, prices, settings)
    start = parse_iso_utc(start_iso)
    end = parse_iso_utc(end_iso) if end_iso else market.end_ts_ms
    events = market.event_times(start - settings.forecast.warmup_hours * hour_ms, end)
    forecaster = SpreadForecaster(forecast_params(settings))
    market.advance_to(events[0])

    def paid(venue: str, symbol: str, lo: int, hi: int) -> Decimal | None:
        series = market.series_for(venue, symbol)
        if series is None or series.ts_ms[-1] < hi:
            return None
        i, j = bisect.bisect_right(series.ts_ms, lo), bisect.bisect_right(series.ts_ms, hi)
        return sum(series.rates[i:j], Decimal(0))

    points: list[tuple[float, float]] = []
    persistent: list[tuple[float, float]] = []
    usd_per_1000 = 1000 * horizon_h  # a per-hour spread as USD earned per 1,000 USD over the horizon
    for ts in events:
        market.advance_to(ts)
        quotes = market.quotes()
        forecaster.observe_quotes(quotes, ts)
        if ts < start or ts % (every_hours * hour_ms) or ts + horizon_h * hour_ms > end:
            continue
        by_symbol: dict[str, list] = {}
        for q in quotes:
            by_symbol.setdefault(q.symbol, []).append(q)
        for symbol, qs in by_symbol.items():
            for a in qs:
                for b in qs:
                    if a.venue >= b.venue:
                        continue
                    f = forecaster.spread_forecast(symbol, a.venue, b.venue, a.hourly_rate, b.hourly_rate)
                    pa = paid(a.venue, symbol, ts, ts + horizon_h * hour_ms)
                    pb = paid(b.venue, symbol, ts, ts + horizon_h * hour_ms)
                    if pa is None or pb is None:
                        continue
                    y = (pb - pa) / horizon_h
                    sign = 1 if f >= 0 else -1  # the scanner goes long the leg with the lower forecast
                    points.append((float(f * sign) * usd_per_1000, float(y * sign) * usd_per_1000))
                    now = b.hourly_rate - a.hourly_rate
                    now_sign = 1 if now >= 0 else -1
                    persistent.append((float(now * now_sign) * usd_per_1000, float(y * now_sign) * usd_per_1000))
    from bot.backtest.summary import _fit_line

    top = sorted(points)[int(len(points) * 0.9):]
    return {"samples": len(points), "every_hours": every_hours, "horizon_hours": horizon_h,
            "all_pairs": _fit_line(points), "top_decile_by_forecast": _fit_line(top),
            "if_current_spread_persisted": _fit_line(persistent),
            "note": "funding in USD per 1,000 USD of notional over the horizon, forecast vs realised "
                    "(net = this - costs, so the slope of net is the same)"}


def _pick(row: dict) -> dict:
    return {k: row.get(k) for k in FIELDS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    if not args.data.is_dir():
        print(json.dumps({"error": f"no data directory {args.data}"}))
        return 2
    out: dict = {"benchmark": "strategy", "protocol": "defaults chosen on train only; test reported as it came out",
                 "windows": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (start, end) in WINDOWS.items():
            s = _run_window(args.data, start, end, Path(tmp))
            refs = s["references"]
            ours = _pick(s)
            window = {
                "period": s["period"],
                "ours": ours,
                "hold_best_pair": {**_pick(refs["hold_best_pair"]), "pair": (refs["hold_best_pair"]["pairs"] or [None])[0]},
                "naive": _pick(refs["naive"]),
                "calibration": s["calibration"],
                "scan_calibration": scan_calibration(args.data, start, end),
                "gap_to_hold_best_pair_usd": str(float(s["net_usd"]) - float(refs["hold_best_pair"]["net_usd"])),
                "ours_minus_naive_usd": str(float(s["net_usd"]) - float(refs["naive"]["net_usd"])),
                "wall_s": s["_wall_s"],
            }
            out["windows"][name] = window
    test = out["windows"]["test"]
    cal = test["calibration"]["hold_adjusted"]
    scan_cal = test["scan_calibration"]["all_pairs"]
    out["must_show"] = {
        "test_scan_calibration_slope": scan_cal["slope"],
        "test_scan_calibration_correlation": scan_cal["correlation"],
        "test_net_positive": float(test["ours"]["net_usd"]) > 0,
        "test_above_naive": float(test["ours"]["net_usd"]) > float(test["naive"]["net_usd"]),
        "test_calibration_slope_hold_adjusted": cal["slope"],
        "test_calibration_correlation_hold_adjusted": cal["correlation"],
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
