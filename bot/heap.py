"""Garbage-collector pauses kept off the live loop: the start-up heap is frozen.

CPython's cyclic collector walks every tracked object of the generations it collects. After a
live start-up the heap holds the venues' market tables (ccxt keeps every market of an exchange),
the clients and the restored state: on the bench (``bench/live.py``) a full collection of it took
70-150 ms and a middle one up to 8 ms, landing wherever the allocation counters say, between a
book update and the entry orders included. ``gc.freeze()`` moves every object alive at the end of
start-up into the permanent generation, which no collection walks: later collections only visit
what was allocated since. Frozen objects are still freed by reference counting; only a reference
cycle among them that becomes garbage later is kept (start-up objects live for the whole run).
Outside ``--live`` the youngest generation may also grow to ``GEN0_THRESHOLD`` objects before a pass:
a strategy pass allocates thousands of short-lived objects, and the default 700 runs the collector
every few hundred microseconds of work (at 500 symbols x 10 venues and ``--speed 3600`` that is loop
time lost). Live keeps the default: a collection of 10,000 young objects pauses ~4 ms, which lands
between a book update and the entry orders (``bench/live.py`` p99 9.9 ms with it).
``--live`` freezes at the end of ``Application.start``; the supervisor does it for every other run.

``CollectorHold`` (live): no automatic collection runs from the start of a strategy pass until its
entry's orders are on their way (or the pass ends). A collection due meanwhile runs at the next
allocation after the release, while the orders travel: the young generations' pauses (gen1 measured
up to 3 ms) never land between a book update and the orders. Reference counting frees everything
as usual while held; only reference cycles wait, for the length of one pass.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 10_000


class HeapFreeze:
    """Freeze the heap once after start-up; ``release`` gives it back to the collector."""

    def __init__(self) -> None:
        self.frozen_objects = 0
        self._threshold: tuple[int, int, int] | None = None  # the collector's thresholds before the freeze

    @property
    def frozen(self) -> bool:
        return self.frozen_objects > 0

    def freeze(self, *, raise_gen0: bool = False) -> int:
        """Collect what is already garbage, then freeze the rest; the number of frozen objects.
        ``raise_gen0``: also let the youngest generation grow to ``GEN0_THRESHOLD`` (throughput: fewer
        collections; each one is longer, ~4 ms measured, so the live entry path keeps the default)."""
        gc.collect()
        gc.freeze()
        self.frozen_objects = gc.get_freeze_count()
        if raise_gen0 and self._threshold is None:
            self._threshold = gc.get_threshold()
            gen0, gen1, gen2 = self._threshold
            gc.set_threshold(max(GEN0_THRESHOLD, gen0), gen1, gen2)
        return self.frozen_objects

    def release(self) -> None:
        """Unfreeze (at shutdown, so a process that runs the bot more than once, such as the test
        suite, does not keep every earlier run's heap)."""
        if self.frozen:
            gc.unfreeze()
            self.frozen_objects = 0
        if self._threshold is not None:
            gc.set_threshold(*self._threshold)
            self._threshold = None


class CollectorHold:
    """Hold the automatic cyclic collection off a latency-critical stretch (``gc.disable``).

    ``hold`` disables the collector if it is enabled; ``release`` enables it again, only if this
    hold disabled it (a collector disabled by someone else stays disabled). Both are idempotent
    and cheap; the caller must release in a ``finally`` (a hold never released would leave cycles
    uncollected for the rest of the run). Disabled holds (``enabled=False``) do nothing."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.holds = 0  # stretches held so far (for tests and benchmarks)
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def hold(self) -> None:
        if self.enabled and not self._held and gc.isenabled():
            gc.disable()
            self._held = True
            self.holds += 1

    def release(self) -> None:
        if self._held:
            self._held = False
            gc.enable()
