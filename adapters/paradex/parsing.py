"""Paradex wire payloads -> domain types (scan only).

Samples: ../shared/data/payloads/ccxt-static/response/paradex.json (testnet captures) and
perpdex-captures/paradex.
Quirks handled here:
- Funding accrues continuously; ``/markets/summary`` publishes ``funding_rate`` per funding PERIOD,
  whose length is the market's ``funding_period_hours`` (from ``/markets``). A market without that
  field gives unusable quotes (never a default period). As funding moves every instant, the "next
  settlement" is the quote's own time.
- Times are ms (``created_at``).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from adapters.errors import AbsurdVenueData
from adapters.markets import VenueMarket
from adapters.wire import (
    canonical_symbol,
    dec,
    dec_or_none,
    field,
    make_quote,
    non_negative,
    positive,
    ts_field,
)
from bot.core.domain import FundingQuote, Instrument

VENUE = "paradex"


def funding_periods(payload: Mapping[str, Any]) -> dict[str, Decimal | None]:
    """``/markets`` -> market name -> ``funding_period_hours`` (None when the market lacks it)."""
    out: dict[str, Decimal | None] = {}
    for m in field(payload, "results", VENUE):
        if m.get("asset_kind") == "PERP":
            hours = dec_or_none(m, "funding_period_hours", VENUE)
            out[str(m["symbol"])] = positive(hours, "funding_period_hours", VENUE) if hours is not None else None
    return out


def parse_markets(payload: Mapping[str, Any]) -> tuple[list[VenueMarket], list[str]]:
    """``/markets`` -> perpetual markets (those with a known funding period)."""
    markets, skipped = [], []
    for m in field(payload, "results", VENUE):
        name = str(m.get("symbol"))
        if m.get("asset_kind") != "PERP":
            continue
        try:
            period = dec_or_none(m, "funding_period_hours", VENUE)
            if period is None:
                raise AbsurdVenueData(VENUE, f"{name}: funding_period_hours missing: market unusable")
            step = positive(dec(m, "order_size_increment", VENUE), "order_size_increment", VENUE)
            instrument = Instrument(
                venue=VENUE, symbol=canonical_symbol(str(field(m, "base_currency", VENUE))), venue_symbol=name,
                tick_size=positive(dec(m, "price_tick_size", VENUE), "price_tick_size", VENUE),
                lot_size_base=step, min_size_base=step,
                funding_interval_hours=positive(period, "funding_period_hours", VENUE),
                min_notional_usd=non_negative(dec(m, "min_notional", VENUE), "min_notional", VENUE),
            )
        except AbsurdVenueData as exc:
            skipped.append(str(exc))
            continue
        markets.append(VenueMarket(instrument=instrument, settle=str(m.get("settlement_currency") or "USDC")))
    return markets, skipped


def parse_markets_summary(payload: Mapping[str, Any], *, periods: Mapping[str, Decimal | None],
                          ) -> tuple[list[FundingQuote], list[str]]:
    """``/markets/summary?market=ALL`` -> quotes (rate per period of ``periods[market]`` hours)."""
    quotes, dropped = [], []
    for row in field(payload, "results", VENUE):
        name = str(row.get("symbol"))
        if not name.endswith("-PERP"):
            continue
        try:
            ts = ts_field(row, "created_at", VENUE)
            quotes.append(make_quote(
                venue=VENUE, symbol=canonical_symbol(name.split("-")[0]),
                rate_per_interval=dec(row, "funding_rate", VENUE), interval_hours=periods.get(name),
                next_funding_ts_ms=ts, mark_price=dec_or_none(row, "mark_price", VENUE), ts_ms=ts,
            ))
        except AbsurdVenueData as exc:
            dropped.append(str(exc))
    return quotes, dropped
