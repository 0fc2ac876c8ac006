"""Paradex funding quotes for ``scan`` through ccxt's raw public API (no keys)."""

from __future__ import annotations

from typing import Any

from adapters.paradex import parsing as wire
from bot.core.domain import FundingQuote


async def fetch_quotes(exchange: Any, now_ms: int) -> tuple[list[FundingQuote], list[str]]:
    """``/markets`` (funding periods) + ``/markets/summary?market=ALL`` (rates, marks)."""
    periods = wire.funding_periods(await exchange.publicGetMarkets())
    return wire.parse_markets_summary(await exchange.publicGetMarketsSummary({"market": "ALL"}), periods=periods)
