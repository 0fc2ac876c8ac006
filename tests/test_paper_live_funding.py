"""Paper funding on live data: settlements derived from live quotes (``paper.live_funding``),
paid by the paper executor to the legs it holds at each venue's real settlement instant."""

from __future__ import annotations

from decimal import Decimal as D

import anyio

from bot.core.domain import (
    BookLevel,
    FeeSchedule,
    FundingQuote,
    Instrument,
    OrderBook,
    OrderRequest,
    OrderSide,
)
from paper.executor import PaperExecutor
from paper.live_funding import LiveFundingSettler, PaperLiveFeed
from paper.venue_store import VenueStore

H = 3_600_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % (8 * H)  # a settlement boundary


def quote(venue: str, rate: str, next_ts: int, ts: int, *, interval: str = "8", symbol: str = "BTC") -> FundingQuote:
    return FundingQuote(venue=venue, symbol=symbol, rate_per_interval=D(rate), interval_hours=D(interval),
                        next_funding_ts_ms=next_ts, mark_price=D(100), ts_ms=ts)


def test_each_announced_instant_settles_once_on_the_last_rate_quoted_before_it() -> None:
    settler = LiveFundingSettler()
    nxt = T0 + 8 * H
    settler.observe([quote("bybit", "0.0001", nxt, T0 + H), quote("okx", "0.0002", T0 + 4 * H, T0 + H, interval="4")])
    assert settler.due(T0 + 2 * H) == []
    settler.observe([quote("bybit", "0.0003", nxt, T0 + 3 * H)])  # the predicted rate moved
    settled = settler.due(T0 + 8 * H)
    assert [(s.venue, s.ts_ms, s.rate, s.interval_hours) for s in settled] == [
        ("okx", T0 + 4 * H, D("0.0002"), D(4)), ("bybit", nxt, D("0.0003"), D(8))]
    # The same instant announced again (a late quote) is never paid twice; the next one is.
    settler.observe([quote("bybit", "0.0003", nxt, T0 + 8 * H - 1), quote("bybit", "0.0001", nxt + 8 * H, nxt + 1)])
    assert [s.ts_ms for s in settler.due(nxt + 1)] == []
    assert [s.ts_ms for s in settler.due(nxt + 8 * H)] == [nxt + 8 * H]


def test_a_rollover_missed_between_steps_still_pays_the_earlier_instant() -> None:
    settler = LiveFundingSettler()
    settler.observe([quote("bybit", "0.0001", T0 + 8 * H, T0)])
    settler.observe([quote("bybit", "0.0005", T0 + 16 * H, T0 + 8 * H + 1)])  # venue already rolled over
    assert [(s.ts_ms, s.rate) for s in settler.due(T0 + 8 * H + 2)] == [(T0 + 8 * H, D("0.0001"))]


def test_unusable_quotes_are_never_settled() -> None:
    settler = LiveFundingSettler()
    settler.observe([quote("bybit", "0.0001", T0 + H, T0, interval="0"), quote("okx", "0.0001", 0, T0)])
    assert settler.due(T0 + 100 * H) == []


class _LiveStub:
    """The part of ``LiveMarketFeed`` the paper side reads: books, instruments, quotes."""

    def __init__(self) -> None:
        self.current: list[FundingQuote] = []
        self._book = OrderBook("bybit", "BTC", (BookLevel(D(99), D(10)),), (BookLevel(D(100), D(10)),), T0)

    def venues(self) -> list[str]:
        return ["bybit"]

    def quotes(self) -> list[FundingQuote]:
        return list(self.current)

    def book(self, venue: str, symbol: str) -> OrderBook | None:
        return self._book if (venue, symbol) == ("bybit", "BTC") else None

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        return Instrument(venue="bybit", symbol="BTC", venue_symbol="BTCUSDT", tick_size=D("0.5"),
                          lot_size_base=D("0.1"), min_size_base=D("0.1"), funding_interval_hours=D(8))


def test_a_held_paper_short_is_paid_at_the_live_settlement_instant() -> None:
    async def main() -> None:
        live = _LiveStub()
        feed = PaperLiveFeed(live)
        now = [T0 + H]
        executor = PaperExecutor(feed, {"bybit": FeeSchedule(D(2), D(5))}, store=VenueStore.in_memory(),
                                 clock_now_ms=lambda: now[0])
        await executor.place_order(OrderRequest("s1", "bybit", "BTC", OrderSide.SELL, D(1)))
        assert feed.venues() == ["bybit"]  # the live feed's own answers pass through
        live.current = [quote("bybit", "0.0001", T0 + 8 * H, T0 + H)]
        assert await executor.advance(feed.advance_to(now[0])) == []  # not yet
        now[0] = T0 + 8 * H + 500
        payments = await executor.advance(feed.advance_to(now[0]))
        assert [(p.venue, p.ts_ms, p.rate) for p in payments] == [("bybit", T0 + 8 * H, D("0.0001"))]
        assert payments[0].amount_usd > 0  # a short receives a positive rate
        assert await executor.advance(feed.advance_to(now[0] + 1000)) == []  # paid once

    anyio.run(main)
