"""Bybit live market data: funding quotes and order books from the public linear stream.

Uses the ``websockets`` library directly (pybit's WebSocket runs callbacks in threads and merges
books wrongly). One connection subscribes ``tickers.{S}`` and ``orderbook.50.{S}`` for every
symbol; tickers arrive as a snapshot then deltas (only changed fields), so the latest full ticker is
kept per symbol; books are kept by ``BybitBook``. A staleness watchdog closes a connection that is
silent-but-alive for ``stale_after_s`` (ccxt-style keepalive would notice only after ~54 s) and
REST resyncs tickers and books while the stream reconnects with exponential backoff and jitter.
Absurd data is dropped with a logged reason; the previous datum keeps ageing.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import anyio
from loguru import logger

from adapters.bybit import config
from adapters.bybit import parsing as wire
from adapters.bybit.book import BybitBook
from adapters.bybit.http import BybitHttp
from adapters.errors import AbsurdVenueData, VenueError
from adapters.markets import VenueMarket
from bot.core.domain import FeeSchedule, FundingQuote, Instrument, OrderBook
from bot.core.orders_first import behind_orders

BOOK_DEPTH = 50
SUBSCRIBE_BATCH = 10  # Bybit accepts at most 10 args per subscribe request on linear
PING_EVERY_S = 20.0
DEFAULT_FEES = FeeSchedule(maker_bps=Decimal(2), taker_bps=Decimal("5.5"))  # base tier (DESIGN.md section 5)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class BybitMarketData:
    """The Bybit part of a live ``MarketSource``: ``run()`` keeps it current; readers are sync."""

    def __init__(self, http: BybitHttp, markets: Mapping[str, VenueMarket], *, ws_url: str,
                 fees: FeeSchedule = DEFAULT_FEES,
                 stale_after_s: float = 10.0, now_ms: Callable[[], int] = _wall_ms,
                 venue: str = config.VENUE) -> None:
        self.venue = venue
        self._http = http
        self._markets = dict(markets)
        self._by_venue_symbol = {m.venue_symbol: m for m in markets.values()}
        self._ws_url = ws_url.rstrip("/") + config.PUBLIC_WS_PATH
        self._fees = fees
        self._stale_after_s = stale_after_s
        self._now_ms = now_ms
        self._tickers: dict[str, dict[str, Any]] = {}
        self._tickers_ts: dict[str, int] = {}
        self._quotes: dict[str, FundingQuote] = {}
        self._books: dict[str, BybitBook] = {m.venue_symbol: BybitBook(m.symbol, venue=venue) for m in markets.values()}
        self._book_views: dict[str, OrderBook] = {}
        self.last_message_ms = 0
        self._gap = False
        self.companions: list[Callable[[], Awaitable[None]]] = []  # run alongside (the private stream)
        self.reconnects = 0
        self.dropped: list[str] = []
        # Called with (venue, canonical symbol) after each accepted book or ticker update (the
        # strategy's market trigger, bot.market_trigger); None = nobody listens.
        self.on_update: Callable[[str, str], None] | None = None

    # --- MarketSource part ------------------------------------------------------------------
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
        """The latest funding quote of canonical ``symbol`` (a dict read: the mark check of every book read uses it)."""
        market = self._markets.get(symbol)
        return self._quotes.get(market.venue_symbol) if market else None

    def books(self) -> list[OrderBook]:
        return list(self._book_views.values())

    def book(self, symbol: str) -> OrderBook | None:
        """The latest book of canonical ``symbol`` (for the executor's price bound)."""
        market = self._markets.get(symbol)
        return self._book_views.get(market.venue_symbol) if market else None

    # --- message handling (pure w.r.t. I/O: tested on recorded payloads) ----------------------
    def _drop(self, reason: str) -> None:
        self.dropped.append(reason)
        del self.dropped[:-100]
        logger.bind(venue=self.venue).warning("dropped market datum: {}", reason)

    def handle(self, message: Mapping[str, Any]) -> None:
        """Apply one public-stream message (ticker snapshot/delta, orderbook snapshot/delta, acks)."""
        topic = message.get("topic")
        if not isinstance(topic, str):
            return  # subscribe/pong acks
        self.last_message_ms = self._now_ms()
        try:
            if topic.startswith("tickers."):
                self._on_ticker(message)
            elif topic.startswith("orderbook."):
                self._on_book(message)
            else:
                return
        except AbsurdVenueData as exc:
            self._drop(str(exc))
            return
        self._notify(self._by_venue_symbol.get(topic.rsplit(".", 1)[-1]))

    def _notify(self, market: VenueMarket | None) -> None:
        """Tell the listener (the live feed's ranking and market trigger) that ``market`` changed."""
        if self.on_update is not None and market is not None:
            self.on_update(self.venue, market.symbol)

    def _on_ticker(self, message: Mapping[str, Any]) -> None:
        data = message.get("data")
        if not isinstance(data, Mapping) or "symbol" not in data:
            raise AbsurdVenueData(self.venue, "ticker message without data.symbol")
        name = str(data["symbol"])
        merged = data if message.get("type") == "snapshot" else {**self._tickers.get(name, {}), **data}
        self._tickers[name] = dict(merged)
        market = self._by_venue_symbol.get(name)
        if market is None:
            return
        ts = message.get("ts") if isinstance(message.get("ts"), int) else self._now_ms()
        self._quotes[name] = wire.parse_ticker_quote(
            merged, ts_ms=ts, instrument_interval_hours=market.instrument.funding_interval_hours, symbol=market.symbol)

    def _on_book(self, message: Mapping[str, Any]) -> None:
        name = str(message.get("topic", "")).rsplit(".", 1)[-1]
        book = self._books.get(name)
        if book is None:
            return
        try:
            book.apply(message)
            self._book_views[name] = book.snapshot(BOOK_DEPTH)
        except AbsurdVenueData:
            book.reset()
            self._book_views.pop(name, None)
            self._gap = True
            raise

    def needs_resubscribe(self) -> bool:
        """True when a book lost its sequence (or was absurd) since the last (re)connect."""
        return self._gap

    # --- I/O -----------------------------------------------------------------------------------
    async def resync_rest(self) -> None:
        """Refresh tickers and books over REST (while the stream is down or stale)."""
        try:
            answer = await self._http.call("get_tickers", category=config.CATEGORY)
            ts = int(answer.get("time") or self._now_ms())
            for item in wire.result_list(answer):
                market = self._by_venue_symbol.get(str(item.get("symbol")))
                if market is None:
                    continue
                try:
                    self._quotes[market.venue_symbol] = wire.parse_ticker_quote(
                        item, ts_ms=ts, instrument_interval_hours=market.instrument.funding_interval_hours,
                        symbol=market.symbol)
                except AbsurdVenueData as exc:
                    self._drop(str(exc))
                    continue
                self._notify(market)
            for market in self._markets.values():
                answer = await self._http.call("get_orderbook", category=config.CATEGORY, symbol=market.venue_symbol,
                                               limit=BOOK_DEPTH)
                try:
                    self._book_views[market.venue_symbol] = wire.parse_rest_orderbook(answer, market.symbol)
                except AbsurdVenueData as exc:
                    self._drop(str(exc))
                    continue
                self._notify(market)
        except VenueError as exc:
            logger.bind(venue=self.venue).warning("REST resync failed: {}", exc)

    async def fetch_funding_history(self, symbol: str, since_ts_ms: int) -> tuple[list[Any], list[str]]:
        """Settled funding of ``symbol`` since ``since_ts_ms`` (validated; see adapters/funding_history.py)."""
        from adapters.funding_history import bybit_rows, settlements_from_rows

        market = self._markets[symbol]
        answer = await self._http.call("get_funding_rate_history", category=config.CATEGORY,
                                       symbol=market.venue_symbol, startTime=since_ts_ms, endTime=self._now_ms(),
                                       limit=200)
        quote = self._quotes.get(market.venue_symbol)
        return settlements_from_rows(self.venue, symbol, bybit_rows(answer),
                                     interval_hours=market.instrument.funding_interval_hours,
                                     mark_price=quote.mark_price if quote else Decimal(0), since_ts_ms=since_ts_ms)

    def _topics(self) -> list[str]:
        names = [m.venue_symbol for m in self._markets.values()]
        return [f"tickers.{n}" for n in names] + [f"orderbook.{BOOK_DEPTH}.{n}" for n in names]

    async def run(self, *, max_backoff_s: float = 30.0) -> None:
        """Keep the data current until cancelled: stream, watchdog, REST resync, reconnect (and
        the companions, e.g. the private order stream)."""
        async with anyio.create_task_group() as tg:
            for companion in self.companions:
                tg.start_soon(companion)
            await self._run_public(max_backoff_s)

    async def _run_public(self, max_backoff_s: float) -> None:
        import websockets

        backoff = 0.5
        while True:
            try:
                async with websockets.connect(self._ws_url, ping_interval=None, max_size=2**23) as ws:
                    await self._subscribe(ws, self._topics())
                    backoff = 0.5
                    await self._pump(ws)
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                logger.bind(venue=self.venue).warning("public stream dropped: {}", type(exc).__name__)
            self.reconnects += 1
            self._gap = False
            for book in self._books.values():
                book.reset()  # no ghost levels survive a reconnect
            await self.resync_rest()
            await anyio.sleep(backoff * (1 + random.random()))
            backoff = min(max_backoff_s, backoff * 2)

    async def _subscribe(self, ws: Any, topics: Iterable[str]) -> None:
        topics = list(topics)
        for i in range(0, len(topics), SUBSCRIBE_BATCH):
            await ws.send(json.dumps({"op": "subscribe", "args": topics[i:i + SUBSCRIBE_BATCH]}))

    async def _pump(self, ws: Any) -> None:
        last_ping = time.monotonic()
        while True:
            if time.monotonic() - last_ping > PING_EVERY_S:
                await ws.send(json.dumps({"op": "ping"}))
                last_ping = time.monotonic()
            with anyio.move_on_after(self._stale_after_s) as scope:
                raw = await ws.recv()
            if scope.cancelled_caught:
                logger.bind(venue=self.venue).warning("public stream silent for {} s: reconnecting", self._stale_after_s)
                return
            await behind_orders()  # an entry's orders being handed to the venues go first
            try:
                message = json.loads(raw)
            except ValueError:
                self._drop("public stream frame is not JSON")
                continue
            if isinstance(message, Mapping):
                self.handle(message)
            if self.needs_resubscribe():
                return  # a sequence gap: reconnect for fresh snapshots
