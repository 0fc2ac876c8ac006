"""GRVT wire payloads -> domain types (scan only).

Samples: ../shared/data/payloads/perpdex-captures/grvt.
Quirks handled here:
- Funding rates are in PERCENT (``"0.01"`` = 0.0001); timestamps in NANOSECONDS.
- The ticker has no interval: it comes from the funding history's ``funding_interval_hours`` (or
  the instrument); unknown => unusable quote.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from adapters.wire import (
    canonical_symbol,
    dec,
    dec_or_none,
    field,
    make_quote,
    positive,
    ts_field,
)
from bot.core.domain import FundingQuote

VENUE = "grvt"
PERCENT = Decimal(100)


def funding_interval_hours(payload: Mapping[str, Any]) -> dict[str, Decimal]:
    """``/full/v1/funding`` history -> instrument -> interval hours (latest row wins)."""
    out: dict[str, Decimal] = {}
    rows = sorted(field(payload, "result", VENUE), key=lambda r: int(r.get("funding_time", 0)))
    for row in rows:
        out[str(field(row, "instrument", VENUE))] = positive(
            dec(row, "funding_interval_hours", VENUE), "funding_interval_hours", VENUE)
    return out


def parse_funding_history_row(row: Mapping[str, Any]) -> tuple[int, Decimal, Decimal]:
    """A funding history row -> (settlement ms, fraction per interval, interval hours)."""
    return (ts_field(row, "funding_time", VENUE, unit="ns"), dec(row, "funding_rate", VENUE) / PERCENT,
            positive(dec(row, "funding_interval_hours", VENUE), "funding_interval_hours", VENUE))


def parse_ticker(payload: Mapping[str, Any], *, intervals: Mapping[str, Decimal]) -> FundingQuote:
    """``/full/v1/ticker`` -> quote (percent -> fraction, ns -> ms)."""
    t = field(payload, "result", VENUE)
    name = str(field(t, "instrument", VENUE))
    return make_quote(
        venue=VENUE, symbol=canonical_symbol(name.split("_")[0]),
        rate_per_interval=dec(t, "funding_rate", VENUE) / PERCENT, interval_hours=intervals.get(name),
        next_funding_ts_ms=ts_field(t, "next_funding_time", VENUE, unit="ns"),
        mark_price=dec_or_none(t, "mark_price", VENUE), ts_ms=ts_field(t, "event_time", VENUE, unit="ns"),
    )
