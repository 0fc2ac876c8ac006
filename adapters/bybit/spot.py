"""Bybit spot (``category=spot``) for the long leg of a carry position: executor and market data.

``BybitSpotExecutor`` is the Bybit order protocol (``adapters.bybit.execution``: validation, IOC limit
at the slippage bound rounded conservatively, deterministic ``orderLinkId``, every unknown outcome
looked up by client id, "not found" only after the recv window) on the spot API, plus the
``bot.core.ports.SpotWallet`` port:
- orders are limit orders in BASE units (a spot market BUY would be in quote units; we never send
  one), never ``reduceOnly`` (spot has none: a request's ``reduce_only`` is ignored, the engine
  bounds spot sells by its own holding above the recorded baseline);
- fills carry the base-coin fee in ``Fill.fee_base`` (``OrderReport.fee_base`` sums them);
- ``positions`` and ``funding_payments_since`` are empty (a wallet has no position, spot pays no
  funding); ``balances_usd`` reports the unified account's equity (coins included) under the spot
  market's name too, so the entry gates can size the spot leg;
- ``spot_wallet_base`` reads the wallet's base coins (validated: never a guess).

``BybitSpotMarketData`` keeps spot books from ``/v5/public/spot`` (same book maintenance, watchdog and
REST resync as the linear feed) and publishes the zero-funding quote of each spot market.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from loguru import logger

from adapters.bybit import parsing as wire
from adapters.bybit import spot_parsing as spot_wire
from adapters.bybit.execution import BybitExecutor
from adapters.bybit.http import BybitHttp
from adapters.bybit.market_data import BOOK_DEPTH, BybitMarketData
from adapters.errors import AbsurdVenueData, OrderRejected, VenueError
from adapters.markets import VenueMarket
from bot.core.domain import (
    Fill,
    FundingPayment,
    OrderReport,
    OrderRequest,
    OrderSide,
    TimeInForce,
    VenuePosition,
)

CATEGORY = "spot"
PUBLIC_WS_PATH = "/v5/public/spot"


async def load_spot_markets(http: BybitHttp, symbols: Iterable[str] | None = None) -> tuple[dict[str, VenueMarket], list[str]]:
    """Every trading USDT spot pair (optionally only ``symbols``), plus skipped lines."""
    wanted = set(symbols) if symbols is not None else None
    answer = await http.call("get_instruments_info", category=CATEGORY, limit=1000)
    parsed, skipped = spot_wire.parse_spot_instruments(answer)
    return {m.symbol: m for m in parsed if wanted is None or m.symbol in wanted}, skipped


class BybitSpotExecutor(BybitExecutor):
    """Live executor for the spot wallet of one Bybit unified account (market name ``bybit:spot``)."""

    category = CATEGORY

    def __init__(self, http: BybitHttp, **kwargs: Any) -> None:
        kwargs.setdefault("venue", spot_wire.MARKET)
        super().__init__(http, **kwargs)

    def _market(self, symbol: str) -> VenueMarket:
        market = self._markets.get(symbol)
        if market is None:
            raise OrderRejected(self.venue, f"symbol {symbol!r} is not a loaded spot pair")
        return market

    def _order_params(self, request: OrderRequest, market: VenueMarket, size: Decimal, price: Decimal,
                      link_id: str) -> dict[str, Any]:
        """A spot limit order in base units: no ``reduceOnly``, no ``positionIdx``, no borrowing."""
        return {
            "category": CATEGORY, "symbol": market.venue_symbol,
            "side": "Buy" if request.side is OrderSide.BUY else "Sell", "orderType": "Limit",
            "qty": str(size), "price": str(price), "isLeverage": 0, "marketUnit": "baseCoin",
            "timeInForce": "GTC" if request.time_in_force is TimeInForce.GTC else "IOC",
            "orderLinkId": link_id,
        }

    async def _reduce_only_size(self, request: OrderRequest, market: VenueMarket) -> Decimal:
        return request.size_base  # spot has no reduce-only (docs/carry.md): the flag is ignored

    def _parse_fill(self, item: Mapping[str, Any], *, symbol: str, client_order_id: str) -> Fill:
        return spot_wire.parse_spot_execution(item, symbol=symbol, client_order_id=client_order_id, market=self.venue)

    def _parse_order(self, item: Mapping[str, Any], *, symbol: str, client_order_id: str,
                     fills: tuple[Fill, ...]) -> OrderReport:
        return spot_wire.parse_spot_order(item, symbol=symbol, client_order_id=client_order_id, fills=fills,
                                          market=self.venue)

    async def cancel_all_orders(self, venue: str | None = None) -> int:
        """Cancel every resting spot order of the account; how many were cancelled."""
        self._check_venue(venue)
        answer = await self._http.call("cancel_all_orders", order=True, category=CATEGORY)
        return len(wire.result_list(answer))

    async def positions(self, venue: str | None = None) -> list[VenuePosition]:
        """A wallet has no position: always [] (the engine reads ``spot_wallet_base``)."""
        self._check_venue(venue)
        return []

    async def balances_usd(self) -> dict[str, Decimal]:
        """The unified account's equity (USDT and coins), under the spot market's name: the entry gates
        size a spot leg against it. The linear executor of the same account reports the same number
        under ``bybit``: one account, two markets (a percent drawdown is unchanged by the repeat)."""
        answer = await self._http.call("get_wallet_balance", accountType="UNIFIED")
        return {self.venue: wire.parse_wallet_equity_usd(answer)}

    async def funding_payments_since(self, venue: str, since_ts_ms: int) -> list[FundingPayment]:
        """Spot pays and receives no funding: always []."""
        self._check_venue(venue)
        return []

    async def spot_wallet_base(self, market: str) -> dict[str, Decimal]:
        """Total base-coin balances of the unified wallet (free + locked), by canonical symbol, for the
        loaded spot pairs. Raises ``TemporaryVenueError`` / ``AbsurdVenueData`` rather than guess."""
        self._check_venue(market)
        answer = await self._http.call("get_wallet_balance", accountType="UNIFIED")
        return spot_wire.parse_spot_wallet(answer, symbols=list(self._markets), market=self.venue)


class BybitSpotMarketData(BybitMarketData):
    """Spot books of ``bybit:spot`` from ``/v5/public/spot`` and their zero-funding quotes."""

    def __init__(self, http: BybitHttp, markets: Mapping[str, VenueMarket], *, ws_url: str, **kwargs: Any) -> None:
        kwargs.setdefault("venue", spot_wire.MARKET)
        super().__init__(http, markets, ws_url=ws_url, **kwargs)
        self._ws_url = ws_url.rstrip("/") + PUBLIC_WS_PATH

    def _topics(self) -> list[str]:
        return [f"orderbook.{BOOK_DEPTH}.{m.venue_symbol}" for m in self._markets.values()]

    def _on_ticker(self, message: Mapping[str, Any]) -> None:
        return None  # spot quotes come from the book (no funding fields on spot tickers)

    def _on_book(self, message: Mapping[str, Any]) -> None:
        super()._on_book(message)
        name = str(message.get("topic", "")).rsplit(".", 1)[-1]
        self._publish_quote(name)

    def _publish_quote(self, venue_symbol: str) -> None:
        book = self._book_views.get(venue_symbol)
        quote = spot_wire.spot_quote(book, self.venue) if book is not None else None
        if quote is not None:
            self._quotes[venue_symbol] = quote

    async def resync_rest(self) -> None:
        """Refresh the spot books over REST (while the stream is down or stale)."""
        try:
            for market in self._markets.values():
                answer = await self._http.call("get_orderbook", category=CATEGORY, symbol=market.venue_symbol,
                                               limit=BOOK_DEPTH)
                try:
                    book = wire.parse_rest_orderbook(answer, market.symbol)
                    self._book_views[market.venue_symbol] = replace(book, venue=self.venue)
                    self._publish_quote(market.venue_symbol)
                except AbsurdVenueData as exc:
                    self._drop(str(exc))
                    continue
                self._notify(market)
        except VenueError as exc:
            logger.bind(venue=self.venue).warning("REST resync failed: {}", exc)
