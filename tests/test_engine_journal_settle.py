"""A journalled entry's rows are settled once, and never skipped by a concurrent caller
(``EngineCore._settle_entry_journal``).

Found by tests/test_engine_faults.py with the first leg started inline: the orders-away step popped
the pending journal row and waited for the database; a leg's own settle found nothing pending and
recorded its fill; the orders-away step was then cancelled (a crash) and put the row back: the fill
named an order with no row (``UnknownOrder``)."""

from __future__ import annotations

import anyio
import pytest

from bot.engine.core import EngineCore


class SlowStore:
    """``settle_entry_journal`` that waits for ``release`` (the database busy with another write)."""

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.started = 0
        self.settled: list[int] = []

    async def settle_entry_journal(self, journal_id: int, tables: object) -> bool:
        self.started += 1
        await self.release.wait()
        self.settled.append(journal_id)
        return True


class Engine:
    """The state ``_settle_entry_journal`` reads."""

    _settle_entry_journal = EngineCore._settle_entry_journal

    def __init__(self) -> None:
        self.store = SlowStore()
        self._entry_journal = {"p1": (7, [])}
        self._entry_journal_settling: dict = {}



@pytest.mark.anyio
async def test_a_second_caller_waits_and_settles_itself_when_the_first_was_cancelled() -> None:
    engine = Engine()
    order: list[str] = []
    async with anyio.create_task_group() as tg:
        first = anyio.CancelScope()

        async def orders_away() -> None:
            with first:
                await engine._settle_entry_journal("p1")
            order.append("orders-away cancelled" if first.cancel_called else "orders-away settled")

        async def leg() -> None:
            await engine._settle_entry_journal("p1")
            order.append(f"leg records its fill (settled: {engine.store.settled})")

        tg.start_soon(orders_away)
        await anyio.wait_all_tasks_blocked()
        assert engine.store.started == 1 and "p1" not in engine._entry_journal  # popped, in flight
        tg.start_soon(leg)
        await anyio.wait_all_tasks_blocked()
        assert order == []  # the leg waits for the settle in flight
        first.cancel()  # the crash: the first settle never happens
        await anyio.wait_all_tasks_blocked()
        assert engine.store.started == 2  # the leg settles it itself
        engine.store.release.set()
    assert order == ["orders-away cancelled", "leg records its fill (settled: [7])"]
    assert engine._entry_journal == {} and engine._entry_journal_settling == {}


@pytest.mark.anyio
async def test_a_settled_entry_is_written_once_however_many_ask() -> None:
    engine = Engine()
    engine.store.release.set()
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(engine._settle_entry_journal, "p1")
    assert engine.store.settled == [7] and engine.store.started == 1
