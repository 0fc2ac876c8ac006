"""Pure arithmetic of a position's realized money from its fills and funding payments."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, localcontext

from bot.core.domain import ZERO, Fill, FundingPayment, OrderSide
from storage.records import PositionTotals

# Price x size of two 20-digit values needs 40 digits; the default context (28) would round.
_PRECISION = 60


def position_totals(
    position_id: str, fills: Iterable[Fill], payments: Iterable[FundingPayment],
    released_base_by_venue: Mapping[str, Decimal] | None = None,
) -> PositionTotals:
    """Sum fees, funding and buy/sell notional exactly; see ``PositionTotals`` for the PnL rule.

    Quantities are the base that actually moved: a base-coin fee (``Fill.fee_base``, spot buys) is
    not part of what was bought (its value is in ``fee_usd``). ``released_base_by_venue``: spot dust a
    closed carry leg left in the wallet (``bot.engine.spot``); it counts as flat and is valued at that
    venue's last fill price (the coins stay the user's)."""
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        fees_usd = ZERO
        bought_usd = ZERO
        sold_usd = ZERO
        net_base: dict[str, Decimal] = {}
        last_price: dict[str, Decimal] = {}
        fill_count = 0
        for fill in fills:
            fill_count += 1
            fees_usd += fill.fee_usd
            last_price[fill.venue] = fill.price
            if fill.side is OrderSide.BUY:
                moved = fill.size_base - fill.fee_base
                bought_usd += fill.price * moved
                net_base[fill.venue] = net_base.get(fill.venue, ZERO) + moved
            else:
                moved = fill.size_base + fill.fee_base
                sold_usd += fill.price * moved
                net_base[fill.venue] = net_base.get(fill.venue, ZERO) - moved
        dust_usd = ZERO
        for venue, released in (released_base_by_venue or {}).items():
            if released and venue in net_base:
                net_base[venue] -= released
                dust_usd += released * last_price[venue]
        sold_usd += dust_usd
        funding_usd = ZERO
        funding_count = 0
        for payment in payments:
            funding_count += 1
            funding_usd += payment.amount_usd
        is_flat = all(net == 0 for net in net_base.values())
        price_pnl_usd = sold_usd - bought_usd if is_flat else None
        realized_pnl_usd = (
            price_pnl_usd + funding_usd - fees_usd if price_pnl_usd is not None else None
        )
    return PositionTotals(
        position_id=position_id,
        funding_usd=funding_usd,
        fees_usd=fees_usd,
        bought_notional_usd=bought_usd,
        sold_notional_usd=sold_usd,
        net_base_by_venue=net_base,
        is_flat=is_flat,
        price_pnl_usd=price_pnl_usd,
        realized_pnl_usd=realized_pnl_usd,
        fill_count=fill_count,
        funding_count=funding_count,
        released_dust_usd=dust_usd,
    )
