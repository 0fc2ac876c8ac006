"""Event-driven strategy passes (live): a market-data update wakes the strategy loop at once.

The venues' feeds call ``notify(venue, symbol)`` after each book or funding update they accept.
The strategy loop waits in ``wait(pacer)`` for whichever comes first: an update (``"market"``) or
the loop's own timer (``"timer"``, ``strategy.loop_interval_seconds`` stays the floor cadence).
CPU stays bounded: updates only set a flag (many updates between two passes make one pass), a
pass already running absorbs every update that arrives during it (one more pass follows), and
``live.trigger_min_gap_seconds`` optionally spaces market-woken passes. Paper and backtest have no
trigger (their passes stay on the timer: deterministic).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio

from bot.pacing import Pacer

MARKET = "market"
TIMER = "timer"


class MarketTrigger:
    """Coalescing wake-up flag for the strategy loop (see the module doc)."""

    def __init__(self, *, min_gap_s: float = 0.0, matters: Callable[[str, str], bool] | None = None) -> None:
        if min_gap_s < 0:
            raise ValueError("trigger min gap must be >= 0")
        self.min_gap_s = min_gap_s
        self._matters = matters
        self._event = anyio.Event()
        self._last_market_start_s: float | None = None
        self.notifications = 0
        self.market_wakes = 0
        self.timer_wakes = 0
        self.last_notify_s: float | None = None  # perf_counter of the latest update that set the flag

    def notify(self, venue: str, symbol: str) -> None:
        """A feed accepted an update for (venue, symbol); cheap, never blocks (called by the feeds)."""
        if self._matters is not None and not self._matters(venue, symbol):
            return
        self.notifications += 1
        self.last_notify_s = time.perf_counter()
        self._event.set()

    @property
    def pending(self) -> bool:
        """An update arrived since the last market-woken pass started."""
        return self._event.is_set()

    async def wait(self, pacer: Pacer) -> str:
        """Until an update (``MARKET``) or the pacer's next tick (``TIMER``), whichever is first.

        The flag is cleared when a market-woken pass is released, so updates that arrive during the
        pass wake exactly one more pass after it."""
        remaining_s = pacer.seconds_until_due() / float(getattr(pacer.clock, "speed", 1.0) or 1.0)  # wall seconds
        if remaining_s > 0 and not self._event.is_set():
            with anyio.move_on_after(remaining_s):
                await self._event.wait()
        if not self._event.is_set():
            await pacer.wait()  # due now: records the tick (lag, behind) as the timer loop does
            self.timer_wakes += 1
            return TIMER
        if self.min_gap_s > 0 and self._last_market_start_s is not None:
            gap_left = self._last_market_start_s + self.min_gap_s - time.monotonic()
            if gap_left > 0:
                await anyio.sleep(gap_left)
        self._event = anyio.Event()
        self._last_market_start_s = time.monotonic()
        self.market_wakes += 1
        return MARKET
