"""OKX specifics for the shared ccxt executor and feed.

Venue-side expiry: OKX only refuses requests whose OK-ACCESS-TIMESTAMP is more than 30 s off its clock,
and ccxt sets no deadline, so without one a not-found order could still be in flight long after it
was sent. ``install_order_deadline`` makes every order placement carry OKX's ``expTime`` header (the
request is not processed once the venue's clock is past it) ``ORDER_DEADLINE_MS`` after the send; a
not-found order counts as "can never execute" after that plus a clock-skew allowance (the set-up
refuses a local clock more than 1 s off). Sizes are contracts of ``ctVal`` (x ``ctMult``) base each;
ccxt sends orders through ``/trade/batch-orders`` (a one-order batch) with our ``clOrdId``. Proven
against the emulator's OKX v5 dialect (paper/emulator/okx.py).
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
ORDER_DEADLINE_MS = 5_000  # expTime = send + this
SKEW_ALLOWANCE_MS = 2_000
GRACE_MS = ORDER_DEADLINE_MS + SKEW_ALLOWANCE_MS
_DEADLINED_PATHS = ("trade/order", "trade/batch-orders", "trade/amend-order", "trade/amend-batch-orders")


def install_order_deadline(exchange: Any, deadline_ms: int = ORDER_DEADLINE_MS) -> None:
    """Add OKX's ``expTime`` header (venue-clock ms after which the request is not processed) to every
    order placement/amendment this ccxt ``okx`` instance signs: ccxt has no per-request header, so its
    ``sign`` is wrapped on the instance (the header is not part of OKX's signature)."""
    original = exchange.sign

    def sign(path: str, api: Any = "public", method: str = "GET", params: Any = None, *rest: Any) -> Any:
        request = original(path, api, method, {} if params is None else params, *rest)
        if method == "POST" and path in _DEADLINED_PATHS:
            request["headers"] = {**(request.get("headers") or {}),
                                  "expTime": str(exchange.milliseconds() + deadline_ms)}
        return request

    exchange.sign = sign


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
    funding_history_per_symbol=False,  # bills-archive is account-wide (ccxt filters symbols client-side)
)


async def _funding_rates(exchange: Any) -> dict[str, Mapping[str, Any]]:
    """Every SWAP's ``funding-rate`` item in ONE call (``instId=ANY``, as ccxt's fetch_funding_rates):
    ccxt throttles OKX with one shared bucket, 220 ms per funding-rate call."""
    items = wire.data_list(await exchange.publicGetPublicFundingRate({"instId": "ANY"}))
    return {str(item.get("instId")): item for item in items if isinstance(item, Mapping)}


async def load_markets(exchange: Any, symbols: Iterable[str]) -> tuple[dict[str, VenueMarket], list[str]]:
    """Linear USDT swaps for ``symbols``; each interval measured from its funding-rate answer."""
    await exchange.load_markets()
    wanted = set(symbols)
    rates: dict[str, Mapping[str, Any]] | None = None
    markets: dict[str, VenueMarket] = {}
    skipped: list[str] = []
    for m in exchange.markets.values():
        info = m.get("info") or {}
        if not (m.get("swap") and info.get("ctType") == "linear" and m.get("settle") == "USDT"):
            continue
        base = str(info.get("ctValCcy") or "")
        if base.upper() not in wanted:
            continue
        if rates is None:
            rates = await _funding_rates(exchange)
        try:
            item = rates.get(str(info.get("instId")))
            if item is None:
                raise IncompleteVenueData(VENUE, "no funding-rate item: funding interval unknown")
            market = wire.parse_instrument(info, funding_interval_hours=wire.funding_interval_hours(item))
        except AbsurdVenueData as exc:
            skipped.append(f"{info.get('instId')}: {exc}")
            continue
        markets[market.symbol] = replace(market, ccxt_symbol=m["symbol"])
    return markets, skipped


async def fetch_quotes(exchange: Any, markets: Mapping[str, VenueMarket], now_ms: int) -> tuple[list, list[str]]:
    """All SWAP funding rates (one call) + all SWAP mark prices (one call), parsed by our parser."""
    marks = wire.parse_mark_prices(await exchange.publicGetPublicMarkPrice({"instType": "SWAP"}))
    rates = await _funding_rates(exchange)
    quotes, dropped = [], []
    for market in markets.values():
        try:
            item = rates.get(market.venue_symbol)
            if item is None:
                raise IncompleteVenueData(VENUE, "no funding-rate item in the answer")
            quotes.append(wire.parse_funding_rate(item, mark_price=marks.get(market.venue_symbol), symbol=market.symbol))
        except AbsurdVenueData as exc:
            dropped.append(f"{market.venue_symbol}: {exc}")
    return quotes, dropped
