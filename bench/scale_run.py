"""One paper run of the application's loops for ``bench/scale.py`` (JSON on stdout).

Imports the application from ``PYTHONPATH`` (this tree, or the reference tree ``bench/scale.py``
extracted), so it only uses what both have: ``Application``, ``paper_wiring``, ``ScaledClock`` and
the loop methods. Counts strategy passes and reconciliations (per simulated hour, after start-up)
and stale-data breaker openings; reports the loops' lag when the tree measures it.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import tempfile
import time
from pathlib import Path

import anyio

LOOPS = {"feed_loop": "feed", "strategy_loop": "strategy", "reconcile_loop": "reconcile", "read_venues": "reconcile"}


class LoopCpu:
    """This thread's CPU time per event-loop callback, charged to the application loop whose task
    ran it (its coroutine chain names ``Application.feed_loop`` etc.; reconciliation's per-venue
    reads too); the rest is ``other``. Counting starts at ``start()``."""

    def __init__(self) -> None:
        self.ms = {"feed": 0.0, "strategy": 0.0, "reconcile": 0.0, "other": 0.0}
        self.counting = False
        self.max_chunk_ms = {name: 0.0 for name in self.ms}  # the longest callback: how long others wait
        self.callbacks = {name: 0 for name in self.ms}  # turns on the event loop
        self._run = asyncio.events.Handle._run
        counter = self

        def _run(handle) -> None:
            start = time.thread_time()
            counter._run(handle)
            if counter.counting:
                ms = (time.thread_time() - start) * 1000
                name = counter.loop_of(handle)
                counter.ms[name] += ms
                counter.callbacks[name] += 1
                counter.max_chunk_ms[name] = max(counter.max_chunk_ms[name], ms)

        asyncio.events.Handle._run = _run  # type: ignore[method-assign]

    @staticmethod
    def loop_of(handle) -> str:
        task = getattr(getattr(handle, "_callback", None), "__self__", None)
        coro = task.get_coro() if isinstance(task, asyncio.Task) else None
        while coro is not None:
            name = getattr(coro, "__qualname__", "").rsplit(".", 1)[-1]
            for part in (name, getattr(coro, "__qualname__", "")):
                for key, loop in LOOPS.items():
                    if key in part:
                        return loop
            coro = getattr(coro, "cr_await", None)
        return "other"


async def run(symbols: int, venues: int, speed: float, wall_seconds: float, warmup_seconds: float) -> dict:
    from loguru import logger

    logger.remove()
    loop_cpu = LoopCpu()
    from bot.app import Application
    from bot.core.clock import ScaledClock, parse_iso_utc
    from bot.settings import Settings
    from bot.wiring import PaperOptions, paper_wiring
    from paper.sim_venues import VENUE_PROFILES

    base = Settings()
    settings = base.model_copy(update={"sim": base.sim.model_copy(update={
        "symbols": symbols, "venues": list(VENUE_PROFILES)[:venues]})})
    start_ms = parse_iso_utc("2026-03-01T00:00:00Z")
    with tempfile.TemporaryDirectory() as tmp:
        construct = time.perf_counter()
        clock = ScaledClock(start_ms, speed)
        app = Application(settings, paper_wiring(settings, PaperOptions(
            seed=7, speed=speed, db_path=Path(tmp) / "paper.sqlite", start_ts_ms=start_ms), clock=clock),
            status_out=io.StringIO())
        await app.start()
        heap = getattr(app, "heap", None)  # what the supervisor does after start-up (bot.heap); the
        if heap is not None and not heap.frozen:  # reference tree has no such step
            heap.freeze(raise_gen0=True)
        started = time.perf_counter()
        counts = {"strategy": 0, "reconcile": 0, "feed": 0, "stale_opened": 0, "stale_closed": 0}
        strategy_step, reconcile_step, feed_step, apply_board = (
            app.strategy_step, app.reconcile_step, app.feed_step, app._apply_board)

        async def counted_strategy() -> None:
            await strategy_step()
            counts["strategy"] += 1

        async def counted_reconcile() -> None:
            await reconcile_step()
            counts["reconcile"] += 1

        async def counted_feed() -> None:
            await feed_step()
            counts["feed"] += 1

        def counted_board(update) -> None:
            for ev in update.events:
                if ev.breaker.startswith("stale_data"):
                    counts["stale_opened" if str(ev.to_state) == "open" else "stale_closed"] += 1
            apply_board(update)

        app.strategy_step, app.reconcile_step, app.feed_step = counted_strategy, counted_reconcile, counted_feed
        app._apply_board = counted_board
        async with anyio.create_task_group() as tg:
            tg.start_soon(app.feed_loop)
            tg.start_soon(app.strategy_loop)
            tg.start_soon(app.reconcile_loop)
            await anyio.sleep(warmup_seconds)  # the first passes (entries, first books) are not steady state
            warm = dict(counts)
            sim_start = clock.now_ms()
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            loop_cpu.counting = True
            await anyio.sleep(wall_seconds)
            loop_cpu.counting = False
            process_cpu_s = time.process_time() - cpu_start
            cpu_share = process_cpu_s / (time.perf_counter() - wall_start)
            sim_end = clock.now_ms()
            tg.cancel_scope.cancel()
        counts = {k: v - warm[k] for k, v in counts.items()}
        sim_hours = (sim_end - sim_start) / 3_600_000
        lag = app.lag_report() if hasattr(app, "lag_report") else None
        if hasattr(app, "status_line"):  # the reference tree
            status = await app.status_line()
        else:
            from bot.ops.terminal import status_line

            status = status_line(app)
        events = await app.store.list_events(kind="loop_behind") if hasattr(app, "lag_report") else []
        await app.close()
    out = {
        "start_up_wall_s": round(started - construct, 3),
        "warmup_wall_s": warmup_seconds,
        "sim_hours": round(sim_hours, 3),
        "strategy_passes": counts["strategy"],
        "reconciles": counts["reconcile"],
        "feed_steps": counts["feed"],
        "strategy_passes_per_sim_hour": round(counts["strategy"] / sim_hours, 2),
        "reconciles_per_sim_hour": round(counts["reconcile"] / sim_hours, 2),
        "feed_steps_per_sim_hour": round(counts["feed"] / sim_hours, 2),
        "nominal": {"strategy_passes_per_sim_hour": 3600 / settings.strategy.loop_interval_seconds,
                    "reconciles_per_sim_hour": 3600 / settings.reconcile.interval_seconds,
                    "feed_steps_per_sim_hour": 3600 / settings.sim.step_seconds},
        "stale_breaker_openings": counts["stale_opened"],
        "stale_breaker_closings": counts["stale_closed"],
        "status_line": status,
        # this process's CPU time over the measured wall time: near 1.0 the loops are CPU-bound
        "process_cpu_share": round(cpu_share, 3),
        # CPU per simulated hour (process CPU time, not wall: comparable on a loaded machine), and
        # this thread's CPU per loop (what each loop's work costs; the longest single callback is
        # how long the other loops had to wait for it)
        "process_cpu_ms_per_sim_hour": round(process_cpu_s * 1000 / sim_hours, 1),
        "loop_cpu_ms_per_sim_hour": {name: round(ms / sim_hours, 1) for name, ms in loop_cpu.ms.items()},
        "loop_cpu_ms_per_run": {
            "strategy_pass": round(loop_cpu.ms["strategy"] / max(1, counts["strategy"]), 2),
            "reconcile": round(loop_cpu.ms["reconcile"] / max(1, counts["reconcile"]), 2),
            "feed_step": round(loop_cpu.ms["feed"] / max(1, counts["feed"]), 2)},
        "loop_max_callback_cpu_ms": {name: round(ms, 1) for name, ms in loop_cpu.max_chunk_ms.items()},
        "loop_callbacks_per_run": {
            "strategy_pass": round(loop_cpu.callbacks["strategy"] / max(1, counts["strategy"]), 1),
            "reconcile": round(loop_cpu.callbacks["reconcile"] / max(1, counts["reconcile"]), 1),
            "feed_step": round(loop_cpu.callbacks["feed"] / max(1, counts["feed"]), 1)},
    }
    if lag is not None:
        out["lag"] = lag
        out["loop_behind_events"] = [e.message for e in events]
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--venues", type=int, default=10)
    parser.add_argument("--speed", type=float, default=3600)
    parser.add_argument("--wall-seconds", type=float, default=20)
    parser.add_argument("--warmup-seconds", type=float, default=5)
    a = parser.parse_args()
    print(json.dumps(anyio.run(run, a.symbols, a.venues, a.speed, a.wall_seconds, a.warmup_seconds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
