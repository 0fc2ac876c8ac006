"""Orders before market data: while the legs of a dispatch are being handed to their venues, the
market-data handlers step behind them.

The legs of a concurrent dispatch run as tasks, and whatever is already queued on the event loop
when they are started runs before them. A book update that a stream delivered while the strategy
pass was deciding is queued there, and its handler (parsing, validation, merging: 0.2 to 1 ms
each, measured by ``bench/live.py``) would run between the decision and the orders although it
cannot change them (their prices are already fixed). ``begin`` marks a dispatch in progress and
``end`` its legs started (the engine calls it once every leg has run up to its first wait); an
entry opens its ``Window`` as soon as it is decided, so the handlers also step behind its intent
transaction (the awaits before the dispatch let them in otherwise: ~2 ms at p99 in ``bench/live.py``);
``behind_orders``, awaited by a market-data handler before it applies a message, yields to the
event loop while a dispatch is in progress, at most ``MAX_YIELDS`` times (never a wait on the
orders themselves: a dispatch that cannot start its legs delays market data by a few loop passes
at most).
"""

from __future__ import annotations

import anyio
import anyio.lowlevel

MAX_YIELDS = 20

_in_progress = 0  # dispatches begun and not ended (one event loop per process)


def begin() -> None:
    """A dispatch's legs are about to be started."""
    global _in_progress
    _in_progress += 1


def end() -> None:
    """Those legs have started (call once per ``begin``)."""
    global _in_progress
    _in_progress = max(0, _in_progress - 1)


class Window:
    """A dispatch window begun on creation and ended exactly once (``close`` is idempotent): the
    entry opens it when decided and the dispatch closes it once its legs have started."""

    def __init__(self) -> None:
        begin()
        self.open = True

    def close(self) -> None:
        if self.open:
            self.open = False
            end()


def in_progress() -> bool:
    return _in_progress > 0


async def behind_orders() -> None:
    """Yield while a dispatch is in progress (at most ``MAX_YIELDS`` loop passes); free otherwise."""
    for _ in range(MAX_YIELDS):
        if not _in_progress:
            return
        await anyio.lowlevel.checkpoint()
