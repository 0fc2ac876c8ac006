"""Bybit v5 ``category=spot``: the spot half of the Bybit dialect (mixed into ``BybitDialect``).

What differs from linear, as on the venue: instruments carry ``basePrecision`` / ``minOrderAmt`` and no
funding; tickers carry no funding fields and no ``openInterestValue`` (ccxt tells spot tickers apart by
it); orders have no ``reduceOnly`` (refused here, so no client can believe it is honoured) and no
position; a market BUY's ``qty`` is in QUOTE coin unless ``marketUnit=baseCoin``; an IOC that filled
partly ends ``PartiallyFilledCanceled``; executions name the fee coin in ``feeCurrency``: the BASE coin
on buys (you receive less than you bought), the quote coin on sells; the wallet (``/v5/account/
wallet-balance``) lists every coin. The public stream is ``/v5/public/spot``; private topics carry
``category: "spot"``. Insufficient balance answers retCode 170131.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from bot.core.domain import OrderSide
from paper.emulator.spot import (
    REFUSE_BALANCE,
    REFUSE_DUPLICATE,
    REFUSE_MIN,
    REFUSE_POST_ONLY,
    SpotFill,
    SpotLedger,
    SpotOrder,
    SpotRefusal,
)
from paper.emulator.wire import VenueRefusal, num

ZERO = Decimal(0)
_STATUS = {"new": "New", "partially_filled": "PartiallyFilled", "filled": "Filled", "canceled": "Cancelled",
           "partially_filled_canceled": "PartiallyFilledCanceled", "rejected": "Rejected"}
_REFUSALS = {REFUSE_BALANCE: 170131, REFUSE_DUPLICATE: 110072, REFUSE_MIN: 170136, REFUSE_POST_ONLY: 170213}


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


class BybitSpotRoutes:
    """Spot handlers; ``self`` is the ``BybitDialect`` (core, name, helpers)."""

    core: Any
    name: str

    @property
    def spot_ledger(self) -> SpotLedger:
        ledger = self.core.spot.get(self.name)
        if ledger is None:  # pragma: no cover - the bybit dialect always has one
            raise VenueRefusal(10001, "params error: spot is not served")
        return ledger

    # -- public -------------------------------------------------------------------------------------
    def spot_instrument_rows(self, wanted: str | None) -> list[dict[str, Any]]:
        rows = []
        for symbol in self.core.symbols:
            inst = self.core.spot_instrument(self.name, symbol)
            if inst is None or (wanted and inst.venue_symbol != wanted):
                continue
            rows.append({
                "symbol": inst.venue_symbol, "baseCoin": symbol, "quoteCoin": "USDT", "innovation": "0",
                "status": "Trading", "marginTrading": "utaOnly", "stTag": "0",
                "lotSizeFilter": {"basePrecision": num(inst.lot_size_base), "quotePrecision": "0.0000001",
                                  "minOrderQty": num(inst.min_size_base), "maxOrderQty": num(inst.lot_size_base * 1_000_000),
                                  "minOrderAmt": num(inst.min_notional_usd), "maxOrderAmt": "8000000",
                                  "maxLimitOrderQty": num(inst.lot_size_base * 1_000_000),
                                  "maxMarketOrderQty": num(inst.lot_size_base * 100_000),
                                  "postOnlyMaxLimitOrderSize": "60000"},
                "priceFilter": {"tickSize": num(inst.tick_size)},
                "riskParameters": {"priceLimitRatioX": "0.005", "priceLimitRatioY": "0.01"}, "symbolType": "",
            })
        return rows

    def spot_ticker_row(self, symbol: str) -> dict[str, Any] | None:
        book = self.core.spot_book(self.name, symbol)
        if book is None or not book.bids or not book.asks:
            return None
        last = num(book.mid)
        return {"symbol": self.core.venue_symbol(self.name, symbol), "bid1Price": num(book.best_bid),
                "bid1Size": num(book.bids[0].size_base), "ask1Price": num(book.best_ask),
                "ask1Size": num(book.asks[0].size_base), "lastPrice": last, "prevPrice24h": last,
                "price24hPcnt": "0", "highPrice24h": last, "lowPrice24h": last, "turnover24h": "0",
                "volume24h": "0", "usdIndexPrice": last}

    # -- account ------------------------------------------------------------------------------------
    def spot_coin_rows(self) -> tuple[list[dict[str, Any]], Decimal]:
        """Wallet rows of the base coins (and their USD value) for ``/v5/account/wallet-balance``."""
        ledger = self.spot_ledger
        rows, total = [], ZERO
        for coin in ledger.coins():
            amount = ledger.balance(coin)
            book = self.core.spot_book(self.name, coin)
            value = amount * book.mid if book is not None and book.mid is not None else ZERO
            total += value
            rows.append({"coin": coin, "equity": num(amount), "usdValue": num(value), "walletBalance": num(amount),
                         "free": "", "locked": num(ledger.locked(coin)), "spotHedgingQty": "0", "borrowAmount": "0",
                         "availableToWithdraw": "", "accruedInterest": "0", "totalOrderIM": "0",
                         "totalPositionIM": "0", "totalPositionMM": "0", "unrealisedPnl": "0", "cumRealisedPnl": "0",
                         "bonus": "0", "marginCollateral": True, "collateralSwitch": True, "availableToBorrow": "",
                         "spotBorrow": "0"})
        return rows, total

    # -- orders -------------------------------------------------------------------------------------
    def spot_create(self, p: dict[str, Any], symbol: str, link: str) -> SpotOrder:
        if _truthy(p.get("reduceOnly")):
            raise VenueRefusal(10001, "params error: reduceOnly is not supported for spot")
        if str(p.get("isLeverage", "0")) not in ("0", ""):
            raise VenueRefusal(10001, "params error: the emulator does not lend (isLeverage must be 0)")
        side = {"Buy": OrderSide.BUY, "Sell": OrderSide.SELL}.get(p.get("side"))
        order_type = {"Limit": "limit", "Market": "market"}.get(p.get("orderType"))
        if side is None or order_type is None:
            raise VenueRefusal(10001, "params error: side/orderType invalid")
        tif = p.get("timeInForce") or ("IOC" if order_type == "market" else "GTC")
        try:
            qty = Decimal(str(p.get("qty")))
            price = Decimal(str(p["price"])) if order_type == "limit" else None
        except (InvalidOperation, KeyError):
            raise VenueRefusal(10001, "params error: qty/price") from None
        unit = p.get("marketUnit") or ("quoteCoin" if (order_type == "market" and side is OrderSide.BUY) else "baseCoin")
        if unit not in ("baseCoin", "quoteCoin"):
            raise VenueRefusal(10001, "params error: marketUnit")
        try:
            return self.spot_ledger.place(
                client_order_id=link, symbol=symbol, side=side, order_type=order_type, time_in_force=str(tif),
                qty=qty, price=price, qty_in_quote=order_type == "market" and unit == "quoteCoin")
        except SpotRefusal as exc:
            raise VenueRefusal(_REFUSALS.get(exc.code, 10001), exc.message) from None

    def spot_find(self, p: dict[str, Any]) -> SpotOrder | None:
        link, oid = p.get("orderLinkId"), p.get("orderId")
        if link:
            return self.spot_ledger.orders.get(str(link))
        if oid:
            return self.spot_ledger.by_venue_id(str(oid))
        return None

    def spot_order_row(self, order: SpotOrder) -> dict[str, Any]:
        fee = order.fee_base if order.side is OrderSide.BUY else order.fee_quote
        leaves = ZERO if order.is_terminal else order.remaining_base
        return {
            "orderId": order.venue_order_id, "orderLinkId": order.client_order_id, "blockTradeId": "",
            "symbol": self.core.venue_symbol(self.name, order.symbol), "price": num(order.limit_price or ZERO),
            "qty": num(order.requested_quote if order.requested_quote is not None else order.requested_base),
            "side": "Buy" if order.side is OrderSide.BUY else "Sell", "isLeverage": "0", "positionIdx": 0,
            "orderStatus": _STATUS[order.status],
            "cancelType": "UNKNOWN", "rejectReason": "EC_NoError",
            "avgPrice": num(order.filled_quote / order.filled_base) if order.filled_base else "",
            "leavesQty": num(leaves), "leavesValue": num(leaves * (order.limit_price or ZERO)),
            "cumExecQty": num(order.filled_base), "cumExecValue": num(order.filled_quote), "cumExecFee": num(fee),
            "timeInForce": order.time_in_force, "orderType": "Limit" if order.order_type == "limit" else "Market",
            "stopOrderType": "", "orderIv": "", "triggerPrice": "0", "takeProfit": "0", "stopLoss": "0",
            "tpTriggerBy": "", "slTriggerBy": "", "triggerDirection": 0, "triggerBy": "", "lastPriceOnCreated": "",
            "reduceOnly": False, "closeOnTrigger": False, "smpType": "None", "smpGroup": 0, "smpOrderId": "",
            "tpslMode": "", "tpLimitPrice": "", "slLimitPrice": "", "placeType": "",
            "marketUnit": "quoteCoin" if order.requested_quote is not None else "baseCoin",
            "createdTime": str(order.created_ts_ms), "updatedTime": str(order.updated_ts_ms),
        }

    def spot_orders(self, p: dict[str, Any], symbol: str | None, *, open_only: bool) -> list[dict[str, Any]]:
        if p.get("orderLinkId") or p.get("orderId"):
            found = self.spot_find(p)
            orders = [found] if found is not None else []
        else:
            orders = [o for o in self.spot_ledger.orders.values() if symbol is None or o.symbol == symbol]
        if open_only:
            orders = [o for o in orders if not o.is_terminal]
        orders.sort(key=lambda o: o.seq, reverse=True)
        return [self.spot_order_row(o) for o in orders][: int(p.get("limit", 50))]

    def spot_execution_row(self, fill: SpotFill) -> dict[str, Any]:
        order = self.spot_ledger.orders.get(fill.client_order_id)
        return {
            "symbol": self.core.venue_symbol(self.name, fill.symbol), "orderId": fill.venue_order_id,
            "orderLinkId": fill.client_order_id, "side": "Buy" if fill.side is OrderSide.BUY else "Sell",
            "orderPrice": num(order.limit_price) if order is not None and order.limit_price else "0",
            "orderQty": num(order.requested_base) if order is not None else "0", "leavesQty": "0",
            "createType": "CreateByUser",
            "orderType": "Limit" if order is None or order.order_type == "limit" else "Market",
            "stopOrderType": "", "execFee": num(fill.fee), "feeCurrency": fill.fee_coin, "execId": fill.trade_id,
            "execPrice": num(fill.price), "execQty": num(fill.size_base), "execType": "Trade",
            "execValue": num(fill.price * fill.size_base), "execTime": str(fill.ts_ms), "feeRate": num(fill.fee_rate),
            "isMaker": fill.liquidity.value == "maker", "tradeIv": "", "markIv": "", "markPrice": "",
            "indexPrice": "", "underlyingPrice": "", "blockTradeId": "", "closedSize": "", "seq": fill.seq,
            "extraFees": "",
        }

    def spot_executions(self, p: dict[str, Any], symbol: str | None, start: int, end: int) -> list[dict[str, Any]]:
        if p.get("execType") not in (None, "", "Trade"):
            return []
        link, oid = p.get("orderLinkId"), p.get("orderId")
        rows = [f for f in self.spot_ledger.fills
                if (symbol is None or f.symbol == symbol) and (not link or f.client_order_id == link)
                and (not oid or f.venue_order_id == oid) and start <= f.ts_ms <= end]
        rows.sort(key=lambda f: f.seq, reverse=True)
        return [self.spot_execution_row(f) for f in rows]
