"""Notification benchmark: does a hung notification service slow the strategy loop?

Runs the real paper application on a manual clock (sim minutes stepped as fast as the machine
allows) three times in the same process: without notifications (the reference), with a webhook
that answers at once, and with a webhook that accepts connections and never answers (a dead
service; every send is abandoned after ``--timeout`` seconds). In every run the operator
surface (journal tail, notifier) runs beside the loop, and each step also offers one extra
notice so the notifier always has work queued. Prints JSON: strategy step wall time p50/p99/max
per run, ratios against the reference, the cost of ``Notifier.offer`` and the notifier's outcomes.

    python bench/notify_hang.py [--minutes 600] [--timeout 2] [--rounds 3] > bench/notify_hang.json
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.app import Application  # noqa: E402
from bot.core.clock import ManualClock, parse_iso_utc  # noqa: E402
from bot.logging_setup import configure_logging  # noqa: E402
from bot.ops.notify import Notice  # noqa: E402
from bot.ops.surface import OperatorSurface  # noqa: E402
from bot.wiring import PaperOptions, paper_wiring  # noqa: E402
from tests.test_app_integration import easy_settings  # noqa: E402
from tests.webhook_receiver import WebhookReceiver  # noqa: E402

START_MS = parse_iso_utc("2026-03-01T00:00:00Z")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99), "max": max(values)}


async def one_run(url: str | None, minutes: int, timeout_s: float, workdir: Path) -> dict[str, Any]:
    base = easy_settings()
    settings = base.model_copy(update={
        "notify": base.notify.model_copy(update={"urls": [url] if url else [], "timeout_seconds": timeout_s,
                                                 "max_per_minute": 10_000, "dedupe_seconds": 0}),
        # exits and re-entries keep the journal busy (notices for every entry and exit)
        "exit": base.exit.model_copy(update={"min_hold_hours": 0, "max_hold_hours": 2}),
    })
    clock = ManualClock(START_MS)
    surface = OperatorSurface(settings, env={}, announce_out=io.StringIO())
    app = Application(settings, surface.wrap(paper_wiring(
        settings, PaperOptions(seed=3, speed=1.0, db_path=workdir / "paper.sqlite", start_ts_ms=START_MS),
        clock=clock)))
    surface.attach(app)
    await app.start()
    step_ms: list[float] = []
    offer_us: list[float] = []
    try:
        async with anyio.create_task_group() as tg:
            for name, loop in surface.tasks():
                tg.start_soon(loop, name=name)
            for minute in range(minutes):
                clock.advance(60)
                await app.feed_step()
                start = time.perf_counter()
                await app.strategy_step()
                step_ms.append((time.perf_counter() - start) * 1000)
                if surface.notifier is not None:
                    start = time.perf_counter()
                    surface.notifier.offer(Notice("bench", "bench", f"minute {minute}", f"bench:{minute}"))
                    offer_us.append((time.perf_counter() - start) * 1e6)
                await anyio.sleep(0)  # let the surface tasks run, as the real loops' sleeps do
            tg.cancel_scope.cancel()
        positions = len(app.engine.positions) if app.engine else 0
        await app.flatten("shutdown")
    finally:
        await surface.drain()
        await app.close()
    return {"step_ms": step_ms, "offer_list_us": offer_us, "positions_opened": positions,
            "notifier_outcomes": dict(surface.notifier.outcomes) if surface.notifier else None}


async def main(minutes: int, timeout_s: float, rounds: int) -> dict[str, Any]:
    """The three configurations interleaved in ``rounds`` rounds (machine noise hits all alike)."""
    names = ("reference_no_notifier", "webhook_answering", "webhook_hanging")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    steps: dict[str, list[float]] = {name: [] for name in names}
    offers: dict[str, list[float]] = {name: [] for name in names}
    per_round = max(1, minutes // rounds)
    with tempfile.TemporaryDirectory() as tmp, WebhookReceiver() as ok, WebhookReceiver(hang=True) as dead:
        configure_logging(Path(tmp) / "bot.log.jsonl")  # logs go to a file, as in a real run
        urls = {"reference_no_notifier": None, "webhook_answering": ok.url,
                "webhook_hanging": dead.url + "?rto=60&cto=60"}
        for index in range(rounds):
            for name in names:
                workdir = Path(tmp) / f"{name}-{index}"
                workdir.mkdir()
                result = await one_run(urls[name], per_round, timeout_s, workdir)
                steps[name].extend(result.pop("step_ms"))
                offers[name].extend(result.pop("offer_list_us"))
                runs[name].append(result)
        received = len(ok.messages())
    results: dict[str, Any] = {}
    for name in names:
        results[name] = {
            "strategy_step_ms": summary(steps[name]),
            "offer_us": summary(offers[name]) if offers[name] else None,
            "positions_opened": sum(r["positions_opened"] for r in runs[name]),
            "notifier_outcomes": _merge([r["notifier_outcomes"] for r in runs[name] if r["notifier_outcomes"]]),
        }
    results["webhook_answering"]["received_by_webhook"] = received
    ref = results["reference_no_notifier"]["strategy_step_ms"]
    for name in names[1:]:
        run = results[name]["strategy_step_ms"]
        results[name]["ratio_vs_reference"] = {k: run[k] / ref[k] for k in ("p50", "p99")}
    results["settings"] = {"sim_minutes_per_configuration": per_round * rounds, "rounds": rounds,
                           "send_timeout_s": timeout_s}
    return results


def _merge(items: list[dict[str, int]]) -> dict[str, int] | None:
    if not items:
        return None
    total: dict[str, int] = {}
    for item in items:
        for key, value in item.items():
            total[key] = total.get(key, 0) + value
    return total


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=600)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(anyio.run(main, args.minutes, args.timeout, args.rounds), indent=2))
