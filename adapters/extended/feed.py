"""Extended funding quotes for ``scan`` through ccxt's raw public API (no keys)."""

from __future__ import annotations

from typing import Any

from adapters.extended import parsing as wire
from bot.core.domain import FundingQuote


async def fetch_quotes(exchange: Any, now_ms: int) -> tuple[list[FundingQuote], list[str]]:
    """``/api/v1/info/markets``: hourly rate, next settlement and mark in one answer."""
    _, quotes, skipped = wire.parse_markets(await exchange.v1PublicGetInfoMarkets(), ts_ms=now_ms)
    return quotes, skipped
