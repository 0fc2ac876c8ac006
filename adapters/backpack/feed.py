"""Backpack funding quotes for ``scan`` through ccxt's raw public API (no keys)."""

from __future__ import annotations

from typing import Any

from adapters.backpack import parsing as wire
from bot.core.domain import FundingQuote


async def fetch_quotes(exchange: Any, now_ms: int) -> tuple[list[FundingQuote], list[str]]:
    """``/api/v1/markPrices`` (hourly rate, mark, next settlement)."""
    return wire.parse_mark_prices(await exchange.publicGetApiV1MarkPrices(), ts_ms=now_ms)
