"""Binance USD-M futures dialect: REST under /fapi/v1|v2|v3 and streams at /ws, /{public,market,private}/ws.

Signed REST (USER_DATA/TRADE): header X-MBX-APIKEY, parameters ``timestamp`` (+ ``recvWindow``,
default 5000, at most 60000) and ``signature`` = HMAC-SHA256(secret, total params) where the total
params are the query string followed by the form body, without the signature itself. Errors answer
HTTP 400 (401 for a bad key, 429 for rate limits) with ``{"code": -NNNN, "msg": ...}``: -2014/-2015
key, -1022 signature, -1021 timestamp, -1003 rate limit, -4116 duplicate clientOrderId, -2013 order
not found, -2011 unknown order (cancel), -2022 reduce-only, -4164 min notional, -1111 precision.
Canceled or expired orders without fills are archived (-2013) 3 days after they ended.
A new order answers the ACK form (status NEW, nothing executed yet) unless
``newOrderRespType=RESULT``; IOC remainders end EXPIRED, as on the venue.

Streams: ``{"method": "SUBSCRIBE", "params": [...], "id": n}`` with ``<sym>@depth[@100ms|@500ms]``
(diff events with U/u/pu continuing the REST ``lastUpdateId``), ``<sym>@depth{5,10,20}``,
``<sym>@ticker``, ``<sym>@miniTicker``, ``<sym>@bookTicker``, ``<sym>@markPrice[@1s]``, ``!markPrice@arr[@1s]``;
the user stream (``?listenKey=`` or ``/ws/<listenKey>``) carries ORDER_TRADE_UPDATE events.
"""

from __future__ import annotations

import json
import secrets
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from bot.core.domain import OrderBook, OrderRequest, OrderSide, OrderStatus, OrderType, TimeInForce
from paper.emulator.binance_spot import BinanceSpotRoutes
from paper.emulator.core import venue_order_number
from paper.emulator.dialect import Dialect
from paper.emulator.wire import (
    StreamConnection,
    VenueRefusal,
    book_delta,
    book_levels,
    hmac_hex,
    json_response,
    num,
    same_signature,
    serve_stream,
)
from paper.venue_store import StoredOrder

ZERO = Decimal(0)
_BOOK_DEPTH = 20
_ARCHIVE_MS = 3 * 86_400_000


def _err(code: int, msg: str, status: int = 400) -> VenueRefusal:
    return VenueRefusal(code, msg, http_status=status)


class BinanceUsdmDialect(BinanceSpotRoutes, Dialect):
    name = "binanceusdm"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listen_keys: dict[str, str] = {}  # listenKey -> api key
        self._last_books: dict[str, OrderBook] = {}
        self._last_ids: dict[str, int] = {}
        self._drop: dict[str, int] = {}
        self._publish_turn = 0

    def add_routes(self, app: web.Application) -> None:
        get, post, put, delete = app.router.add_get, app.router.add_post, app.router.add_put, app.router.add_delete
        for path, handler in (("/fapi/v1/ping", self.ping), ("/fapi/v1/time", self.server_time),
                              ("/fapi/v1/exchangeInfo", self.exchange_info),
                              ("/fapi/v1/premiumIndex", self.premium_index), ("/fapi/v1/fundingInfo", self.funding_info),
                              ("/fapi/v1/fundingRate", self.funding_rate_history), ("/fapi/v1/depth", self.depth),
                              ("/fapi/v1/ticker/24hr", self.ticker_24hr),
                              ("/fapi/v1/ticker/bookTicker", self.book_ticker)):
            get(path, self._public(handler))
        signed = self._signed
        post("/fapi/v1/order", signed(self.new_order))
        get("/fapi/v1/order", signed(self.query_order))
        delete("/fapi/v1/order", signed(self.cancel_order))
        delete("/fapi/v1/allOpenOrders", signed(self.cancel_all))
        get("/fapi/v1/openOrders", signed(self.open_orders))
        get("/fapi/v1/openOrder", signed(self.query_open_order))
        get("/fapi/v1/allOrders", signed(self.all_orders))
        get("/fapi/v1/userTrades", signed(self.user_trades))
        get("/fapi/v1/income", signed(self.income))
        get("/fapi/v2/positionRisk", signed(self.position_risk_v2))
        get("/fapi/v3/positionRisk", signed(self.position_risk_v3))
        get("/fapi/v2/account", signed(self.account))
        get("/fapi/v3/account", signed(self.account))
        get("/fapi/v2/balance", signed(self.balance))
        get("/fapi/v3/balance", signed(self.balance))
        post("/fapi/v1/leverage", signed(self.set_leverage))
        post("/fapi/v1/marginType", signed(self.margin_type))
        post("/fapi/v1/positionSide/dual", signed(self.set_dual))
        get("/fapi/v1/positionSide/dual", signed(self.get_dual))
        get("/fapi/v1/multiAssetsMargin", signed(self.multi_assets))
        get("/fapi/v1/commissionRate", signed(self.commission_rate))
        get("/fapi/v1/leverageBracket", signed(self.leverage_bracket))
        post("/fapi/v1/listenKey", self._keyed(self.new_listen_key))
        put("/fapi/v1/listenKey", self._keyed(self.keep_listen_key))
        delete("/fapi/v1/listenKey", self._keyed(self.keep_listen_key))
        self.add_spot_routes(app)  # Binance spot (/api/v3) on the same port (paper.emulator.binance_spot)
        for path in ("/ws", "/ws/{stream}", "/{category}/ws", "/{category}/ws/{stream}", "/stream",
                     "/{category}/stream"):
            get(path, self.stream)

    # -- fault hooks ------------------------------------------------------------------------------
    async def scope_of(self, request: web.Request) -> str:
        if request.path in ("/fapi/v1/order", "/api/v3/order") and request.method == "POST":
            return "order"
        private = request.path.startswith(("/fapi/", "/api/v3/")) and request.method != "GET" \
            or "signature" in request.query \
            or request.path.endswith("listenKey")
        return "private" if private else "public"

    def rate_limit_response(self) -> web.Response:
        return json_response({"code": -1003, "msg": "Too many requests; current limit of IP(127.0.0.1) is 2400 "
                                                    "requests per minute. Please use the websocket for live updates."},
                             status=429)

    async def duplicate_response(self, request: web.Request) -> web.Response:
        if request.path.startswith("/api/v3/"):  # spot: the generic "new order rejected" code
            return self._refusal(_err(-2010, "Duplicate order sent."))
        return self._refusal(_err(-4116, "ClientOrderId is duplicated."))

    def _refusal(self, exc: VenueRefusal) -> web.Response:
        return json_response({"code": exc.code, "msg": exc.message}, status=exc.http_status)

    # -- auth -------------------------------------------------------------------------------------
    def _public(self, handler):
        async def wrapped(request: web.Request) -> web.Response:
            try:
                return await handler(request, dict(request.query))
            except VenueRefusal as exc:
                return self._refusal(exc)
        return wrapped

    def _keyed(self, handler):
        async def wrapped(request: web.Request) -> web.Response:
            try:
                key = request.headers.get("X-MBX-APIKEY")
                if not key:
                    raise _err(-2014, "API-key format invalid.", 401)
                if key not in self.credentials:
                    raise _err(-2015, "Invalid API-key, IP, or permissions for action.", 401)
                params = dict(request.query)
                params.update(dict(parse_qsl(await request.text())))
                return await handler(request, params, key)
            except VenueRefusal as exc:
                return self._refusal(exc)
        return wrapped

    def _signed(self, handler):
        async def wrapped(request: web.Request) -> web.Response:
            try:
                params = await self._authenticate(request)
                return await handler(request, params)
            except VenueRefusal as exc:
                return self._refusal(exc)
        return wrapped

    async def _authenticate(self, request: web.Request) -> dict[str, str]:
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise _err(-2014, "API-key format invalid.", 401)
        if key not in self.credentials:
            raise _err(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        query = request.query_string
        body = await request.text() if request.method in ("POST", "PUT") else ""
        signature = None
        parts = []
        for text in (query, body):
            kept = []
            for piece in text.split("&") if text else []:
                if piece.startswith("signature="):
                    signature = piece[len("signature="):]
                else:
                    kept.append(piece)
            parts.append("&".join(kept))
        total = parts[0] + parts[1] if not (parts[0] and parts[1]) else parts[0] + "&" + parts[1]
        params = dict(parse_qsl(total, keep_blank_values=True))
        if signature is None:
            raise _err(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        ts, recv = params.get("timestamp", ""), params.get("recvWindow", "5000")
        if not ts.isdigit():
            raise _err(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
        if not recv.isdigit() or int(recv) > 60_000:
            raise _err(-1131, "recvWindow must be less than 60000")
        if not same_signature(hmac_hex(self.credentials[key], total), signature):
            raise _err(-1022, "Signature for this request is not valid.")
        server = self.core.server_time_ms(self.name)
        if not (int(ts) < server + 1000 and server - int(ts) <= int(recv)):
            raise _err(-1021, "Timestamp for this request is outside of the recvWindow.")
        return params

    def _symbol(self, params: dict[str, str], required: bool = True) -> str | None:
        venue_symbol = params.get("symbol")
        if not venue_symbol:
            if required:
                raise _err(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
            return None
        symbol = self.core.symbol_for(self.name, venue_symbol.upper())
        if symbol is None:
            raise _err(-1121, "Invalid symbol.")
        return symbol

    # -- public REST ------------------------------------------------------------------------------
    async def ping(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return json_response({})

    async def server_time(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return json_response({"serverTime": self.core.server_time_ms(self.name)})

    async def exchange_info(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbols = []
        for symbol in self.core.symbols:
            inst = self.core.instrument(self.name, symbol)
            price_decimals = max(0, -inst.tick_size.normalize().as_tuple().exponent)
            qty_decimals = max(0, -inst.lot_size_base.normalize().as_tuple().exponent)
            symbols.append({
                "symbol": inst.venue_symbol, "pair": inst.venue_symbol, "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000, "onboardDate": 1569398400000, "status": "TRADING",
                "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000", "baseAsset": symbol,
                "quoteAsset": "USDT", "marginAsset": "USDT", "pricePrecision": price_decimals,
                "quantityPrecision": qty_decimals, "baseAssetPrecision": 8, "quotePrecision": 8,
                "underlyingType": "COIN", "underlyingSubType": [], "settlePlan": 0, "triggerProtect": "0.0500",
                "liquidationFee": "0.012500", "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": num(inst.tick_size), "maxPrice": "4529764",
                     "tickSize": num(inst.tick_size)},
                    {"filterType": "LOT_SIZE", "stepSize": num(inst.lot_size_base),
                     "maxQty": num(inst.lot_size_base * 1_000_000), "minQty": num(inst.min_size_base)},
                    {"filterType": "MARKET_LOT_SIZE", "stepSize": num(inst.lot_size_base),
                     "maxQty": num(inst.lot_size_base * 100_000), "minQty": num(inst.min_size_base)},
                    {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                    {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                    {"filterType": "MIN_NOTIONAL", "notional": num(inst.min_notional_usd)},
                    {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
                     "multiplierDecimal": "4"},
                ],
                "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                               "TRAILING_STOP_MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"], "permissionSets": ["GRID", "COPY"],
            })
        return json_response({
            "timezone": "UTC", "serverTime": self.core.server_time_ms(self.name), "futuresType": "U_MARGINED",
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
                           {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                           {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300}],
            "exchangeFilters": [], "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": symbols,
        })

    def _premium_row(self, symbol: str) -> dict[str, Any] | None:
        quote = self.core.quote(self.name, symbol)
        if quote is None:
            return None
        mark = num(quote.mark_price)
        return {"symbol": self.core.venue_symbol(self.name, symbol), "markPrice": mark, "indexPrice": mark,
                "estimatedSettlePrice": mark, "lastFundingRate": num(quote.rate_per_interval),
                "interestRate": "0.00010000", "nextFundingTime": quote.next_funding_ts_ms,
                "time": self.core.now_ms()}

    async def premium_index(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._symbol(params, required=False)
        if symbol is not None:
            return json_response(self._premium_row(symbol))
        return json_response([r for s in self.core.symbols if (r := self._premium_row(s)) is not None])

    async def funding_info(self, request: web.Request, params: dict[str, str]) -> web.Response:
        rows = [{"symbol": self.core.venue_symbol(self.name, s), "adjustedFundingRateCap": "0.02000000",
                 "adjustedFundingRateFloor": "-0.02000000", "fundingIntervalHours": self.core.intervals[(self.name, s)],
                 "disclaimer": False}
                for s in self.core.symbols if self.core.intervals[(self.name, s)] != 8]
        return json_response(rows)

    async def funding_rate_history(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._symbol(params, required=False)
        start, end = int(params.get("startTime", 0)), int(params.get("endTime", 1 << 62))
        rows = []
        for (venue, s), history in self.core.settled_rates.items():
            if venue != self.name or (symbol is not None and s != symbol):
                continue
            rows += [{"symbol": self.core.venue_symbol(self.name, s), "fundingTime": ts, "fundingRate": num(rate),
                      "markPrice": num(mark)} for ts, rate, mark in history if start <= ts <= end]
        rows.sort(key=lambda r: r["fundingTime"])
        return json_response(rows[: int(params.get("limit", 100))])

    async def depth(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._symbol(params)
        book = self.core.book(self.name, symbol)
        limit = int(params.get("limit", 500))
        now = self.core.now_ms()
        return json_response({"lastUpdateId": self.core.book_seq[(self.name, symbol)], "E": now, "T": now,
                              "bids": book_levels(book.bids, limit) if book else [],
                              "asks": book_levels(book.asks, limit) if book else []})

    def _ticker_row(self, symbol: str) -> dict[str, Any] | None:
        quote = self.core.quote(self.name, symbol)
        if quote is None:
            return None
        mark, now = num(quote.mark_price), self.core.now_ms()
        return {"symbol": self.core.venue_symbol(self.name, symbol), "priceChange": "0", "priceChangePercent": "0",
                "weightedAvgPrice": mark, "lastPrice": mark, "lastQty": "0", "openPrice": mark, "highPrice": mark,
                "lowPrice": mark, "volume": "0", "quoteVolume": "0", "openTime": now - 86_400_000, "closeTime": now,
                "firstId": 0, "lastId": 0, "count": 0}

    async def ticker_24hr(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._symbol(params, required=False)
        if symbol is not None:
            return json_response(self._ticker_row(symbol))
        return json_response([r for s in self.core.symbols if (r := self._ticker_row(s)) is not None])

    def _book_ticker_row(self, symbol: str) -> dict[str, Any] | None:
        book = self.core.book(self.name, symbol)
        if book is None or not book.bids or not book.asks:
            return None
        return {"symbol": self.core.venue_symbol(self.name, symbol), "bidPrice": num(book.best_bid),
                "bidQty": num(book.bids[0].size_base), "askPrice": num(book.best_ask),
                "askQty": num(book.asks[0].size_base), "time": self.core.now_ms(),
                "lastUpdateId": self.core.book_seq[(self.name, symbol)]}

    async def book_ticker(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._symbol(params, required=False)
        if symbol is not None:
            return json_response(self._book_ticker_row(symbol))
        return json_response([r for s in self.core.symbols if (r := self._book_ticker_row(s)) is not None])

    # -- orders -----------------------------------------------------------------------------------
    async def new_order(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._symbol(params)
        cid = params.get("newClientOrderId") or f"emu{secrets.token_hex(8)}"
        if len(cid) > 36:
            raise _err(-1102, "Param 'newClientOrderId' is longer than 36 characters.")
        if self.core.executor.stored_order(self.name, cid) is not None:
            raise _err(-4116, "ClientOrderId is duplicated.")
        side = {"BUY": OrderSide.BUY, "SELL": OrderSide.SELL}.get(params.get("side", ""))
        if side is None:
            raise _err(-1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed.")
        if params.get("positionSide", "BOTH") != "BOTH":
            raise _err(-4061, "Order's position side does not match user's setting.")
        kind = params.get("type", "")
        if kind not in ("LIMIT", "MARKET"):
            raise _err(-1116, f"Invalid orderType (the emulator supports LIMIT and MARKET, got {kind}).")
        order_type = OrderType.LIMIT if kind == "LIMIT" else OrderType.MARKET
        tif_text = params.get("timeInForce", "GTC" if kind == "LIMIT" else "IOC")
        tif = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.IOC}.get(tif_text)
        if tif is None:
            raise _err(-1115, "Invalid timeInForce.")
        try:
            qty = Decimal(params.get("quantity", ""))
            price = Decimal(params["price"]) if order_type is OrderType.LIMIT else None
        except (InvalidOperation, KeyError):
            raise _err(-1102, "Mandatory parameter 'quantity'/'price' was not sent, was empty/null, or malformed.") \
                from None
        req = OrderRequest(client_order_id=cid, venue=self.name, symbol=symbol, side=side, size_base=qty,
                           order_type=order_type, limit_price=price, time_in_force=tif,
                           reduce_only=params.get("reduceOnly", "false").lower() == "true")
        order = await self.place(req, _refusal_for)
        if params.get("newOrderRespType", "ACK") == "RESULT":
            return json_response(self.order_row(order))
        ack = self.order_row(order)
        ack.update(status="NEW", executedQty="0", cumQty="0", cumQuote="0", avgPrice="0.00")
        ack.pop("time", None)
        return json_response(ack)

    def _find(self, params: dict[str, str]) -> StoredOrder | None:
        """The order by client id or order id WITHIN ``symbol`` (mandatory on these endpoints): as on
        Binance, an order of another symbol "does not exist" there."""
        symbol = self._symbol(params)
        cid, oid = params.get("origClientOrderId"), params.get("orderId")
        order = None
        if cid:
            order = self.core.executor.stored_order(self.name, cid)
        elif oid:
            order = next((o for o in self.core.executor.orders(self.name)
                          if str(venue_order_number(o.venue_order_id)) == oid), None)
        return order if order is not None and order.symbol == symbol else None

    def order_row(self, order: StoredOrder) -> dict[str, Any]:
        fills = self.core.executor.order_fills(self.name, order.client_order_id)
        quote_qty = sum((f.price * f.size_base for f in fills), ZERO)
        if order.status is OrderStatus.CANCELED:
            status = "EXPIRED" if order.time_in_force is TimeInForce.IOC else "CANCELED"
        else:
            status = {OrderStatus.NEW: "NEW", OrderStatus.PARTIALLY_FILLED: "PARTIALLY_FILLED",
                      OrderStatus.FILLED: "FILLED", OrderStatus.REJECTED: "REJECTED"}[order.status]
        tif = "IOC" if order.time_in_force is TimeInForce.IOC else "GTC"
        kind = "LIMIT" if order.order_type is OrderType.LIMIT else "MARKET"
        return {
            "orderId": venue_order_number(order.venue_order_id), "symbol": self.core.venue_symbol(self.name, order.symbol),
            "status": status, "clientOrderId": order.client_order_id, "price": num(order.limit_price or ZERO),
            "avgPrice": num(quote_qty / order.filled_base) if order.filled_base else "0",
            "origQty": num(order.requested_base), "executedQty": num(order.filled_base), "cumQty": num(order.filled_base),
            "cumQuote": num(quote_qty), "timeInForce": tif, "type": kind, "reduceOnly": order.reduce_only,
            "closePosition": False, "side": order.side.value.upper(), "positionSide": "BOTH", "stopPrice": "0",
            "workingType": "CONTRACT_PRICE", "priceProtect": False, "origType": kind, "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0, "time": order.created_ts_ms,
            "updateTime": order.updated_ts_ms,
        }

    async def query_order(self, request: web.Request, params: dict[str, str]) -> web.Response:
        order = self._find(params)
        if order is None or self._archived(order):
            raise _err(-2013, "Order does not exist.")
        return json_response(self.order_row(order))

    def _archived(self, order: StoredOrder) -> bool:
        """Canceled/expired orders without fills are archived after 3 days of the venue clock (as on Binance)."""
        return (order.status.is_terminal and order.filled_base == ZERO
                and self.core.now_ms() - order.updated_ts_ms > _ARCHIVE_MS)

    async def query_open_order(self, request: web.Request, params: dict[str, str]) -> web.Response:
        order = self._find(params)
        if order is None or order.status.is_terminal:
            raise _err(-2013, "Order does not exist.")
        return json_response(self.order_row(order))

    async def cancel_order(self, request: web.Request, params: dict[str, str]) -> web.Response:
        order = self._find(params)
        if order is None or order.status.is_terminal:
            raise _err(-2011, "Unknown order sent.")
        await self.core.executor.cancel_order(self.name, order.client_order_id)
        self.core.notify_orders(self.name, [order.client_order_id])
        return json_response(self.order_row(self.core.executor.stored_order(self.name, order.client_order_id)))

    async def cancel_all(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._symbol(params)
        cids = [o.client_order_id for o in self.core.executor.orders(self.name)
                if o.symbol == symbol and not o.status.is_terminal]
        for cid in cids:
            await self.core.executor.cancel_order(self.name, cid)
        self.core.notify_orders(self.name, cids)
        return json_response({"code": 200, "msg": "The operation of cancel all open order is done."})

    async def open_orders(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._symbol(params, required=False)
        return json_response([self.order_row(o) for o in self.core.executor.orders(self.name)
                              if not o.status.is_terminal and (symbol is None or o.symbol == symbol)])

    async def all_orders(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._symbol(params)
        start, end = int(params.get("startTime", 0)), int(params.get("endTime", 1 << 62))
        rows = [self.order_row(o) for o in self.core.executor.orders(self.name)
                if o.symbol == symbol and start <= o.created_ts_ms <= end]
        return json_response(rows[-int(params.get("limit", 500)):])

    async def user_trades(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._symbol(params)
        start, end = int(params.get("startTime", 0)), int(params.get("endTime", 1 << 62))
        from_id = int(params.get("fromId", 0))
        order_id = params.get("orderId")
        orders = {o.client_order_id: o for o in self.core.executor.orders(self.name)}
        rows = []
        for fill in self.core.executor.venue_fills(self.name):
            order = orders.get(fill.client_order_id)
            trade_id = venue_order_number(fill.trade_id)
            if fill.symbol != symbol or not start <= fill.ts_ms <= end or trade_id < from_id:
                continue
            if order_id and (order is None or str(venue_order_number(order.venue_order_id)) != order_id):
                continue
            rows.append(self.trade_row(fill, order))
        return json_response(rows[: int(params.get("limit", 500))])

    def trade_row(self, fill, order: StoredOrder | None) -> dict[str, Any]:
        return {"buyer": fill.side is OrderSide.BUY, "commission": num(fill.fee_usd), "commissionAsset": "USDT",
                "id": venue_order_number(fill.trade_id), "maker": fill.liquidity.value == "maker",
                "orderId": venue_order_number(order.venue_order_id) if order else 0, "price": num(fill.price),
                "qty": num(fill.size_base), "quoteQty": num(fill.price * fill.size_base), "realizedPnl": "0",
                "side": fill.side.value.upper(), "positionSide": "BOTH",
                "symbol": self.core.venue_symbol(self.name, fill.symbol), "time": fill.ts_ms}

    async def income(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._symbol(params, required=False)
        kind = params.get("incomeType")
        start, end = int(params.get("startTime", 0)), int(params.get("endTime", 1 << 62))
        rows = []
        if kind in (None, "FUNDING_FEE"):
            for pay in self.core.executor.venue_funding(self.name):
                if (symbol is None or pay.symbol == symbol) and start <= pay.ts_ms <= end:
                    rows.append({"symbol": self.core.venue_symbol(self.name, pay.symbol), "incomeType": "FUNDING_FEE",
                                 "income": num(pay.amount_usd), "asset": "USDT", "info": "FUNDING_FEE",
                                 "time": pay.ts_ms, "tranId": abs(hash(pay.payment_id)) % 10**12, "tradeId": ""})
        if kind in (None, "COMMISSION"):
            for fill in self.core.executor.venue_fills(self.name):
                if (symbol is None or fill.symbol == symbol) and start <= fill.ts_ms <= end:
                    rows.append({"symbol": self.core.venue_symbol(self.name, fill.symbol), "incomeType": "COMMISSION",
                                 "income": num(-fill.fee_usd), "asset": "USDT", "info": "COMMISSION",
                                 "time": fill.ts_ms, "tranId": venue_order_number(fill.trade_id),
                                 "tradeId": str(venue_order_number(fill.trade_id))})
        rows.sort(key=lambda r: r["time"])
        return json_response(rows[: int(params.get("limit", 100))])

    # -- account ----------------------------------------------------------------------------------
    def _position_parts(self, symbol: str) -> dict[str, Any]:
        pos = self.core.executor.position_state(self.name, symbol)
        quote = self.core.quote(self.name, symbol)
        mark = quote.mark_price if quote else pos.entry_price
        leverage = self.core.leverage.get((self.name, symbol), 20)
        notional = pos.size_base * mark
        return {"pos": pos, "mark": mark, "leverage": leverage, "notional": notional,
                "upnl": pos.size_base * (mark - pos.entry_price), "im": abs(notional) / leverage}

    def _position_symbols(self, params: dict[str, str]) -> list[str]:
        symbol = self._symbol(params, required=False)
        return [symbol] if symbol else list(self.core.symbols)

    async def position_risk_v2(self, request: web.Request, params: dict[str, str]) -> web.Response:
        rows = []
        for s in self._position_symbols(params):
            p = self._position_parts(s)
            rows.append({"symbol": self.core.venue_symbol(self.name, s), "positionAmt": num(p["pos"].size_base),
                         "entryPrice": num(p["pos"].entry_price), "breakEvenPrice": num(p["pos"].entry_price),
                         "markPrice": num(p["mark"]), "unRealizedProfit": num(p["upnl"]), "liquidationPrice": "0",
                         "leverage": str(p["leverage"]), "maxNotionalValue": "1000000", "marginType": "cross",
                         "isolatedMargin": "0", "isAutoAddMargin": "false", "positionSide": "BOTH",
                         "notional": num(p["notional"]), "isolatedWallet": "0",
                         "updateTime": p["pos"].updated_ts_ms, "isolated": False, "adlQuantile": 0})
        return json_response(rows)

    async def position_risk_v3(self, request: web.Request, params: dict[str, str]) -> web.Response:
        rows = []
        for s in self._position_symbols(params):
            p = self._position_parts(s)
            if p["pos"].size_base == ZERO and not params.get("symbol"):
                continue
            rows.append(self._v3_position(s, p))
        return json_response(rows)

    def _v3_position(self, s: str, p: dict[str, Any]) -> dict[str, Any]:
        return {"symbol": self.core.venue_symbol(self.name, s), "positionSide": "BOTH",
                "positionAmt": num(p["pos"].size_base), "entryPrice": num(p["pos"].entry_price),
                "breakEvenPrice": num(p["pos"].entry_price), "markPrice": num(p["mark"]),
                "unRealizedProfit": num(p["upnl"]), "liquidationPrice": "0", "isolatedMargin": "0",
                "notional": num(p["notional"]), "marginAsset": "USDT", "isolatedWallet": "0",
                "initialMargin": num(p["im"]), "maintMargin": num(p["im"] / 5),
                "positionInitialMargin": num(p["im"]), "openOrderInitialMargin": "0", "adl": 0,
                "bidNotional": "0", "askNotional": "0", "updateTime": p["pos"].updated_ts_ms}

    def _totals(self) -> dict[str, Decimal]:
        bal = self.core.executor.balance_state(self.name)
        upnl = im = ZERO
        for s in self.core.symbols:
            p = self._position_parts(s)
            upnl += p["upnl"]
            im += p["im"]
        return {"wallet": bal.balance_usd, "upnl": upnl, "im": im, "margin": bal.balance_usd + upnl,
                "available": bal.balance_usd + upnl - im}

    async def account(self, request: web.Request, params: dict[str, str]) -> web.Response:
        t = self._totals()
        now = self.core.now_ms()
        asset = {"asset": "USDT", "walletBalance": num(t["wallet"]), "unrealizedProfit": num(t["upnl"]),
                 "marginBalance": num(t["margin"]), "maintMargin": num(t["im"] / 5), "initialMargin": num(t["im"]),
                 "positionInitialMargin": num(t["im"]), "openOrderInitialMargin": "0",
                 "crossWalletBalance": num(t["wallet"]), "crossUnPnl": num(t["upnl"]),
                 "availableBalance": num(t["available"]), "maxWithdrawAmount": num(t["available"]),
                 "marginAvailable": True, "updateTime": now}
        positions = [self._v3_position(s, p) for s in self.core.symbols
                     if (p := self._position_parts(s))["pos"].size_base != ZERO]
        return json_response({
            "totalInitialMargin": num(t["im"]), "totalMaintMargin": num(t["im"] / 5),
            "totalWalletBalance": num(t["wallet"]), "totalUnrealizedProfit": num(t["upnl"]),
            "totalMarginBalance": num(t["margin"]), "totalPositionInitialMargin": num(t["im"]),
            "totalOpenOrderInitialMargin": "0", "totalCrossWalletBalance": num(t["wallet"]),
            "totalCrossUnPnl": num(t["upnl"]), "availableBalance": num(t["available"]),
            "maxWithdrawAmount": num(t["available"]), "canTrade": True, "canDeposit": True, "canWithdraw": True,
            "feeTier": 0, "multiAssetsMargin": False, "tradeGroupId": -1, "updateTime": 0,
            "assets": [asset], "positions": positions,
        })

    async def balance(self, request: web.Request, params: dict[str, str]) -> web.Response:
        t = self._totals()
        return json_response([{"accountAlias": "emulator", "asset": "USDT", "balance": num(t["wallet"]),
                               "crossWalletBalance": num(t["wallet"]), "crossUnPnl": num(t["upnl"]),
                               "availableBalance": num(t["available"]), "maxWithdrawAmount": num(t["available"]),
                               "marginAvailable": True, "updateTime": self.core.now_ms()}])

    async def set_leverage(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._symbol(params)
        leverage = params.get("leverage", "")
        if not leverage.isdigit() or not 1 <= int(leverage) <= 125:
            raise _err(-4028, f"Leverage {leverage} is not valid")
        self.core.leverage[(self.name, symbol)] = int(leverage)
        return json_response({"leverage": int(leverage), "maxNotionalValue": "1000000",
                              "symbol": self.core.venue_symbol(self.name, symbol)})

    async def margin_type(self, request: web.Request, params: dict[str, str]) -> web.Response:
        self._symbol(params)
        if params.get("marginType", "").upper() == "CROSSED":
            raise _err(-4046, "No need to change margin type.")
        raise _err(-4048, "The emulator supports cross margin only.")

    async def set_dual(self, request: web.Request, params: dict[str, str]) -> web.Response:
        if params.get("dualSidePosition", "").lower() == "false":
            raise _err(-4059, "No need to change position side.")
        raise _err(-4068, "The emulator supports one-way mode only.")

    async def get_dual(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return json_response({"dualSidePosition": False})

    async def multi_assets(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return json_response({"multiAssetsMargin": False})

    async def commission_rate(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._symbol(params)
        fees = self.core.fees[self.name]
        return json_response({"symbol": self.core.venue_symbol(self.name, symbol),
                              "makerCommissionRate": num(fees.maker_bps / 10_000),
                              "takerCommissionRate": num(fees.taker_bps / 10_000)})

    async def leverage_bracket(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._symbol(params, required=False)
        brackets = [{"bracket": 1, "initialLeverage": 125, "notionalCap": 50_000, "notionalFloor": 0,
                     "maintMarginRatio": 0.004, "cum": 0.0},
                    {"bracket": 2, "initialLeverage": 50, "notionalCap": 10_000_000, "notionalFloor": 50_000,
                     "maintMarginRatio": 0.01, "cum": 300.0}]
        rows = [{"symbol": self.core.venue_symbol(self.name, s), "notionalCoef": 1.0, "brackets": brackets}
                for s in ([symbol] if symbol else self.core.symbols)]
        return json_response(rows[0] if symbol else rows)

    async def new_listen_key(self, request: web.Request, params: dict[str, str], key: str) -> web.Response:
        listen_key = secrets.token_urlsafe(48)
        self._listen_keys[listen_key] = key
        return json_response({"listenKey": listen_key})

    async def keep_listen_key(self, request: web.Request, params: dict[str, str], key: str) -> web.Response:
        return json_response({})

    # -- streams ----------------------------------------------------------------------------------
    async def stream(self, request: web.Request) -> web.StreamResponse:
        listen_key = request.query.get("listenKey") or request.match_info.get("stream")
        private = listen_key in self._listen_keys
        combined = request.path.endswith("/stream")
        initial = [s for s in request.query.get("streams", "").split("/") if s]
        if request.match_info.get("stream") and not private:
            initial.append(request.match_info["stream"])

        def factory(ws: web.WebSocketResponse) -> StreamConnection:
            conn = StreamConnection(ws, self.name, "private" if private else "public", authed=private)
            conn.state["combined"] = combined
            for name in initial:
                parsed = self._parse_stream(name)
                if parsed is not None:
                    conn.topics.add(name)
                    if parsed[0] == "depth":
                        self._track(parsed[1])
            return conn

        return await serve_stream(request, factory, self._on_text, self.hub)

    def _track(self, symbol: str) -> None:
        """Start computing diff events for ``symbol`` from its current book (first subscriber)."""
        book = self.core.book(self.name, symbol)
        if symbol not in self._last_books and book is not None:
            self._last_books[symbol] = book
            self._last_ids[symbol] = self.core.book_seq[(self.name, symbol)]

    def _parse_stream(self, name: str) -> tuple[str, str | None] | None:
        if name.startswith("!markPrice@arr"):
            return ("markPriceAll", None)
        sym, _, channel = name.partition("@")
        symbol = self.core.symbol_for(self.name, sym.upper())
        if symbol is None:
            return None
        base = channel.split("@")[0]
        if base in ("depth", "depth5", "depth10", "depth20", "ticker", "miniTicker", "bookTicker", "markPrice"):
            return (base, symbol)
        return None

    async def _on_text(self, conn: StreamConnection, text: str) -> None:
        try:
            msg = json.loads(text)
        except json.JSONDecodeError:
            conn.send({"error": {"code": 3, "msg": "Invalid JSON"}})
            return
        method, req_id = msg.get("method"), msg.get("id")
        names = [str(p) for p in msg.get("params") or []]
        if method == "SUBSCRIBE":
            bad = [n for n in names if self._parse_stream(n) is None]
            if bad:
                conn.send({"error": {"code": 2, "msg": f"Invalid request: unknown stream {bad[0]}"}, "id": req_id})
                return
            conn.topics.update(names)
            conn.send({"result": None, "id": req_id})
            for name in names:
                kind, symbol = self._parse_stream(name)
                if kind == "depth":  # diff depth continues from the current book with the next update
                    self._track(symbol)
                else:  # the rest gets one message now
                    self._push(conn, name, kind, symbol)
        elif method == "UNSUBSCRIBE":
            conn.topics.difference_update(names)
            conn.send({"result": None, "id": req_id})
        elif method == "LIST_SUBSCRIPTIONS":
            conn.send({"result": sorted(conn.topics), "id": req_id})
        else:
            conn.send({"error": {"code": 2, "msg": f"Invalid request: unknown method {method}"}, "id": req_id})

    def _send(self, conn: StreamConnection, name: str, payload: Any) -> None:
        conn.send({"stream": name, "data": payload} if conn.state.get("combined") else payload)

    def _mark_event(self, symbol: str) -> dict[str, Any] | None:
        quote = self.core.quote(self.name, symbol)
        if quote is None:
            return None
        mark = num(quote.mark_price)
        return {"e": "markPriceUpdate", "E": self.core.now_ms(), "s": self.core.venue_symbol(self.name, symbol),
                "p": mark, "ap": mark, "P": mark, "i": mark, "r": num(quote.rate_per_interval),
                "T": quote.next_funding_ts_ms}

    def _push(self, conn: StreamConnection, name: str, kind: str, symbol: str | None,
              delta: dict[str, Any] | None = None) -> None:
        now = self.core.now_ms()
        if kind == "markPriceAll":
            self._send(conn, name, [e for s in self.core.symbols if (e := self._mark_event(s))])
            return
        vs = self.core.venue_symbol(self.name, symbol)
        if kind == "markPrice":
            event = self._mark_event(symbol)
            if event:
                self._send(conn, name, event)
        elif kind == "ticker":
            row = self._ticker_row(symbol)
            if row:
                self._send(conn, name, {"e": "24hrTicker", "E": now, "s": vs, "p": "0", "P": "0",
                                        "w": row["lastPrice"], "c": row["lastPrice"], "Q": "0", "o": row["lastPrice"],
                                        "h": row["lastPrice"], "l": row["lastPrice"], "v": "0", "q": "0",
                                        "O": now - 86_400_000, "C": now, "F": 0, "L": 0, "n": 0})
        elif kind == "miniTicker":
            row = self._ticker_row(symbol)
            if row:
                self._send(conn, name, {"e": "24hrMiniTicker", "E": now, "s": vs, "c": row["lastPrice"],
                                        "o": row["lastPrice"], "h": row["lastPrice"], "l": row["lastPrice"],
                                        "v": "0", "q": "0"})
        elif kind == "bookTicker":
            row = self._book_ticker_row(symbol)
            if row:
                self._send(conn, name, {"e": "bookTicker", "u": row["lastUpdateId"], "s": vs, "b": row["bidPrice"],
                                        "B": row["bidQty"], "a": row["askPrice"], "A": row["askQty"], "T": now, "E": now})
        elif kind in ("depth5", "depth10", "depth20"):
            book = self.core.book(self.name, symbol)
            if book:
                depth = int(kind[5:])
                seq = self.core.book_seq[(self.name, symbol)]
                self._send(conn, name, {"e": "depthUpdate", "E": now, "T": now, "s": vs, "U": seq, "u": seq,
                                        "pu": seq - 1, "b": book_levels(book.bids, depth),
                                        "a": book_levels(book.asks, depth)})
        elif kind == "depth" and delta is not None:
            self._send(conn, name, delta)

    def publish_books(self) -> None:
        now = self.core.now_ms()
        self._publish_turn += 1
        deltas: dict[str, dict[str, Any] | None] = {}
        watched = {parsed[1] for conn in self.hub if conn.kind == "public" for name in conn.topics
                   if (parsed := self._parse_stream(name)) is not None and parsed[0] == "depth"}
        for symbol in self.core.symbols:
            if symbol not in watched:  # nobody streams this book: the next subscriber starts from a fresh base
                self._last_books.pop(symbol, None)
                continue
            book = self.core.book(self.name, symbol)
            if book is None:
                continue
            seq = self.core.book_seq[(self.name, symbol)]
            prev_u = self._last_ids.get(symbol, seq - 1)
            bids, asks = book_delta(self._last_books.get(symbol), book, _BOOK_DEPTH)
            self._last_books[symbol] = book
            self._last_ids[symbol] = seq
            event = {"e": "depthUpdate", "E": now, "T": now, "s": self.core.venue_symbol(self.name, symbol),
                     "U": prev_u + 1, "u": seq, "pu": prev_u, "b": bids, "a": asks}
            if self._drop.get(symbol):
                self._drop[symbol] -= 1
                event = None
            elif self.hub and self._gap_fault():
                self._drop[symbol] = self._gap_skip - 1
                event = None
            deltas[symbol] = event
        for conn in list(self.hub):
            if conn.kind != "public":
                continue
            names = sorted(conn.topics)
            turn = self._publish_turn % len(names) if names else 0
            for name in names[turn:] + names[:turn]:  # rotate: no stream always arrives last in a burst
                parsed = self._parse_stream(name)
                if parsed is None:
                    continue
                kind, symbol = parsed
                if kind == "depth":
                    if deltas.get(symbol) is not None:
                        self._push(conn, name, kind, symbol, deltas[symbol])
                else:
                    self._push(conn, name, kind, symbol)

    def _gap_fault(self) -> bool:
        fault = self.board.take(self.name, ("ws_sequence_gap",), "public")
        if fault is None:
            return False
        self._gap_skip = int(fault.params.get("skip", 1))
        return True

    def publish_orders(self, client_order_ids: list[str]) -> None:
        now = self.core.now_ms()
        events = []
        for cid in client_order_ids:
            order = self.core.executor.stored_order(self.name, cid)
            if order is None:
                continue
            row = self.order_row(order)
            fills = self.core.executor.order_fills(self.name, cid)
            last = fills[-1] if fills else None
            events.append({"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": {
                "s": row["symbol"], "c": cid, "S": row["side"], "o": row["type"], "f": row["timeInForce"],
                "q": row["origQty"], "p": row["price"], "ap": row["avgPrice"], "sp": "0",
                "x": "TRADE" if last else ("CANCELED" if order.status.is_terminal else "NEW"), "X": row["status"],
                "i": row["orderId"], "l": num(last.size_base) if last else "0", "z": row["executedQty"],
                "L": num(last.price) if last else "0", "n": num(last.fee_usd) if last else "0", "N": "USDT",
                "T": order.updated_ts_ms, "t": venue_order_number(last.trade_id) if last else 0, "b": "0", "a": "0",
                "m": bool(last and last.liquidity.value == "maker"), "R": order.reduce_only, "wt": "CONTRACT_PRICE",
                "ot": row["type"], "ps": "BOTH", "cp": False, "rp": "0", "pP": False, "si": 0, "ss": 0,
                "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0}})
        for conn in list(self.hub):
            if conn.kind == "private":
                for event in events:
                    conn.send(event)


def _refusal_for(reason: str) -> VenueRefusal:
    """The Binance answer for a paper-engine rejection reason."""
    if "reduce_only" in reason:
        return _err(-2022, "ReduceOnly Order is rejected.")
    if "min_notional" in reason:
        return _err(-4164, "Order's notional must be no smaller than 5 (unless you choose reduce only).")
    if "lot_size" in reason or "min_size" in reason or "must be positive" in reason:
        return _err(-1111, "Precision is over the maximum defined for this asset.")
    if "tick_size" in reason:
        return _err(-4014, "Price not increased by tick size.")
    return _err(-1102, f"Illegal parameter: {reason}")
