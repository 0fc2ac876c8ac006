"""Sanity checks on venue data before anything downstream may see it.

Every funding quote and order book, live or simulated, passes through ``validate_quote`` /
``validate_book``; a failure raises ``AbsurdVenueData`` naming the venue and the offending field,
and the caller drops the datum (keeping its previous, ageing one). Real venues have published
NaN prices, crossed books and a funding rate of 1.79e+11 %: none of that may reach the strategy.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.errors import AbsurdVenueData
from bot.core.domain import BookLevel, Fill, FundingQuote, OrderBook

DEFAULT_MAX_ABS_RATE_PER_HOUR = Decimal("0.01")  # 1 %/h: far beyond any venue's funding cap


def decimal_from_wire(value: Any, field: str, venue: str) -> Decimal:
    """Convert a JSON scalar (str, int, float or Decimal) into a finite ``Decimal``.

    Floats go through their shortest ``repr`` so 0.1 becomes Decimal("0.1"), not its binary
    expansion. Booleans, None, empty or unparsable strings, NaN and infinities raise
    ``AbsurdVenueData`` naming ``field``.
    """
    if isinstance(value, bool) or value is None:
        raise AbsurdVenueData(venue, f"{field}: expected a number, got {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise AbsurdVenueData(venue, f"{field}: not a number: {value!r}") from None
    else:
        raise AbsurdVenueData(venue, f"{field}: expected a number, got {type(value).__name__}")
    if not result.is_finite():
        raise AbsurdVenueData(venue, f"{field}: not finite: {value!r}")
    return result


def validate_quote(
    q: FundingQuote, *, max_abs_rate_per_hour: Decimal = DEFAULT_MAX_ABS_RATE_PER_HOUR
) -> FundingQuote:
    """Return ``q`` unchanged if it is sane, else raise ``AbsurdVenueData`` naming the field.

    Checks: every number finite, interval and mark price positive, timestamps non-negative
    ints, and the hourly-normalised rate within ``max_abs_rate_per_hour``.
    """
    venue = q.venue
    rate = _finite(q.rate_per_interval, "rate_per_interval", venue)
    interval = _positive(q.interval_hours, "interval_hours", venue)
    _positive(q.mark_price, "mark_price", venue)
    _timestamp(q.ts_ms, "ts_ms", venue)
    _timestamp(q.next_funding_ts_ms, "next_funding_ts_ms", venue)
    hourly = rate / interval
    if abs(hourly) > max_abs_rate_per_hour:
        raise AbsurdVenueData(
            venue,
            f"rate_per_interval {rate} over {interval}h is {hourly}/h for {q.symbol}, "
            f"beyond the cap of {max_abs_rate_per_hour}/h",
        )
    return q


def validate_book(b: OrderBook) -> OrderBook:
    """Return ``b`` unchanged if it is sane, else raise ``AbsurdVenueData`` naming the field.

    Checks: every price and size finite and positive, bids strictly descending, asks strictly
    ascending, and the book not crossed (best bid < best ask). An empty side is allowed.
    """
    venue = b.venue
    _timestamp(b.ts_ms, "ts_ms", venue)
    _levels(b.bids, "bids", venue, descending=True)
    _levels(b.asks, "asks", venue, descending=False)
    if b.bids and b.asks and b.bids[0].price >= b.asks[0].price:
        raise AbsurdVenueData(
            venue, f"crossed book for {b.symbol}: best bid {b.bids[0].price} >= best ask {b.asks[0].price}"
        )
    return b


def _levels(levels: tuple[BookLevel, ...], side: str, venue: str, *, descending: bool) -> None:
    # Fast path (every level sane, no per-level message built); the first doubt hands the side to
    # the exact checks below, which raise naming the field.
    previous: Decimal | None = None
    for level in levels:
        price, size = level.price, level.size_base
        if not (isinstance(price, Decimal) and isinstance(size, Decimal) and price.is_finite()
                and size.is_finite() and price > 0 and size > 0
                and (previous is None or (price < previous if descending else price > previous))):
            _levels_exact(levels, side, venue, descending=descending)
            return
        previous = price


def _levels_exact(levels: tuple[BookLevel, ...], side: str, venue: str, *, descending: bool) -> None:
    previous: Decimal | None = None
    for i, level in enumerate(levels):
        price = _positive(level.price, f"{side}[{i}].price", venue)
        _positive(level.size_base, f"{side}[{i}].size_base", venue)
        if previous is not None and (price >= previous if descending else price <= previous):
            order = "descending" if descending else "ascending"
            raise AbsurdVenueData(
                venue, f"{side}[{i}].price {price} breaks strictly {order} order after {previous}"
            )
        previous = price


def _finite(value: object, field: str, venue: str) -> Decimal:
    if not isinstance(value, Decimal):
        raise AbsurdVenueData(venue, f"{field}: expected Decimal, got {type(value).__name__}")
    if not value.is_finite():
        raise AbsurdVenueData(venue, f"{field}: not finite: {value}")
    return value


def _positive(value: object, field: str, venue: str) -> Decimal:
    result = _finite(value, field, venue)
    if result <= 0:
        raise AbsurdVenueData(venue, f"{field}: must be positive, got {result}")
    return result


def _timestamp(value: object, field: str, venue: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AbsurdVenueData(venue, f"{field}: expected a non-negative int of ms, got {value!r}")


# A spot fee above this fraction of what traded is a unit mistake (a fee in quote coin read as
# base, a percent read as a fraction), never a real venue fee: the highest base tiers are ~0.2 %.
MAX_SPOT_FEE_FRACTION = Decimal("0.01")


def validate_spot_fill(f: Fill) -> Fill:
    """Return spot fill ``f`` unchanged if it is sane, else raise ``AbsurdVenueData`` naming the field.

    Checks: price and size finite and positive, ``fee_base`` finite, not negative and at most
    ``MAX_SPOT_FEE_FRACTION`` of the size (so ``net_base`` is positive), ``fee_usd`` finite and at most
    that fraction of the notional (a rebate may be negative, bounded the same way), timestamp an int."""
    venue = f.venue
    price = _positive(f.price, "execPrice", venue)
    size = _positive(f.size_base, "execQty", venue)
    fee_base = _finite(f.fee_base, "fee_base", venue)
    if fee_base < 0 or fee_base > size * MAX_SPOT_FEE_FRACTION:
        raise AbsurdVenueData(venue, f"fee_base {fee_base} {f.symbol} on a fill of {size}: outside "
                                     f"[0, {MAX_SPOT_FEE_FRACTION} x size]")
    fee_usd = _finite(f.fee_usd, "fee_usd", venue)
    if abs(fee_usd) > price * size * MAX_SPOT_FEE_FRACTION:
        raise AbsurdVenueData(venue, f"fee_usd {fee_usd} on a notional of {price * size}: beyond "
                                     f"{MAX_SPOT_FEE_FRACTION} of it")
    _timestamp(f.ts_ms, "ts_ms", venue)
    return f


def validate_wallet_base(venue: str, balances: dict[str, Decimal]) -> dict[str, Decimal]:
    """Return the spot wallet ``balances`` (symbol -> base units) unchanged if every one is a finite,
    non-negative Decimal, else raise ``AbsurdVenueData`` naming the coin (a negative balance would be
    a loan the bot never takes; reading it as a holding could sell coins that are not there)."""
    for coin, amount in balances.items():
        value = _finite(amount, f"walletBalance[{coin}]", venue)
        if value < 0:
            raise AbsurdVenueData(venue, f"walletBalance[{coin}]: negative ({value}); the bot never borrows")
    return balances
