"""Live market data for a ccxt venue: order books by ccxt.pro stream, funding quotes by REST poll.

Books: one ``watch_order_book`` loop per symbol with our own staleness watchdog (ccxt notices a
silent-but-connected socket only after ~54 s): a book older than ``stale_after_s`` is refreshed by
REST (``fetch_order_book``) and the watch continues; stream errors back off with jitter. Funding
quotes change slowly: they are polled from the venue's raw endpoints every ``quote_every_s`` and
parsed by the venue's own parser (real interval, next settlement; unusable quotes dropped).
Every number crosses into Decimal exactly (floats via their shortest repr) and every book is
validated (crossed/NaN/negative => dropped).
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

import anyio
from loguru import logger

from adapters.ccxt_common.errors import translate
from adapters.errors import AbsurdVenueData, VenueError
from adapters.markets import VenueMarket
from adapters.validation import decimal_from_wire, validate_book
from bot.core.domain import BookLevel, FeeSchedule, FundingQuote, Instrument, OrderBook
from bot.core.orders_first import behind_orders

QuoteFetcher = Callable[[Any, Mapping[str, VenueMarket], int], Awaitable[tuple[list[FundingQuote], list[str]]]]
BOOK_DEPTH = 20


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def book_from_ccxt(raw: Mapping[str, Any], market: VenueMarket, now_ms: int) -> OrderBook:
    """A ccxt unified order book (prices/sizes as floats, sizes in contracts) -> validated book."""
    venue = market.venue

    def side(rows: Any, key: str) -> tuple[BookLevel, ...]:
        return tuple(BookLevel(decimal_from_wire(r[0], f"{key}.price", venue),
                               market.base(decimal_from_wire(r[1], f"{key}.size", venue))) for r in rows[:BOOK_DEPTH])

    ts = raw.get("timestamp")
    return validate_book(OrderBook(venue=venue, symbol=market.symbol, bids=side(raw.get("bids") or [], "bids"),
                                   asks=side(raw.get("asks") or [], "asks"),
                                   ts_ms=int(ts) if isinstance(ts, (int, float)) and ts > 0 else now_ms))


class CcxtMarketData:
    """The part of a live ``MarketSource`` one ccxt venue provides; ``run()`` keeps it current."""

    def __init__(self, exchange: Any, *, venue: str, markets: Mapping[str, VenueMarket], fees: FeeSchedule,
                 fetch_quotes: QuoteFetcher, quote_every_s: float = 15.0, stale_after_s: float = 10.0,
                 now_ms: Callable[[], int] = _wall_ms) -> None:
        self.venue = venue
        self._ex = exchange
        self._markets = dict(markets)
        self._fees = fees
        self._fetch_quotes = fetch_quotes
        self._quote_every_s = quote_every_s
        self._stale_after_s = stale_after_s
        self._now_ms = now_ms
        self._quotes: dict[str, FundingQuote] = {}
        self._books: dict[str, OrderBook] = {}
        self.dropped: list[str] = []
        self.resyncs = 0
        self.companions: list[Callable[[], Awaitable[None]]] = []  # run alongside (the order stream)
        # Called with (venue, symbol) after each accepted book or funding quote (the strategy's
        # market trigger, bot.market_trigger); None = nobody listens.
        self.on_update: Callable[[str, str], None] | None = None

    def venues(self) -> list[str]:
        return [self.venue]

    def instruments(self) -> list[Instrument]:
        return [m.instrument for m in self._markets.values()]

    def instrument(self, symbol: str) -> Instrument | None:
        """The instrument of canonical ``symbol`` (a dict look-up: the strategy reads it per pair)."""
        market = self._markets.get(symbol)
        return market.instrument if market is not None else None

    def fee_schedules(self) -> dict[str, FeeSchedule]:
        return {self.venue: self._fees}

    def quotes(self) -> list[FundingQuote]:
        return list(self._quotes.values())

    def quote(self, symbol: str) -> FundingQuote | None:
        """The latest funding quote of ``symbol`` (a dict read: the mark check of every book read uses it)."""
        return self._quotes.get(symbol)

    def books(self) -> list[OrderBook]:
        return list(self._books.values())

    def book(self, symbol: str) -> OrderBook | None:
        return self._books.get(symbol)

    def _drop(self, reason: str) -> None:
        self.dropped.append(reason)
        del self.dropped[:-100]
        logger.bind(venue=self.venue).warning("dropped market datum: {}", reason)

    def accept_book(self, raw: Mapping[str, Any], market: VenueMarket) -> None:
        """Validate and keep one unified book; absurd ones are dropped (the previous one ages)."""
        try:
            self._books[market.symbol] = book_from_ccxt(raw, market, self._now_ms())
        except AbsurdVenueData as exc:
            self._drop(str(exc))
            return
        if self.on_update is not None:
            self.on_update(self.venue, market.symbol)

    async def refresh_quotes(self) -> None:
        """Poll the funding quotes once (errors logged, previous quotes kept)."""
        try:
            quotes, dropped = await self._fetch_quotes(self._ex, self._markets, self._now_ms())
        except VenueError as exc:
            logger.bind(venue=self.venue).warning("funding poll failed: {}", exc)
            return
        except Exception as exc:  # noqa: BLE001  (ccxt errors are classified, logged, and the poll retried)
            logger.bind(venue=self.venue).warning("funding poll failed: {}", translate(self.venue, exc))
            return
        for reason in dropped:
            self._drop(reason)
        wanted = set(self._markets)
        for q in quotes:
            if q.symbol in wanted:
                self._quotes[q.symbol] = q
                if self.on_update is not None:
                    self.on_update(self.venue, q.symbol)

    async def fetch_funding_history(self, symbol: str, since_ts_ms: int) -> tuple[list[Any], list[str]]:
        """Settled funding of ``symbol`` since ``since_ts_ms`` through ccxt's ``fetch_funding_rate_history``
        (validated; see adapters/funding_history.py). ccxt errors are translated to ours."""
        from adapters.funding_history import ccxt_rows, settlements_from_rows

        market = self._markets[symbol]
        try:
            rows = await self._ex.fetch_funding_rate_history(market.ccxt_symbol, since_ts_ms, 500)
        except Exception as exc:  # noqa: BLE001  (classified and re-raised as ours)
            raise translate(self.venue, exc) from None
        quote = self._quotes.get(symbol)
        return settlements_from_rows(self.venue, symbol, ccxt_rows(self.venue, rows),
                                     interval_hours=market.instrument.funding_interval_hours,
                                     mark_price=quote.mark_price if quote else Decimal(0), since_ts_ms=since_ts_ms)

    async def resync_book(self, market: VenueMarket) -> None:
        """REST snapshot of one book (after staleness or a stream error)."""
        self.resyncs += 1
        try:
            self.accept_book(await self._ex.fetch_order_book(market.ccxt_symbol, BOOK_DEPTH), market)
        except Exception as exc:  # noqa: BLE001
            logger.bind(venue=self.venue).warning("book resync {} failed: {}", market.symbol, translate(self.venue, exc))

    async def _watch_book(self, market: VenueMarket, max_backoff_s: float) -> None:
        backoff = 0.5
        while True:
            with anyio.move_on_after(self._stale_after_s) as scope:
                try:
                    raw = await self._ex.watch_order_book(market.ccxt_symbol, BOOK_DEPTH)
                except Exception as exc:  # noqa: BLE001
                    logger.bind(venue=self.venue).warning("book stream {}: {}", market.symbol, translate(self.venue, exc))
                    await self.resync_book(market)
                    await anyio.sleep(backoff * (1 + random.random()))
                    backoff = min(max_backoff_s, backoff * 2)
                    continue
                await behind_orders()  # an entry's orders being handed to the venues go first
                self.accept_book(raw, market)
                backoff = 0.5
            if scope.cancelled_caught:
                await self.resync_book(market)  # silent but alive: keep the data fresh by REST

    async def _poll_quotes(self) -> None:
        while True:
            await self.refresh_quotes()
            await anyio.sleep(self._quote_every_s)

    async def run(self, *, max_backoff_s: float = 30.0) -> None:
        """Keep books and quotes current until cancelled."""
        async with anyio.create_task_group() as tg:
            for companion in self.companions:
                tg.start_soon(companion)
            tg.start_soon(self._poll_quotes)
            for market in self._markets.values():
                tg.start_soon(self._watch_book, market, max_backoff_s)

