"""An event loop that polls instead of sleeping (``live.busy_poll``): lower latency for one CPU.

An idle asyncio loop sleeps in ``epoll_wait`` until a socket is readable or a timer is due. Its CPU
then goes idle, and on a virtual machine an idle vCPU is halted and handed back to the host: the next
book update runs the entry path on a cold CPU. Measured on the 2-vCPU VM of ``bench/live.py``: the
same pure-Python workload took ~25 ms of CPU right after a 200 ms sleep and ~15 ms right after 200 ms
of polling (``cpu_reference_ms``); book update to both entry orders at the socket, 180 entries, p50
4.82 -> 4.16 ms and p99 8.83 -> 7.15 ms (``bench/results/live_sleeping_loop.json`` and that round's
``live.json``, commit 6705d34).

``BusyPollSelector`` asks the kernel with a zero timeout again and again until something is ready or
the loop's own timeout has passed, so the thread does not sleep: one CPU runs at 100 % for as long as
the bot runs. That is the price, and why it is off by default: worth it on a dedicated server where
entry latency matters, not on a laptop or a burstable cloud instance (CPU credits).

Two courtesies to the bot's own threads:
- between two empty polls it yields the CPU (``sched_yield``, the GIL released), so a thread woken on
  the same CPU (the database writer, a venue read) runs at once instead of waiting for the scheduler
  to preempt the polling thread (measured with both on one CPU: a worker's wake-up up to 3.5 ms late
  without the yield, 0.15 ms with it);
- while a thread is inside ``quiet_loop`` (a pybit order's worker, from the hand-over until the
  venue's answer) the loop waits in the kernel as a sleeping loop does, and still wakes at once on
  any event: the worker has the CPU and the GIL to itself until its request is written (with the loop
  polling, a Bybit order handed over after the other leg reached its socket up to 4.4 ms later).

Everything else is asyncio's own ``SelectorEventLoop``: callbacks, timers, signals (the wake-up pipe is
one of the polled descriptors) and other threads' ``call_soon_threadsafe`` behave as usual.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

IDLE_INTERVAL_S = 0.002  # the idle task's cadence (order rehearsals: ``bot.rehearsals``)
_quiet_lock = threading.Lock()
_quiet_threads = 0  # threads inside quiet_loop(): the polling loops block instead while any is


@contextmanager
def quiet_loop() -> Iterator[None]:
    """For a worker thread's latency-critical stretch (an order's request): busy-polling loops of
    this process block in the kernel, as a sleeping loop does, until every such stretch has ended.
    Costs nothing when no loop busy-polls."""
    global _quiet_threads
    with _quiet_lock:
        _quiet_threads += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_threads -= 1


class BusyPollSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """The platform's default selector, polled with a zero timeout until events or the deadline."""

    def __init__(self) -> None:
        super().__init__()
        self.polls = 0  # kernel polls made (for tests and benchmarks)
        self.quiet_waits = 0  # blocking waits made while a thread was in quiet_loop()
        self.idle_task: Callable[[], object] | None = None  # run between empty polls (``attach_idle_task``)
        self.idle_interval_s = IDLE_INTERVAL_S
        self.idle_runs = 0
        self._next_idle = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """Like ``select``, polling instead of blocking (except inside a ``quiet_loop`` stretch):
        ``timeout`` None waits for events for ever, 0 or less returns at once, else returns by then
        with what is ready (maybe nothing)."""
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        poll = super().select
        while True:
            self.polls += 1
            if _quiet_threads:  # a worker is sending an order: wait in the kernel, out of its way
                self.quiet_waits += 1
                return poll(None if deadline is None else max(deadline - time.monotonic(), 0.0))
            ready = poll(0)
            now = time.monotonic()
            if ready or (deadline is not None and now >= deadline):
                return ready
            if self.idle_task is not None and now >= self._next_idle:
                self._next_idle = now + self.idle_interval_s
                self._run_idle_task()
            os.sched_yield()

    def _run_idle_task(self) -> None:
        task = self.idle_task
        self.idle_runs += 1
        try:
            task()  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - stopped and reported: idle work must never break the loop
            self.idle_task = None
            from loguru import logger

            logger.bind(kind="idle_task_stopped").error(f"busy-poll idle task {task!r} stopped: {exc!r}")


def attach_idle_task(task: Callable[[], object], interval_s: float = IDLE_INTERVAL_S) -> bool:
    """Run ``task`` (synchronous, short: well under a millisecond) at most every ``interval_s``
    between the running loop's empty polls; True when that loop busy-polls, else nothing is done.
    A task that raises is stopped (and logged), the loop goes on."""
    selector = getattr(asyncio.get_running_loop(), "_selector", None)  # SelectorEventLoop's own
    if not isinstance(selector, BusyPollSelector):
        return False
    selector.idle_task, selector.idle_interval_s = task, interval_s
    return True


def detach_idle_task(task: Callable[[], object]) -> None:
    """Undo ``attach_idle_task`` for ``task`` on the running loop (no-op if another is attached)."""
    selector = getattr(asyncio.get_running_loop(), "_selector", None)
    if isinstance(selector, BusyPollSelector) and selector.idle_task is task:
        selector.idle_task = None


def busy_poll_loop() -> asyncio.AbstractEventLoop:
    """A new ``SelectorEventLoop`` over a ``BusyPollSelector``."""
    return asyncio.SelectorEventLoop(BusyPollSelector())


def loop_options(busy_poll: bool) -> dict[str, Callable[[], Any]]:
    """``anyio.run`` backend options: the busy-polling loop factory when ``busy_poll``, else none."""
    return {"loop_factory": busy_poll_loop} if busy_poll else {}
