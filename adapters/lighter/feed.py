"""Lighter funding quotes for ``scan`` through ccxt's raw public API (no keys)."""

from __future__ import annotations

from typing import Any

from adapters.lighter import parsing as wire
from bot.core.domain import FundingQuote


async def fetch_quotes(exchange: Any, now_ms: int) -> tuple[list[FundingQuote], list[str]]:
    """``funding-rates`` (8 h fraction -> hourly) with marks from ``orderBookDetails`` last trades."""
    details = await exchange.publicGetOrderBookDetails()
    rates = await exchange.publicGetFundingRates()
    return wire.parse_funding_rates(rates, marks=wire.last_trade_prices(details), ts_ms=now_ms)
