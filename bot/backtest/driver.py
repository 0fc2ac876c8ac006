"""Steps the real application through a replay, one data event at a time, on a virtual clock.

At each instant the data changes (a settlement or a price) the driver sets the clock and runs the
same steps the supervisor's loops run in paper and live trading: the feed step (venues settle
funding on the legs held at that instant, resting orders match), then the strategy step (exits,
then entries); reconciliation runs every ``reconcile_every_ms`` and at both ends. At the end every
open position is closed at the last prices (exit reason ``backtest_end``) so the run's database
holds complete, realised numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from bot.app import Application
from bot.core.clock import VirtualClock
from bot.core.domain import ZERO

BACKTEST_END_REASON = "backtest_end"


@dataclass(frozen=True, slots=True)
class EquitySample:
    """One point of the equity curve: money so far (realised + unrealised), open positions, margin."""

    ts_ms: int
    equity_usd: Decimal  # cash change since the start + unrealised price PnL of open legs
    funding_usd: Decimal  # cumulative
    fees_usd: Decimal  # cumulative
    open_positions: int
    open_notional_usd: Decimal  # both legs


ProgressFn = Callable[[int, int], None]


async def drive(app: Application, clock: VirtualClock, events: list[int], *, reconcile_every_ms: int,
                sample_every_ms: int, close_out: Callable[[], None], progress: ProgressFn | None = None,
                ) -> list[EquitySample]:
    """Run the application over ``events`` (sorted instants); returns the equity samples.

    ``close_out`` is called before the final flatten: the replay then prices every leg at its last
    known price, so a leg whose data ended early can still be closed."""
    samples: list[EquitySample] = []
    await app.start()
    try:
        last_reconcile = last_sample = clock.now_ms()
        samples.append(await sample_equity(app))
        last_progress = time.monotonic()
        for n, ts_ms in enumerate(events):
            clock.set(ts_ms)
            await app.feed_step()
            await app.strategy_step()
            if ts_ms - last_reconcile >= reconcile_every_ms:
                await app.reconcile_step()
                last_reconcile = ts_ms
            if ts_ms - last_sample >= sample_every_ms:
                samples.append(await sample_equity(app))
                last_sample = ts_ms
            if progress is not None and time.monotonic() - last_progress > 0.25:
                progress(n + 1, len(events))
                last_progress = time.monotonic()
        close_out()
        await app.flatten(BACKTEST_END_REASON)
        await app.reconcile_step()
        samples.append(await sample_equity(app))
        if progress is not None:
            progress(len(events), len(events))
    finally:
        await app.close()
    return samples


async def sample_equity(app: Application) -> EquitySample:
    """Equity from the paper venues' own books: cash change plus unrealised PnL at the book mid."""
    assert app.executor is not None and app.engine is not None
    start = app.settings.paper.starting_balance_usd
    balances = await app.executor.balances_usd()
    cash = sum((b - start for b in balances.values()), ZERO)
    unrealised = ZERO
    notional = ZERO
    for p in await app.executor.positions(None):
        mark = p.mark_price if p.mark_price is not None else p.entry_price
        unrealised += p.size_base * (mark - p.entry_price)
        notional += abs(p.size_base) * mark
    active = app.engine.active_positions()
    return EquitySample(
        ts_ms=app.clock.now_ms(),
        equity_usd=cash + unrealised,
        funding_usd=sum(app.engine.funding_usd.values(), ZERO),
        fees_usd=sum(app.engine.fees_usd.values(), ZERO),
        open_positions=len(active),
        open_notional_usd=notional,
    )
