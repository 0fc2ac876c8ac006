"""A running reconciliation goes before the strategy pass's long turns (``bot.pacing.GoesFirst``):
paused work waits for the step (bounded), the step's turns no longer alternate with it, and the
paper application uses it between the forecast fold's slices while live never waits."""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from bot.app import Application
from bot.core.clock import ManualClock, parse_iso_utc
from bot.forecast_columns import ColumnObserver
from bot.pacing import GoesFirst
from bot.settings import Settings
from bot.wiring import PAPER_RECONCILE_FIRST_WAIT_S, PaperOptions, Wiring, paper_wiring
from paper.sim_venues import VENUE_PROFILES

START_MS = parse_iso_utc("2026-03-01T00:00:00Z")


async def _work(log: list[str], pause, slices: int) -> None:
    for n in range(slices):
        log.append(f"work{n}")
        await pause()


async def _step(first: GoesFirst, log: list[str], turns: int, started: anyio.Event) -> None:
    with first.running():
        started.set()
        for n in range(turns):
            log.append(f"step{n}")
            await anyio.lowlevel.checkpoint()
    log.append("step-end")


def _interleaved(log: list[str]) -> list[str]:
    """The work entries logged while the step ran (between its first turn and its end)."""
    start, end = log.index("step0"), log.index("step-end")
    return [entry for entry in log[start:end] if entry.startswith("work")]


@pytest.mark.anyio
async def test_paused_work_waits_for_a_running_step() -> None:
    first, log = GoesFirst(max_wait_s=60.0), []
    started = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_work, log, first.pause, 12)
        await anyio.lowlevel.checkpoint()
        await anyio.lowlevel.checkpoint()  # the work is under way
        tg.start_soon(_step, first, log, 8, started)
    assert log.count("step-end") == 1 and "work11" in log
    # at most the slice whose pause had begun (a plain checkpoint) before the step started
    assert len(_interleaved(log)) <= 1, log
    assert log.index("work0") < log.index("step0") < log.index("work11")  # it ran in the middle of the work
    assert first.pauses_waited >= 1 and not first.busy


@pytest.mark.anyio
async def test_without_it_the_steps_turns_alternate_with_the_work() -> None:
    # the reason for it: a plain checkpoint between slices lets one turn of the step run per slice
    first, log = GoesFirst(max_wait_s=60.0), []
    started = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_work, log, anyio.lowlevel.checkpoint, 12)
        await anyio.lowlevel.checkpoint()
        await anyio.lowlevel.checkpoint()
        tg.start_soon(_step, first, log, 8, started)
    assert len(_interleaved(log)) >= 5


@pytest.mark.anyio
async def test_a_pause_waits_at_most_max_wait_per_step() -> None:
    first = GoesFirst(max_wait_s=0.05)
    step_done = anyio.Event()

    async def slow_step() -> None:
        with first.running():
            await anyio.sleep(30)  # a step waiting on I/O: the paused work must not wait for it
        step_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(slow_step)
        await anyio.lowlevel.checkpoint()
        assert first.busy
        with anyio.fail_after(20):  # generous: the bound is 0.05 s
            assert await first.wait_if_running()  # waited, and gave up at the bound
            assert not step_done.is_set()
            assert not await first.wait_if_running()  # the step's time is used up: no more waiting
            await first.pause()  # a plain checkpoint now
        assert first.pauses_waited == 1
        tg.cancel_scope.cancel()
    assert not first.busy


@pytest.mark.anyio
async def test_no_wait_and_no_turn_when_idle_or_disabled() -> None:
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    for first in (GoesFirst(max_wait_s=1.0), GoesFirst(max_wait_s=0.0)):
        async with anyio.create_task_group() as tg:
            tg.start_soon(other)
            if first.max_wait_s == 0:
                with first.running():  # disabled: even a running step is not waited for
                    assert not await first.wait_if_running()
            else:
                assert not await first.wait_if_running()
            assert ran == [], "no checkpoint: nothing else got a turn"
        assert ran == ["other"]
        ran.clear()
    with pytest.raises(ValueError):
        GoesFirst(max_wait_s=-1)


@pytest.mark.anyio
async def test_a_late_loop_does_not_wait() -> None:
    late = [False]
    first = GoesFirst(max_wait_s=60.0, unless=lambda: late[0])
    with first.running():
        late[0] = True  # the paused loop is itself late: it goes on
        assert not await first.wait_if_running()
    assert first.pauses_waited == 0


def test_the_strategy_pass_waits_only_while_it_is_on_time(tmp_path: Path) -> None:
    clock = ManualClock(START_MS)
    settings = Settings()
    app = Application(settings, paper_wiring(settings, PaperOptions(
        seed=1, speed=1.0, db_path=tmp_path / "p.sqlite", start_ts_ms=START_MS), clock=clock))
    pacer, unless = app.pacers["strategy"], app.reconcile_first.unless
    assert unless is not None
    pacer.last_lag_ms = pacer.interval_ms // 2
    assert not unless()
    pacer.last_lag_ms = pacer.interval_ms  # the pass started a whole interval late
    assert unless()


def test_not_reentrant() -> None:
    first = GoesFirst()
    with first.running(), pytest.raises(RuntimeError), first.running():
        pass
    assert not first.busy


def test_paper_waits_for_reconciliation_live_never() -> None:
    settings = Settings()
    wiring = paper_wiring(settings, PaperOptions(seed=1, speed=1.0, db_path=Path("unused.sqlite"),
                                                 start_ts_ms=START_MS), clock=ManualClock(START_MS))
    assert wiring.reconcile_first_wait_s == PAPER_RECONCILE_FIRST_WAIT_S > 0
    assert Wiring.__dataclass_fields__["reconcile_first_wait_s"].default == 0.0  # live and the rest
    app = Application(settings, wiring)
    assert app.reconcile_first.max_wait_s == PAPER_RECONCILE_FIRST_WAIT_S


@pytest.mark.anyio
async def test_a_reconciliation_started_during_the_fold_runs_before_the_folds_next_slice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock(START_MS)
    base = Settings()
    settings = base.model_copy(update={"sim": base.sim.model_copy(update={
        "symbols": 40, "venues": list(VENUE_PROFILES)[:6]})})
    app = Application(settings, paper_wiring(settings, PaperOptions(
        seed=3, speed=1.0, db_path=tmp_path / "paper.sqlite", start_ts_ms=START_MS), clock=clock))
    app.reconcile_first = GoesFirst(max_wait_s=60.0)  # the mechanism, not the bound (tested above)
    log: list[str] = []
    steps = ColumnObserver.observe_steps

    def small_slices(self, table, now_ms, slice_keys=0):
        for _ in steps(self, table, now_ms, 10):  # 240 keys: 24 slices
            log.append("slice")
            yield

    monkeypatch.setattr(ColumnObserver, "observe_steps", small_slices)
    await app.start()
    try:
        assert app.engine is not None
        reconcile = app.engine.reconcile

        async def logged_reconcile(**kwargs):
            log.append("reconcile-start")
            findings = await reconcile(**kwargs)
            log.append("reconcile-end")
            return findings

        await app.strategy_step()  # every key folded to one time: the next fold takes the sliced path
        await app.reconcile_step()  # (and the forecast saved: the next step does not save it again)
        log.clear()
        monkeypatch.setattr(app.engine, "reconcile", logged_reconcile)
        clock.advance(app.forecaster.params.level_sample_ms / 1000)  # every leg is due its next sample
        await app.feed_step()  # the market moves: every key is folded again

        async def reconcile_mid_fold() -> None:
            with anyio.fail_after(30):
                while log.count("slice") < 3:
                    await anyio.lowlevel.checkpoint()
            await app.reconcile_step()

        async with anyio.create_task_group() as tg:
            tg.start_soon(app.strategy_step)
            tg.start_soon(reconcile_mid_fold)
        start, end = log.index("reconcile-start"), log.index("reconcile-end")
        assert log.count("slice") >= 15 and 3 <= start and end < len(log) - 1, log  # in the middle of the fold
        # and no slice of the fold ran until it ended (but the one already under way when it began)
        assert log[start:end].count("slice") <= 1, log
        assert app.reconcile_first.pauses_waited >= 1 and not app.reconcile_first.busy
    finally:
        await app.close()
