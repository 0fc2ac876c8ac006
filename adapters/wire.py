"""Wire-scalar conversions shared by every venue parser.

Venue payloads carry numbers as strings, ints or floats and timestamps in seconds, milliseconds or
nanoseconds. These helpers turn them into ``Decimal`` and integer milliseconds at the boundary and
raise ``AbsurdVenueData`` (naming the venue and the field) for anything implausible, so a second
mistaken for a millisecond, a NaN or a zero price never reaches the strategy.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from adapters.errors import AbsurdVenueData, IncompleteVenueData
from adapters.validation import decimal_from_wire, validate_quote
from bot.core.domain import FundingQuote

HOUR_MS = 3_600_000
# Plausible wall-clock range for a venue timestamp: 2015-01-01 .. 2100-01-01 in ms. A value in
# seconds (1.7e9) or nanoseconds (1.7e18) falls outside and is refused instead of mis-dated.
MIN_PLAUSIBLE_TS_MS = 1_420_070_400_000
MAX_PLAUSIBLE_TS_MS = 4_102_444_800_000
_UNIT_TO_MS = {"s": Decimal(1000), "ms": Decimal(1), "ns": Decimal("0.000001")}


def field(payload: Mapping[str, Any], key: str, venue: str) -> Any:
    """``payload[key]``, or ``IncompleteVenueData`` naming the missing field."""
    try:
        value = payload[key]
    except (KeyError, TypeError):
        raise IncompleteVenueData(venue, f"{key}: missing from the payload") from None
    if value is None or value == "":
        raise IncompleteVenueData(venue, f"{key}: empty in the payload")
    return value


def dec(payload: Mapping[str, Any], key: str, venue: str) -> Decimal:
    """A finite Decimal from ``payload[key]`` (missing/empty: ``IncompleteVenueData``)."""
    return decimal_from_wire(field(payload, key, venue), key, venue)


def dec_or_none(payload: Mapping[str, Any], key: str, venue: str) -> Decimal | None:
    """Like ``dec`` but None when the field is absent or empty (a NaN still raises)."""
    value = payload.get(key) if isinstance(payload, Mapping) else None
    if value is None or value == "":
        return None
    return decimal_from_wire(value, key, venue)


def positive(value: Decimal, key: str, venue: str) -> Decimal:
    """``value`` if > 0, else ``AbsurdVenueData`` naming ``key``."""
    if value <= 0:
        raise AbsurdVenueData(venue, f"{key}: must be positive, got {value}")
    return value


def non_negative(value: Decimal, key: str, venue: str) -> Decimal:
    """``value`` if >= 0, else ``AbsurdVenueData`` naming ``key``."""
    if value < 0:
        raise AbsurdVenueData(venue, f"{key}: must not be negative, got {value}")
    return value


def ts_ms(value: Any, key: str, venue: str, *, unit: str = "ms") -> int:
    """Integer UTC milliseconds from a wire timestamp in ``unit`` ("s", "ms" or "ns").

    Raises ``AbsurdVenueData`` when the result is outside 2015..2100 (the classic seconds-vs-ms
    mistake) or not a whole number of milliseconds after conversion from s/ms.
    """
    raw = decimal_from_wire(value, key, venue)
    result = raw * _UNIT_TO_MS[unit]
    whole = int(result)  # ns -> ms truncates sub-millisecond digits, as venues do
    if not MIN_PLAUSIBLE_TS_MS <= whole <= MAX_PLAUSIBLE_TS_MS:
        raise AbsurdVenueData(
            venue, f"{key}: {value!r} in {unit} is not a plausible time (seconds vs milliseconds?)"
        )
    return whole


def ts_field(payload: Mapping[str, Any], key: str, venue: str, *, unit: str = "ms") -> int:
    """``ts_ms`` of ``payload[key]`` (missing/empty: ``IncompleteVenueData``)."""
    return ts_ms(field(payload, key, venue), key, venue, unit=unit)


def next_boundary_ms(now_ms: int, interval_hours: Decimal) -> int:
    """The first multiple of ``interval_hours`` (counted from the epoch, UTC) strictly after ``now_ms``.

    For venues that settle on fixed UTC boundaries but do not publish the next time (Hyperliquid
    and Lighter settle every hour on the hour).
    """
    step = int(interval_hours * HOUR_MS)
    if step <= 0:
        raise ValueError(f"interval_hours must be positive, got {interval_hours}")
    return (now_ms // step + 1) * step


def interval_hours_from_ms(delta_ms: int, venue: str, key: str) -> Decimal:
    """Hours between two settlement times; refuses a non-positive or sub-minute gap."""
    if delta_ms < 60_000:
        raise AbsurdVenueData(venue, f"{key}: settlement gap of {delta_ms} ms is not a funding interval")
    return Decimal(delta_ms) / Decimal(HOUR_MS)


def make_quote(
    *,
    venue: str,
    symbol: str,
    rate_per_interval: Decimal,
    interval_hours: Decimal | None,
    next_funding_ts_ms: int,
    mark_price: Decimal | None,
    ts_ms: int,
) -> FundingQuote:
    """Build a ``FundingQuote`` and run ``validate_quote`` on it.

    An unknown interval or mark price is never defaulted: it raises ``IncompleteVenueData`` so
    the quote is dropped (unusable) instead of being priced on a guessed 8 h interval.
    """
    if interval_hours is None:
        raise IncompleteVenueData(venue, f"interval_hours unknown for {symbol}: quote unusable")
    if mark_price is None:
        raise IncompleteVenueData(venue, f"mark_price unknown for {symbol}: quote unusable")
    quote = FundingQuote(
        venue=venue,
        symbol=symbol,
        rate_per_interval=rate_per_interval,
        interval_hours=interval_hours,
        next_funding_ts_ms=next_funding_ts_ms,
        mark_price=mark_price,
        ts_ms=ts_ms,
    )
    return validate_quote(quote)


def decimals_step(decimals: Any, key: str, venue: str) -> Decimal:
    """``10 ** -decimals`` for venues that publish precision as a count of decimals."""
    count = decimal_from_wire(decimals, key, venue)
    if count != count.to_integral_value() or not 0 <= count <= 18:
        raise AbsurdVenueData(venue, f"{key}: {decimals!r} is not a decimal count in 0..18")
    return Decimal(1).scaleb(-int(count))


def canonical_symbol(venue_base: str) -> str:
    """The canonical base-asset symbol we match across venues.

    Multiplied listings keep their multiplier so they only pair with the same unit:
    ``1000PEPE`` (Binance, Bybit) stays ``1000PEPE``; Hyperliquid's ``kPEPE`` becomes ``1000PEPE``.
    Everything is upper-cased.
    """
    if len(venue_base) > 1 and venue_base[0] == "k" and venue_base[1:].isupper():
        return "1000" + venue_base[1:]
    return venue_base.upper()
