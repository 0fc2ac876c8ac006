"""Exact encoding of domain values into SQLite columns and back.

Decimals are stored as TEXT produced by ``str(Decimal)``, which ``Decimal(text)`` reads back
bit-for-bit (value, sign and exponent). Floats are refused at this boundary: a float reaching
storage is a bug upstream, and SQLite's TEXT affinity would otherwise silently stringify it.
Timestamps are integer milliseconds UTC; ``iso_utc`` renders the human-readable companion.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import Any

from storage.errors import StorageError


def decimal_to_text(value: Decimal | int) -> str:
    """Exact TEXT for a finite Decimal (or int). Floats, bools, NaN and infinities are refused."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise StorageError(f"expected Decimal or int, got {type(value).__name__}: {value!r}")
    if isinstance(value, int):
        return str(value)
    if not value.is_finite():
        raise StorageError(f"refusing to store non-finite Decimal {value!r}")
    return str(value)


def optional_decimal_to_text(value: Decimal | int | None) -> str | None:
    return None if value is None else decimal_to_text(value)


def text_to_decimal(text: str) -> Decimal:
    """Read a Decimal stored by ``decimal_to_text``."""
    if not isinstance(text, str):
        raise StorageError(f"decimal column holds {type(text).__name__} {text!r}, expected TEXT")
    return Decimal(text)


def optional_text_to_decimal(text: str | None) -> Decimal | None:
    return None if text is None else text_to_decimal(text)


def check_ts_ms(value: int, name: str = "ts_ms") -> int:
    """Validate an integer millisecond UTC timestamp."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StorageError(f"{name} must be a non-negative int (ms UTC), got {value!r}")
    return value


def iso_utc(ts_ms: int) -> str:
    """``2024-01-02T03:04:05.678Z`` for an integer ms timestamp, computed without floats."""
    global _ISO_SECOND
    check_ts_ms(ts_ms)
    seconds, millis = divmod(ts_ms, 1000)
    cached = _ISO_SECOND  # one immutable tuple: safe from any thread
    if cached[0] != seconds:  # the second's text is reused (one entry stamps several rows with it)
        moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
        cached = _ISO_SECOND = (seconds, f"{moment:%Y-%m-%dT%H:%M:%S}")
    return f"{cached[1]}.{millis:03d}Z"


_ISO_SECOND: tuple[int | None, str] = (None, "")  # (seconds, its "%Y-%m-%dT%H:%M:%S" text), latest iso_utc call


def optional_iso_utc(ts_ms: int | None) -> str | None:
    return None if ts_ms is None else iso_utc(ts_ms)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return decimal_to_text(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON-serialisable for storage: {type(value).__name__}")


_ENCODER = json.JSONEncoder(default=_json_default, sort_keys=True, allow_nan=False)  # one, not one per call


def to_json(details: dict[str, Any] | None) -> str | None:
    """Canonical JSON for a details column; Decimals become strings, floats are refused."""
    if details is None:
        return None
    if type(details) is not dict:
        _refuse_floats(details)
        return _ENCODER.encode(details)
    # The usual flat dict of str / Decimal / int values: Decimals encoded here (as ``_json_default``
    # would), nothing else walked; the text is exactly json.dumps(details, default=_json_default,
    # sort_keys=True, allow_nan=False).
    flat = {}
    for key, value in details.items():
        kind = type(value)
        if kind is Decimal:
            value = decimal_to_text(value)
        elif kind is not str and kind is not int and value is not None:
            _refuse_floats(value)
        flat[key] = value
    return _ENCODER.encode(flat)


def from_json(text: str | None) -> dict[str, Any] | None:
    """Parse a details column. Decimals come back as the strings they were stored as."""
    return None if text is None else json.loads(text)


def _refuse_floats(value: Any) -> None:
    if isinstance(value, float):
        raise StorageError(f"refusing to store float {value!r} in JSON details; use Decimal")
    if isinstance(value, dict):
        for item in value.values():
            _refuse_floats(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _refuse_floats(item)
