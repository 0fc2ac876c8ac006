"""The start-up heap is frozen (no collection walks it), the youngest generation may grow, and both are
given back at shutdown."""

from __future__ import annotations

import gc

from bot.heap import GEN0_THRESHOLD, HeapFreeze


def test_freeze_moves_the_heap_out_of_every_collection_and_release_gives_it_back() -> None:
    heap = HeapFreeze()
    assert not heap.frozen
    survivor = [object() for _ in range(100)]  # alive at the freeze
    before = gc.get_threshold()
    try:
        frozen = heap.freeze(raise_gen0=True)
        # A frozen object that loses its last reference (another thread may drop one) leaves the frozen
        # set at once, so the count can only shrink after the freeze.
        assert heap.frozen and frozen >= gc.get_freeze_count() > len(survivor)
        assert gc.get_threshold()[0] >= GEN0_THRESHOLD
        # The collector's generations (what a collection walks) no longer hold the frozen heap.
        assert not any(o is survivor for o in gc.get_objects())
    finally:
        heap.release()
    assert not heap.frozen and gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
    assert any(o is survivor for o in gc.get_objects())
    heap.release()  # twice is harmless
    assert gc.get_freeze_count() == 0


def test_the_live_freeze_keeps_the_collectors_default_threshold() -> None:
    heap = HeapFreeze()
    before = gc.get_threshold()
    try:
        heap.freeze()  # live: short gen0 pauses matter more than fewer of them
        assert heap.frozen and gc.get_threshold() == before
    finally:
        heap.release()
    assert gc.get_threshold() == before
