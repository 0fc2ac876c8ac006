"""Scan quote fetchers: recorded real payloads served through ccxt's raw-API method names (a fake
exchange object), and the trading venues' public paths against the local emulator."""

from __future__ import annotations

import importlib.util
from decimal import Decimal
from typing import Any

import pytest
from payloads import ccxt_static, payload

from adapters.extended import feed as extended_feed
from adapters.grvt import feed as grvt_feed
from adapters.lighter import feed as lighter_feed
from adapters.paradex import feed as paradex_feed
from adapters.registry import fetch_scan_quotes

D = Decimal


class Raw:
    """Answers ccxt implicit-API calls by name with recorded payloads; records the params."""

    def __init__(self, **answers: Any) -> None:
        self._answers = answers
        self.calls: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self._answers:
            raise AttributeError(name)

        async def call(params: Any = None) -> Any:
            self.calls.append((name, params))
            return self._answers[name]

        return call


@pytest.mark.anyio
async def test_lighter_feed() -> None:
    ex = Raw(publicGetOrderBookDetails=payload("nautilus/lighter/test_data/http_order_book_details.json"),
             publicGetFundingRates=ccxt_static("lighter", "fetchFundingRates"))
    (q,), dropped = await lighter_feed.fetch_quotes(ex, 1774883844933)
    assert dropped == [] and (q.symbol, q.interval_hours, q.mark_price) == ("ETH", D(1), D("2361.31"))


@pytest.mark.anyio
async def test_paradex_feed_refuses_quotes_without_a_funding_period() -> None:
    ex = Raw(publicGetMarkets=ccxt_static("paradex", "fetchMarkets"),
             publicGetMarketsSummary=ccxt_static("paradex", "fetchTickers"))
    quotes, dropped = await paradex_feed.fetch_quotes(ex, 0)
    assert quotes == [] and "interval_hours unknown" in dropped[0]
    assert ex.calls[1] == ("publicGetMarketsSummary", {"market": "ALL"})


@pytest.mark.anyio
async def test_extended_feed() -> None:
    (q,), skipped = await extended_feed.fetch_quotes(Raw(v1PublicGetInfoMarkets=ccxt_static("extended", "fetchMarkets")),
                                                     1777445000000)
    assert skipped == [] and (q.symbol, q.rate_per_interval, q.interval_hours) == ("BTC", D("0.000012"), D(1))


@pytest.mark.anyio
async def test_grvt_feed() -> None:
    ex = Raw(publicMarketPostFullV1Funding=payload("perpdex-captures/grvt/rest-funding-BTC_USDT_Perp-raw.json"),
             publicMarketPostFullV1Ticker=payload("perpdex-captures/grvt/rest-ticker-BTC_USDT_Perp-raw.json"))
    (q,), dropped = await grvt_feed.fetch_quotes(ex, 0, symbols=["BTC"])
    assert dropped == [] and (q.rate_per_interval, q.interval_hours) == (D("0.0001"), D(8))
    assert ex.calls[0] == ("publicMarketPostFullV1Funding", {"instrument": "BTC_USDT_Perp", "limit": 1})


@pytest.mark.anyio
@pytest.mark.parametrize("venue", ["bybit", "binanceusdm", "hyperliquid"])
async def test_trading_venues_scan_through_the_emulator(venue: str, tmp_path) -> None:
    if importlib.util.find_spec(f"paper.emulator.{venue}") is None:
        pytest.skip(f"the emulator in this checkout does not speak {venue} yet")
    from paper.emulator import start_emulator

    with start_emulator([venue], state_path=tmp_path / "v.sqlite", interval_overrides={venue: {"SOL": 1}}) as emu:
        quotes, dropped = await fetch_scan_quotes(venue, base_url=emu.base_urls[venue])
    by_symbol = {q.symbol: q for q in quotes}
    assert dropped == [] and "BTC" in by_symbol
    assert by_symbol["SOL"].interval_hours == D(1)  # the venue's per-symbol interval, not a default
    assert all(q.venue == venue and q.mark_price > 0 and q.next_funding_ts_ms > q.ts_ms for q in quotes)
