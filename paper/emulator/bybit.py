"""Bybit v5 (category=linear and spot) dialect: REST under /v5/... and streams at /v5/public/linear,
/v5/public/spot, /v5/private. The spot half lives in ``paper.emulator.bybit_spot``.

Signed REST: headers X-BAPI-API-KEY, X-BAPI-TIMESTAMP, X-BAPI-RECV-WINDOW, X-BAPI-SIGN =
HMAC-SHA256(secret, timestamp + key + recv_window + (raw query string | raw body)); the timestamp
must lie within [server - recv_window, server + 1000 ms) of the venue clock (wall + injected skew).
Errors answer HTTP 200 with the venue retCode (10003 key, 10004 sign, 10002 timestamp, 10006 rate
limit, 110072 duplicate orderLinkId, 110001 order not found, 110017 reduce-only, 10001 params).
Private stream auth: ["auth", key, expires, HMAC(secret, "GET/realtime" + expires)].
``/v5/order/realtime`` returns closed orders only from the current emulator run (as the venue forgets
them after a restart); ``/v5/order/history`` has every order.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from bot.core.domain import OrderRequest, OrderSide, OrderStatus, OrderType, TimeInForce
from paper.emulator.bybit_spot import BybitSpotRoutes
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
_STATUS = {OrderStatus.NEW: "New", OrderStatus.PARTIALLY_FILLED: "PartiallyFilled", OrderStatus.FILLED: "Filled",
           OrderStatus.REJECTED: "Rejected"}


def _ok(result: Any, now_ms: int) -> web.Response:
    return json_response({"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": now_ms})


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


class BybitDialect(BybitSpotRoutes, Dialect):
    name = "bybit"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # /v5/order/realtime knows closed orders only from its own memory: after a venue restart they
        # are found in /v5/order/history alone (LIVE.md), so adapters must fall back to it
        self._session_start_ms = self.core.now_ms()

    def add_routes(self, app: web.Application) -> None:
        get, post = app.router.add_get, app.router.add_post
        get("/v5/market/time", self.market_time)
        get("/v5/market/instruments-info", self.instruments)
        get("/v5/market/tickers", self.tickers)
        get("/v5/market/orderbook", self.orderbook)
        get("/v5/market/funding/history", self.funding_history)
        get("/v5/account/wallet-balance", self._private(self.wallet_balance))
        get("/v5/account/info", self._private(self.account_info))
        get("/v5/account/fee-rate", self._private(self.fee_rate))
        get("/v5/user/query-api", self._private(self.query_api))
        get("/v5/asset/coin/query-info", self._private(self.coin_info))
        post("/v5/order/create", self._private(self.create_order))
        post("/v5/order/cancel", self._private(self.cancel_order))
        post("/v5/order/cancel-all", self._private(self.cancel_all))
        get("/v5/order/realtime", self._private(self.open_orders))
        get("/v5/order/history", self._private(self.order_history))
        get("/v5/position/list", self._private(self.position_list))
        get("/v5/execution/list", self._private(self.execution_list))
        post("/v5/position/set-leverage", self._private(self.set_leverage))
        post("/v5/position/switch-mode", self._private(self.switch_mode))
        post("/v5/position/switch-isolated", self._private(self.switch_isolated))
        post("/v5/account/set-margin-mode", self._private(self.set_margin_mode))
        get("/v5/public/linear", self.public_stream)
        get("/v5/public/spot", self.spot_public_stream)
        get("/v5/private", self.private_stream)

    # -- fault hooks ------------------------------------------------------------------------------
    async def scope_of(self, request: web.Request) -> str:
        if request.path == "/v5/order/create":
            return "order"
        return "public" if request.path.startswith("/v5/market/") else "private"

    def rate_limit_response(self) -> web.Response:
        return json_response({"retCode": 10006, "retMsg": "Too many visits!", "result": {}, "retExtInfo": {},
                              "time": self.core.server_time_ms(self.name)})

    async def duplicate_response(self, request: web.Request) -> web.Response:
        return self._refusal(VenueRefusal(110072, "OrderLinkedID is duplicate"))

    def _refusal(self, exc: VenueRefusal) -> web.Response:
        return json_response({"retCode": exc.code, "retMsg": exc.message, "result": {}, "retExtInfo": {},
                              "time": self.core.server_time_ms(self.name)}, status=exc.http_status)

    # -- auth -------------------------------------------------------------------------------------
    def _private(self, handler):
        async def wrapped(request: web.Request) -> web.Response:
            try:
                await self._authenticate(request)
                return await handler(request)
            except VenueRefusal as exc:
                return self._refusal(exc)
        return wrapped

    async def _authenticate(self, request: web.Request) -> None:
        h = request.headers
        key, ts, sign = h.get("X-BAPI-API-KEY"), h.get("X-BAPI-TIMESTAMP"), h.get("X-BAPI-SIGN")
        recv = h.get("X-BAPI-RECV-WINDOW", "5000")
        if not key or key not in self.credentials:
            raise VenueRefusal(10003, "API key is invalid.")
        if not ts or not ts.isdigit() or not recv.isdigit():
            raise VenueRefusal(10001, "params error: X-BAPI-TIMESTAMP / X-BAPI-RECV-WINDOW")
        server = self.core.server_time_ms(self.name)
        if not server - int(recv) <= int(ts) < server + 1000:
            raise VenueRefusal(10002, f"invalid request, please check your server timestamp or recv_window param. "
                                      f"req_timestamp[{ts}],server_timestamp[{server}],recv_window[{recv}]")
        body = request.query_string if request.method == "GET" else (await request.text())
        if not same_signature(hmac_hex(self.credentials[key], ts + key + recv + body), sign):
            raise VenueRefusal(10004, "error sign! origin_string[...]")

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.method == "GET":
            return dict(request.query)
        text = await request.text()
        try:
            data = json.loads(text) if text else {}
        except json.JSONDecodeError:
            raise VenueRefusal(10001, "params error: body is not JSON") from None
        if not isinstance(data, dict):
            raise VenueRefusal(10001, "params error: body is not an object")
        return data

    def _symbol(self, venue_symbol: Any, required: bool = True) -> str | None:
        if venue_symbol in (None, ""):
            if required:
                raise VenueRefusal(10001, "params error: symbol is required")
            return None
        symbol = self.core.symbol_for(self.name, str(venue_symbol))
        if symbol is None:
            raise VenueRefusal(10001, "params error: symbol invalid")
        return symbol

    # -- public REST ------------------------------------------------------------------------------
    async def market_time(self, request: web.Request) -> web.Response:
        now = self.core.server_time_ms(self.name)
        return _ok({"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}, now)

    def _category(self, request: web.Request) -> str:
        return request.query.get("category", "linear")

    async def instruments(self, request: web.Request) -> web.Response:
        category = self._category(request)
        rows = []
        if category == "spot":
            rows = self.spot_instrument_rows(request.query.get("symbol"))
        if category == "linear":
            wanted = request.query.get("symbol")
            for symbol in self.core.symbols:
                inst = self.core.instrument(self.name, symbol)
                if wanted and inst.venue_symbol != wanted:
                    continue
                rows.append(self._instrument_row(inst))
        return _ok({"category": category, "list": rows, "nextPageCursor": ""}, self.core.server_time_ms(self.name))

    def _instrument_row(self, inst) -> dict[str, Any]:
        decimals = max(0, -inst.tick_size.normalize().as_tuple().exponent)
        return {
            "symbol": inst.venue_symbol, "contractType": "LinearPerpetual", "status": "Trading",
            "baseCoin": inst.symbol, "quoteCoin": "USDT", "launchTime": "1585526400000", "deliveryTime": "0",
            "deliveryFeeRate": "", "priceScale": str(decimals),
            "leverageFilter": {"minLeverage": "1", "maxLeverage": "50.00", "leverageStep": "0.01"},
            "priceFilter": {"minPrice": num(inst.tick_size), "maxPrice": "1999999.80", "tickSize": num(inst.tick_size)},
            "lotSizeFilter": {"maxOrderQty": num(inst.lot_size_base * 1_000_000), "minOrderQty": num(inst.min_size_base),
                              "qtyStep": num(inst.lot_size_base),
                              "postOnlyMaxOrderQty": num(inst.lot_size_base * 1_000_000),
                              "maxMktOrderQty": num(inst.lot_size_base * 100_000),
                              "minNotionalValue": num(inst.min_notional_usd)},
            "unifiedMarginTrade": True, "fundingInterval": int(inst.funding_interval_hours * 60),
            "settleCoin": "USDT", "copyTrading": "both", "upperFundingRate": "0.02", "lowerFundingRate": "-0.02",
            "isPreListing": False, "preListingInfo": None, "symbolType": "",
        }

    def _ticker_row(self, symbol: str) -> dict[str, Any] | None:
        quote = self.core.quote(self.name, symbol)
        book = self.core.book(self.name, symbol)
        if quote is None or book is None:
            return None
        mark = num(quote.mark_price)
        return {
            "symbol": self.core.venue_symbol(self.name, symbol), "lastPrice": mark, "indexPrice": mark,
            "markPrice": mark, "prevPrice24h": mark, "price24hPcnt": "0", "highPrice24h": mark, "lowPrice24h": mark,
            "prevPrice1h": mark, "openInterest": "1000", "openInterestValue": num(quote.mark_price * 1000),
            "turnover24h": "0", "volume24h": "0", "fundingRate": num(quote.rate_per_interval),
            "nextFundingTime": str(quote.next_funding_ts_ms), "fundingIntervalHour": num(quote.interval_hours),
            "fundingCap": "0.02", "predictedDeliveryPrice": "", "basisRate": "", "deliveryFeeRate": "",
            "deliveryTime": "0", "basis": "", "bid1Price": num(book.best_bid), "bid1Size": num(book.bids[0].size_base),
            "ask1Price": num(book.best_ask), "ask1Size": num(book.asks[0].size_base), "preOpenPrice": "",
            "preQty": "", "curPreListingPhase": "",
        }

    async def tickers(self, request: web.Request) -> web.Response:
        category = self._category(request)
        rows: list[dict[str, Any]] = []
        if category in ("linear", "spot"):
            try:
                wanted = self._symbol(request.query.get("symbol"), required=False)
            except VenueRefusal as exc:
                return self._refusal(exc)
            for symbol in self.core.symbols:
                if wanted is None or symbol == wanted:
                    row = self._ticker_row(symbol) if category == "linear" else self.spot_ticker_row(symbol)
                    if row is not None:
                        rows.append(row)
        return _ok({"category": category, "list": rows}, self.core.server_time_ms(self.name))

    async def orderbook(self, request: web.Request) -> web.Response:
        try:
            symbol = self._symbol(request.query.get("symbol"))
        except VenueRefusal as exc:
            return self._refusal(exc)
        depth = int(request.query.get("limit", "25"))
        spot = self._category(request) == "spot"
        book = self.core.spot_book(self.name, symbol) if spot else self.core.book(self.name, symbol)
        now = self.core.now_ms()
        seq = self.core.book_seq[(self.name, symbol)]
        return _ok({"s": self.core.venue_symbol(self.name, symbol),
                    "b": book_levels(book.bids, depth) if book else [], "a": book_levels(book.asks, depth) if book else [],
                    "ts": now, "u": seq, "seq": seq, "cts": now}, self.core.server_time_ms(self.name))

    async def funding_history(self, request: web.Request) -> web.Response:
        try:
            symbol = self._symbol(request.query.get("symbol"))
        except VenueRefusal as exc:
            return self._refusal(exc)
        rows = [{"symbol": self.core.venue_symbol(self.name, symbol), "fundingRate": num(rate),
                 "fundingRateTimestamp": str(ts)}
                for ts, rate, _mark in reversed(self.core.settled_rates.get((self.name, symbol), []))]
        limit = int(request.query.get("limit", "200"))
        return _ok({"category": "linear", "list": rows[:limit]}, self.core.server_time_ms(self.name))

    # -- private REST: account --------------------------------------------------------------------
    async def wallet_balance(self, request: web.Request) -> web.Response:
        return _ok({"list": [self._wallet_account()]}, self.core.server_time_ms(self.name))

    def _wallet_account(self) -> dict[str, Any]:
        bal = self.core.executor.balance_state(self.name)
        upnl = ZERO
        im = ZERO
        for pos in self.core.executor.all_positions(self.name):
            quote = self.core.quote(self.name, pos.symbol)
            if pos.size_base and quote is not None:
                upnl += pos.size_base * (quote.mark_price - pos.entry_price)
                im += abs(pos.size_base) * quote.mark_price / 10
        spot_rows, spot_usd = self.spot_coin_rows()
        usdt = bal.balance_usd + self.spot_ledger.wallet.get("USDT", ZERO)  # unified: spot trades move the same USDT
        equity = usdt + upnl
        coin = {"coin": "USDT", "equity": num(equity), "usdValue": num(equity), "walletBalance": num(usdt),
                "free": "", "locked": "0", "spotHedgingQty": "0", "borrowAmount": "0", "availableToWithdraw": "",
                "accruedInterest": "0", "totalOrderIM": "0", "totalPositionIM": num(im), "totalPositionMM": num(im / 5),
                "unrealisedPnl": num(upnl), "cumRealisedPnl": num(bal.realized_pnl_usd + bal.funding_usd - bal.fees_usd),
                "bonus": "0", "marginCollateral": True, "collateralSwitch": True, "availableToBorrow": ""}
        account = {"accountType": "UNIFIED", "accountIMRate": "0", "accountMMRate": "0", "accountLTV": "0",
                   "totalEquity": num(equity + spot_usd), "totalWalletBalance": num(usdt + spot_usd),
                   "totalMarginBalance": num(equity + spot_usd), "totalAvailableBalance": num(equity - im),
                   "totalPerpUPL": num(upnl), "totalInitialMargin": num(im), "totalMaintenanceMargin": num(im / 5),
                   "coin": [coin, *spot_rows]}
        return account

    async def account_info(self, request: web.Request) -> web.Response:
        return _ok({"unifiedMarginStatus": 5, "marginMode": "REGULAR_MARGIN", "isMasterTrader": False,
                    "spotHedgingStatus": "OFF", "updatedTime": "1700000000000", "dcpStatus": "OFF",
                    "timeWindow": 10, "smpGroup": 0}, self.core.server_time_ms(self.name))

    async def fee_rate(self, request: web.Request) -> web.Response:
        fees = self.core.fees[self.name]
        rows = [{"symbol": self.core.venue_symbol(self.name, s), "takerFeeRate": num(fees.taker_bps / 10_000),
                 "makerFeeRate": num(fees.maker_bps / 10_000)} for s in self.core.symbols]
        return _ok({"list": rows}, self.core.server_time_ms(self.name))

    async def query_api(self, request: web.Request) -> web.Response:
        key = request.headers.get("X-BAPI-API-KEY", "")
        return _ok({"id": "1", "note": "emulator", "apiKey": key, "readOnly": 0, "secret": "",
                    "permissions": {"ContractTrade": ["Order", "Position"], "Wallet": ["AccountTransfer"]},
                    "ips": ["127.0.0.1"], "type": 1, "deadlineDay": 90, "expiredAt": "", "createdAt": "",
                    "unified": 0, "uta": 1, "userID": 1, "inviterID": 0, "vipLevel": "No VIP",
                    "mktMakerLevel": "0", "affiliateID": 0, "rsaPublicKey": "", "isMaster": True},
                   self.core.server_time_ms(self.name))

    async def coin_info(self, request: web.Request) -> web.Response:
        return _ok({"rows": [{"name": "USDT", "coin": "USDT", "remainAmount": "1000000", "chains": []}]},
                   self.core.server_time_ms(self.name))

    async def set_leverage(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        symbol = self._symbol(p.get("symbol"))
        try:
            leverage = int(Decimal(str(p.get("buyLeverage", ""))))
        except (InvalidOperation, ValueError):
            raise VenueRefusal(10001, "params error: buyLeverage") from None
        if not 1 <= leverage <= 50:
            raise VenueRefusal(10001, "params error: leverage out of range [1, 50]")
        key = (self.name, symbol)
        if self.core.leverage.get(key, 10) == leverage:
            raise VenueRefusal(110043, "leverage not modified")
        self.core.leverage[key] = leverage
        return _ok({}, self.core.server_time_ms(self.name))

    async def switch_mode(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        if str(p.get("mode")) == "0":
            raise VenueRefusal(110025, "Position mode is not modified")
        raise VenueRefusal(10001, "params error: the emulator supports one-way mode (mode=0) only")

    async def switch_isolated(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        if str(p.get("tradeMode")) == "0":
            raise VenueRefusal(110026, "Cross/isolated margin mode is not modified")
        raise VenueRefusal(10001, "params error: the emulator supports cross margin only")

    async def set_margin_mode(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        if p.get("setMarginMode") not in ("REGULAR_MARGIN", None):
            raise VenueRefusal(10001, "params error: the emulator supports REGULAR_MARGIN only")
        return _ok({"reasons": []}, self.core.server_time_ms(self.name))

    # -- private REST: orders ---------------------------------------------------------------------
    async def create_order(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        category = p.get("category")
        if category not in ("linear", "spot"):
            raise VenueRefusal(10001, "params error: category must be linear or spot")
        symbol = self._symbol(p.get("symbol"))
        link = str(p.get("orderLinkId") or "")
        if len(link) > 36:
            raise VenueRefusal(10001, "params error: orderLinkId is longer than 36 characters")
        if not link:
            link = f"auto-{int(time.time() * 1e6)}"
        if category == "spot":
            spot_order = self.spot_create(p, symbol, link)
            self.placed_count += 1
            self.core.notify_spot_orders(self.name, [link])
            return _ok({"orderId": spot_order.venue_order_id, "orderLinkId": link}, self.core.server_time_ms(self.name))
        if self.core.executor.stored_order(self.name, link) is not None:
            raise VenueRefusal(110072, "OrderLinkedID is duplicate")
        side = {"Buy": OrderSide.BUY, "Sell": OrderSide.SELL}.get(p.get("side"))
        if side is None:
            raise VenueRefusal(10001, "params error: side invalid")
        order_type = {"Limit": OrderType.LIMIT, "Market": OrderType.MARKET}.get(p.get("orderType"))
        if order_type is None:
            raise VenueRefusal(10001, "params error: orderType invalid")
        tif_text = p.get("timeInForce") or ("IOC" if order_type is OrderType.MARKET else "GTC")
        tif = {"IOC": TimeInForce.IOC, "GTC": TimeInForce.GTC, "FOK": TimeInForce.IOC}.get(tif_text)
        if tif is None:
            raise VenueRefusal(10001, f"params error: timeInForce {tif_text} is not supported by the emulator")
        try:
            qty = Decimal(str(p.get("qty")))
            price = Decimal(str(p["price"])) if order_type is OrderType.LIMIT else None
        except (InvalidOperation, KeyError):
            raise VenueRefusal(10001, "params error: qty/price") from None
        if str(p.get("positionIdx", "0")) not in ("0", ""):
            raise VenueRefusal(10001, "position idx not match position mode")
        req = OrderRequest(client_order_id=link, venue=self.name, symbol=symbol, side=side, size_base=qty,
                           order_type=order_type, limit_price=price, time_in_force=tif,
                           reduce_only=_bool(p.get("reduceOnly")))
        order = await self.place(req, _refusal_for)
        return _ok({"orderId": order.venue_order_id, "orderLinkId": order.client_order_id},
                   self.core.server_time_ms(self.name))

    def _find(self, p: dict[str, Any]) -> StoredOrder | None:
        link, oid = p.get("orderLinkId"), p.get("orderId")
        if link:
            return self.core.executor.stored_order(self.name, str(link))
        if oid:
            for order in self.core.executor.orders(self.name):
                if order.venue_order_id == oid:
                    return order
        return None

    async def cancel_order(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        if p.get("category") == "spot":
            found = self.spot_find(p)
            cancelled = self.spot_ledger.cancel(found.client_order_id) if found is not None else None
            if cancelled is None:
                raise VenueRefusal(170213, "Order does not exist.")
            self.core.notify_spot_orders(self.name, [cancelled.client_order_id])
            return _ok({"orderId": cancelled.venue_order_id, "orderLinkId": cancelled.client_order_id},
                       self.core.server_time_ms(self.name))
        order = self._find(p)
        if order is None or order.status.is_terminal:
            raise VenueRefusal(110001, "Order does not exist.")
        await self.core.executor.cancel_order(self.name, order.client_order_id)
        self.core.notify_orders(self.name, [order.client_order_id])
        return _ok({"orderId": order.venue_order_id, "orderLinkId": order.client_order_id},
                   self.core.server_time_ms(self.name))

    async def cancel_all(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        symbol = self._symbol(p.get("symbol"), required=False)
        if p.get("category") == "spot":
            ledger = self.spot_ledger
            done = [c for o in list(ledger.orders.values()) if not o.is_terminal and (symbol is None or o.symbol == symbol)
                    if (c := ledger.cancel(o.client_order_id)) is not None]
            self.core.notify_spot_orders(self.name, [o.client_order_id for o in done])
            return _ok({"list": [{"orderId": o.venue_order_id, "orderLinkId": o.client_order_id} for o in done],
                        "success": "1"}, self.core.server_time_ms(self.name))
        open_orders = [o for o in self.core.executor.orders(self.name)
                       if not o.status.is_terminal and (symbol is None or o.symbol == symbol)]
        for order in open_orders:
            await self.core.executor.cancel_order(self.name, order.client_order_id)
        self.core.notify_orders(self.name, [o.client_order_id for o in open_orders])
        return _ok({"list": [{"orderId": o.venue_order_id, "orderLinkId": o.client_order_id} for o in open_orders],
                    "success": "1"}, self.core.server_time_ms(self.name))

    def order_row(self, order: StoredOrder) -> dict[str, Any]:
        fills = self.core.executor.order_fills(self.name, order.client_order_id)
        value = sum((f.price * f.size_base for f in fills), ZERO)
        fee = sum((f.fee_usd for f in fills), ZERO)
        if order.status is OrderStatus.CANCELED:
            status = "Cancelled"  # with cumExecQty > 0 after a partial fill ("PartiallyFilledCanceled" is spot only)
        else:
            status = _STATUS[order.status]
        leaves = ZERO if order.status.is_terminal else order.remaining_base
        return {
            "orderId": order.venue_order_id, "orderLinkId": order.client_order_id, "blockTradeId": "",
            "symbol": self.core.venue_symbol(self.name, order.symbol), "price": num(order.limit_price or ZERO),
            "qty": num(order.requested_base), "side": "Buy" if order.side is OrderSide.BUY else "Sell",
            "isLeverage": "", "positionIdx": 0, "orderStatus": status,
            "cancelType": "CancelByUser" if status == "Cancelled" and order.time_in_force is TimeInForce.GTC else "UNKNOWN",
            "rejectReason": "EC_NoError", "avgPrice": num(value / order.filled_base) if order.filled_base else "",
            "leavesQty": num(leaves), "leavesValue": num(leaves * (order.limit_price or ZERO)),
            "cumExecQty": num(order.filled_base), "cumExecValue": num(value), "cumExecFee": num(fee),
            "timeInForce": "IOC" if order.time_in_force is TimeInForce.IOC else "GTC",
            "orderType": "Limit" if order.order_type is OrderType.LIMIT else "Market",
            "stopOrderType": "", "orderIv": "", "triggerPrice": "", "takeProfit": "", "stopLoss": "",
            "tpTriggerBy": "", "slTriggerBy": "", "triggerDirection": 0, "triggerBy": "",
            "lastPriceOnCreated": "", "reduceOnly": order.reduce_only, "closeOnTrigger": False, "smpType": "None",
            "smpGroup": 0, "smpOrderId": "", "tpslMode": "", "tpLimitPrice": "", "slLimitPrice": "",
            "placeType": "", "createdTime": str(order.created_ts_ms), "updatedTime": str(order.updated_ts_ms),
        }

    def _order_list(self, p: dict[str, Any], *, open_only: bool, closed_only: bool) -> web.Response:
        found = self._find(p) if (p.get("orderLinkId") or p.get("orderId")) else None
        if p.get("orderLinkId") or p.get("orderId"):
            orders = [found] if found is not None else []
        else:
            symbol = self._symbol(p.get("symbol"), required=False)
            orders = [o for o in self.core.executor.orders(self.name) if symbol is None or o.symbol == symbol]
        if open_only:
            orders = [o for o in orders if not o.status.is_terminal]
        if closed_only:
            orders = [o for o in orders if o.status.is_terminal]
        limit = int(p.get("limit", 50))
        rows = [self.order_row(o) for o in reversed(orders)][:limit]
        return _ok({"list": rows, "nextPageCursor": "", "category": "linear"}, self.core.server_time_ms(self.name))

    async def open_orders(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        if p.get("category") == "spot":
            by_id = bool(p.get("orderLinkId") or p.get("orderId"))
            rows = self.spot_orders(p, self._symbol(p.get("symbol"), required=False), open_only=not by_id)
            return _ok({"list": rows, "nextPageCursor": "", "category": "spot"}, self.core.server_time_ms(self.name))
        # realtime: open orders, plus the closed ones of this venue session when looked up by id
        if p.get("orderLinkId") or p.get("orderId"):
            found = self._find(p)
            if found is not None and found.status.is_terminal and found.updated_ts_ms < self._session_start_ms:
                found = None
            rows = [self.order_row(found)] if found is not None else []
            return _ok({"list": rows, "nextPageCursor": "", "category": "linear"}, self.core.server_time_ms(self.name))
        return self._order_list(p, open_only=True, closed_only=False)

    async def order_history(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        if p.get("category") == "spot":
            rows = self.spot_orders(p, self._symbol(p.get("symbol"), required=False), open_only=False)
            return _ok({"list": rows, "nextPageCursor": "", "category": "spot"}, self.core.server_time_ms(self.name))
        return self._order_list(p, open_only=False, closed_only=False)

    async def position_list(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        if p.get("category") not in (None, "", "linear"):
            raise VenueRefusal(10001, "params error: category only supports linear here (spot has no positions)")
        symbol = self._symbol(p.get("symbol"), required=False)
        if symbol is None and not p.get("settleCoin") and p.get("category") == "linear" and not p.get("baseCoin"):
            raise VenueRefusal(10001, "params error: symbol or settleCoin is required")
        rows = []
        for s in self.core.symbols:
            if symbol is not None and s != symbol:
                continue
            pos = self.core.executor.position_state(self.name, s)
            if symbol is None and pos.size_base == ZERO:
                continue
            rows.append(self.position_row(s))
        return _ok({"list": rows, "nextPageCursor": "", "category": "linear"}, self.core.server_time_ms(self.name))

    def position_row(self, symbol: str) -> dict[str, Any]:
        pos = self.core.executor.position_state(self.name, symbol)
        quote = self.core.quote(self.name, symbol)
        mark = quote.mark_price if quote else pos.entry_price
        size = abs(pos.size_base)
        side = "Buy" if pos.size_base > 0 else "Sell" if pos.size_base < 0 else ""
        leverage = self.core.leverage.get((self.name, symbol), 10)
        upnl = pos.size_base * (mark - pos.entry_price) if size else ZERO
        return {
            "positionIdx": 0, "riskId": 1, "riskLimitValue": "2000000", "symbol": self.core.venue_symbol(self.name, symbol),
            "side": side, "size": num(size), "avgPrice": num(pos.entry_price), "positionValue": num(size * pos.entry_price),
            "tradeMode": 0, "autoAddMargin": 0, "positionStatus": "Normal", "leverage": str(leverage),
            "markPrice": num(mark), "liqPrice": "", "bustPrice": "", "positionIM": num(size * mark / leverage),
            "positionMM": num(size * mark / leverage / 5), "positionBalance": num(size * mark / leverage),
            "tpslMode": "Full", "takeProfit": "0", "stopLoss": "0", "trailingStop": "0", "sessionAvgPrice": "",
            "unrealisedPnl": num(upnl), "curRealisedPnl": "0", "cumRealisedPnl": num(pos.realized_pnl_usd),
            "adlRankIndicator": 0, "createdTime": str(pos.updated_ts_ms), "updatedTime": str(pos.updated_ts_ms),
            "seq": pos.updated_ts_ms, "isReduceOnly": False, "mmrSysUpdatedTime": "", "leverageSysUpdatedTime": "",
        }

    def execution_rows(self, exec_type: str | None, symbol: str | None, order_id: str | None,
                       link: str | None, start: int, end: int) -> list[dict[str, Any]]:
        rows: list[tuple[int, dict[str, Any]]] = []
        orders = {o.client_order_id: o for o in self.core.executor.orders(self.name)}
        if exec_type in (None, "", "Trade"):
            for fill in self.core.executor.venue_fills(self.name):
                order = orders.get(fill.client_order_id)
                if (symbol and fill.symbol != symbol) or (link and fill.client_order_id != link) \
                        or (order_id and (order is None or order.venue_order_id != order_id)):
                    continue
                if not start <= fill.ts_ms <= end:
                    continue
                rows.append((fill.ts_ms, self.execution_row(fill, order)))
        if exec_type in (None, "", "Funding") and not order_id and not link:
            for pay in self.core.executor.venue_funding(self.name):
                if (symbol and pay.symbol != symbol) or not start <= pay.ts_ms <= end:
                    continue
                size = abs(pay.position_size_base)
                rows.append((pay.ts_ms, {
                    "symbol": self.core.venue_symbol(self.name, pay.symbol), "orderId": "", "orderLinkId": "",
                    "side": "Buy" if pay.position_size_base > 0 else "Sell", "orderPrice": "0", "orderQty": "0",
                    "leavesQty": "0", "orderType": "UNKNOWN", "stopOrderType": "UNKNOWN",
                    "execFee": num(-pay.amount_usd), "execId": f"funding-{pay.payment_id}",
                    "execPrice": num(pay.mark_price), "execQty": num(size), "execType": "Funding",
                    "execValue": num(size * pay.mark_price), "execTime": str(pay.ts_ms), "feeRate": num(pay.rate),
                    "isMaker": False, "tradeIv": "", "markIv": "", "markPrice": num(pay.mark_price),
                    "indexPrice": "", "underlyingPrice": "", "blockTradeId": "", "closedSize": "0", "seq": pay.ts_ms,
                    "feeCurrency": "USDT"}))
        rows.sort(key=lambda r: r[0], reverse=True)
        return [r for _, r in rows]

    def execution_row(self, fill, order: StoredOrder | None) -> dict[str, Any]:
        n = venue_order_number(fill.trade_id)
        return {
            "symbol": self.core.venue_symbol(self.name, fill.symbol),
            "orderId": order.venue_order_id if order else "", "orderLinkId": fill.client_order_id,
            "side": "Buy" if fill.side is OrderSide.BUY else "Sell",
            "orderPrice": num(order.limit_price) if order and order.limit_price else "0",
            "orderQty": num(order.requested_base) if order else "0", "leavesQty": "0",
            "orderType": "Limit" if order is None or order.order_type is OrderType.LIMIT else "Market",
            "stopOrderType": "UNKNOWN", "execFee": num(fill.fee_usd), "execId": fill.trade_id,
            "execPrice": num(fill.price), "execQty": num(fill.size_base), "execType": "Trade",
            "execValue": num(fill.price * fill.size_base), "execTime": str(fill.ts_ms),
            "feeRate": num(fill.fee_usd / (fill.price * fill.size_base)) if fill.size_base else "0",
            "isMaker": fill.liquidity.value == "maker", "tradeIv": "", "markIv": "", "markPrice": num(fill.price),
            "indexPrice": "", "underlyingPrice": "", "blockTradeId": "", "closedSize": "0", "seq": n,
            "feeCurrency": "USDT",
        }

    async def execution_list(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        symbol = self._symbol(p.get("symbol"), required=False)
        end = int(p.get("endTime") or self.core.now_ms() + 1)
        start = int(p.get("startTime") or end - 7 * 86_400_000)
        if p.get("category") == "spot":
            rows = self.spot_executions(p, symbol, start, end)
            return _ok({"list": rows[:int(p.get("limit", 50))], "nextPageCursor": "", "category": "spot"},
                       self.core.server_time_ms(self.name))
        rows = self.execution_rows(p.get("execType"), symbol, p.get("orderId"), p.get("orderLinkId"), start, end)
        limit = int(p.get("limit", 50))
        return _ok({"list": rows[:limit], "nextPageCursor": "", "category": "linear"}, self.core.server_time_ms(self.name))

    # -- streams ----------------------------------------------------------------------------------
    async def public_stream(self, request: web.Request) -> web.StreamResponse:
        return await serve_stream(request, lambda ws: StreamConnection(ws, self.name, "public"),
                                  self._on_public_text, self.hub)

    async def spot_public_stream(self, request: web.Request) -> web.StreamResponse:
        def connection(ws: web.WebSocketResponse) -> StreamConnection:
            conn = StreamConnection(ws, self.name, "public")
            conn.state["category"] = "spot"
            return conn
        return await serve_stream(request, connection, self._on_public_text, self.hub)

    async def private_stream(self, request: web.Request) -> web.StreamResponse:
        return await serve_stream(request, lambda ws: StreamConnection(ws, self.name, "private"),
                                  self._on_private_text, self.hub)

    def _answer(self, conn: StreamConnection, msg: dict[str, Any], success: bool, ret_msg: str) -> None:
        reply = {"success": success, "ret_msg": ret_msg, "conn_id": f"emu-{id(conn)}", "op": msg.get("op")}
        if "req_id" in msg:
            reply["req_id"] = msg["req_id"]
        conn.send(reply)

    async def _on_public_text(self, conn: StreamConnection, text: str) -> None:
        msg = _loads(text)
        op = msg.get("op")
        if op == "ping":
            self._answer(conn, msg, True, "pong")
        elif op == "subscribe":
            args = [str(a) for a in msg.get("args") or []]
            bad = [a for a in args if self._public_topic(a, conn) is None]
            if bad:
                self._answer(conn, msg, False, f"error:handler not found,topic:{bad[0]}")
                return
            self._answer(conn, msg, True, "")
            for topic in args:
                conn.topics.add(topic)
                self._push_topic(conn, topic, snapshot=True)
        elif op == "unsubscribe":
            for topic in msg.get("args") or []:
                conn.topics.discard(str(topic))
                conn.last_books.pop(str(topic), None)
            self._answer(conn, msg, True, "")
        else:
            self._answer(conn, msg, False, f"error:unknown op {op}")

    def _public_topic(self, topic: str, conn: StreamConnection | None = None) -> tuple[str, str, int] | None:
        parts = topic.split(".")
        if len(parts) == 3 and parts[0] == "orderbook" and parts[1].isdigit():
            symbol = self.core.symbol_for(self.name, parts[2])
            return ("orderbook", symbol, int(parts[1])) if symbol else None
        if len(parts) == 2 and parts[0] == "tickers":
            symbol = self.core.symbol_for(self.name, parts[1])
            return ("tickers", symbol, 0) if symbol else None
        return None

    def _push_topic(self, conn: StreamConnection, topic: str, *, snapshot: bool) -> None:
        parsed = self._public_topic(topic, conn)
        if parsed is None:
            return
        kind, symbol, depth = parsed
        spot = conn.state.get("category") == "spot"
        now = self.core.now_ms()
        if kind == "tickers":
            row = self.spot_ticker_row(symbol) if spot else self._ticker_row(symbol)
            if row is not None:
                conn.send({"topic": topic, "type": "snapshot" if snapshot else "delta", "data": row,
                           "cs": self.core.book_seq[(self.name, symbol)], "ts": now})
            return
        book = self.core.spot_book(self.name, symbol) if spot else self.core.book(self.name, symbol)
        if book is None:
            return
        key = (self.name, symbol)
        if snapshot or topic not in conn.last_books:
            seq = self.core.book_seq[key]
            conn.state[topic] = seq
            conn.send({"topic": topic, "type": "snapshot", "ts": now,
                       "data": {"s": self.core.venue_symbol(self.name, symbol), "b": book_levels(book.bids, depth),
                                "a": book_levels(book.asks, depth), "u": seq, "seq": seq}, "cts": now})
        else:
            bids, asks = book_delta(conn.last_books[topic], book, depth)
            seq = conn.state.get(topic, 0) + 1
            conn.state[topic] = seq
            if not self._drop_delta(conn, topic):
                conn.send({"topic": topic, "type": "delta", "ts": now,
                           "data": {"s": self.core.venue_symbol(self.name, symbol), "b": bids, "a": asks,
                                    "u": seq, "seq": seq}, "cts": now})
        conn.last_books[topic] = book

    def _drop_delta(self, conn: StreamConnection, topic: str) -> bool:
        """The sequence-gap fault: this delta is lost (the next one's ``u`` jumps, its levels are missing)."""
        pending = conn.state.get(("drop", topic), 0)
        if pending:
            conn.state[("drop", topic)] = pending - 1
            return True
        fault = self.board.take(self.name, ("ws_sequence_gap",), "public")
        if fault is None:
            return False
        conn.state[("drop", topic)] = int(fault.params.get("skip", 1)) - 1
        return True

    def publish_books(self) -> None:
        for conn in list(self.hub):
            if conn.kind == "public":
                for topic in list(conn.topics):
                    self._push_topic(conn, topic, snapshot=False)

    async def _on_private_text(self, conn: StreamConnection, text: str) -> None:
        msg = _loads(text)
        op = msg.get("op")
        if op == "ping":
            self._answer(conn, msg, True, "pong")
        elif op == "auth":
            args = msg.get("args") or []
            ok = False
            if len(args) == 3:
                key, expires, sig = str(args[0]), str(args[1]), str(args[2])
                secret = self.credentials.get(key)
                ok = (secret is not None and expires.lstrip("-").isdigit()
                      and int(expires) > self.core.server_time_ms(self.name)
                      and same_signature(hmac_hex(secret, f"GET/realtime{expires}"), sig))
            conn.authed = ok
            self._answer(conn, msg, ok, "" if ok else "Params Error")
        elif op == "subscribe":
            if not conn.authed:
                self._answer(conn, msg, False, "Request not authorized")
                return
            for topic in msg.get("args") or []:
                conn.topics.add(str(topic))
            self._answer(conn, msg, True, "")
        else:
            self._answer(conn, msg, False, f"error:unknown op {op}")

    def publish_orders(self, client_order_ids: list[str]) -> None:
        orders = [o for cid in client_order_ids if (o := self.core.executor.stored_order(self.name, cid))]
        if not orders:
            return
        now = self.core.now_ms()
        order_rows = [dict(self.order_row(o), category="linear") for o in orders]
        fills = [(f, o) for o in orders for f in self.core.executor.order_fills(self.name, o.client_order_id)]
        exec_rows = [dict(self.execution_row(f, o), category="linear") for f, o in fills]
        pos_rows = [dict(self.position_row(s), category="linear") for s in sorted({o.symbol for o in orders})]
        for conn in list(self.hub):
            if conn.kind != "private" or not conn.authed:
                continue
            if "order" in conn.topics:
                conn.send({"id": f"order-{now}", "topic": "order", "creationTime": now, "data": order_rows})
            if "execution" in conn.topics and exec_rows:
                conn.send({"id": f"execution-{now}", "topic": "execution", "creationTime": now, "data": exec_rows})
            if "position" in conn.topics:
                conn.send({"id": f"position-{now}", "topic": "position", "creationTime": now, "data": pos_rows})
            if "wallet" in conn.topics:
                conn.send({"id": f"wallet-{now}", "topic": "wallet", "creationTime": now,
                           "data": [self._wallet_account()]})

    def publish_spot_orders(self, client_order_ids: list[str]) -> None:
        ledger = self.spot_ledger
        orders = [o for cid in client_order_ids if (o := ledger.orders.get(cid))]
        if not orders:
            return
        now = self.core.now_ms()
        order_rows = [dict(self.spot_order_row(o), category="spot") for o in orders]
        exec_rows = [dict(self.spot_execution_row(f), category="spot")
                     for o in orders for f in ledger.fills_of(o.client_order_id)]
        for conn in list(self.hub):
            if conn.kind != "private" or not conn.authed:
                continue
            if "order" in conn.topics:
                conn.send({"id": f"order-{now}", "topic": "order", "creationTime": now, "data": order_rows})
            if "execution" in conn.topics and exec_rows:
                conn.send({"id": f"execution-{now}", "topic": "execution", "creationTime": now, "data": exec_rows})
            if "wallet" in conn.topics:
                conn.send({"id": f"wallet-{now}", "topic": "wallet", "creationTime": now,
                           "data": [self._wallet_account()]})

    def publish_funding(self, settlements: list[Any]) -> None:
        """A settlement changed the balance: wallet subscribers hear about it."""
        now = self.core.now_ms()
        for conn in list(self.hub):
            if conn.kind == "private" and conn.authed and "wallet" in conn.topics:
                conn.send({"id": f"wallet-{now}", "topic": "wallet", "creationTime": now,
                           "data": [self._wallet_account()]})


def _loads(text: str) -> dict[str, Any]:
    try:
        msg = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return msg if isinstance(msg, dict) else {}


def _refusal_for(reason: str) -> VenueRefusal:
    """The Bybit answer for a paper-engine rejection reason."""
    if "reduce_only" in reason:
        return VenueRefusal(110017, "Reduce-only rule not satisfied")
    if "min_notional" in reason:
        return VenueRefusal(110094, "Order does not meet minimum order value")
    if "lot_size" in reason or "min_size" in reason:
        return VenueRefusal(10001, "Qty invalid")
    if "tick_size" in reason:
        return VenueRefusal(10001, "Price invalid")
    return VenueRefusal(10001, f"params error: {reason}")
