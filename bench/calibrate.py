"""Recompute the funding calibration from the shared real data and print it.

Usage: python bench/calibrate.py [--python] [FUNDING_DIR]   (default: ../shared/data/funding)

Prints JSON (the statistics and the fitted simulation parameters); with ``--python`` prints
the constants block of paper/calibration.py instead, to paste there when the data changes.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.core.history import load_funding_history  # noqa: E402
from paper.calibration import CrossVenueStats, FundingStats, fit_funding_model, stats_from_history  # noqa: E402

DEFAULT_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "funding"


def main(argv: list[str]) -> int:
    args = [a for a in argv[1:] if a != "--python"]
    source = Path(args[0]) if args else DEFAULT_DIR
    started = time.perf_counter()
    history = load_funding_history(source)
    loaded = time.perf_counter()
    stats, cross = stats_from_history(history)
    if "--python" in argv:
        print(python_constants(stats, cross))
        return 0
    report = {
        "source": str(source),
        "first_settlement_ts_ms": history.start_ts_ms,
        "last_settlement_ts_ms": history.end_ts_ms,
        "load_seconds": round(loaded - started, 3),
        "stats_seconds": round(time.perf_counter() - loaded, 3),
        "cross_venue": cross.to_json_dict(),
        "venues": {
            venue: {"stats": s.to_json_dict(), "model": _model_dict(s)} for venue, s in stats.items()
        },
    }
    print(json.dumps(report, indent=2))
    return 0


def python_constants(stats: dict[str, FundingStats], cross: CrossVenueStats) -> str:
    """The REAL_FUNDING_STATS / REAL_CROSS_VENUE source block."""
    lines = ["REAL_FUNDING_STATS: dict[str, FundingStats] = {"]
    for venue, s in stats.items():
        lines.append(f'    "{venue}": FundingStats(')
        for f in fields(s):
            value = getattr(s, f.name)
            lines.append(f"        {f.name}={value}," if isinstance(value, int) else f'        {f.name}=Decimal("{value}"),')
        lines.append("    ),")
    lines.append("}")
    lines.append("REAL_CROSS_VENUE = CrossVenueStats(")
    for f in fields(cross):
        lines.append(f'    {f.name}=Decimal("{getattr(cross, f.name)}"),')
    lines.append(")")
    return "\n".join(lines)


def _model_dict(stats: FundingStats) -> dict[str, float]:
    model = fit_funding_model(stats)
    return {f.name: getattr(model, f.name) for f in fields(model)}


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
