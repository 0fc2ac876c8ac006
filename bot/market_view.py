"""Immutable market snapshots taken from a MarketSource (the sim market or live feeds)."""

from __future__ import annotations

from bot.core.domain import MarketSnapshot
from bot.core.ports import MarketSource


def take_snapshot(source: MarketSource, now_ts_ms: int) -> MarketSnapshot:
    """Everything the strategy may look at, frozen at ``now_ts_ms``."""
    return MarketSnapshot(
        now_ts_ms=now_ts_ms,
        quotes={(q.venue, q.symbol): q for q in source.quotes()},
        books={(b.venue, b.symbol): b for b in source.books()},
        instruments={(i.venue, i.symbol): i for i in source.instruments()},
        fees=dict(source.fee_schedules()),
    )
