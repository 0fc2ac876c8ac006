"""The strategy's incremental ranking on a live feed: every book change reaches the ranker.

Found in an emulator rehearsal of ``--live``: the periodic cross-check logged "incremental ranking
differs from a full ranking at 1-3 place(s)". A ccxt venue's books arrive by stream many times
between two funding polls, and each accepted book is a new object while the quote object stays
the same; ``RankingSource`` detects changes by quote identity, so the incremental ranker kept
costing pairs on the books it had looked at before. The same happens when ``LiveMarketFeed`` stops
serving a book that turned stale (no new quote either). Here the real ``CcxtMarketData`` parts (the
code path of OKX, Binance USD-M and Hyperliquid) are driven as their streams drive them, no
network, and every pass's ranking must equal a full ranking with the cross-check finding nothing.
"""

from __future__ import annotations

from decimal import Decimal

import anyio

from adapters.ccxt_common.market_data import CcxtMarketData
from adapters.live import LiveMarketFeed
from adapters.markets import VenueMarket
from bot.core.domain import FeeSchedule, FundingQuote, Instrument
from bot.incremental import IncrementalRanker, RankingSource, RankSettings, full_rank
from bot.market_view import take_snapshot

D = Decimal
START_MS = 1_772_323_200_000
SYMBOLS = {"BTC": D(60_000), "ETH": D(3_000), "SOL": D(150)}
RATES = {"okx": {"BTC": D("0.0001"), "ETH": D("0.00005"), "SOL": D("-0.0001")},
         "hyperliquid": {"BTC": D("0.00004"), "ETH": D("0.000002"), "SOL": D("0.00003")}}
SETTINGS = RankSettings(notional_usd=D(1000), horizon_hours=D(72), max_quote_age_ms=180_000)


class Clock:
    def __init__(self) -> None:
        self.now = START_MS

    def __call__(self) -> int:
        return self.now


def _part(venue: str, clock: Clock) -> tuple[CcxtMarketData, dict[str, VenueMarket]]:
    markets = {symbol: VenueMarket(Instrument(venue, symbol, f"{symbol}-USDT-SWAP", D("0.01"), D("0.001"),
                                              D("0.001"), D(5), D(0)), ccxt_symbol=f"{symbol}/USDT:USDT")
               for symbol in SYMBOLS}

    async def fetch_quotes(exchange, wanted, now_ms):  # the venue's funding poll
        return [FundingQuote(venue, symbol, RATES[venue][symbol], D(8), now_ms + 3_600_000, SYMBOLS[symbol], now_ms)
                for symbol in wanted], []

    part = CcxtMarketData(object(), venue=venue, markets=markets, fees=FeeSchedule(D(2), D(5)),
                          fetch_quotes=fetch_quotes, now_ms=clock)
    return part, markets


def _book(part: CcxtMarketData, market: VenueMarket, clock: Clock, spread_bps: int) -> None:
    """One stream book update, as ccxt.pro hands it over (floats, ms timestamp)."""
    mid = SYMBOLS[market.symbol]
    half = mid * spread_bps / 20_000
    part.accept_book({"bids": [[float(mid - half), 50.0]], "asks": [[float(mid + half), 50.0]],
                      "timestamp": clock.now}, market)


def _market() -> tuple[Clock, LiveMarketFeed, dict]:
    clock = Clock()
    parts = {venue: _part(venue, clock) for venue in RATES}
    for part, markets in parts.values():
        anyio.run(part.refresh_quotes)
        for market in markets.values():
            _book(part, market, clock, 2)
    return clock, LiveMarketFeed([p for p, _ in parts.values()], max_book_age_ms=10_000, now_ms=clock), parts


def _pass(source: RankingSource, feed: LiveMarketFeed, clock: Clock) -> None:
    snapshot = take_snapshot(feed, clock.now)
    ranked = source.ranked(snapshot)
    assert ranked == full_rank(snapshot, SETTINGS, source.n)
    assert source.cross_check_failures == 0, "the incremental ranking missed a change"


def test_book_updates_between_funding_polls_reach_the_incremental_ranking() -> None:
    clock, feed, parts = _market()
    source = RankingSource(SETTINGS, 3, cross_check_every=1)
    _pass(source, feed, clock)  # the first pass has nothing to compare with: a full ranking
    _pass(source, feed, clock)
    best = full_rank(take_snapshot(feed, clock.now), SETTINGS, 3)
    assert best, "the market offers opportunities"
    for step, spread_bps in enumerate((40, 1, 60, 3, 25, 2)):
        clock.now += 500
        # a book of the best pair's legs moves (wider or tighter spread): no new quote object
        venue = best[0].long_venue if step % 2 else best[0].short_venue
        part, markets = parts[venue]
        quotes_before = part.quotes()
        _book(part, markets[best[0].symbol], clock, spread_bps)
        assert [q for q in part.quotes()] == quotes_before and all(
            a is b for a, b in zip(part.quotes(), quotes_before)), "a book update issues no new quote"
        _pass(source, feed, clock)
    assert source.incremental_passes >= 7 and source.cross_checks >= 7


def test_a_book_the_live_feed_stops_serving_as_stale_reaches_the_incremental_ranking() -> None:
    clock, feed, parts = _market()
    source = RankingSource(SETTINGS, 3, cross_check_every=1)
    _pass(source, feed, clock)
    _pass(source, feed, clock)
    best = full_rank(take_snapshot(feed, clock.now), SETTINGS, 3)[0]
    # every book but one of the best pair's is refreshed; that one ages past the feed's 10 s
    silent = (best.short_venue, best.symbol)
    for _ in range(3):
        clock.now += 4_000
        for venue, (part, markets) in parts.items():
            for symbol, market in markets.items():
                if (venue, symbol) != silent:
                    _book(part, market, clock, 2)
        _pass(source, feed, clock)
    assert feed.book(*silent) is None, "the silent book is stale for the feed now"
    assert all((o.symbol, o.short_venue) != (best.symbol, best.short_venue) and
               (o.symbol, o.long_venue) != (best.symbol, best.short_venue)
               for o in full_rank(take_snapshot(feed, clock.now), SETTINGS, 3))
    assert source.incremental_passes >= 4


class _Blind(IncrementalRanker):
    """The ranker before the fix: it never reads the books of the legs it looked at again."""

    def _recheck_books(self, snapshot) -> None:
        return None


def test_a_cross_check_difference_is_logged_with_what_differs_and_why(monkeypatch) -> None:
    from loguru import logger

    from bot import incremental

    monkeypatch.setattr(incremental, "IncrementalRanker", _Blind)
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="ERROR", format="{message}")
    try:
        clock, feed, parts = _market()
        source = RankingSource(SETTINGS, 3, cross_check_every=1)
        source.ranked(take_snapshot(feed, clock.now))
        source.ranked(take_snapshot(feed, clock.now))
        best = full_rank(take_snapshot(feed, clock.now), SETTINGS, 3)[0]
        part, markets = parts[best.short_venue]
        clock.now += 500
        _book(part, markets[best.symbol], clock, 80)
        snapshot = take_snapshot(feed, clock.now)
        assert source.ranked(snapshot) == full_rank(snapshot, SETTINGS, 3), "repaired by the rebuild"
    finally:
        logger.remove(sink)
    assert source.cross_check_failures == 1
    assert len(lines) == 1 and "differs from a full ranking" in lines[0]
    assert f"incremental {best.symbol} long {best.long_venue} short {best.short_venue}" in lines[0]
    assert f"{best.short_venue} book changed unnoticed (looked at the book of ts {START_MS}" in lines[0]
