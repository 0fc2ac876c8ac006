"""A fake ccxt exchange at the unified-method level (``create_order``, ``fetch_order``...): one
account, one linear perpetual, a static book. It raises ccxt's own exception classes the way the
real venues' answers are mapped (duplicate client id as binance -4116 ``ExchangeError``, reduce-only
refusal as ``InvalidOrder``, unknown order as ``OrderNotFound``) and can misbehave once on demand.
The real wire protocols are exercised against the venue emulator, not here."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from ccxt.base import errors as cx


@dataclass
class FakeCcxtExchange:
    symbol: str = "BTC/USDT:USDT"
    contract_size: float = 1.0
    bids: list[tuple[float, float]] = field(default_factory=lambda: [(49990.0, 5.0), (49980.0, 5.0)])
    asks: list[tuple[float, float]] = field(default_factory=lambda: [(50010.0, 5.0), (50020.0, 5.0)])
    taker_fee: float = 0.0005
    cash: float = 10000.0
    faults: list[str] = field(default_factory=list)  # "timeout_after_execute", "no_id"
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)
    funding_rows: list[dict[str, Any]] = field(default_factory=list)
    position: float = 0.0
    entry: float = 0.0
    sends: int = 0
    now: int = 1_700_000_000_000
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def _tick(self) -> int:
        self.now += 1
        return self.now

    async def create_order(self, symbol: str, type: str, side: str, amount: float, price: float,
                           params: dict[str, Any]) -> dict[str, Any]:
        self.sends += 1
        cid = params["clientOrderId"]
        if cid in self.orders:
            raise cx.ExchangeError('binanceusdm {"code":-4116,"msg":"ClientOrderId is duplicated."}')
        if params.get("reduceOnly"):
            closing = (side == "sell" and self.position > 0) or (side == "buy" and self.position < 0)
            if not closing or amount > abs(self.position) + 1e-12:
                raise cx.InvalidOrder('binanceusdm {"code":-2022,"msg":"ReduceOnly Order is rejected."}')
        oid = str(next(self._ids))
        order = {"id": oid, "clientOrderId": cid, "symbol": symbol, "side": side, "amount": amount, "price": price,
                 "filled": 0.0, "average": None, "status": "open", "reduceOnly": bool(params.get("reduceOnly")),
                 "timestamp": self._tick(), "timeInForce": params.get("timeInForce")}
        self.orders[cid] = order
        self._match(order, side, amount, price)
        if params.get("timeInForce") in ("IOC", "Ioc") and order["status"] == "open":
            order["status"] = "canceled" if order["filled"] < amount else "closed"
        fault = self.faults.pop(0) if self.faults else None
        if fault == "timeout_after_execute":
            raise cx.RequestTimeout("binanceusdm POST /fapi/v1/order timed out")
        if fault == "no_id":
            return {"id": None, "status": None}
        return {"id": oid, "clientOrderId": cid, "status": None}

    def _match(self, order: dict[str, Any], side: str, amount: float, price: float) -> None:
        levels = self.asks if side == "buy" else self.bids
        filled, notional = 0.0, 0.0
        for level_price, level_size in levels:
            if filled >= amount or (side == "buy" and level_price > price) or (side == "sell" and level_price < price):
                break
            take = min(level_size, amount - filled)
            filled += take
            notional += take * level_price
            fee = take * level_price * self.taker_fee
            self.trades.append({"id": f"t{next(self._ids)}", "order": order["id"], "symbol": order["symbol"],
                                "side": side, "price": level_price, "amount": take, "timestamp": self._tick(),
                                "fee": {"cost": fee, "currency": "USDT"}, "takerOrMaker": "taker"})
            self.cash -= fee
            signed = take if side == "buy" else -take
            if self.position == 0 or (self.position > 0) == (signed > 0):
                self.entry = (self.entry * abs(self.position) + level_price * take) / (abs(self.position) + take)
            else:
                self.cash += take * (level_price - self.entry) * (1 if self.position > 0 else -1)
            self.position = round(self.position + signed, 12)
            if self.position == 0:
                self.entry = 0.0
        if filled:
            order["filled"], order["average"] = filled, notional / filled
            order["status"] = "closed" if filled >= amount else "open"

    async def fetch_order(self, id: Any, symbol: str, params: dict[str, Any]) -> dict[str, Any]:
        order = self.orders.get(params.get("clientOrderId"))
        if order is None:
            raise cx.OrderNotFound('binanceusdm {"code":-2013,"msg":"Order does not exist."}')
        return dict(order)

    async def fetch_my_trades(self, symbol: str, since: int | None, limit: int | None) -> list[dict[str, Any]]:
        return [dict(t) for t in self.trades if since is None or t["timestamp"] >= since]

    async def fetch_positions(self, symbols: list[str]) -> list[dict[str, Any]]:
        side = "long" if self.position > 0 else "short" if self.position < 0 else None
        return [{"symbol": self.symbol, "contracts": abs(self.position), "side": side, "entryPrice": self.entry or None,
                 "markPrice": 50000.0, "liquidationPrice": None}]

    async def fetch_balance(self) -> dict[str, Any]:
        upnl = self.position * (50000.0 - self.entry) if self.position else 0.0
        return {"info": {"totalMarginBalance": repr(round(self.cash + upnl, 10))}, "total": {"USDT": self.cash}}

    async def fetch_order_book(self, symbol: str, limit: int) -> dict[str, Any]:
        return {"bids": [list(b) for b in self.bids], "asks": [list(a) for a in self.asks], "timestamp": self.now}

    async def cancel_order(self, id: str, symbol: str) -> dict[str, Any]:
        for order in self.orders.values():
            if order["id"] == id and order["status"] == "open":
                order["status"] = "canceled"
                return dict(order)
        raise cx.OrderNotFound("binanceusdm -2011 Unknown order sent.")

    async def fetch_open_orders(self, symbol: str) -> list[dict[str, Any]]:
        return [dict(o) for o in self.orders.values() if o["status"] == "open"]

    async def fetch_funding_history(self, symbol: str, since: int | None, limit: int | None) -> list[dict[str, Any]]:
        return [{"info": row, "amount": float(row["income"])} for row in self.funding_rows]
