"""Recent settled funding rates from a live venue, validated at the boundary, for the forecast's warm-up.

``LiveMarketFeed.load_history`` asks each venue part (``fetch_funding_history``: Bybit's
``/v5/market/funding/history`` through pybit, ccxt's ``fetch_funding_rate_history`` elsewhere) for the
settlements of the last ``warmup_hours`` at start-up, so a fresh live database's spread forecast does
not start from zero levels. Rows become ``FundingSettlement``s at the instrument's CURRENT funding
interval (the venues' history rows do not carry one; a symbol whose interval changed recently is
approximated) and the current mark price (the forecast reads only the rates). A row with a missing
or non-numeric rate or time, or an hourly rate beyond ``max_abs_rate_per_hour``, is dropped and
named, never used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from adapters.errors import AbsurdVenueData
from adapters.validation import DEFAULT_MAX_ABS_RATE_PER_HOUR, decimal_from_wire
from bot.core.domain import FundingSettlement


def settlements_from_rows(venue: str, symbol: str, rows: Iterable[tuple[Any, Any]], *, interval_hours: Decimal,
                          mark_price: Decimal, since_ts_ms: int,
                          max_abs_rate_per_hour: Decimal = DEFAULT_MAX_ABS_RATE_PER_HOUR,
                          ) -> tuple[list[FundingSettlement], list[str]]:
    """``rows`` of (time in ms, rate per interval) from the wire -> (settlements at or after
    ``since_ts_ms``, oldest first, one per instant; one line per dropped row)."""
    out: dict[int, FundingSettlement] = {}
    dropped: list[str] = []
    if not interval_hours > 0:
        return [], [f"{venue} {symbol}: funding interval unknown; history not used"]
    for raw_ts, raw_rate in rows:
        try:
            ts = decimal_from_wire(raw_ts, "funding history time", venue)
            rate = decimal_from_wire(raw_rate, "funding history rate", venue)
            if ts != ts.to_integral_value() or ts < 0:
                raise AbsurdVenueData(venue, f"funding history time: expected whole ms, got {raw_ts!r}")
            if abs(rate / interval_hours) > max_abs_rate_per_hour:
                raise AbsurdVenueData(venue, f"funding history rate: {rate} per {interval_hours} h is beyond "
                                             f"{max_abs_rate_per_hour} per hour")
        except AbsurdVenueData as exc:
            dropped.append(f"{symbol}: {exc}")
            continue
        if int(ts) >= since_ts_ms:
            out[int(ts)] = FundingSettlement(venue=venue, symbol=symbol, ts_ms=int(ts), rate=rate,
                                             interval_hours=interval_hours, mark_price=mark_price)
    return [out[k] for k in sorted(out)], dropped


def bybit_rows(answer: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    """(time, rate) rows of a Bybit v5 ``/v5/market/funding/history`` answer."""
    result = answer.get("result") if isinstance(answer, Mapping) else None
    items = result.get("list") if isinstance(result, Mapping) else None
    if not isinstance(items, list):
        raise AbsurdVenueData("bybit", "funding history: result.list missing")
    return [(i.get("fundingRateTimestamp"), i.get("fundingRate")) for i in items if isinstance(i, Mapping)]


def ccxt_rows(venue: str, rows: Any) -> list[tuple[Any, Any]]:
    """(time, rate) rows of ccxt's unified ``fetch_funding_rate_history`` answer."""
    if not isinstance(rows, list):
        raise AbsurdVenueData(venue, "funding history: expected a list")
    return [(r.get("timestamp"), r.get("fundingRate")) for r in rows if isinstance(r, Mapping)]
