"""Extended wire payloads -> domain types (scan only).

Samples: ../shared/data/payloads/ccxt-static/response/extended.json and perpdex-captures/extended.
Quirks handled here:
- ccxt has no current-funding call for Extended: the rate comes from ``/api/v1/info/markets``
  ``marketStats.fundingRate``, an HOURLY rate (Extended settles hourly).
- The next settlement time is in ``marketStats.nextFundingRate`` (a ms timestamp despite its name).
- Lot is ``tradingConfig.minOrderSizeChange``, tick ``minPriceChange``.
- Funding history ``fundingFee`` follows the account's cash sign (+ = received).
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
    dec_or_none,
    field,
    make_quote,
    positive,
    ts_field,
)
from bot.core.domain import FundingPayment, FundingQuote, Instrument

VENUE = "extended"
INTERVAL_HOURS = Decimal(1)


def _data(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if payload.get("status") != "OK":
        raise AbsurdVenueData(VENUE, f"status {payload.get('status')!r}")
    data = field(payload, "data", VENUE)
    return data if isinstance(data, list) else [data]


def parse_markets(payload: Mapping[str, Any], *, ts_ms: int) -> tuple[list[VenueMarket], list[FundingQuote], list[str]]:
    """``/api/v1/info/markets`` -> (active markets, their funding quotes, skipped lines)."""
    markets, quotes, skipped = [], [], []
    for m in _data(payload):
        name = str(m.get("name"))
        if not m.get("active") or m.get("status") != "ACTIVE":
            skipped.append(f"{name}: status {m.get('status')!r}")
            continue
        try:
            cfg = field(m, "tradingConfig", VENUE)
            stats = field(m, "marketStats", VENUE)
            symbol = canonical_symbol(str(field(m, "assetName", VENUE)))
            instrument = Instrument(
                venue=VENUE, symbol=symbol, venue_symbol=name,
                tick_size=positive(dec(cfg, "minPriceChange", VENUE), "minPriceChange", VENUE),
                lot_size_base=positive(dec(cfg, "minOrderSizeChange", VENUE), "minOrderSizeChange", VENUE),
                min_size_base=positive(dec(cfg, "minOrderSize", VENUE), "minOrderSize", VENUE),
                funding_interval_hours=INTERVAL_HOURS,
            )
            quote = make_quote(
                venue=VENUE, symbol=symbol, rate_per_interval=dec(stats, "fundingRate", VENUE),
                interval_hours=INTERVAL_HOURS, next_funding_ts_ms=ts_field(stats, "nextFundingRate", VENUE),
                mark_price=dec_or_none(stats, "markPrice", VENUE), ts_ms=ts_ms,
            )
        except AbsurdVenueData as exc:
            skipped.append(str(exc))
            continue
        markets.append(VenueMarket(instrument=instrument, settle=str(m.get("collateralAssetName") or "USD")))
        quotes.append(quote)
    return markets, quotes, skipped


def parse_funding_payment(item: Mapping[str, Any]) -> FundingPayment:
    """A ``/api/v1/user/funding/history`` row -> payment (``fundingFee`` + = received)."""
    side = item.get("side")
    if side not in ("LONG", "SHORT"):
        raise IncompleteVenueData(VENUE, f"side: unknown value {side!r}")
    size = dec(item, "size", VENUE)
    return FundingPayment(
        payment_id=str(field(item, "id", VENUE)), venue=VENUE,
        symbol=canonical_symbol(str(field(item, "market", VENUE)).split("-")[0]),
        ts_ms=ts_field(item, "paidTime", VENUE), rate=dec(item, "fundingRate", VENUE),
        position_size_base=size if side == "LONG" else -size,
        mark_price=positive(dec(item, "markPrice", VENUE), "markPrice", VENUE),
        amount_usd=dec(item, "fundingFee", VENUE),
    )
