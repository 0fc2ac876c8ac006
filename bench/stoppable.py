"""How fast does a paper bot stop, at extreme speeds, compared with a normal one? (JSON to stdout)

Runs ``python -m bot --paper`` as a subprocess at a reference speed (3600), at 1,000,000 and at
0.001, sends SIGTERM after ``--settle`` wall seconds and measures the wall time from the signal to
the process exit; also the simulated market's cost per step and the highest speed this machine can
follow. Ratios are against the reference run of the same invocation.

Usage: python bench/stoppable.py [--deadline 10] [--settle 3] > stoppable.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.settings import Settings  # noqa: E402
from bot.wiring import sim_market_config  # noqa: E402
from paper.sim_market import SimulatedMarket  # noqa: E402
from tests.helpers_cli import bot_command, bot_env, write_settings  # noqa: E402


def stop_time(speed: str, deadline_s: int, settle_s: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        settings = write_settings(work, {"shutdown": {"deadline_seconds": str(deadline_s)}})
        err_path = work / "stderr"
        with err_path.open("w") as err:
            proc = subprocess.Popen(bot_command("--paper", "--speed", speed, "--db", work / "p.sqlite",
                                                "--settings", settings),
                                    cwd=work, env=bot_env(), stdout=subprocess.DEVNULL, stderr=err)
        started = time.monotonic()
        while "paper trading on" not in err_path.read_text() and time.monotonic() - started < 60:
            time.sleep(0.05)
        time.sleep(settle_s)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        try:
            code = proc.wait(timeout=deadline_s + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "killed"
        elapsed = time.monotonic() - sent
        last = [line for line in err_path.read_text().splitlines() if line.startswith("stopped")]
    return {"speed": speed, "exit_code": code, "sigterm_to_exit_s": round(elapsed, 3),
            "within_deadline": elapsed <= deadline_s, "final_line": last[-1] if last else None}


def step_cost_us() -> float:
    start = 1_767_225_600_000
    market = SimulatedMarket(sim_market_config(Settings()), 7, start)
    steps = 2000
    began = time.perf_counter()
    market.advance_to(start + steps * 60_000)
    return (time.perf_counter() - began) / steps * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadline", type=int, default=10)
    parser.add_argument("--settle", type=float, default=3.0)
    args = parser.parse_args()
    reference = stop_time("3600", args.deadline, args.settle)
    fast = stop_time("1000000", args.deadline, args.settle)
    slow = stop_time("0.001", args.deadline, args.settle)
    cost = step_cost_us()
    step_s = Settings().sim.step_seconds
    result = {
        "deadline_seconds": args.deadline,
        "reference_speed_3600": reference,
        "speed_1e6": fast,
        "speed_0_001_during_start_up": slow,
        "ratio_stop_time_1e6_vs_reference": round(fast["sigterm_to_exit_s"] / reference["sigterm_to_exit_s"], 3),
        "ratio_stop_time_0_001_vs_reference": round(slow["sigterm_to_exit_s"] / reference["sigterm_to_exit_s"], 3),
        "sim_market_step_cost_us": round(cost, 1),
        "max_followable_speed_market_only": round(step_s / (cost / 1e6)),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
