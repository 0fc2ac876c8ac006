"""Always stoppable: at any --speed, during start-up, and within shutdown.deadline_seconds.

The subprocess runs use a 10 s deadline; "within the deadline" allows 3 s more for the interpreter
to start its teardown (the deadline bounds the bot's own shutdown steps).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import anyio
import pytest

from bot.core.clock import ManualClock
from bot.market_catch_up import MarketCatchUp
from bot.settings import Settings
from bot.supervisor import shutdown_budget
from bot.wiring import sim_market_config
from paper.sim_market import SimulatedMarket
from tests.helpers_cli import assert_usage_error, run_bot, start_bot, stop_if_running, wait_for, write_settings

DEADLINE_S = 10
MARGIN_S = 3
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class CountingExecutor:
    def __init__(self) -> None:
        self.calls = 0

    async def advance(self, settlements):
        self.calls += 1
        return []


def test_catch_up_moves_in_bounded_slices_and_yields_between_them() -> None:
    market = SimulatedMarket(sim_market_config(Settings()), 7, T0)
    catch_up = MarketCatchUp(60, steps_per_slice=20)
    executor = CountingExecutor()
    target = T0 + 60_000 * 200  # 200 steps = 10 slices

    async def run() -> int:
        ticks = 0

        async def count_ticks() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            tg.start_soon(count_ticks)
            await catch_up.advance(market, executor, target)
            tg.cancel_scope.cancel()
        return ticks

    ticks = anyio.run(run)
    assert market.now_ts_ms == target
    assert executor.calls == 10
    assert ticks >= 9  # another task ran between the slices: the loop was never blocked for all 200 steps


def test_catch_up_is_cancellable_between_slices() -> None:
    market = SimulatedMarket(sim_market_config(Settings()), 7, T0)
    catch_up = MarketCatchUp(60, steps_per_slice=5)

    async def run() -> None:
        with anyio.move_on_after(0.05):
            await catch_up.advance(market, CountingExecutor(), T0 + 60_000 * 10_000_000)

    started = time.monotonic()
    anyio.run(run)
    assert time.monotonic() - started < 2.0
    assert T0 < market.now_ts_ms < T0 + 60_000 * 10_000_000


def test_lag_is_reported_once_when_it_starts_and_once_when_it_ends() -> None:
    market = SimulatedMarket(sim_market_config(Settings()), 7, T0)
    catch_up = MarketCatchUp(60, warn_lag_steps=10)
    clock = ManualClock(T0)
    assert catch_up.observe(clock.now_ms(), market) is None and catch_up.status() == ""
    clock.advance(60 * 11)
    change = catch_up.observe(clock.now_ms(), market)
    assert change is not None and change.kind == "market_lag" and "660s" in change.message
    assert catch_up.observe(clock.now_ms(), market) is None  # once per episode
    assert catch_up.status() == " lag=660s"
    market.advance_to(clock.now_ms())
    back = catch_up.observe(clock.now_ms(), market)
    assert back is not None and back.kind == "market_caught_up" and catch_up.status() == ""


def test_the_shutdown_budget_fits_in_the_deadline() -> None:
    for deadline in (0.5, 5, 10, 30, 600):
        flatten_s, verify_s, close_s = shutdown_budget(deadline)
        assert flatten_s > 0 and verify_s > 0 and close_s > 0
        assert abs(flatten_s + verify_s + close_s - deadline) < 1e-9
    assert shutdown_budget(30) == (24.0, pytest.approx(3.6), pytest.approx(2.4))


@pytest.mark.parametrize("speed", ["0", "0.0001", "1000001", "1e9"])
def test_speeds_out_of_bounds_are_refused(tmp_path: Path, speed: str) -> None:
    settings = write_settings(tmp_path)
    proc = run_bot("--paper", "--speed", speed, "--duration", "1", "--db", tmp_path / "p.sqlite",
                   "--settings", settings, cwd=tmp_path)
    assert_usage_error(proc, "--speed")


def _start(tmp_path: Path, *args: str):
    settings = write_settings(tmp_path, {"shutdown": {"deadline_seconds": str(DEADLINE_S)}})
    db = tmp_path / "p.sqlite"
    proc = start_bot("--paper", *args, "--db", db, "--settings", settings, cwd=tmp_path)
    stderr = tmp_path / "run.stderr"
    assert wait_for(lambda: "paper trading on" in stderr.read_text(), 60, proc=proc), stderr.read_text()
    time.sleep(1.0)  # inside anyio.run: the signal receiver is open
    return proc, stderr


def _terminate_and_time(proc) -> float:
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    proc.wait(timeout=DEADLINE_S + 30)
    return time.monotonic() - sent


def _one_clean_ending(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert sum(1 for line in stderr.splitlines() if line.startswith("stopped")) == 1, stderr


@pytest.mark.e2e
def test_a_million_times_speed_stops_on_sigterm_within_the_deadline(tmp_path: Path) -> None:
    proc, stderr = _start(tmp_path, "--speed", "1000000", "--duration", "3")
    try:
        elapsed = _terminate_and_time(proc)
    finally:
        stop_if_running(proc)
    assert elapsed < DEADLINE_S + MARGIN_S, (elapsed, stderr.read_text())
    assert proc.returncode in (0, 3), stderr.read_text()
    _one_clean_ending(stderr.read_text())


@pytest.mark.e2e
def test_a_million_times_speed_honours_duration(tmp_path: Path) -> None:
    started = time.monotonic()
    proc, stderr = _start(tmp_path, "--speed", "1000000", "--duration", "3")
    try:
        proc.wait(timeout=3 + DEADLINE_S + 30)
    finally:
        stop_if_running(proc)
    assert time.monotonic() - started < 3 + DEADLINE_S + MARGIN_S + 5  # + interpreter start-up
    assert proc.returncode in (0, 3), stderr.read_text()
    assert "stopped: duration elapsed" in stderr.read_text()
    _one_clean_ending(stderr.read_text())


@pytest.mark.e2e
def test_a_slow_start_up_stops_on_sigterm_within_the_deadline(tmp_path: Path) -> None:
    # At x0.001 the paper venues' 50 ms latency is 50 wall seconds per request: start-up is slow.
    proc, stderr = _start(tmp_path, "--speed", "0.001")
    try:
        elapsed = _terminate_and_time(proc)
    finally:
        stop_if_running(proc)
    text = stderr.read_text()
    assert elapsed < DEADLINE_S + MARGIN_S, (elapsed, text)
    # Nothing could be verified at that speed within the deadline: it says so (exit 3), or it
    # stopped before trading began (exit 0); never a hang, never the default signal death.
    assert proc.returncode in (0, 3), text
    _one_clean_ending(text)


@pytest.mark.e2e
def test_duration_holds_during_a_slow_start_up(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, {"shutdown": {"deadline_seconds": str(DEADLINE_S)}})
    started = time.monotonic()
    proc = run_bot("--paper", "--speed", "0.001", "--duration", "2", "--db", tmp_path / "p.sqlite",
                   "--settings", settings, cwd=tmp_path, timeout_s=2 + DEADLINE_S + 60)
    elapsed = time.monotonic() - started
    assert elapsed < 2 + DEADLINE_S + MARGIN_S + 5, (elapsed, proc.stderr)  # + interpreter start-up
    assert proc.returncode in (0, 3), proc.stderr
    assert "stopped: duration elapsed" in proc.stderr or "stopped during start-up (duration elapsed)" in proc.stderr
    _one_clean_ending(proc.stderr)
