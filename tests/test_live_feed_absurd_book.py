"""A live venue book whose mid is far from the same venue's mark price is never priced on.

Found by the live torture (bench/live_torture.py, ``absurd_book`` fault): a Hyperliquid book published
at 1000x the price was well formed, passed the boundary checks, and an exit order went out priced
from it. ``LiveMarketFeed.book`` (the engine's source) and the executors' price bound now refuse it.
"""

from __future__ import annotations

from decimal import Decimal

from adapters.live import LiveMarketFeed, mark_checked_book
from bot.core.domain import BookLevel, FundingQuote, OrderBook

D = Decimal


class FakePart:
    """A venue market-data part with one book and one quote."""

    venue = "hyperliquid"

    def __init__(self, mid: Decimal, mark: Decimal) -> None:
        self.dropped: list[str] = []
        self._book = OrderBook("hyperliquid", "BTC", (BookLevel(mid - 1, D(1)),), (BookLevel(mid + 1, D(1)),), 1)
        self._quote = FundingQuote("hyperliquid", "BTC", D("0.0001"), D(1), 3_600_000, mark, 1)

    def _drop(self, reason: str) -> None:
        self.dropped.append(reason)

    def book(self, symbol: str):
        return self._book if symbol == "BTC" else None

    def books(self):
        return [self._book]

    def quotes(self):
        return [self._quote]


def test_a_book_near_the_mark_is_served() -> None:
    part = FakePart(D(100_000), D(100_050))
    feed = LiveMarketFeed([part])
    assert feed.book("hyperliquid", "BTC") is part._book
    assert mark_checked_book(part, "BTC") is part._book
    assert feed.books() == [part._book]
    assert part.dropped == []


def test_a_book_at_1000x_the_mark_is_refused_and_named() -> None:
    part = FakePart(D(100_000_000), D(100_000))
    feed = LiveMarketFeed([part])
    assert feed.book("hyperliquid", "BTC") is None
    assert mark_checked_book(part, "BTC") is None
    assert feed.books() == []
    assert part.dropped and "far from the mark price" in part.dropped[0]
