"""OKX specifics for the shared ccxt executor and feed.

OKX signs no request expiry that ccxt sets, so a not-found order is treated as possibly in flight
for a long grace period (60 s) before "can never execute" is answered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from adapters.ccxt_common.dialect import CcxtDialect
from adapters.errors import AbsurdVenueData, IncompleteVenueData
from adapters.markets import VenueMarket
from adapters.okx import parsing as wire

VENUE = "okx"
GRACE_MS = 60_000


def _order_params(wire_cid: str, tif: str, reduce_only: bool, now_ms: int) -> dict[str, Any]:
    return {"clientOrderId": wire_cid, "timeInForce": tif, "reduceOnly": reduce_only, "tdMode": "cross"}


def _equity(balance: Mapping[str, Any]) -> Decimal:
    info = balance.get("info")
    if not isinstance(info, Mapping):
        raise IncompleteVenueData(VENUE, "fetch_balance without info")
    return wire.parse_equity_usd(info)


DIALECT = CcxtDialect(
    venue=VENUE, settle="USDT", expiry_ms=GRACE_MS, order_params=_order_params,
    parse_funding=lambda info, market: wire.parse_funding_bill(info, symbol=market.symbol),
    equity_usd=_equity,
    rate=(20, 2.0),  # documented: orders 60/2 s per instrument, reads 20/2 s
)


async def load_markets(exchange: Any, symbols: Iterable[str]) -> tuple[dict[str, VenueMarket], list[str]]:
    """Linear USDT swaps for ``symbols``; each interval measured from its funding-rate answer."""
    await exchange.load_markets()
    wanted = set(symbols)
    markets: dict[str, VenueMarket] = {}
    skipped: list[str] = []
    for m in exchange.markets.values():
        info = m.get("info") or {}
        if not (m.get("swap") and info.get("ctType") == "linear" and m.get("settle") == "USDT"):
            continue
        base = str(info.get("ctValCcy") or "")
        if base.upper() not in wanted:
            continue
        try:
            answer = await exchange.publicGetPublicFundingRate({"instId": info["instId"]})
            interval = wire.funding_interval_hours(wire.data_list(answer)[0])
            market = wire.parse_instrument(info, funding_interval_hours=interval)
        except (AbsurdVenueData, IndexError) as exc:
            skipped.append(f"{info.get('instId')}: {exc}")
            continue
        markets[market.symbol] = replace(market, ccxt_symbol=m["symbol"])
    return markets, skipped


async def fetch_quotes(exchange: Any, markets: Mapping[str, VenueMarket], now_ms: int) -> tuple[list, list[str]]:
    """``funding-rate`` per instrument + all SWAP mark prices, parsed by our parser."""
    marks = wire.parse_mark_prices(await exchange.publicGetPublicMarkPrice({"instType": "SWAP"}))
    quotes, dropped = [], []
    for market in markets.values():
        try:
            answer = await exchange.publicGetPublicFundingRate({"instId": market.venue_symbol})
            quotes.append(wire.parse_funding_rate(wire.data_list(answer)[0], mark_price=marks.get(market.venue_symbol),
                                                  symbol=market.symbol))
        except (AbsurdVenueData, IndexError) as exc:
            dropped.append(f"{market.venue_symbol}: {exc}")
    return quotes, dropped
