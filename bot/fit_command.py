"""``python -m bot fit --data DIR [--from ISO] [--to ISO] [--out PATH] [--json]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bot.core.clock import iso_utc, parse_iso_utc
from bot.errors import UserInputError
from bot.settings import Settings


def run_fit(args: argparse.Namespace, settings: Settings) -> int:
    """Fit the spread forecast on history; print it and (``--out``) write it into a settings file."""
    from bot.backtest.command import load_history_or_exit
    from bot.forecast_fit import fit_forecast, forecast_toml, update_settings_text

    history, _prices = load_history_or_exit(args.data, "--data")
    start = _time(args.from_time, "--from") if args.from_time else history.start_ts_ms
    end = _time(args.to_time, "--to") if args.to_time else history.end_ts_ms
    horizon = settings.strategy.horizon_hours
    if horizon != horizon.to_integral_value():
        raise UserInputError("strategy.horizon_hours must be a whole number of hours to fit the forecast")
    try:
        result = fit_forecast(history, from_ts_ms=start, to_ts_ms=end, horizon_hours=int(horizon),
                              interchangeable_quotes=tuple(settings.backtest.interchangeable_quotes),
                              max_quote_age_ms=int(settings.market.max_quote_age_seconds * 1000))
    except ValueError as exc:
        raise UserInputError(f"fit: {exc} (choose a longer --from/--to window)") from None
    if args.out is not None:
        out = Path(args.out).expanduser()
        try:
            text = out.read_text(encoding="utf-8") if out.exists() else ""
            out.write_text(update_settings_text(text, result) if text else forecast_toml(result), encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserInputError(f"cannot write --out {out}: {exc} (pass a writable settings file path)") from None
    summary = {
        "window": {"from": iso_utc(start), "to": iso_utc(end)},
        "horizon_hours": str(horizon),
        "level_half_life_hours": result.level_half_life_hours,
        "level_weight": str(result.level_weight),
        "deviation_weight": str(result.deviation_weight),
        "samples": result.samples,
        "r2": round(result.r2, 4),
        "r2_if_current_spread_persisted": round(result.r2_current_spread, 4),
        "by_half_life": {str(k): {n: float(f"{v:.4g}") for n, v in row.items()} for k, row in result.by_half_life.items()},
        "written_to": None if args.out is None else str(args.out),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"fitted on {summary['window']['from']} .. {summary['window']['to']}, horizon {horizon} h, "
              f"{result.samples} pair-hours: R2 {result.r2:.3f} (the current spread persisting: "
              f"{result.r2_current_spread:.3f})")
        print(forecast_toml(result), end="")
        if args.out is not None:
            print(f"written to {args.out} (use it with --settings, or keep it in your settings.toml)")
    return 0


def _time(text: str, flag: str) -> int:
    try:
        return parse_iso_utc(text)
    except ValueError:
        raise UserInputError(f"{flag}: not an ISO-8601 time: {text!r} (e.g. 2026-01-01T00:00:00Z)") from None
