"""Compose per-venue live parts into the application's ports.

``LiveMarketFeed`` joins each venue's market-data part (Bybit's own stream client or the shared
ccxt feed) into one ``bot.core.ports.MarketFeed``; ``MultiVenueExecutor`` routes the ``Executor``
contract to each venue's executor by venue name. Venues settle funding themselves, so
``advance_to`` returns no settlements: payments are read back from the venues.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, Protocol

import anyio

from adapters.errors import AbsurdVenueData, OrderRejected
from bot.core.domain import (
    FeeSchedule,
    Fill,
    FundingPayment,
    FundingQuote,
    FundingSettlement,
    Instrument,
    OrderBook,
    OrderReport,
    OrderRequest,
    VenuePosition,
    exchange_of,
    is_spot,
)
from bot.core.ports import Executor


class VenueMarketData(Protocol):
    """What each venue's live market-data part offers."""

    venue: str

    def instruments(self) -> list[Instrument]: ...

    def instrument(self, symbol: str) -> Instrument | None: ...

    def fee_schedules(self) -> dict[str, FeeSchedule]: ...

    def quotes(self) -> list[FundingQuote]: ...

    def books(self) -> list[OrderBook]: ...

    def book(self, symbol: str) -> OrderBook | None: ...

    async def run(self) -> None: ...


# A venue's published book whose mid is this far (fraction) from the same venue's mark price is
# corrupt data, never priced on (a real market moves mark and book together; an absurd payload, or
# a feed mixing up units, moves one of them by orders of magnitude).
MAX_BOOK_MARK_DIVERGENCE = Decimal("0.25")


def reference_mark(part: VenueMarketData, symbol: str) -> Decimal | None:
    """The price a book of ``symbol`` on ``part`` is checked against: a perp venue's own mark price; for
    a spot market, its ``mark_source`` (the perpetuals' mark of the same coin, set by ``LiveMarketFeed``),
    never the spot market's own quote (that is its book's mid: checking a book against itself proves
    nothing). None when there is no such price yet."""
    if is_spot(part.venue):
        source: Callable[[str], Decimal | None] | None = getattr(part, "mark_source", None)
        return source(symbol) if source is not None else None
    lookup: Callable[[str], FundingQuote | None] | None = getattr(part, "quote", None)
    if callable(lookup):  # the parts keep their quotes by symbol: one read, not a scan of every quote
        quote = lookup(symbol)
    else:
        quote = next((q for q in part.quotes() if q.symbol == symbol), None)
    return quote.mark_price if quote is not None and quote.mark_price > 0 else None


def book_divergence(part: VenueMarketData, symbol: str, book: OrderBook | None) -> str | None:
    """Why ``book`` (of ``symbol`` on ``part``'s venue) must not be priced on: its mid disagrees with
    the ``reference_mark`` by more than ``MAX_BOOK_MARK_DIVERGENCE``. None when it agrees, or when
    there is nothing to compare (no book, an empty side, no mark yet)."""
    if book is None or not book.bids or not book.asks:
        return None
    return _divergence(part, symbol, book, reference_mark(part, symbol))


def _divergence(part: VenueMarketData, symbol: str, book: OrderBook, mark: Decimal | None) -> str | None:
    if not book.bids or not book.asks or mark is None:
        return None
    mid = (book.bids[0].price + book.asks[0].price) / 2
    if abs(mid / mark - 1) > MAX_BOOK_MARK_DIVERGENCE:
        return f"{part.venue} {symbol}: book mid {mid} is far from the mark price {mark}; not priced on"
    return None


def mark_checked_book(part: VenueMarketData, symbol: str) -> OrderBook | None:
    """``part``'s book of ``symbol``, or None when its mid disagrees with the venue's own mark price
    by more than ``MAX_BOOK_MARK_DIVERGENCE`` (absurd data: the caller must not price on it)."""
    book = part.book(symbol)
    return _served(part, book, book_divergence(part, symbol, book))


def _served(part: VenueMarketData, book: OrderBook | None, problem: str | None) -> OrderBook | None:
    """``book``, or None (the part told why, when it can be told) when ``problem`` refuses it."""
    if problem is None:
        return book
    drop = getattr(part, "_drop", None)
    if drop is not None:
        drop(problem)
    return None


def executor_book(part: VenueMarketData, symbol: str) -> OrderBook | None:
    """The book an executor may price an order of ``symbol`` on: the feed's own book; None when the
    feed has none (the executor then reads one by REST and checks it with ``refuse_absurd_book``).
    A feed book that disagrees with the mark raises ``AbsurdVenueData``: "no usable book" must never
    send the executor to read the same corrupt data again by REST and price on that."""
    book = part.book(symbol)
    refuse_absurd_book(part, symbol, book)
    return book


def refuse_absurd_book(part: VenueMarketData, symbol: str, book: OrderBook | None) -> OrderBook | None:
    """``book`` unchanged, or ``AbsurdVenueData`` when it disagrees with the venue's mark price."""
    problem = book_divergence(part, symbol, book)
    if problem is not None:
        drop = getattr(part, "_drop", None)
        if drop is not None:
            drop(problem)
        raise AbsurdVenueData(part.venue, problem)
    return book


class LiveMarketFeed:
    """``MarketFeed`` over live venue parts. ``run()`` keeps every part current until cancelled."""

    def __init__(self, parts: Sequence[VenueMarketData], *, max_book_age_ms: int | None = None,
                 now_ms: Any = None) -> None:
        self._parts = {p.venue: p for p in parts}
        self._max_book_age_ms = max_book_age_ms
        self._now_ms = now_ms
        self._history: list[FundingSettlement] = []
        # (venue, symbol) -> (the part's book, the mark it was checked against, the book served or
        # None): a book is checked against the mark once, not on every read (a strategy pass reads
        # the books of the legs it ranks again on every pass), and a refused one is logged once
        self._checked: dict[tuple[str, str], tuple[OrderBook, Decimal | None, OrderBook | None]] = {}
        for part in parts:
            if is_spot(part.venue):  # spot books are checked against the perpetuals' mark of the coin
                part.mark_source = functools.partial(self.perp_mark, exchange_of(part.venue))  # type: ignore[attr-defined]

    def perp_mark(self, exchange: str, symbol: str) -> Decimal | None:
        """The mark price of ``symbol``'s perpetual: on ``exchange`` when it is in the session, else on
        the first other perp venue quoting it; None when none does."""
        perps = [p for p in self._parts.values() if not is_spot(p.venue)]
        perps.sort(key=lambda p: p.venue != exchange)
        for part in perps:
            mark = reference_mark(part, symbol)
            if mark is not None:
                return mark
        return None

    def venues(self) -> list[str]:
        return list(self._parts)

    def subscribe(self, on_update: Callable[[str, str], None]) -> None:
        """Call ``on_update(venue, symbol)`` after each book or funding update a venue part accepts
        (parts without the hook are skipped: their data is still read by every pass)."""
        for part in self._parts.values():
            if hasattr(part, "on_update"):
                part.on_update = on_update  # type: ignore[attr-defined]

    def instruments(self) -> list[Instrument]:
        return [i for p in self._parts.values() for i in p.instruments()]

    def fee_schedules(self) -> dict[str, FeeSchedule]:
        out: dict[str, FeeSchedule] = {}
        for p in self._parts.values():
            out.update(p.fee_schedules())
        return out

    def quotes(self) -> list[FundingQuote]:
        return [q for p in self._parts.values() for q in p.quotes()]

    def books(self) -> list[OrderBook]:
        return [b for p in self._parts.values() for b in p.books()
                if self._mark_checked(p, b.symbol) is not None]

    def book(self, venue: str, symbol: str) -> OrderBook | None:
        part = self._parts.get(venue)
        book = self._mark_checked(part, symbol) if part else None
        stale = (book is not None and self._max_book_age_ms is not None and self._now_ms is not None
                 and self._now_ms() - book.ts_ms > self._max_book_age_ms)
        if stale:
            return None  # the caller must not price on a stale book
        return book

    def _mark_checked(self, part: VenueMarketData, symbol: str) -> OrderBook | None:
        """``mark_checked_book``, remembered while the part's book and the mark are the same."""
        raw = part.book(symbol)
        if raw is None:
            return None
        mark = reference_mark(part, symbol)
        key = (part.venue, symbol)
        seen = self._checked.get(key)
        if seen is not None and seen[0] is raw and seen[1] == mark:
            return seen[2]
        served = _served(part, raw, _divergence(part, symbol, raw, mark))
        self._checked[key] = (raw, mark, served)
        return served

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        part = self._parts.get(venue)
        if part is None:
            return None
        return part.instrument(symbol)

    def advance_to(self, ts_ms: int) -> list[FundingSettlement]:
        return []

    def history_settlements(self, hours: int) -> list[FundingSettlement]:
        """The settlements of the last ``hours`` that ``load_history`` fetched at start-up (empty
        when it was not called or the venues gave none: the forecast then starts from zero levels)."""
        if not self._history:
            return []
        now = self._now_ms() if self._now_ms is not None else max(s.ts_ms for s in self._history)
        return [s for s in self._history if s.ts_ms >= now - hours * 3_600_000]

    async def load_history(self, hours: int, now_ms: int) -> list[str]:
        """Fetch each venue's settled funding of the last ``hours`` for every symbol (validated at the
        boundary: adapters/funding_history.py). Never raises for a venue error: a venue or symbol
        whose history cannot be read is named in the returned lines and left out."""
        from adapters.errors import VenueError

        lines: list[str] = []
        since = now_ms - hours * 3_600_000
        loaded: list[FundingSettlement] = []
        for venue, part in self._parts.items():
            fetch = getattr(part, "fetch_funding_history", None)
            if fetch is None:
                lines.append(f"{venue}: no funding history reader")
                continue
            count = 0
            for instrument in part.instruments():
                try:
                    settlements, dropped = await fetch(instrument.symbol, since)
                except VenueError as exc:
                    lines.append(f"{venue} {instrument.symbol}: funding history unavailable ({exc})")
                    continue
                lines.extend(f"{venue}: dropped {reason}" for reason in dropped)
                loaded.extend(settlements)
                count += len(settlements)
            lines.append(f"{venue}: {count} settlement(s) of the last {hours} h")
        self._history = sorted(loaded, key=lambda s: (s.ts_ms, s.venue, s.symbol))
        return lines

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            for part in self._parts.values():
                tg.start_soon(part.run)


class MultiVenueExecutor:
    """Routes each ``Executor`` call to the executor of the named venue."""

    def __init__(self, executors: dict[str, Executor]) -> None:
        self._executors = dict(executors)

    def venue_names(self) -> list[str]:
        """The venues (and spot markets) this executor routes to."""
        return list(self._executors)

    def _one(self, venue: str) -> Executor:
        executor = self._executors.get(venue)
        if executor is None:
            raise OrderRejected(venue, f"venue {venue!r} is not configured for live trading")
        return executor

    def _some(self, venue: str | None) -> Iterable[Executor]:
        return [self._one(venue)] if venue is not None else list(self._executors.values())

    async def place_order(self, request: OrderRequest) -> OrderReport:
        return await self._one(request.venue).place_order(request)

    async def cancel_order(self, venue: str, client_order_id: str) -> OrderReport | None:
        return await self._one(venue).cancel_order(venue, client_order_id)

    async def advance(self, settlements: list[FundingSettlement]) -> list[FundingPayment]:
        """Real venues settle funding and match orders themselves: nothing to do here; payments
        arrive through ``funding_payments_since`` (reconciliation)."""
        return []

    async def aclose(self) -> None:
        """The session that built the venues closes their connections (``LiveSession.close``)."""
        return None

    async def cancel_all_orders(self, venue: str | None = None) -> int:
        total = 0
        for name, ex in ([(venue, self._one(venue))] if venue else self._executors.items()):
            total += await ex.cancel_all_orders(name)
        return total

    async def get_order(self, venue: str, client_order_id: str) -> OrderReport | None:
        return await self._one(venue).get_order(venue, client_order_id)

    async def positions(self, venue: str | None = None) -> list[VenuePosition]:
        """Every venue's positions, the venues asked concurrently (each is throttled by its own rate
        limits: asking one after another made a strategy pass wait for the sum)."""
        pairs = [(venue, self._one(venue))] if venue else list(self._executors.items())
        results = await _gather([lambda n=name, e=ex: e.positions(n) for name, ex in pairs])
        return [p for chunk in results for p in chunk]

    async def balances_usd(self) -> dict[str, Decimal]:
        """Every venue's equity, the venues asked concurrently (see ``positions``)."""
        out: dict[str, Decimal] = {}
        for chunk in await _gather([ex.balances_usd for ex in self._executors.values()]):
            out.update(chunk)
        return out

    async def fills_since(self, venue: str, since_ts_ms: int) -> list[Fill]:
        return await self._one(venue).fills_since(venue, since_ts_ms)

    async def funding_payments_since(self, venue: str, since_ts_ms: int) -> list[FundingPayment]:
        return await self._one(venue).funding_payments_since(venue, since_ts_ms)

    async def spot_wallet_base(self, market: str) -> dict[str, Decimal]:
        """``bot.core.ports.SpotWallet``: the base coins of the wallet behind spot ``market``."""
        executor = self._one(market)
        read = getattr(executor, "spot_wallet_base", None)
        if read is None:
            raise OrderRejected(market, f"{market!r} is not a spot market this bot can trade")
        return await read(market)


async def _gather(calls: Sequence[Any]) -> list[Any]:
    """Await every call concurrently; results in order. A failure is raised as itself (the first
    by call order, never wrapped in an exception group: callers catch our venue error classes),
    after the other calls have finished, as the sequential loop it replaces raised it."""
    if len(calls) == 1:
        return [await calls[0]()]
    results: list[Any] = [None] * len(calls)
    errors: list[Exception | None] = [None] * len(calls)

    async def one(i: int) -> None:
        try:
            results[i] = await calls[i]()
        except Exception as exc:  # noqa: BLE001 - re-raised below, unwrapped
            errors[i] = exc

    async with anyio.create_task_group() as tg:
        for i in range(len(calls)):
            tg.start_soon(one, i)
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise first
    return results
