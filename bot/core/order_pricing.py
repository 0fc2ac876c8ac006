"""Protective limit prices for IOC orders (pure).

Entries, repairs and exits are sent as immediate-or-cancel LIMIT orders priced a bounded distance
through the best price, never as unbounded market orders: a thin or moving book then yields a
partial fill (which the repair path handles) instead of an arbitrarily bad price. Each repair
attempt widens the bound by ``widen_bps``.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from bot.core.domain import BPS, OrderBook, OrderSide


def protective_limit_price(
    book: OrderBook | None,
    side: OrderSide,
    *,
    max_slippage_bps: Decimal,
    tick_size: Decimal,
    attempt: int = 0,
    widen_bps: Decimal = Decimal(0),
) -> Decimal | None:
    """Worst acceptable price for ``side``: best price moved ``max_slippage + attempt x widen`` bps
    against us, rounded outward to the tick. None when the book has no price on that side."""
    if book is None:
        return None
    best = book.best_ask if side is OrderSide.BUY else book.best_bid
    if best is None:
        return None
    width = (max_slippage_bps + widen_bps * attempt) * BPS
    if side is OrderSide.BUY:
        raw = best * (1 + width)
        return (raw / tick_size).to_integral_value(rounding=ROUND_CEILING) * tick_size
    raw = best * (1 - width)
    price = (raw / tick_size).to_integral_value(rounding=ROUND_FLOOR) * tick_size
    return price if price > 0 else tick_size
