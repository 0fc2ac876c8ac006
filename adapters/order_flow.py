"""Venue-independent order rules every live executor applies before and after it talks to a venue.

- ``check_request``: size positive, a whole number of lots, at least the minimum; a violation is
  ``OrderRejected`` naming ``size_base`` (nothing is sent).
- ``bound_price``: the IOC limit price. A MARKET request is bounded by the slippage cap from the
  book's best opposite price; every price is rounded onto the tick CONSERVATIVELY (never past the
  cap), unlike ccxt's ``price_to_precision``.
- ``reduce_only_size``: what a reduce-only order may send against the venue's position (never
  more than closes it, whole lots); one that would open or grow a position is ``OrderRejected``.
- ``SendLedger``: remembers when each client id was (last) sent, so ``get_order`` answers None
  ("can never execute") only after the venue-side expiry of the request (recv window + clock skew
  allowance) has passed; before that a not-found is "unknown yet" (``TemporaryVenueError``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from adapters.errors import OrderRejected, TemporaryVenueError
from adapters.markets import VenueMarket, round_limit_price, round_size_down
from bot.core.domain import BPS, OrderBook, OrderRequest, OrderSide, OrderType


def check_request(request: OrderRequest, market: VenueMarket) -> None:
    """Raise ``OrderRejected`` naming ``size_base`` / ``limit_price`` when the request cannot be valid."""
    size = request.size_base
    inst = market.instrument
    if not isinstance(size, Decimal) or not size.is_finite() or size <= 0:
        raise OrderRejected(request.venue, f"size_base must be positive, got {size}")
    lots = size / inst.lot_size_base
    if lots != lots.to_integral_value():
        raise OrderRejected(request.venue, f"size_base {size} is not a multiple of the lot {inst.lot_size_base}")
    if size < inst.min_size_base:
        raise OrderRejected(request.venue, f"size_base {size} is below the minimum {inst.min_size_base}")
    if request.limit_price is not None and (not request.limit_price.is_finite() or request.limit_price <= 0):
        raise OrderRejected(request.venue, f"limit_price must be positive, got {request.limit_price}")


def is_priced_limit(request: OrderRequest) -> bool:
    """A LIMIT request with its own price: ``bound_price`` needs no book for it (callers skip the read)."""
    return request.order_type is OrderType.LIMIT and request.limit_price is not None


def bound_price(request: OrderRequest, market: VenueMarket, book: OrderBook | None,
                max_slippage_bps: Decimal) -> Decimal:
    """The limit price to send: the request's own (rounded conservatively) or, for MARKET, the
    best opposite price moved by ``max_slippage_bps`` against us. No book: ``TemporaryVenueError``
    (we never send an unbounded order)."""
    tick = market.instrument.tick_size
    if is_priced_limit(request):
        return round_limit_price(request.limit_price, tick, request.side)
    if book is None:
        raise TemporaryVenueError(request.venue, f"no order book for {request.symbol}: cannot bound a market order")
    best = book.best_ask if request.side is OrderSide.BUY else book.best_bid
    if best is None:
        raise TemporaryVenueError(request.venue, f"empty {request.side.value} side for {request.symbol}")
    width = max_slippage_bps * BPS
    raw = best * (1 + width) if request.side is OrderSide.BUY else best * (1 - width)
    price = round_limit_price(raw, tick, request.side)
    if price <= 0:
        raise OrderRejected(request.venue, f"limit_price bound {raw} rounds to nothing on tick {tick}")
    return price


def reduce_only_size(request: OrderRequest, market: VenueMarket, position_base: Decimal) -> Decimal:
    """The size a reduce-only ``request`` may send when the venue holds ``position_base`` (signed):
    at most the position, rounded down to whole lots. ``OrderRejected`` when the order would open or
    increase a position, or the position is below one lot."""
    closing = ((request.side is OrderSide.SELL and position_base > 0)
               or (request.side is OrderSide.BUY and position_base < 0))
    if not closing:
        raise OrderRejected(request.venue, f"reduce_only {request.side.value} would open or increase "
                                           f"a position of {position_base} {request.symbol}")
    size = min(request.size_base, round_size_down(abs(position_base), market.instrument.lot_size_base))
    if size <= 0:
        raise OrderRejected(request.venue, f"reduce_only: position {position_base} is below one lot")
    return size


@dataclass
class SendLedger:
    """When each client order id was last sent from this process (ms), and when the process started."""

    expiry_ms: int  # venue-side request expiry (recv window) + clock-skew allowance
    started_ms: int
    _sent_ms: dict[str, int] = field(default_factory=dict)

    def sent(self, client_order_id: str, now_ms: int) -> None:
        self._sent_ms[client_order_id] = now_ms

    def was_sent(self, client_order_id: str) -> bool:
        """True when this process has sent ``client_order_id`` before."""
        return client_order_id in self._sent_ms

    def may_still_arrive(self, client_order_id: str, now_ms: int) -> bool:
        """True while a not-found id could still reach the venue: sent (or, unknown to this
        process, possibly sent before a restart) less than ``expiry_ms`` ago."""
        since = self._sent_ms.get(client_order_id, self.started_ms)
        return now_ms < since + self.expiry_ms
