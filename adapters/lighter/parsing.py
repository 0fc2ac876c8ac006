"""Lighter wire payloads -> domain types (scan only).

Samples: ../shared/data/payloads/nautilus/lighter/test_data and ccxt-static/response/lighter.json.
Quirks handled here:
- Lighter settles funding every hour on the hour (venue fact). ``/api/v1/funding-rates`` (what
  ccxt's ``fetchFundingRates`` reads) lists Lighter's AND other venues' current rates as a fraction
  over EIGHT hours, with no time and no mark: we keep ``exchange == "lighter"`` rows, divide by 8
  for the hourly settlement, take the next hour boundary, and take the mark from ``market_stats``
  (or ``order_book_details.last_trade_price`` as the fallback the caller chooses).
- ``market_stats`` (WebSocket) carries ``mark_price`` and the next ``funding_timestamp`` (ms).
- ``/api/v1/fundings`` history has ``timestamp`` in SECONDS and ``rate`` in PERCENT.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from adapters.errors import AbsurdVenueData, IncompleteVenueData
from adapters.markets import VenueMarket
from adapters.wire import (
    canonical_symbol,
    dec,
    decimals_step,
    field,
    make_quote,
    next_boundary_ms,
    non_negative,
    positive,
    ts_field,
)
from bot.core.domain import FundingQuote, Instrument

VENUE = "lighter"
INTERVAL_HOURS = Decimal(1)
EIGHT_HOURS = Decimal(8)


def parse_order_book_details(payload: Mapping[str, Any]) -> tuple[list[VenueMarket], list[str]]:
    """``/api/v1/orderBookDetails`` -> active perp markets (``venue_id`` = ``market_id``)."""
    markets, skipped = [], []
    for item in field(payload, "order_book_details", VENUE):
        name = str(item.get("symbol"))
        if item.get("status") != "active" or item.get("market_type", "perp") != "perp":
            skipped.append(f"{name}: status {item.get('status')!r}, type {item.get('market_type')!r}")
            continue
        try:
            instrument = Instrument(
                venue=VENUE, symbol=canonical_symbol(name), venue_symbol=name,
                tick_size=decimals_step(field(item, "price_decimals", VENUE), "price_decimals", VENUE),
                lot_size_base=decimals_step(field(item, "size_decimals", VENUE), "size_decimals", VENUE),
                min_size_base=positive(dec(item, "min_base_amount", VENUE), "min_base_amount", VENUE),
                funding_interval_hours=INTERVAL_HOURS,
                min_notional_usd=non_negative(dec(item, "min_quote_amount", VENUE), "min_quote_amount", VENUE),
            )
        except AbsurdVenueData as exc:
            skipped.append(str(exc))
            continue
        markets.append(VenueMarket(instrument=instrument, venue_id=str(field(item, "market_id", VENUE)), settle="USDC"))
    return markets, skipped


def last_trade_prices(payload: Mapping[str, Any]) -> dict[str, Decimal]:
    """``orderBookDetails`` -> canonical symbol -> last trade price (a mark fallback for scan)."""
    return {canonical_symbol(str(i["symbol"])): positive(dec(i, "last_trade_price", VENUE), "last_trade_price", VENUE)
            for i in field(payload, "order_book_details", VENUE) if i.get("status") == "active"}


def parse_market_stats(message: Mapping[str, Any]) -> dict[str, tuple[Decimal, int]]:
    """A ``market_stats`` message (one market or ``all``) -> symbol -> (mark price, next funding ms)."""
    stats = field(message, "market_stats", VENUE)
    items = [stats] if "symbol" in stats else list(stats.values())
    return {
        canonical_symbol(str(field(s, "symbol", VENUE))): (
            positive(dec(s, "mark_price", VENUE), "mark_price", VENUE), ts_field(s, "funding_timestamp", VENUE))
        for s in items
    }


def parse_funding_rates(payload: Mapping[str, Any], *, marks: Mapping[str, Decimal], ts_ms: int,
                        ) -> tuple[list[FundingQuote], list[str]]:
    """``/api/v1/funding-rates`` -> Lighter's quotes (8 h fraction / 8 per hourly settlement)."""
    quotes, dropped = [], []
    for row in field(payload, "funding_rates", VENUE):
        if row.get("exchange") != VENUE:
            continue
        symbol = canonical_symbol(str(row.get("symbol")))
        try:
            quotes.append(make_quote(
                venue=VENUE, symbol=symbol, rate_per_interval=dec(row, "rate", VENUE) / EIGHT_HOURS,
                interval_hours=INTERVAL_HOURS, next_funding_ts_ms=next_boundary_ms(ts_ms, INTERVAL_HOURS),
                mark_price=marks.get(symbol), ts_ms=ts_ms,
            ))
        except AbsurdVenueData as exc:
            dropped.append(str(exc))
    return quotes, dropped


def parse_funding_history_rate(row: Mapping[str, Any]) -> tuple[int, Decimal]:
    """A ``/api/v1/fundings`` row -> (settlement ms, signed fraction; + = longs paid).

    ``timestamp`` is in seconds, ``rate`` in percent, ``direction`` names the side that paid.
    """
    ts = ts_field(row, "timestamp", VENUE, unit="s")
    rate = dec(row, "rate", VENUE) / 100
    direction = row.get("direction")
    if direction not in ("long", "short"):
        raise IncompleteVenueData(VENUE, f"direction: unknown value {direction!r}")
    return ts, rate if direction == "long" else -rate
