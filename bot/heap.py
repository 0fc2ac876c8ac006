"""Garbage-collector pauses kept off the live loop: the start-up heap is frozen.

CPython's cyclic collector walks every tracked object of the generations it collects. After a
live start-up the heap holds the venues' market tables (ccxt keeps every market of an exchange),
the clients and the restored state: on the bench (``bench/live.py``) a full collection of it took
70-150 ms and a middle one up to 8 ms, landing wherever the allocation counters say, between a
book update and the entry orders included. ``gc.freeze()`` moves every object alive at the end of
start-up into the permanent generation, which no collection walks: later collections only visit
what was allocated since. Frozen objects are still freed by reference counting; only a reference
cycle among them that becomes garbage later is kept (start-up objects live for the whole run).
"""

from __future__ import annotations

import gc


class HeapFreeze:
    """Freeze the heap once after start-up; ``release`` gives it back to the collector."""

    def __init__(self) -> None:
        self.frozen_objects = 0

    @property
    def frozen(self) -> bool:
        return self.frozen_objects > 0

    def freeze(self) -> int:
        """Collect what is already garbage, then freeze the rest; the number of frozen objects."""
        gc.collect()
        gc.freeze()
        self.frozen_objects = gc.get_freeze_count()
        return self.frozen_objects

    def release(self) -> None:
        """Unfreeze (at shutdown, so a process that runs the bot more than once, such as the test
        suite, does not keep every earlier run's heap)."""
        if self.frozen:
            gc.unfreeze()
            self.frozen_objects = 0
