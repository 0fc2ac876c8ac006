"""Order rehearsals in the busy-polling loop's idle time (``live.rehearse_orders``).

``OrderRehearsals`` takes each venue executor that can rehearse (``rehearse_order``: the ccxt venues
and Bybit, ``adapters.rehearsal``) and each configured symbol in turn, one rehearsal per idle slot
of the busy-polling loop (``bot.core.busy_poll.attach_idle_task``, every 2 ms at most), so that an
entry's orders find their path warm in the CPU caches. Nothing is sent. Without ``live.busy_poll``
the loop sleeps when idle and nothing is rehearsed (waking it for that would cost what it saves).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import anyio
from loguru import logger

from bot.core.busy_poll import attach_idle_task, detach_idle_task


class OrderRehearsals:
    """Round-robin over (executor, symbol): one ``rehearse_order`` per call."""

    def __init__(self, executors: Iterable[Any], symbols: Sequence[str]) -> None:
        self._targets = [(ex, symbol) for ex in executors if callable(getattr(ex, "rehearse_order", None))
                         for symbol in symbols]
        self._next = 0
        self.runs = 0  # rehearsals that ran the whole path up to the request
        self.misses = 0  # rehearsals with nothing to rehearse now (no book yet)
        self.dropped = 0  # targets dropped (their path suspended before the request)
        self._task = self.step  # the one bound method attached (and detached) by ``run``

    @property
    def targets(self) -> int:
        return len(self._targets)

    def step(self) -> None:
        """Rehearse the next (executor, symbol). A target whose path suspended before its request
        (``rehearse_order`` False: e.g. ccxt still settling the client) or that raised is dropped: it
        would do so every time, and the suspension's own work would be started again and again."""
        if not self._targets:
            return
        self._next %= len(self._targets)
        executor, symbol = self._targets[self._next]
        try:
            outcome = executor.rehearse_order(symbol)
        except Exception as exc:  # noqa: BLE001 - a rehearsal never breaks the loop: its target is dropped
            logger.bind(kind="rehearsal_dropped").warning(
                f"order rehearsals on {getattr(executor, 'venue', executor)} {symbol} stopped: {exc!r}")
            outcome = False
        if outcome is False:
            del self._targets[self._next]
            self.dropped += 1
            return
        self._next += 1
        if outcome:
            self.runs += 1
        else:
            self.misses += 1

    async def run(self) -> None:
        """Attached to the running loop's idle time until cancelled (returns at once when the loop
        does not busy-poll or there is nothing to rehearse)."""
        if not self._targets or not attach_idle_task(self._task):
            return
        try:
            await anyio.sleep_forever()
        finally:
            detach_idle_task(self._task)


def venue_executors(session: Any) -> list[Any]:
    """The per-venue executors of a live session (``adapters.registry.LiveSession.venues``)."""
    return [venue.executor for venue in getattr(session, "venues", ())]
