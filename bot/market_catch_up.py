"""Moving a simulated market to the clock in bounded slices, and saying honestly when it lags.

At a high ``--speed`` the clock can run ahead faster than the simulated market can step (each
step costs real CPU). Catching up in one call would block the event loop for as long as it takes:
no signal, ``--duration`` or shutdown deadline could be obeyed. Here the market advances at most
``max_slice_ms`` of its time per call and the task yields to the event loop between slices, so
cancellation and stop requests are seen within one slice. The distance between the clock and
the market is the lag: it shows in the status line, and one event marks each time it grows past
``warn_lag_ms`` and each time the market catches up again (meanwhile its quotes are old, so the
stale-data breakers and quote-age gates keep entries out).
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import anyio.lowlevel

from bot.core.domain import FundingPayment
from bot.core.ports import Executor, MarketFeed

STEPS_PER_SLICE = 20


@dataclass(frozen=True, slots=True)
class LagChange:
    """The market started or stopped lagging behind the clock (for an event)."""

    kind: str  # "market_lag" | "market_caught_up"
    severity: str
    message: str


class MarketCatchUp:
    """Advances ``market`` towards the clock slice by slice and tracks how far behind it is."""

    def __init__(self, step_seconds: int, *, steps_per_slice: int = STEPS_PER_SLICE,
                 warn_lag_steps: int = 10) -> None:
        self.max_slice_ms = max(1, step_seconds * 1000 * steps_per_slice)
        self.warn_lag_ms = step_seconds * 1000 * warn_lag_steps
        self.lag_ms = 0
        self.lagging = False

    async def advance(self, market: MarketFeed, executor: Executor, target_ts_ms: int) -> list[FundingPayment]:
        """Advance to ``target_ts_ms`` (settling funding on the way), yielding between slices."""
        position = _market_now(market)
        payments: list[FundingPayment] = []
        if position is None:  # a feed without its own time (replay, live): one call, nothing to slice
            return await executor.advance(market.advance_to(target_ts_ms))
        while True:
            step_to = min(target_ts_ms, position + self.max_slice_ms)
            payments.extend(await executor.advance(market.advance_to(max(step_to, position))))
            position = step_to
            await anyio.lowlevel.checkpoint()  # a stop request or cancellation is seen here
            if position >= target_ts_ms:
                return payments

    def observe(self, clock_now_ms: int, market: MarketFeed) -> LagChange | None:
        """Record the lag after a catch-up; a change worth an event when it crosses the threshold."""
        market_now = _market_now(market)
        if market_now is None:
            return None
        self.lag_ms = max(0, clock_now_ms - market_now)
        if self.lag_ms > self.warn_lag_ms and not self.lagging:
            self.lagging = True
            return LagChange("market_lag", "warning",
                             f"the simulated market lags the clock by {self.lag_ms / 1000:.0f}s: this machine cannot "
                             "step it at this --speed; it catches up in bounded slices, its quotes are old meanwhile "
                             "(stale-data breakers and quote-age gates keep entries out); a lower --speed avoids it")
        if self.lagging and self.lag_ms <= self.warn_lag_ms:
            self.lagging = False
            return LagChange("market_caught_up", "info", "the simulated market caught up with the clock")
        return None

    def status(self) -> str:
        """`` lag=Ns`` for the status line while lagging, else empty."""
        return f" lag={self.lag_ms / 1000:.0f}s" if self.lagging else ""


def _market_now(market: MarketFeed) -> int | None:
    """The simulated market's own time (``SimulatedMarket.now_ts_ms``), None for other feeds."""
    value = getattr(market, "now_ts_ms", None)
    if callable(value):
        value = value()
    return value if isinstance(value, int) else None
