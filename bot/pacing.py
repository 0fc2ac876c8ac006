"""Loop pacing: a deadline schedule on the mode's clock, with the loop's own lag measured.

A loop that sleeps its interval after its work drifts by the work's duration every pass (a 60 s
strategy loop whose pass takes 50 s of simulated time at a high ``--speed`` runs every 110 s). A
``Pacer`` instead keeps tick ``n`` due at ``first_due + n x interval`` and sleeps only what is
left until the next due time. The lag of a tick is how late it started after its due time.

When a loop falls more than ``behind_intervals`` whole intervals behind (the work cannot be done
at the requested speed) the schedule is re-anchored at now (the missed ticks are counted, never
run in a burst) and ``on_behind`` is called once, the first time only, so the bot can say so
clearly; ``on_recovered`` is called when a later tick starts on time again.

``GoesFirst`` lets one loop's step go first on a busy event loop: while it runs, another loop's
cooperative pauses wait for it to end (a bounded wait), instead of taking turns with it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import anyio
import anyio.lowlevel

from bot.core.ports import Clock

BehindHook = Callable[["Pacer", int], None]  # (pacer, lag_ms)


@dataclass(frozen=True, slots=True)
class LagStats:
    """What one loop reports about its own pace (clock ms; the clock's time, simulated in paper)."""

    name: str
    interval_ms: int
    ticks: int
    missed_ticks: int
    last_lag_ms: int
    max_lag_ms: int
    p50_lag_ms: int
    p99_lag_ms: int
    behind: bool

    def to_json_dict(self) -> dict[str, int | str | bool]:
        return {
            "name": self.name, "interval_ms": self.interval_ms, "ticks": self.ticks, "missed_ticks": self.missed_ticks,
            "last_lag_ms": self.last_lag_ms, "max_lag_ms": self.max_lag_ms, "p50_lag_ms": self.p50_lag_ms,
            "p99_lag_ms": self.p99_lag_ms, "behind": self.behind,
        }


class Pacer:
    """Deadline schedule of one loop (see the module docstring)."""

    def __init__(self, name: str, clock: Clock, interval_s: float, *, first_delay_s: float | None = None,
                 behind_intervals: float = 2.0, window: int = 1024,
                 on_behind: BehindHook | None = None, on_recovered: BehindHook | None = None) -> None:
        if interval_s <= 0:
            raise ValueError(f"{name}: interval must be positive")
        self.name = name
        self.clock = clock
        self.interval_ms = max(1, round(interval_s * 1000))
        self.first_delay_ms = self.interval_ms if first_delay_s is None else round(first_delay_s * 1000)
        self.behind_ms = round(behind_intervals * self.interval_ms)
        self.on_behind = on_behind
        self.on_recovered = on_recovered
        self.ticks = 0
        self.missed_ticks = 0
        self.last_lag_ms = 0
        self.max_lag_ms = 0
        self.behind = False
        self.reported_behind = False
        self._lags: deque[int] = deque(maxlen=window)
        self._due_ms: int | None = None

    async def wait(self) -> int:
        """Sleep until this tick is due (not at all when late); returns the tick's lag in clock ms."""
        now = self.clock.now_ms()
        if self._due_ms is None:
            self._due_ms = now + self.first_delay_ms
        if now < self._due_ms:
            await self.clock.sleep((self._due_ms - now) / 1000)
            now = self.clock.now_ms()
        else:
            await anyio.lowlevel.checkpoint()  # late: no wait, but other loops get their turn
        return self._tick(now)

    def seconds_until_due(self) -> float:
        """Clock seconds until the next tick is due (0 when due or late); starts the schedule."""
        now = self.clock.now_ms()
        if self._due_ms is None:
            self._due_ms = now + self.first_delay_ms
        return max(0, self._due_ms - now) / 1000

    def _tick(self, now_ms: int) -> int:
        assert self._due_ms is not None
        lag = max(0, now_ms - self._due_ms)
        self.ticks += 1
        self.last_lag_ms = lag
        self.max_lag_ms = max(self.max_lag_ms, lag)
        self._lags.append(lag)
        if lag > self.behind_ms:
            # Cannot keep up: count the ticks that will not run, re-anchor the schedule at now.
            self.missed_ticks += lag // self.interval_ms
            self._due_ms = now_ms + self.interval_ms
            if not self.behind:
                self.behind = True
                if not self.reported_behind:
                    self.reported_behind = True
                    if self.on_behind is not None:
                        self.on_behind(self, lag)
            return lag
        if self.behind and lag < self.interval_ms:
            self.behind = False
            if self.on_recovered is not None:
                self.on_recovered(self, lag)
        self._due_ms += self.interval_ms
        return lag

    def stats(self) -> LagStats:
        lags = sorted(self._lags)

        def pct(q: float) -> int:
            return lags[min(len(lags) - 1, int(q * len(lags)))] if lags else 0

        return LagStats(self.name, self.interval_ms, self.ticks, self.missed_ticks, self.last_lag_ms,
                        self.max_lag_ms, pct(0.5), pct(0.99), self.behind)


class GoesFirst:
    """One loop's step goes first; other loops' long work pauses for it (see below).

    A step made of many short turns on the event loop (reconciliation: every venue read is a
    request, i.e. a turn) takes turns with whatever else is ready; when another loop is busy with
    milliseconds of CPU work per turn (the strategy pass's forecast fold at thousands of keys),
    each of the step's turns waits behind one of those, and a 1 ms step takes 10-20 ms of wall
    time: at a high ``--speed`` that is more than its interval, and its ticks are skipped.

    The step runs inside ``running()``; the other loop calls ``pause()`` between slices of its
    work. A pause while the step runs waits until the step ends (its turns then only alternate
    with what does not pause), at most ``max_wait_s`` wall seconds per step in total, and not when
    ``unless()`` says the paused loop is itself late; otherwise a pause is a plain checkpoint.
    Nothing else changes: the step does the same work in the same order, and the paused work
    resumes where it was.
    """

    def __init__(self, max_wait_s: float = 0.005, *, unless: Callable[[], bool] | None = None) -> None:
        if max_wait_s < 0:
            raise ValueError("max_wait_s must not be negative")
        self.max_wait_s = max_wait_s
        self.unless = unless  # when it returns True a pause does not wait (the paused loop is late itself)
        self._done: anyio.Event | None = None
        self._deadline = 0.0  # time.monotonic() after which pauses no longer wait for this step
        self.pauses_waited = 0  # pauses that waited for the step (for benchmarks and tests)

    @property
    def busy(self) -> bool:
        """The step is running."""
        return self._done is not None

    @contextmanager
    def running(self) -> Iterator[None]:
        """The step runs in this block (not re-entrant: one step at a time)."""
        if self._done is not None:
            raise RuntimeError("GoesFirst.running is not re-entrant")
        self._done = anyio.Event()
        self._deadline = time.monotonic() + self.max_wait_s
        try:
            yield
        finally:
            done, self._done = self._done, None
            done.set()

    async def pause(self) -> None:
        """A checkpoint; while the step runs, wait for it to end (bounded, see the class docstring)."""
        if not await self.wait_if_running():
            await anyio.lowlevel.checkpoint()

    async def wait_if_running(self) -> bool:
        """While the step runs (and its time is not used up) wait for it to end and return True;
        otherwise return False at once, without a checkpoint (no turn given to anything else)."""
        done = self._done
        if done is None:
            return False
        remaining = self._deadline - time.monotonic()
        if remaining <= 0 or (self.unless is not None and self.unless()):
            return False
        self.pauses_waited += 1
        with anyio.move_on_after(remaining):
            await done.wait()
        return True
