"""Backpack ``/api/v1/markPrices`` -> funding quotes (scan only).

Backpack settles hourly (venue fact; ccxt hard-codes ``interval`` 1h). The row carries
``fundingRate`` (per interval), ``markPrice``, ``nextFundingTimestamp`` (ms) and ``symbol``
(``BTC_USDC_PERP``). No real payload is recorded in ../shared: the test uses the documented shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from adapters.errors import AbsurdVenueData
from adapters.wire import (
    canonical_symbol,
    dec,
    dec_or_none,
    make_quote,
    ts_field,
)
from bot.core.domain import FundingQuote

VENUE = "backpack"
INTERVAL_HOURS = Decimal(1)


def parse_mark_prices(rows: Sequence[Mapping[str, Any]], *, ts_ms: int) -> tuple[list[FundingQuote], list[str]]:
    """Perp rows of ``markPrices`` -> quotes (+ dropped lines)."""
    quotes, dropped = [], []
    for row in rows:
        name = str(row.get("symbol"))
        if not name.endswith("_PERP"):
            continue
        try:
            quotes.append(make_quote(
                venue=VENUE, symbol=canonical_symbol(name.split("_")[0]), rate_per_interval=dec(row, "fundingRate", VENUE),
                interval_hours=INTERVAL_HOURS, next_funding_ts_ms=ts_field(row, "nextFundingTimestamp", VENUE),
                mark_price=dec_or_none(row, "markPrice", VENUE), ts_ms=ts_ms,
            ))
        except AbsurdVenueData as exc:
            dropped.append(str(exc))
    return quotes, dropped
