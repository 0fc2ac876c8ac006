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
                "gap_to_hold_best_pair_usd": str(float(s["net_usd"]) - float(refs["hold_best_pair"]["net_usd"])),
                "ours_minus_naive_usd": str(float(s["net_usd"]) - float(refs["naive"]["net_usd"])),
                "wall_s": s["_wall_s"],
            }
            out["windows"][name] = window
    test = out["windows"]["test"]
    cal = test["calibration"]["hold_adjusted"]
    out["must_show"] = {
        "test_net_positive": float(test["ours"]["net_usd"]) > 0,
        "test_above_naive": float(test["ours"]["net_usd"]) > float(test["naive"]["net_usd"]),
        "test_calibration_slope_hold_adjusted": cal["slope"],
        "test_calibration_correlation_hold_adjusted": cal["correlation"],
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
