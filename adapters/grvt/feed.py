"""GRVT funding quotes for ``scan`` through ccxt's raw public API (no keys)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from adapters.errors import AbsurdVenueData
from adapters.grvt import parsing as wire
from bot.core.domain import FundingQuote


async def fetch_quotes(exchange: Any, now_ms: int, symbols: Iterable[str] = ("BTC", "ETH", "SOL"),
                       ) -> tuple[list[FundingQuote], list[str]]:
    """Per symbol: the latest funding row (interval) and the ticker (percent rate, ns times)."""
    quotes, dropped = [], []
    for symbol in symbols:
        name = f"{symbol}_USDT_Perp"
        try:
            intervals = wire.funding_interval_hours(
                await exchange.publicMarketPostFullV1Funding({"instrument": name, "limit": 1}))
            quotes.append(wire.parse_ticker(await exchange.publicMarketPostFullV1Ticker({"instrument": name}),
                                            intervals=intervals))
        except AbsurdVenueData as exc:
            dropped.append(f"{name}: {exc}")
    return quotes, dropped
