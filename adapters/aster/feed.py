"""Aster funding quotes for ``scan``: the Binance ``/fapi`` dialect through ccxt's raw public API."""

from __future__ import annotations

from typing import Any

from adapters.binanceusdm import parsing as wire
from adapters.errors import AbsurdVenueData
from bot.core.domain import FundingQuote

VENUE = "aster"


async def fetch_quotes(exchange: Any, now_ms: int) -> tuple[list[FundingQuote], list[str]]:
    """``premiumIndex`` + ``fundingInfo`` (per-symbol intervals; unlisted symbols are 8 h)."""
    funding_info = wire.parse_funding_info(await exchange.fapiPublicGetV1FundingInfo(), VENUE)
    quotes, dropped = [], []
    for item in await exchange.fapiPublicGetV1PremiumIndex():
        try:
            quotes.append(wire.parse_premium_index(item, funding_info=funding_info, venue=VENUE))
        except AbsurdVenueData as exc:
            dropped.append(str(exc))
    return quotes, dropped
