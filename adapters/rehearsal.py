"""Order rehearsals: an order built and signed by the very code that sends one, and never sent.

An entry is rare; between two, the bot's other work (streams, reads, the strategy's passes) pushes
the order path's code and data out of the CPU caches, and the next entry's orders run it cold.
Measured on the bench VM, a Binance USD-M order from ``place_order`` to its request took ~0.09 ms
run back to back and ~0.42 ms after other work had evicted the caches; a Hyperliquid one 0.14 and
0.52 ms. Low-latency trading systems keep such a path warm by exercising it with orders that are
never sent; each live executor's ``rehearse_order`` does that for one symbol (ccxt venues:
``CcxtExecutor``; Bybit: ``BybitExecutor`` through pybit), and the busy-polling loop
(``live.busy_poll``, which spends an idle CPU anyway) runs one rehearsal now and then
(``bot.rehearsals``).

How "never sent" is made sure, independently of each other:
- the one door every request of a client goes through is guarded, once, when the client is built:
  ccxt's ``fetch`` (``install_rehearsal_guard``) and the ``send`` of pybit's ``requests`` session
  (``guard_requests_session``). While ``REHEARSING`` is set, the guard raises ``Rehearsed`` before
  anything is written; ccxt's throttle neither waits nor charges the rate budget then;
- ``REHEARSING`` is a context variable set only for the duration of one synchronous call on the
  event-loop thread: a real request (another task, a worker thread) never sees it set;
- ccxt's coroutine is driven with one ``send``: it ends at the guard, or it is closed at its first
  suspension (before any I/O: a request is written only past ``fetch``), so no rehearsal outlives the
  call or runs later on the loop; pybit's call is synchronous and ends at the guard;
- ``Rehearsed`` is a ``BaseException``: neither ccxt, pybit nor our adapters catch it as an error.
A rehearsal touches no ledger, limiter or order state of ours, and no venue state.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from contextvars import ContextVar
from decimal import ROUND_CEILING, Decimal
from typing import Any

from adapters.errors import VenueError
from adapters.markets import VenueMarket
from adapters.order_flow import bound_price, check_request
from bot.core.domain import LegSide, OrderBook, OrderRequest, OrderSide, OrderType
from storage.ids import client_order_id

REHEARSING: ContextVar[bool] = ContextVar("order_rehearsal", default=False)
# A rehearsal's client id: well-formed for every venue's codec, never sent.
REHEARSAL_CLIENT_ID = client_order_id("000000000000", "open", LegSide.LONG, 0)


class Rehearsed(BaseException):
    """Raised by a guarded client during a rehearsal: the request was built, not sent."""


def rehearsal_request(venue: str, market: VenueMarket, book: OrderBook | None) -> OrderRequest | None:
    """An entry-like order to rehearse on ``market``: an IOC buy at the best ask of the smallest
    size the venue takes (its minimum size and notional, whole lots). None without asks."""
    if book is None or not book.asks:
        return None
    inst = market.instrument
    price = book.asks[0].price
    lots = max(inst.min_size_base, inst.min_notional_usd / price) / inst.lot_size_base
    size = inst.lot_size_base * max(lots.to_integral_value(rounding=ROUND_CEILING), Decimal(1))
    return OrderRequest(client_order_id=REHEARSAL_CLIENT_ID, venue=venue, symbol=market.symbol,
                        side=OrderSide.BUY, size_base=size, order_type=OrderType.LIMIT, limit_price=price)


def rehearsal_terms(venue: str, markets: Mapping[str, VenueMarket], book_for: Callable[[str], OrderBook | None],
                    symbol: str, max_slippage_bps: Decimal) -> tuple[VenueMarket, OrderRequest, Decimal] | None:
    """An executor's rehearsal order on ``symbol`` through its own first steps (the feed's book,
    checked as it is read; the request's checks; the slippage bound): (market, request, price), or
    None when there is nothing to rehearse with now (unknown symbol, no book, an absurd book, terms
    refused: the same would stop a real order)."""
    market = markets.get(symbol)
    if market is None:
        return None
    try:
        book = book_for(symbol)
        request = rehearsal_request(venue, market, book)
        if request is None:
            return None
        check_request(request, market)
        return market, request, bound_price(request, market, book, max_slippage_bps)
    except VenueError:
        return None


def install_rehearsal_guard(exchange: Any) -> None:
    """Wrap a ccxt instance's ``fetch`` so that no request leaves while ``REHEARSING`` is set."""
    original = exchange.fetch
    if getattr(original, "_rehearsal_guard", False):
        return

    async def fetch(*args: Any, **kwargs: Any) -> Any:
        if REHEARSING.get():
            raise Rehearsed()
        return await original(*args, **kwargs)

    fetch._rehearsal_guard = True  # type: ignore[attr-defined]
    exchange.fetch = fetch


def guard_requests_session(session: Any) -> None:
    """Wrap a ``requests`` session's ``send`` (pybit's client) the same way."""
    original = session.send
    if getattr(original, "_rehearsal_guard", False):
        return

    def send(*args: Any, **kwargs: Any) -> Any:
        if REHEARSING.get():
            raise Rehearsed()
        return original(*args, **kwargs)

    send._rehearsal_guard = True  # type: ignore[attr-defined]
    session.send = send


def rehearse(make: Callable[[], Coroutine[Any, Any, Any]]) -> bool:
    """Run ``make()``'s coroutine with ``REHEARSING`` set, synchronously, up to its request; True when
    it reached the guard (the whole path ran), False when it suspended first (closed there)."""
    token = REHEARSING.set(True)
    coro = None
    try:
        coro = make()
        coro.send(None)
        return False  # it suspended before any request: closed below, nothing ran past that point
    except Rehearsed:
        return True
    except StopIteration:
        return False
    finally:
        if coro is not None:
            coro.close()
        REHEARSING.reset(token)


def rehearse_call(fn: Callable[[], Any]) -> bool:
    """Call a synchronous client method (pybit's) with ``REHEARSING`` set; True when it reached the
    guard. False when it returned without a request (the guard was not on its path)."""
    token = REHEARSING.set(True)
    try:
        fn()
        return False
    except Rehearsed:
        return True
    finally:
        REHEARSING.reset(token)
