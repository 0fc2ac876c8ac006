"""Pure funding-arbitrage arithmetic (Decimal only; no clock, no I/O).

Conventions (README, "What `scan` shows and how each number is computed"):

* A funding rate is a fraction of notional paid every ``interval_hours`` (longs pay shorts when it
  is positive). Rates on different intervals are compared only after conversion to an HOURLY rate.
* A pair is LONG on one venue and SHORT on another with one base size. Per hour and per unit of
  notional it earns ``short_rate / short_interval - long_rate / long_interval``.
* Costs are a ROUND TRIP: fees on entry and on exit of both legs, slippage on entry and on exit of
  both legs, and the adverse entry basis.

Cost model, and why:

* Slippage of one execution is measured against that venue's OWN mid price (so half the bid-ask
  spread is part of it). The exit is estimated on the CURRENT book: the long leg will close by
  selling into the same venue's bids, the short leg by buying its asks, for the same size. Books
  change; this is an estimate, never a promise.
* Entry basis is measured mid to mid. Only an ADVERSE basis (the long venue's mid above the short
  venue's) is a cost: ``max(0, (p_long - p_short) / p_long) x notional``. A favourable basis is NOT
  counted as a gain: it pays only if prices converge before the exit, which we cannot rely on.
  Because slippage is already measured from each venue's own mid, the fill-to-fill difference
  (``vwap_long - vwap_short`` = mid basis + entry slippage) is never counted twice.
* Fees are charged on the notional of each fill (entry fills at the walked VWAP, exit fills at the
  estimated exit VWAP). Maker or taker is chosen by the caller: pass the ``Liquidity`` the
  execution mode will really get. The book walk is kept for maker orders too (conservative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from bot.core.domain import (
    BPS,
    HOURS_PER_YEAR,
    ZERO,
    ExecutionMode,
    FeeSchedule,
    Liquidity,
    OrderBook,
    OrderSide,
)
from bot.core.maker_taker import leg_fee_rates

__all__ = [
    "CostBreakdown",
    "adverse_basis_usd",
    "apr_from_hourly",
    "book_costs",
    "breakeven_hours",
    "common_lot_step",
    "estimated_costs",
    "expected_net",
    "fee_usd",
    "fill_notional_usd",
    "floor_to_step",
    "hourly_rate",
    "pair_spread_hourly",
    "slippage_usd",
    "vwap",
]


def hourly_rate(rate_per_interval: Decimal, interval_hours: Decimal) -> Decimal:
    """Funding rate per hour. Raises ``ValueError`` when ``interval_hours`` is not positive."""
    if not interval_hours > 0:
        raise ValueError(f"interval_hours must be positive, got {interval_hours}")
    return rate_per_interval / interval_hours


def apr_from_hourly(hourly: Decimal) -> Decimal:
    """Simple (non-compounded) annual rate: hourly x 8760."""
    return hourly * HOURS_PER_YEAR


def pair_spread_hourly(
    long_rate: Decimal,
    long_interval_hours: Decimal,
    short_rate: Decimal,
    short_interval_hours: Decimal,
) -> Decimal:
    """Funding earned per hour per unit of notional by LONG at ``long_rate`` / SHORT at ``short_rate``.

    ``r_s / h_s - r_l / h_l``: the long pays its (positive) rate, the short receives its rate.
    """
    return hourly_rate(short_rate, short_interval_hours) - hourly_rate(long_rate, long_interval_hours)


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Round a non-negative ``value`` DOWN to a whole multiple of ``step`` (> 0)."""
    if not step > 0:
        raise ValueError(f"step must be positive, got {step}")
    return (value // step) * step


def common_lot_step(step_a: Decimal, step_b: Decimal) -> Decimal:
    """The finest quantity step that is a whole multiple of both steps (their least common multiple).

    For the usual power-of-ten lot sizes this is simply the coarser of the two
    (0.001 and 0.01 -> 0.01); for 0.02 and 0.03 it is 0.06.
    """
    if not (step_a > 0 and step_b > 0):
        raise ValueError(f"lot steps must be positive, got {step_a} and {step_b}")
    if step_a % step_b == 0:
        return step_a
    if step_b % step_a == 0:
        return step_b
    exponent = min(step_a.normalize().as_tuple().exponent, step_b.normalize().as_tuple().exponent)
    assert isinstance(exponent, int)  # finite by the check above
    units = math.lcm(int(step_a.scaleb(-exponent)), int(step_b.scaleb(-exponent)))
    return Decimal(units).scaleb(exponent).normalize()


def fill_notional_usd(book: OrderBook, side: OrderSide, size_base: Decimal) -> Decimal | None:
    """Quote notional (sum of price x size) of a market order of ``size_base`` walking ``book``.

    Returns None when the book's visible depth on that side cannot fill the whole size
    (insufficient depth). Levels with a non-positive size are ignored.
    """
    if size_base < 0:
        raise ValueError(f"size_base must not be negative, got {size_base}")
    remaining = size_base
    notional = ZERO
    for level in book.levels_for(side):
        available = level.size_base
        if available <= 0:
            continue
        if available >= remaining:
            return notional + remaining * level.price
        notional += available * level.price
        remaining -= available
    return notional if remaining == 0 else None


def vwap(book: OrderBook, side: OrderSide, size_base: Decimal) -> Decimal | None:
    """Average fill price of a market order of ``size_base`` (> 0); None on insufficient depth."""
    if not size_base > 0:
        raise ValueError(f"size_base must be positive, got {size_base}")
    notional = fill_notional_usd(book, side, size_base)
    return None if notional is None else notional / size_base


def slippage_usd(book: OrderBook, side: OrderSide, size_base: Decimal) -> Decimal | None:
    """Cost in USD of filling ``size_base`` against the book versus its mid price.

    Positive for a normal (uncrossed) book. None when the book has no mid or not enough depth.
    """
    mid = book.mid
    if mid is None:
        return None
    notional = fill_notional_usd(book, side, size_base)
    if notional is None:
        return None
    at_mid = size_base * mid
    return notional - at_mid if side is OrderSide.BUY else at_mid - notional


def fee_usd(notional_usd: Decimal, fees: FeeSchedule, liquidity: Liquidity) -> Decimal:
    """Fee on one fill of ``notional_usd``; negative for a maker rebate."""
    return notional_usd * fees.rate(liquidity)


def adverse_basis_usd(long_price: Decimal, short_price: Decimal, notional_usd: Decimal) -> Decimal:
    """Entry basis cost: ``max(0, (p_long - p_short) / p_long) x notional``.

    Only an adverse basis (buying above where we sell) counts; a favourable one is not a gain
    (see the module docstring).
    """
    if long_price <= short_price:
        return ZERO
    return (long_price - short_price) * notional_usd / long_price  # multiply first: exact more often


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """Round-trip costs of one pair for one size, in USD (positive = paid).

    ``long_entry_price``/``short_entry_price`` are the expected average entry prices the costs were
    computed from (the VWAPs, or the mark prices when costs are estimated).
    """

    entry_fees_usd: Decimal
    exit_fees_usd: Decimal
    entry_slippage_usd: Decimal
    exit_slippage_usd: Decimal
    basis_usd: Decimal
    long_entry_price: Decimal
    short_entry_price: Decimal

    @property
    def fees_usd(self) -> Decimal:
        return self.entry_fees_usd + self.exit_fees_usd

    @property
    def slippage_usd(self) -> Decimal:
        return self.entry_slippage_usd + self.exit_slippage_usd

    @property
    def total_usd(self) -> Decimal:
        return self.fees_usd + self.slippage_usd + self.basis_usd


def book_costs(
    long_book: OrderBook,
    short_book: OrderBook,
    long_fees: FeeSchedule,
    short_fees: FeeSchedule,
    size_base: Decimal,
    liquidity: Liquidity = Liquidity.TAKER,
    execution: ExecutionMode = ExecutionMode.TAKER,
) -> CostBreakdown | None:
    """Round-trip costs of LONG ``size_base`` on ``long_book`` / SHORT it on ``short_book``.

    Entry: buy the long venue's asks, sell the short venue's bids. Exit (estimated on the same
    books): sell the long venue's bids, buy the short venue's asks. Returns None when either
    book lacks a side, cannot fill the size on the side the entry OR the exit needs, or is
    inconsistent (crossed, or a walked fill better than the touch, i.e. unsorted levels).
    In ``MAKER_TAKER`` execution the maker leg's entry pays its maker fee (``leg_fee_rates``); its
    slippage is still the book walk (conservative: a post-only fill at our own touch is better).
    """
    if not size_base > 0:
        raise ValueError(f"size_base must be positive, got {size_base}")
    if not (_touch_ok(long_book) and _touch_ok(short_book)):
        return None
    long_entry = fill_notional_usd(long_book, OrderSide.BUY, size_base)
    short_entry = fill_notional_usd(short_book, OrderSide.SELL, size_base)
    long_exit = fill_notional_usd(long_book, OrderSide.SELL, size_base)
    short_exit = fill_notional_usd(short_book, OrderSide.BUY, size_base)
    if long_entry is None or short_entry is None or long_exit is None or short_exit is None:
        return None
    if not (_walk_ok(long_book, long_entry, long_exit, size_base)
            and _walk_ok(short_book, short_exit, short_entry, size_base)):
        return None
    long_mid = (long_book.bids[0].price + long_book.asks[0].price) / 2
    short_mid = (short_book.bids[0].price + short_book.asks[0].price) / 2
    rates = leg_fee_rates(long_fees, short_fees, execution, liquidity)
    long_at_mid, short_at_mid = size_base * long_mid, size_base * short_mid
    return CostBreakdown(
        entry_fees_usd=rates.long_entry * long_entry + rates.short_entry * short_entry,
        exit_fees_usd=rates.long_exit * long_exit + rates.short_exit * short_exit,
        entry_slippage_usd=(long_entry - long_at_mid) + (short_at_mid - short_entry),
        exit_slippage_usd=(long_at_mid - long_exit) + (short_exit - short_at_mid),
        basis_usd=adverse_basis_usd(long_mid, short_mid, long_at_mid),
        long_entry_price=long_entry / size_base,
        short_entry_price=short_entry / size_base,
    )


def _touch_ok(book: OrderBook) -> bool:
    return bool(book.bids and book.asks) and ZERO < book.bids[0].price <= book.asks[0].price


def _walk_ok(book: OrderBook, buy_notional: Decimal, sell_notional: Decimal, size_base: Decimal) -> bool:
    """A buy never averages below the best ask, a sell never above the best bid."""
    return buy_notional >= size_base * book.asks[0].price and sell_notional <= size_base * book.bids[0].price


def estimated_costs(
    long_price: Decimal,
    short_price: Decimal,
    size_base: Decimal,
    long_fees: FeeSchedule,
    short_fees: FeeSchedule,
    liquidity: Liquidity = Liquidity.TAKER,
    slippage_bps: Decimal = Decimal(2),
    execution: ExecutionMode = ExecutionMode.TAKER,
) -> CostBreakdown:
    """Round-trip costs when no books exist (historical replay): fills at the given (mark) prices.

    Slippage is assumed to be ``slippage_bps`` of the leg's notional on every execution (entry and
    exit, both legs); fees and the adverse basis as in ``book_costs``.
    """
    if slippage_bps < 0:
        raise ValueError(f"slippage_bps must not be negative, got {slippage_bps}")
    long_notional, short_notional = size_base * long_price, size_base * short_price
    rates = leg_fee_rates(long_fees, short_fees, execution, liquidity)
    slippage = (long_notional + short_notional) * slippage_bps * BPS
    return CostBreakdown(
        entry_fees_usd=long_notional * rates.long_entry + short_notional * rates.short_entry,
        exit_fees_usd=long_notional * rates.long_exit + short_notional * rates.short_exit,
        entry_slippage_usd=slippage,
        exit_slippage_usd=slippage,
        basis_usd=adverse_basis_usd(long_price, short_price, long_notional),
        long_entry_price=long_price,
        short_entry_price=short_price,
    )


def expected_net(
    spread_hourly: Decimal, horizon_hours: Decimal, notional_usd: Decimal, costs_usd: Decimal
) -> Decimal:
    """Funding earned over the horizon minus the round-trip costs, in USD.

    Funding is treated as accruing continuously; real payments are discrete at settlement times.
    """
    return spread_hourly * horizon_hours * notional_usd - costs_usd


def breakeven_hours(costs_usd: Decimal, spread_hourly: Decimal, notional_usd: Decimal) -> Decimal | None:
    """Hours of holding until funding has paid the costs: ``costs / (spread_hourly x notional)``.

    None when the spread (or notional) is not positive: such a pair never breaks even.
    Zero when the costs are not positive (maker rebates exceeding every other cost).
    """
    if not (spread_hourly > 0 and notional_usd > 0):
        return None
    if costs_usd <= 0:
        return ZERO
    return costs_usd / (spread_hourly * notional_usd)
