"""Pure execution math for the paper venues: walking a book, fees, and position netting.

Nothing here reads a clock, does I/O or awaits. Levels are always best-first, as in
``bot.core.domain.OrderBook`` (a BUY consumes asks, lowest first; a SELL consumes bids, highest first).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from bot.core.domain import ZERO, BookLevel, OrderSide


@dataclass(frozen=True, slots=True)
class LevelFill:
    """The part of an order filled at one price level."""

    price: Decimal
    size_base: Decimal


@dataclass(frozen=True, slots=True)
class BookWalk:
    """The result of walking a book for ``requested_base``: per-level fills, best price first."""

    requested_base: Decimal
    fills: tuple[LevelFill, ...]

    @property
    def filled_base(self) -> Decimal:
        return sum((f.size_base for f in self.fills), ZERO)

    @property
    def remaining_base(self) -> Decimal:
        return self.requested_base - self.filled_base

    @property
    def notional_usd(self) -> Decimal:
        return sum((f.price * f.size_base for f in self.fills), ZERO)

    @property
    def vwap(self) -> Decimal | None:
        """Volume-weighted average fill price; None when nothing filled."""
        filled = self.filled_base
        return self.notional_usd / filled if filled else None

    @property
    def is_complete(self) -> bool:
        return self.remaining_base == ZERO


def price_acceptable(side: OrderSide, level_price: Decimal, limit_price: Decimal | None) -> bool:
    """Whether an order of ``side`` capped at ``limit_price`` may trade at ``level_price``."""
    if limit_price is None:
        return True
    return level_price <= limit_price if side is OrderSide.BUY else level_price >= limit_price


def floor_to_lot(size_base: Decimal, lot_size_base: Decimal | None) -> Decimal:
    """Round ``size_base`` down to a whole number of lots (unchanged when no lot is given)."""
    if lot_size_base is None or lot_size_base <= ZERO:
        return size_base
    lots = (size_base / lot_size_base).to_integral_value(rounding=ROUND_FLOOR)
    return lots * lot_size_base


def is_lot_multiple(size_base: Decimal, lot_size_base: Decimal) -> bool:
    return lot_size_base <= ZERO or size_base % lot_size_base == ZERO


def traded_through(levels: tuple[BookLevel, ...], side: OrderSide, limit_price: Decimal) -> tuple[BookLevel, ...]:
    """The levels strictly beyond ``limit_price`` for a resting order of ``side``: asks below a buy's
    price, bids above a sell's. A post-only order fills only against these (the market traded
    through it); levels exactly at its price are the queue it has no known place in."""
    if side is OrderSide.BUY:
        return tuple(level for level in levels if level.price < limit_price)
    return tuple(level for level in levels if level.price > limit_price)


def crossing_depth_base(
    levels: tuple[BookLevel, ...], side: OrderSide, limit_price: Decimal | None
) -> Decimal:
    """Total size an order of ``side`` could take from ``levels`` without passing ``limit_price``."""
    depth = ZERO
    for level in levels:
        if not price_acceptable(side, level.price, limit_price):
            break
        depth += level.size_base
    return depth


def walk_book(
    levels: tuple[BookLevel, ...],
    side: OrderSide,
    size_base: Decimal,
    *,
    limit_price: Decimal | None = None,
    lot_size_base: Decimal | None = None,
) -> BookWalk:
    """Fill ``size_base`` against ``levels`` (the side the order consumes), best level first.

    A ``limit_price`` stops the walk at the first level beyond it. When depth runs out the walk is
    partial. With ``lot_size_base`` the total filled is rounded down to whole lots, so a partial
    fill never leaves a position that is not a lot multiple.
    """
    if size_base <= ZERO:
        return BookWalk(requested_base=size_base, fills=())
    available = crossing_depth_base(levels, side, limit_price)
    target = floor_to_lot(min(size_base, available), lot_size_base)
    fills: list[LevelFill] = []
    left = target
    for level in levels:
        if left <= ZERO:
            break
        take = min(left, level.size_base)
        if take > ZERO:
            fills.append(LevelFill(price=level.price, size_base=take))
            left -= take
    return BookWalk(requested_base=size_base, fills=tuple(fills))


def deplete(levels: tuple[BookLevel, ...], consumed_base: Mapping[Decimal, Decimal]) -> tuple[BookLevel, ...]:
    """``levels`` minus what earlier orders already took from this same book snapshot, by price."""
    if not consumed_base:
        return levels
    out: list[BookLevel] = []
    for level in levels:
        left = level.size_base - consumed_base.get(level.price, ZERO)
        if left > ZERO:
            out.append(level if left == level.size_base else BookLevel(price=level.price, size_base=left))
    return tuple(out)


def fee_usd(price: Decimal, size_base: Decimal, fee_rate: Decimal) -> Decimal:
    """Fee for one fill; ``fee_rate`` is a fraction of notional (negative = rebate, so negative fee)."""
    return price * size_base * fee_rate


@dataclass(frozen=True, slots=True)
class NettedPosition:
    """A signed net position after one fill, and the PnL the fill realized."""

    size_base: Decimal  # + long, - short
    entry_price: Decimal  # average entry; 0 when flat
    realized_pnl_usd: Decimal


def net_fill(
    size_base: Decimal, entry_price: Decimal, side: OrderSide, price: Decimal, fill_base: Decimal
) -> NettedPosition:
    """Apply one fill to a signed net position with average entry price.

    Adding to a position (or opening one) averages the entry; reducing realizes
    ``closed x (price - entry) x sign``; a flip closes the old side and opens the rest at ``price``.
    """
    delta = fill_base if side is OrderSide.BUY else -fill_base
    new_size = size_base + delta
    if size_base == ZERO or (size_base > ZERO) == (delta > ZERO):
        new_entry = (abs(size_base) * entry_price + fill_base * price) / abs(new_size)
        return NettedPosition(size_base=new_size, entry_price=new_entry, realized_pnl_usd=ZERO)
    closed = min(fill_base, abs(size_base))
    sign = Decimal(1) if size_base > ZERO else Decimal(-1)
    realized = closed * (price - entry_price) * sign
    if new_size == ZERO:
        new_entry = ZERO
    elif (new_size > ZERO) == (size_base > ZERO):
        new_entry = entry_price
    else:
        new_entry = price
    return NettedPosition(size_base=new_size, entry_price=new_entry, realized_pnl_usd=realized)
