"""Binance spot (``/api/v3``), served on the Binance USD-M emulator port beside ``/fapi`` (mixed into
``BinanceUsdmDialect``; same key, same HMAC query signature and recvWindow rules).

As on the venue: a separate SPOT wallet (its own USDT; the futures wallet is untouched by spot
trades), ``exchangeInfo`` with PRICE_FILTER / LOT_SIZE / NOTIONAL filters, orders without
``reduceOnly`` (refused: -1104 "not all sent parameters were read"), the FULL answer with ``fills``
carrying ``commission`` + ``commissionAsset`` (the BASE asset on buys, USDT on sells), IOC remainders
ending EXPIRED, ``myTrades`` rows with ``commissionAsset``, ``account`` balances per asset (free and
locked). Insufficient balance answers -2010 "Account has insufficient balance for requested action.".
Spot books are served by REST only (``/api/v3/depth``); the streams on this port are the futures'.
"""

from __future__ import annotations

import secrets
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from bot.core.domain import OrderSide
from paper.emulator.spot import (
    REFUSE_BALANCE,
    REFUSE_DUPLICATE,
    REFUSE_MIN,
    REFUSE_POST_ONLY,
    SpotLedger,
    SpotOrder,
    SpotRefusal,
)
from paper.emulator.wire import VenueRefusal, book_levels, json_response, num

ZERO = Decimal(0)
_STATUS = {"new": "NEW", "partially_filled": "PARTIALLY_FILLED", "filled": "FILLED", "canceled": "CANCELED",
           "partially_filled_canceled": "EXPIRED", "rejected": "REJECTED"}
_CODES = {REFUSE_BALANCE: -2010, REFUSE_DUPLICATE: -2010, REFUSE_MIN: -1013, REFUSE_POST_ONLY: -2010}


def _err(code: int, msg: str, status: int = 400) -> VenueRefusal:
    return VenueRefusal(code, msg, http_status=status)


class BinanceSpotRoutes:
    """``/api/v3`` handlers; ``self`` is the ``BinanceUsdmDialect`` (core, name, auth wrappers)."""

    core: Any
    name: str

    def add_spot_routes(self, app: web.Application) -> None:
        get, post, delete = app.router.add_get, app.router.add_post, app.router.add_delete
        for path, handler in (("/api/v3/ping", self.spot_ping), ("/api/v3/time", self.spot_time),
                              ("/api/v3/exchangeInfo", self.spot_exchange_info), ("/api/v3/depth", self.spot_depth)):
            get(path, self._public(handler))  # type: ignore[attr-defined]
        signed = self._signed  # type: ignore[attr-defined]
        post("/api/v3/order", signed(self.spot_new_order))
        get("/api/v3/order", signed(self.spot_query_order))
        delete("/api/v3/order", signed(self.spot_cancel_order))
        get("/api/v3/openOrders", signed(self.spot_open_orders))
        delete("/api/v3/openOrders", signed(self.spot_cancel_all))
        get("/api/v3/myTrades", signed(self.spot_my_trades))
        get("/api/v3/account", signed(self.spot_account))

    @property
    def spot_ledger(self) -> SpotLedger:
        return self.core.spot[self.name]

    def _spot_symbol(self, params: dict[str, str]) -> str:
        return self._symbol(params)  # type: ignore[attr-defined]

    # -- public -------------------------------------------------------------------------------------
    async def spot_ping(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return json_response({})

    async def spot_time(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return json_response({"serverTime": self.core.server_time_ms(self.name)})

    async def spot_exchange_info(self, request: web.Request, params: dict[str, str]) -> web.Response:
        rows = []
        for symbol in self.core.symbols:
            inst = self.core.spot_instrument(self.name, symbol)
            rows.append({
                "symbol": inst.venue_symbol, "status": "TRADING", "baseAsset": symbol, "baseAssetPrecision": 8,
                "quoteAsset": "USDT", "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8, "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
                "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True,
                "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True, "cancelReplaceAllowed": True,
                "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": num(inst.tick_size), "maxPrice": "1000000",
                     "tickSize": num(inst.tick_size)},
                    {"filterType": "LOT_SIZE", "minQty": num(inst.min_size_base), "maxQty": "9000",
                     "stepSize": num(inst.lot_size_base)},
                    {"filterType": "NOTIONAL", "minNotional": num(inst.min_notional_usd), "applyMinToMarket": True,
                     "maxNotional": "9000000", "applyMaxToMarket": False, "avgPriceMins": 5},
                ],
                "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
            })
        return json_response({"timezone": "UTC", "serverTime": self.core.server_time_ms(self.name),
                              "rateLimits": [], "exchangeFilters": [], "symbols": rows})

    async def spot_depth(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._spot_symbol(params)
        book = self.core.spot_book(self.name, symbol)
        limit = int(params.get("limit", 100))
        return json_response({"lastUpdateId": self.core.book_seq[(self.name, symbol)],
                              "bids": book_levels(book.bids, limit) if book else [],
                              "asks": book_levels(book.asks, limit) if book else []})

    # -- orders -------------------------------------------------------------------------------------
    def spot_order_row(self, order: SpotOrder, *, full: bool = False) -> dict[str, Any]:
        row: dict[str, Any] = {
            "symbol": self.core.venue_symbol(self.name, order.symbol), "orderId": int(order.seq), "orderListId": -1,
            "clientOrderId": order.client_order_id, "price": num(order.limit_price or ZERO),
            "origQty": num(order.requested_base), "executedQty": num(order.filled_base),
            "cummulativeQuoteQty": num(order.filled_quote), "status": _STATUS[order.status],
            "timeInForce": "GTC" if order.time_in_force == "PostOnly" else order.time_in_force,
            "type": "LIMIT" if order.order_type == "limit" else "MARKET",
            "side": "BUY" if order.side is OrderSide.BUY else "SELL", "stopPrice": "0.00000000",
            "icebergQty": "0.00000000", "time": order.created_ts_ms, "updateTime": order.updated_ts_ms,
            "isWorking": not order.is_terminal, "workingTime": order.created_ts_ms,
            "origQuoteOrderQty": num(order.requested_quote or ZERO), "selfTradePreventionMode": "EXPIRE_MAKER",
        }
        if full:
            row["transactTime"] = order.updated_ts_ms
            row["fills"] = [{"price": num(f.price), "qty": num(f.size_base), "commission": num(f.fee),
                             "commissionAsset": f.fee_coin, "tradeId": f.seq}
                            for f in self.spot_ledger.fills_of(order.client_order_id)]
        return row

    def _spot_find(self, params: dict[str, str]) -> SpotOrder | None:
        cid, oid = params.get("origClientOrderId"), params.get("orderId")
        if cid:
            return self.spot_ledger.orders.get(cid)
        if oid:
            return next((o for o in self.spot_ledger.orders.values() if str(o.seq) == oid), None)
        return None

    async def spot_new_order(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._spot_symbol(params)
        if "reduceOnly" in params:
            raise _err(-1104, "Not all sent parameters were read; read 8 parameter(s) but was sent 9.")
        cid = params.get("newClientOrderId") or f"emu{secrets.token_hex(8)}"
        if len(cid) > 36:
            raise _err(-1100, "Illegal characters found in parameter 'newClientOrderId'.")
        side = {"BUY": OrderSide.BUY, "SELL": OrderSide.SELL}.get(params.get("side", ""))
        kind = {"LIMIT": "limit", "MARKET": "market", "LIMIT_MAKER": "limit"}.get(params.get("type", ""))
        if side is None or kind is None:
            raise _err(-1102, "Mandatory parameter 'side'/'type' was not sent, was empty/null, or malformed.")
        tif = "PostOnly" if params.get("type") == "LIMIT_MAKER" else params.get("timeInForce", "GTC" if kind == "limit" else "IOC")
        quote_qty = params.get("quoteOrderQty")
        try:
            qty = Decimal(quote_qty if (quote_qty and kind == "market") else params.get("quantity", ""))
            price = Decimal(params["price"]) if kind == "limit" else None
        except (InvalidOperation, KeyError):
            raise _err(-1102, "Mandatory parameter 'quantity'/'price' was not sent, was empty/null, or malformed.") \
                from None
        if cid in self.spot_ledger.orders:
            raise _err(-2010, "Duplicate order sent.")
        try:
            order = self.spot_ledger.place(client_order_id=cid, symbol=symbol, side=side, order_type=kind,
                                           time_in_force=tif, qty=qty, price=price,
                                           qty_in_quote=bool(quote_qty) and kind == "market")
        except SpotRefusal as exc:
            message = ("Account has insufficient balance for requested action." if exc.code == REFUSE_BALANCE
                       else exc.message)
            raise _err(_CODES.get(exc.code, -1013), message) from None
        self.placed_count += 1  # type: ignore[attr-defined]
        resp = params.get("newOrderRespType", "FULL" if kind == "market" else "ACK")
        if resp == "ACK":
            return json_response({"symbol": self.core.venue_symbol(self.name, symbol), "orderId": order.seq,
                                  "orderListId": -1, "clientOrderId": cid, "transactTime": order.created_ts_ms})
        return json_response(self.spot_order_row(order, full=resp == "FULL"))

    async def spot_query_order(self, request: web.Request, params: dict[str, str]) -> web.Response:
        self._spot_symbol(params)
        order = self._spot_find(params)
        if order is None:
            raise _err(-2013, "Order does not exist.")
        return json_response(self.spot_order_row(order))

    async def spot_cancel_order(self, request: web.Request, params: dict[str, str]) -> web.Response:
        self._spot_symbol(params)
        order = self._spot_find(params)
        cancelled = self.spot_ledger.cancel(order.client_order_id) if order is not None else None
        if cancelled is None:
            raise _err(-2011, "Unknown order sent.")
        return json_response(self.spot_order_row(cancelled))

    async def spot_open_orders(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._symbol(params, required=False)  # type: ignore[attr-defined]
        rows = [self.spot_order_row(o) for o in sorted(self.spot_ledger.orders.values(), key=lambda o: o.seq)
                if not o.is_terminal and (symbol is None or o.symbol == symbol)]
        return json_response(rows)

    async def spot_cancel_all(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._spot_symbol(params)
        done = [c for o in list(self.spot_ledger.orders.values()) if not o.is_terminal and o.symbol == symbol
                if (c := self.spot_ledger.cancel(o.client_order_id)) is not None]
        return json_response([self.spot_order_row(o) for o in done])

    async def spot_my_trades(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._spot_symbol(params)
        start, end = int(params.get("startTime", 0)), int(params.get("endTime", 1 << 62))
        oid = params.get("orderId")
        rows = []
        for f in self.spot_ledger.fills:
            order = self.spot_ledger.orders.get(f.client_order_id)
            if f.symbol != symbol or not start <= f.ts_ms <= end or (oid and order is not None and str(order.seq) != oid):
                continue
            rows.append({"symbol": self.core.venue_symbol(self.name, f.symbol), "id": f.seq,
                         "orderId": order.seq if order is not None else 0, "orderListId": -1, "price": num(f.price),
                         "qty": num(f.size_base), "quoteQty": num(f.price * f.size_base), "commission": num(f.fee),
                         "commissionAsset": f.fee_coin, "time": f.ts_ms, "isBuyer": f.side is OrderSide.BUY,
                         "isMaker": f.liquidity.value == "maker", "isBestMatch": True})
        return json_response(rows[-int(params.get("limit", 500)):])

    async def spot_account(self, request: web.Request, params: dict[str, str]) -> web.Response:
        ledger = self.spot_ledger
        balances = [{"asset": "USDT", "free": num(ledger.balance("USDT") - ledger.locked("USDT")),
                     "locked": num(ledger.locked("USDT"))}]
        for coin in ledger.coins():
            balances.append({"asset": coin, "free": num(ledger.balance(coin) - ledger.locked(coin)),
                             "locked": num(ledger.locked(coin))})
        return json_response({"makerCommission": 10, "takerCommission": 10, "buyerCommission": 0,
                              "sellerCommission": 0, "commissionRates": {"maker": "0.00100000", "taker": "0.00100000",
                                                                         "buyer": "0.00000000", "seller": "0.00000000"},
                              "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
                              "requireSelfTradePrevention": False, "preventSor": False,
                              "updateTime": self.core.now_ms(), "accountType": "SPOT", "balances": balances,
                              "permissions": ["SPOT"], "uid": 1})
