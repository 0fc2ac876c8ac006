"""A fake ``pybit.unified_trading.HTTP`` session: Bybit v5 answers from an in-memory linear venue.

Stands in for pybit's session inside ``BybitHttp`` (``http._session = FakeBybitSession(...)``) so
the executor's logic runs against v5-shaped payloads without a network. It raises pybit's own
``InvalidRequestError`` for venue refusals (110072 duplicate ``orderLinkId``, 110017 reduce-only,
110001 not found) exactly as pybit does. The wire protocol itself is proven against the venue
emulator (paper/emulator), not here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pybit.exceptions import InvalidRequestError

D = Decimal


def _refuse(code: int, message: str) -> InvalidRequestError:
    return InvalidRequestError(request="fake", message=message, status_code=code, time="00:00:00", resp_headers={})


def _ok(result: Any) -> dict[str, Any]:
    return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": 1_700_000_000_000}


@dataclass
class FakeBybitSession:
    """One account on one symbol with a static book. ``faults`` lists one-shot misbehaviours."""

    symbol: str = "BTCUSDT"
    bids: list[tuple[Decimal, Decimal]] = field(default_factory=lambda: [(D("49990"), D("5")), (D("49980"), D("5"))])
    asks: list[tuple[Decimal, Decimal]] = field(default_factory=lambda: [(D("50010"), D("5")), (D("50020"), D("5"))])
    taker_fee: Decimal = Decimal("0.00055")
    cash_usd: Decimal = Decimal(10000)
    endpoint: str = "fake://bybit"
    faults: list[str] = field(default_factory=list)  # "timeout_after_execute", "no_order_id"
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    executions: list[dict[str, Any]] = field(default_factory=list)
    position: Decimal = Decimal(0)
    entry: Decimal = Decimal(0)
    calls: list[str] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    now_ms: int = 1_700_000_000_000

    def _tick(self) -> int:
        self.now_ms += 1
        return self.now_ms

    # --- trading ---
    def place_order(self, **p: Any) -> dict[str, Any]:
        self.calls.append("place_order")
        link = p["orderLinkId"]
        if link in self.orders:
            raise _refuse(110072, "OrderLinkedID is duplicate")
        qty, price, side = D(p["qty"]), D(p["price"]), p["side"]
        if p.get("reduceOnly"):
            closing = (side == "Sell" and self.position > 0) or (side == "Buy" and self.position < 0)
            if not closing or qty > abs(self.position):
                raise _refuse(110017, "Reduce-only rule not satisfied")
        oid = f"oid-{next(self._ids)}"
        order = {"orderId": oid, "orderLinkId": link, "symbol": p["symbol"], "side": side, "qty": p["qty"],
                 "price": p["price"], "orderStatus": "New", "cumExecQty": "0", "avgPrice": "",
                 "reduceOnly": bool(p.get("reduceOnly")), "timeInForce": p["timeInForce"], "rejectReason": "EC_NoError",
                 "updatedTime": str(self._tick())}
        self.orders[link] = order
        self._match(order, qty, price, side)
        if p["timeInForce"] == "IOC" and order["orderStatus"] in ("New", "PartiallyFilled"):
            order["orderStatus"] = "Cancelled" if order["cumExecQty"] == "0" else "PartiallyFilledCanceled"
        fault = self.faults.pop(0) if self.faults else None
        if fault == "timeout_after_execute":
            import requests

            raise requests.exceptions.ReadTimeout("read timed out")
        if fault == "no_order_id":
            return _ok({"orderId": "", "orderLinkId": link})
        return _ok({"orderId": oid, "orderLinkId": link})

    def _match(self, order: dict[str, Any], qty: Decimal, price: Decimal, side: str) -> None:
        levels = self.asks if side == "Buy" else self.bids
        filled, notional = D(0), D(0)
        for level_price, level_size in levels:
            if (side == "Buy" and level_price > price) or (side == "Sell" and level_price < price) or filled >= qty:
                break
            take = min(level_size, qty - filled)
            filled += take
            notional += take * level_price
            fee = take * level_price * self.taker_fee
            self.executions.append({
                "symbol": order["symbol"], "orderId": order["orderId"], "orderLinkId": order["orderLinkId"],
                "side": side, "execPrice": str(level_price), "execQty": str(take), "execFee": str(fee),
                "execType": "Trade", "execId": f"exec-{next(self._ids)}", "isMaker": False,
                "execTime": str(self._tick()), "feeRate": str(self.taker_fee)})
            signed = take if side == "Buy" else -take
            self.cash_usd -= fee
            self._apply(signed, level_price)
        if filled > 0:
            order["cumExecQty"] = str(filled)
            order["avgPrice"] = str(notional / filled)
            order["orderStatus"] = "Filled" if filled == qty else "PartiallyFilled"

    def _apply(self, signed: Decimal, price: Decimal) -> None:
        new = self.position + signed
        if self.position == 0 or (self.position > 0) == (signed > 0):
            self.entry = (self.entry * abs(self.position) + price * abs(signed)) / abs(new)
        else:
            closed = min(abs(signed), abs(self.position))
            pnl = closed * (price - self.entry) * (1 if self.position > 0 else -1)
            self.cash_usd += pnl
            if abs(signed) > abs(self.position):
                self.entry = price
        self.position = new
        if new == 0:
            self.entry = D(0)

    def _listing(self, want_open: bool, p: dict[str, Any]) -> dict[str, Any]:
        link = p.get("orderLinkId")
        rows = [o for o in self.orders.values() if (link is None or o["orderLinkId"] == link)
                and (o["orderStatus"] in ("New", "PartiallyFilled")) == want_open]
        return _ok({"list": [dict(o) for o in rows], "nextPageCursor": ""})

    def get_open_orders(self, **p: Any) -> dict[str, Any]:
        self.calls.append("get_open_orders")
        return self._listing(True, p)

    def get_order_history(self, **p: Any) -> dict[str, Any]:
        self.calls.append("get_order_history")
        return self._listing(False, p)

    def cancel_order(self, **p: Any) -> dict[str, Any]:
        order = self.orders.get(p["orderLinkId"])
        if order is None or order["orderStatus"] not in ("New", "PartiallyFilled"):
            raise _refuse(110001, "Order does not exist")
        order["orderStatus"] = "Cancelled"
        return _ok({"orderId": order["orderId"], "orderLinkId": order["orderLinkId"]})

    def cancel_all_orders(self, **p: Any) -> dict[str, Any]:
        cancelled = []
        for order in self.orders.values():
            if order["orderStatus"] in ("New", "PartiallyFilled"):
                order["orderStatus"] = "Cancelled"
                cancelled.append({"orderId": order["orderId"], "orderLinkId": order["orderLinkId"]})
        return _ok({"list": cancelled, "success": "1"})

    def get_executions(self, **p: Any) -> dict[str, Any]:
        rows = [e for e in self.executions if e["execType"] == p.get("execType", e["execType"])
                and ("orderId" not in p or e["orderId"] == p["orderId"])
                and int(e["execTime"]) >= int(p.get("startTime", 0))]
        rows = list(reversed(rows))  # newest first, ``limit`` per page (Bybit: at most 100), cursor = offset
        start = int(p.get("cursor") or 0)
        end = start + int(p.get("limit", 50))
        return _ok({"list": [dict(r) for r in rows[start:end]], "nextPageCursor": str(end) if end < len(rows) else ""})

    def get_positions(self, **p: Any) -> dict[str, Any]:
        side = "Buy" if self.position > 0 else "Sell" if self.position < 0 else ""
        return _ok({"list": [{"symbol": self.symbol, "side": side, "size": str(abs(self.position)),
                              "avgPrice": str(self.entry), "markPrice": "50000", "liqPrice": ""}]})

    def get_wallet_balance(self, **p: Any) -> dict[str, Any]:
        upnl = self.position * (D("50000") - self.entry) if self.position else D(0)
        return _ok({"list": [{"totalEquity": str(self.cash_usd + upnl), "accountType": "UNIFIED"}]})

    def get_orderbook(self, **p: Any) -> dict[str, Any]:
        return _ok({"s": self.symbol, "b": [[str(a), str(b)] for a, b in self.bids],
                    "a": [[str(a), str(b)] for a, b in self.asks], "ts": self.now_ms, "u": 1})

    def get_tickers(self, **p: Any) -> dict[str, Any]:
        answer = _ok({"category": "linear", "list": [{
            "symbol": self.symbol, "markPrice": "50000", "fundingRate": "0.0001", "fundingIntervalHour": "8",
            "nextFundingTime": str(self.now_ms - self.now_ms % 28_800_000 + 28_800_000)}]})
        answer["time"] = self.now_ms
        return answer
