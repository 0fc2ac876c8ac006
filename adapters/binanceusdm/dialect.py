"""Binance USD-M specifics for the shared ccxt executor and feed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from adapters.binanceusdm import parsing as wire
from adapters.ccxt_common.dialect import CcxtDialect
from adapters.errors import AbsurdVenueData, IncompleteVenueData
from adapters.markets import VenueMarket

VENUE = "binanceusdm"
RECV_WINDOW_MS = 5000  # set in ccxt options (its default 10 s is lowered)
CLOCK_SKEW_ALLOWANCE_MS = 2000


def _order_params(wire_cid: str, tif: str, reduce_only: bool, now_ms: int) -> dict[str, Any]:
    return {"clientOrderId": wire_cid, "timeInForce": tif, "reduceOnly": reduce_only}


def _equity(balance: Mapping[str, Any]) -> Decimal:
    info = balance.get("info")
    if not isinstance(info, Mapping):
        raise IncompleteVenueData(VENUE, "fetch_balance without info")
    return wire.parse_account_equity_usd(info)


DIALECT = CcxtDialect(
    venue=VENUE, settle="USDT", expiry_ms=RECV_WINDOW_MS + CLOCK_SKEW_ALLOWANCE_MS, order_params=_order_params,
    parse_funding=lambda info, market: wire.parse_funding_income(info, symbol=market.symbol),
    equity_usd=_equity,
    rate=(20, 1.0),
    # ccxt's listenKey keep-alive timer outlives exchange.close() and raises ExchangeClosedByUser
    # into the loop: outcomes are read by REST look-up only until that is handled.
    order_stream=False,  # documented: 2400 weight/min, orders 300/10 s
)


async def load_markets(exchange: Any, symbols: Iterable[str] | None = None) -> tuple[dict[str, VenueMarket], list[str]]:
    """USDT linear perpetuals from ccxt's markets, parsed from the raw ``exchangeInfo`` item with the
    real intervals from ``fundingInfo``."""
    await exchange.load_markets()
    funding_info = wire.parse_funding_info(await exchange.fapiPublicGetFundingInfo())
    wanted = set(symbols) if symbols is not None else None
    markets: dict[str, VenueMarket] = {}
    skipped: list[str] = []
    for m in exchange.markets.values():
        if not (m.get("swap") and m.get("linear") and m.get("settle") == "USDT" and m.get("active", True)):
            continue
        try:
            market = wire.parse_instrument(m["info"], funding_info=funding_info)
        except AbsurdVenueData as exc:
            skipped.append(str(exc))
            continue
        if wanted is None or market.symbol in wanted:
            markets[market.symbol] = replace(market, ccxt_symbol=m["symbol"])
    return markets, skipped


async def fetch_quotes(exchange: Any, markets: Mapping[str, VenueMarket], now_ms: int,
                       venue: str = VENUE) -> tuple[list, list[str]]:
    """``premiumIndex`` for every symbol + ``fundingInfo`` (real intervals), parsed by our parser."""
    funding_info = wire.parse_funding_info(await exchange.fapiPublicGetFundingInfo(), venue)
    symbols = {m.venue_symbol: m.symbol for m in markets.values()} if markets else None
    quotes, dropped = [], []
    for item in await exchange.fapiPublicGetPremiumIndex():
        name = str(item.get("symbol"))
        if symbols is not None and name not in symbols:
            continue
        try:
            quotes.append(wire.parse_premium_index(item, funding_info=funding_info,
                                                   symbol=symbols.get(name) if symbols else None, venue=venue))
        except AbsurdVenueData as exc:
            dropped.append(str(exc))
    return quotes, dropped
