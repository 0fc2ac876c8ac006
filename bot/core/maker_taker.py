"""Maker-taker execution choices (pure): which leg rests as the maker, at what price, at what fees.

In ``strategy.execution = "maker_taker"`` one entry leg rests as a post-only maker limit order and
the other leg is sent as a taker IOC the moment (and by as much as) the maker leg fills.

Which leg is the maker: the one whose venue saves the most by making instead of taking, i.e.
the largest ``taker_bps - maker_bps``. That is exactly the choice that minimises the entry's total
fee ``maker(M) + taker(other)``: ``maker(A) + taker(B) < maker(B) + taker(A)`` iff
``taker(A) - maker(A) > taker(B) - maker(B)``. On a tie (identical schedules) the LONG leg rests.
The taker hedge then goes to the other venue; liquidity is not part of the choice because both legs
already passed the entry gate's depth check within ``risk.max_slippage_bps``.

Exits stay taker-taker (both legs IOC, concurrently): an exit is often an emergency, and a resting
exit would leave the position to the market's mercy for the length of the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from bot.core.domain import ExecutionMode, FeeSchedule, LegSide, Liquidity, OrderBook, OrderSide


def choose_maker_leg(long_fees: FeeSchedule, short_fees: FeeSchedule) -> LegSide:
    """The leg that rests as the maker: the larger taker-minus-maker saving; LONG on a tie."""
    long_saving = long_fees.taker_bps - long_fees.maker_bps
    short_saving = short_fees.taker_bps - short_fees.maker_bps
    return LegSide.SHORT if short_saving > long_saving else LegSide.LONG


def maker_limit_price(book: OrderBook | None, side: OrderSide, *, tick_size: Decimal,
                      offset_ticks: int = 0) -> Decimal | None:
    """Post-only price: our own side's touch (best bid for a buy, best ask for a sell) moved
    ``offset_ticks`` away from the market, on the tick grid. None when that side of the book is
    empty or the price would not be positive."""
    if book is None:
        return None
    touch = book.best_bid if side is OrderSide.BUY else book.best_ask
    if touch is None:
        return None
    if side is OrderSide.BUY:
        price = (touch / tick_size).to_integral_value(rounding=ROUND_FLOOR) * tick_size - tick_size * offset_ticks
    else:
        price = (touch / tick_size).to_integral_value(rounding=ROUND_CEILING) * tick_size + tick_size * offset_ticks
    return price if price > 0 else None


@dataclass(frozen=True, slots=True)
class LegFeeRates:
    """Fee rates (fractions of notional) of each leg's entry and exit execution."""

    long_entry: Decimal
    short_entry: Decimal
    long_exit: Decimal
    short_exit: Decimal


def leg_fee_rates(long_fees: FeeSchedule, short_fees: FeeSchedule, execution: ExecutionMode,
                  liquidity: Liquidity = Liquidity.TAKER) -> LegFeeRates:
    """What each execution really pays. ``TAKER`` mode: every execution at ``liquidity`` (the
    scanner's historical parameter). ``MAKER_TAKER``: the maker leg's ENTRY at its maker fee, the
    other entry and both exits at taker fees."""
    if execution is ExecutionMode.TAKER:
        long_rate, short_rate = long_fees.rate(liquidity), short_fees.rate(liquidity)
        return LegFeeRates(long_rate, short_rate, long_rate, short_rate)
    maker = choose_maker_leg(long_fees, short_fees)
    long_taker, short_taker = long_fees.rate(Liquidity.TAKER), short_fees.rate(Liquidity.TAKER)
    return LegFeeRates(
        long_entry=long_fees.rate(Liquidity.MAKER) if maker is LegSide.LONG else long_taker,
        short_entry=short_fees.rate(Liquidity.MAKER) if maker is LegSide.SHORT else short_taker,
        long_exit=long_taker,
        short_exit=short_taker,
    )


def round_trip_rate_floor(fees: FeeSchedule, execution: ExecutionMode,
                          liquidity: Liquidity = Liquidity.TAKER) -> Decimal:
    """The least one leg on this venue can pay for entry + exit (a lower bound used for pruning):
    ``2 x rate(liquidity)`` in TAKER mode; in MAKER_TAKER the cheaper of being the maker leg
    (maker + taker) or the taker leg (2 x taker)."""
    if execution is ExecutionMode.TAKER:
        return 2 * fees.rate(liquidity)
    taker = fees.rate(Liquidity.TAKER)
    return min(fees.rate(Liquidity.MAKER) + taker, 2 * taker)
