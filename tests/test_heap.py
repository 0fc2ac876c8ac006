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


def test_collector_hold_disables_collection_until_released_and_only_undoes_its_own_disable() -> None:
    from bot.heap import CollectorHold

    assert gc.isenabled()
    hold = CollectorHold(enabled=True)
    try:
        hold.hold()
        assert not gc.isenabled() and hold.held and hold.holds == 1
        hold.hold()  # idempotent: one stretch
        assert hold.holds == 1
    finally:
        hold.release()
    assert gc.isenabled() and not hold.held
    hold.release()  # twice is harmless
    assert gc.isenabled()
    # A collector disabled by someone else is left disabled.
    gc.disable()
    try:
        hold.hold()
        assert not hold.held
        hold.release()
        assert not gc.isenabled()
    finally:
        gc.enable()
    # Off (paper, backtest): nothing changes.
    off = CollectorHold(enabled=False)
    off.hold()
    assert gc.isenabled() and not off.held and off.holds == 0
