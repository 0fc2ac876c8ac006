"""Hyperliquid dialect: ``POST /info`` (by ``type``), ``POST /exchange`` (signed actions) and the ``/ws`` stream.

``/exchange`` bodies carry ``{action, nonce, signature, vaultAddress?, expiresAfter?}``; the signer is
recovered from the EIP-712 phantom-agent signature (``hl_signing``) and must be a known account,
else ``{"status": "err", "response": "User or API Wallet 0x... does not exist."}``. Nonces must be
within (server - 2 days, server + 1 day) and unused; an action whose signed ``expiresAfter`` has passed
when it reaches the venue is refused (so a late, delayed request can be known never to execute). Per-order failures come back inside
``statuses`` (``{"error": ...}``), as on the venue; an IOC that matches nothing is an error status
("Order could not immediately match against any resting orders."). Orders are addressed by asset
index ``a`` (position in ``meta.universe``), client ids are ``cloid`` (``0x`` + 32 hex).

Actions: order, cancel, cancelByCloid, updateLeverage, updateIsolatedMargin, scheduleCancel, noop,
setReferrer (L1-signed, checked); approveBuilderFee and other user-signed actions are acknowledged
without a signature check (they move no position). Info types: meta, metaAndAssetCtxs, spotMeta,
spotMetaAndAssetCtxs, perpDexs, allMids, l2Book, clearinghouseState, spotClearinghouseState,
openOrders, frontendOpenOrders, orderStatus, historicalOrders, userFills, userFillsByTime,
userFunding, fundingHistory, predictedFundings, userFees, userRateLimit, userRole, exchangeStatus.
Stream subscriptions: l2Book, allMids, activeAssetCtx, orderUpdates, userFills; ``{"method": "ping"}``.
Hyperliquid books carry no sequence numbers: the sequence-gap fault drops one l2Book message.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from bot.core.domain import OrderRequest, OrderSide, OrderStatus, OrderType, TimeInForce
from paper.emulator.core import venue_order_number
from paper.emulator.dialect import Dialect
from paper.emulator.hl_signing import keccak256, signer_of
from paper.emulator.wire import StreamConnection, VenueRefusal, json_response, num, serve_stream
from paper.venue_store import StoredOrder

ZERO = Decimal(0)
_CLOID = re.compile(r"^0x[0-9a-fA-F]{32}$")
_DAY_MS = 86_400_000
_USER_SIGNED = ("approveBuilderFee", "approveAgent", "usdSend", "withdraw3", "spotSend", "usdClassTransfer",
                "setAbstraction", "userSetAbstraction")


def _err(message: str) -> web.Response:
    return json_response({"status": "err", "response": message})


def _hash(*parts: Any) -> str:
    return "0x" + keccak256("|".join(str(p) for p in parts).encode()).hex()


class HyperliquidDialect(Dialect):
    name = "hyperliquid"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.accounts = {k.lower() for k in self.credentials}
        self._nonces: dict[str, set[int]] = {}
        self._cloid_owner: dict[str, str] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/info", self.info)
        app.router.add_post("/exchange", self.exchange)
        app.router.add_get("/ws", self.stream)

    # -- fault hooks ------------------------------------------------------------------------------
    async def scope_of(self, request: web.Request) -> str:
        if request.path != "/exchange":
            return "public" if request.path == "/info" else "private"
        try:
            body = json.loads(await request.read())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "private"
        action = body.get("action") if isinstance(body, dict) else None
        return "order" if isinstance(action, dict) and action.get("type") == "order" else "private"

    def rate_limit_response(self) -> web.Response:
        return web.Response(status=429, text="null", content_type="application/json")

    async def duplicate_response(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok", "response": {"type": "order", "data": {
            "statuses": [{"error": "Order has duplicate client order id (cloid)."}]}}})

    # -- helpers ----------------------------------------------------------------------------------
    def _asset(self, index: Any) -> str | None:
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(self.core.symbols):
            return self.core.symbols[index]
        return None

    def _index(self, symbol: str) -> int:
        return self.core.symbols.index(symbol)

    def _coin(self, coin: Any) -> str | None:
        return coin if coin in self.core.symbols else None

    def _sz_decimals(self, symbol: str) -> int:
        lot = self.core.instrument(self.name, symbol).lot_size_base
        return max(0, -lot.normalize().as_tuple().exponent)

    def _oid(self, order: StoredOrder) -> int:
        return 10_000_000 + venue_order_number(order.venue_order_id)

    def _tid(self, trade_id: str) -> int:
        return 500_000_000 + venue_order_number(trade_id)

    def _find_oid(self, oid: Any) -> StoredOrder | None:
        if isinstance(oid, str) and _CLOID.match(oid):
            return self.core.executor.stored_order(self.name, oid.lower())
        try:
            wanted = int(oid)
        except (TypeError, ValueError):
            return None
        for order in self.core.executor.orders(self.name):
            if self._oid(order) == wanted:
                return order
        return None

    # -- /info ------------------------------------------------------------------------------------
    async def info(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.Response(status=422, text="Failed to deserialize the JSON body into the target type")
        if not isinstance(body, dict):
            return web.Response(status=422, text="Failed to deserialize the JSON body into the target type")
        kind = body.get("type")
        handler = getattr(self, f"_info_{kind}", None) if isinstance(kind, str) else None
        if handler is None:
            return web.Response(status=422, text=f"Failed to deserialize the JSON body into the target type: "
                                                 f"unknown variant `{kind}`")
        return json_response(handler(body))

    def _meta(self) -> dict[str, Any]:
        return {"universe": [{"name": s, "szDecimals": self._sz_decimals(s), "maxLeverage": 40,
                              "marginTableId": 1} for s in self.core.symbols],
                "marginTables": [[1, {"description": "", "marginTiers": [{"lowerBound": "0.0", "maxLeverage": 40}]}]],
                "collateralToken": 0}

    def _ctx(self, symbol: str) -> dict[str, Any]:
        quote = self.core.quote(self.name, symbol)
        book = self.core.book(self.name, symbol)
        if quote is None or book is None:
            return {"funding": "0", "openInterest": "0", "prevDayPx": "0", "dayNtlVlm": "0", "premium": None,
                    "oraclePx": "0", "markPx": "0", "midPx": None, "impactPxs": None, "dayBaseVlm": "0"}
        mark = num(quote.mark_price)
        return {"funding": num(quote.rate_per_interval / quote.interval_hours), "openInterest": "1000.0",
                "prevDayPx": mark, "dayNtlVlm": "0.0", "premium": "0.0", "oraclePx": mark, "markPx": mark,
                "midPx": num(book.mid), "impactPxs": [num(book.best_bid), num(book.best_ask)], "dayBaseVlm": "0.0"}

    def _info_meta(self, body: dict[str, Any]) -> Any:
        return self._meta()

    def _info_metaAndAssetCtxs(self, body: dict[str, Any]) -> Any:
        if body.get("dex"):
            return [{"universe": [], "marginTables": [], "collateralToken": 0}, []]
        return [self._meta(), [self._ctx(s) for s in self.core.symbols]]

    def _info_spotMeta(self, body: dict[str, Any]) -> Any:
        return {"tokens": [{"name": "USDC", "szDecimals": 8, "weiDecimals": 8, "index": 0,
                            "tokenId": "0x6d1e7cde53ba9467b783cb7c530ce054", "isCanonical": True,
                            "evmContract": None, "fullName": None}], "universe": []}

    def _info_spotMetaAndAssetCtxs(self, body: dict[str, Any]) -> Any:
        return [self._info_spotMeta(body), []]

    def _info_perpDexs(self, body: dict[str, Any]) -> Any:
        return [None]

    def _info_exchangeStatus(self, body: dict[str, Any]) -> Any:
        return {"time": self.core.server_time_ms(self.name), "specialStatuses": None}

    def _info_allMids(self, body: dict[str, Any]) -> Any:
        return {s: num(b.mid) for s in self.core.symbols if (b := self.core.book(self.name, s)) is not None}

    def _l2(self, symbol: str) -> dict[str, Any]:
        book = self.core.book(self.name, symbol)
        levels = [[], []]
        if book is not None:
            levels = [[{"px": num(lv.price), "sz": num(lv.size_base), "n": 1} for lv in book.bids[:20]],
                      [{"px": num(lv.price), "sz": num(lv.size_base), "n": 1} for lv in book.asks[:20]]]
        return {"coin": symbol, "time": self.core.now_ms(), "levels": levels}

    def _info_l2Book(self, body: dict[str, Any]) -> Any:
        coin = self._coin(body.get("coin"))
        return self._l2(coin) if coin else None

    def _info_fundingHistory(self, body: dict[str, Any]) -> Any:
        coin = self._coin(body.get("coin"))
        start, end = int(body.get("startTime") or 0), int(body.get("endTime") or 1 << 62)
        history = self.core.settled_rates.get((self.name, coin), []) if coin else []
        return [{"coin": coin, "fundingRate": num(rate), "premium": "0.0", "time": ts}
                for ts, rate, _ in history if start <= ts <= end][:500]

    def _info_predictedFundings(self, body: dict[str, Any]) -> Any:
        out = []
        for s in self.core.symbols:
            quote = self.core.quote(self.name, s)
            if quote is not None:
                out.append([s, [["HlPerp", {"fundingRate": num(quote.rate_per_interval),
                                             "nextFundingTime": quote.next_funding_ts_ms,
                                             "fundingIntervalHours": int(quote.interval_hours)}]]])
        return out

    def _user(self, body: dict[str, Any]) -> str | None:
        user = str(body.get("user", "")).lower()
        return user if user in self.accounts else None

    def _info_clearinghouseState(self, body: dict[str, Any]) -> Any:
        now = self.core.now_ms()
        positions, ntl, margin, upnl_total = [], ZERO, ZERO, ZERO
        bal = self.core.executor.balance_state(self.name)
        if self._user(body) is None:
            return {"assetPositions": [], "crossMaintenanceMarginUsed": "0.0",
                    "crossMarginSummary": {"accountValue": "0.0", "totalMarginUsed": "0.0", "totalNtlPos": "0.0",
                                           "totalRawUsd": "0.0"},
                    "marginSummary": {"accountValue": "0.0", "totalMarginUsed": "0.0", "totalNtlPos": "0.0",
                                      "totalRawUsd": "0.0"}, "time": now, "withdrawable": "0.0"}
        funding = {}
        for pay in self.core.executor.venue_funding(self.name):
            funding[pay.symbol] = funding.get(pay.symbol, ZERO) - pay.amount_usd
        for pos in self.core.executor.all_positions(self.name):
            if pos.size_base == ZERO:
                continue
            quote = self.core.quote(self.name, pos.symbol)
            mark = quote.mark_price if quote else pos.entry_price
            leverage = self.core.leverage.get((self.name, pos.symbol), 20)
            value = abs(pos.size_base) * mark
            upnl = pos.size_base * (mark - pos.entry_price)
            used = value / leverage
            ntl += value
            margin += used
            upnl_total += upnl
            paid = num(funding.get(pos.symbol, ZERO))
            positions.append({"type": "oneWay", "position": {
                "coin": pos.symbol, "szi": num(pos.size_base), "entryPx": num(pos.entry_price),
                "positionValue": num(value), "unrealizedPnl": num(upnl), "returnOnEquity": "0.0",
                "liquidationPx": None, "marginUsed": num(used), "maxLeverage": 40,
                "leverage": {"type": "cross", "value": leverage},
                "cumFunding": {"allTime": paid, "sinceOpen": paid, "sinceChange": paid}}})
        account = bal.balance_usd + upnl_total
        summary = {"accountValue": num(account), "totalMarginUsed": num(margin), "totalNtlPos": num(ntl),
                   "totalRawUsd": num(bal.balance_usd)}
        return {"assetPositions": positions, "crossMaintenanceMarginUsed": num(margin / 2),
                "crossMarginSummary": summary, "marginSummary": summary, "time": now,
                "withdrawable": num(account - margin)}

    def _info_spotClearinghouseState(self, body: dict[str, Any]) -> Any:
        return {"balances": []}

    def _info_userAbstraction(self, body: dict[str, Any]) -> Any:
        return "default"  # a JSON string, as the venue answers for a standard (not unified) account

    def _info_userFees(self, body: dict[str, Any]) -> Any:
        fees = self.core.fees[self.name]
        return {"userCrossRate": num(fees.taker_bps / 10_000), "userAddRate": num(fees.maker_bps / 10_000),
                "activeReferralDiscount": "0.0", "dailyUserVlm": [], "feeSchedule": {}}

    def _info_userRole(self, body: dict[str, Any]) -> Any:
        # The venue's roles: user, agent (an API wallet, with its master), vault, subAccount, missing.
        # The emulator's accounts sign for themselves: it has no API wallets.
        return {"role": "user" if self._user(body) is not None else "missing"}

    def _info_userRateLimit(self, body: dict[str, Any]) -> Any:
        return {"cumVlm": "0.0", "nRequestsUsed": 0, "nRequestsCap": 10000}

    def _order_wire(self, order: StoredOrder) -> dict[str, Any]:
        # ``sz`` is what remains UNFILLED, also once the order is done (the venue's canceled orders
        # keep it: recorded ``historicalOrders`` rows show a canceled 1.0 of origSz 1.0): ccxt
        # reads filled = origSz - sz, so a 0 there would claim a never-filled IOC filled in full.
        return {"coin": order.symbol, "side": "B" if order.side is OrderSide.BUY else "A",
                "limitPx": num(order.limit_price or ZERO), "sz": num(order.remaining_base),
                "oid": self._oid(order), "timestamp": order.created_ts_ms, "origSz": num(order.requested_base),
                "cloid": order.client_order_id if _CLOID.match(order.client_order_id) else None,
                "triggerCondition": "N/A", "isTrigger": False, "triggerPx": "0.0", "children": [],
                "isPositionTpsl": False, "reduceOnly": order.reduce_only, "orderType": "Limit",
                "tif": "Ioc" if order.time_in_force is TimeInForce.IOC else "Gtc"}

    def _status(self, order: StoredOrder) -> str:
        if order.status is OrderStatus.CANCELED:
            if order.time_in_force is TimeInForce.IOC:
                return "iocCancelRejected" if order.filled_base == ZERO else "canceled"
            return "reduceOnlyCanceled" if order.reason and "reduce_only" in order.reason else "canceled"
        return {OrderStatus.NEW: "open", OrderStatus.PARTIALLY_FILLED: "open", OrderStatus.FILLED: "filled",
                OrderStatus.REJECTED: "rejected"}[order.status]

    def _info_orderStatus(self, body: dict[str, Any]) -> Any:
        order = self._find_oid(body.get("oid")) if self._user(body) else None
        if order is None:
            return {"status": "unknownOid"}
        return {"status": "order", "order": {"order": self._order_wire(order), "status": self._status(order),
                                             "statusTimestamp": order.updated_ts_ms}}

    def _open(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        if self._user(body) is None:
            return []
        return [self._order_wire(o) for o in self.core.executor.orders(self.name) if not o.status.is_terminal]

    def _info_openOrders(self, body: dict[str, Any]) -> Any:
        return self._open(body)

    def _info_frontendOpenOrders(self, body: dict[str, Any]) -> Any:
        return self._open(body)

    def _info_historicalOrders(self, body: dict[str, Any]) -> Any:
        if self._user(body) is None:
            return []
        return [{"order": self._order_wire(o), "status": self._status(o), "statusTimestamp": o.updated_ts_ms}
                for o in reversed(self.core.executor.orders(self.name))][:2000]

    def fill_rows(self, start: int = 0, end: int = 1 << 62) -> list[dict[str, Any]]:
        """Every fill as a ``userFills`` row (newest first), with the position before it."""
        orders = {o.client_order_id: o for o in self.core.executor.orders(self.name)}
        running: dict[str, Decimal] = {}
        rows = []
        for fill in self.core.executor.venue_fills(self.name):
            before = running.get(fill.symbol, ZERO)
            delta = fill.size_base if fill.side is OrderSide.BUY else -fill.size_base
            after = before + delta
            running[fill.symbol] = after
            if not start <= fill.ts_ms <= end:
                continue
            if before == ZERO or (before > 0) == (delta > 0):
                direction = "Open Long" if delta > 0 else "Open Short"
            elif after == ZERO or (after > 0) == (before > 0):
                direction = "Close Long" if before > 0 else "Close Short"
            else:
                direction = "Long > Short" if before > 0 else "Short > Long"
            order = orders.get(fill.client_order_id)
            rows.append({"coin": fill.symbol, "px": num(fill.price), "sz": num(fill.size_base),
                         "side": "B" if fill.side is OrderSide.BUY else "A", "time": fill.ts_ms,
                         "startPosition": num(before), "dir": direction, "closedPnl": "0.0",
                         "hash": _hash("fill", fill.trade_id), "oid": self._oid(order) if order else 0,
                         "crossed": fill.liquidity.value == "taker", "fee": num(fill.fee_usd),
                         "tid": self._tid(fill.trade_id),
                         "cloid": fill.client_order_id if _CLOID.match(fill.client_order_id) else None,
                         "feeToken": "USDC"})
        rows.reverse()
        return rows

    def _info_userFills(self, body: dict[str, Any]) -> Any:
        return self.fill_rows()[:2000] if self._user(body) else []

    def _info_userFillsByTime(self, body: dict[str, Any]) -> Any:
        if self._user(body) is None:
            return []
        rows = self.fill_rows(int(body.get("startTime") or 0), int(body.get("endTime") or 1 << 62))
        return list(reversed(rows))[:2000]

    def _info_userFunding(self, body: dict[str, Any]) -> Any:
        if self._user(body) is None:
            return []
        start, end = int(body.get("startTime") or 0), int(body.get("endTime") or 1 << 62)
        return [{"time": p.ts_ms, "hash": _hash("funding", p.payment_id),
                 "delta": {"type": "funding", "coin": p.symbol, "usdc": num(p.amount_usd),
                           "szi": num(p.position_size_base), "fundingRate": num(p.rate), "nSamples": None}}
                for p in self.core.executor.venue_funding(self.name) if start <= p.ts_ms <= end][:500]

    # -- /exchange --------------------------------------------------------------------------------
    async def exchange(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.Response(status=422, text="Failed to deserialize the JSON body into the target type")
        if not isinstance(body, dict) or not isinstance(body.get("action"), dict):
            return web.Response(status=422, text="Failed to deserialize the JSON body into the target type")
        action = body["action"]
        kind = action.get("type")
        if kind in _USER_SIGNED:
            return json_response({"status": "ok", "response": {"type": "default"}})
        address, reason = signer_of(body, self.accounts)
        if address is None:
            return _err(reason or "Invalid signature")
        nonce = int(body["nonce"])
        server = self.core.server_time_ms(self.name)
        expires = body.get("expiresAfter")
        if expires is not None and int(expires) < server:  # checked when the action reaches the venue
            return _err(f"Action expired: expiresAfter {int(expires)} is before the current time {server}")
        if not server - 2 * _DAY_MS < nonce < server + _DAY_MS:
            return _err(f"Invalid nonce: {nonce} is too far from the current time {server}")
        used = self._nonces.setdefault(address, set())
        if nonce in used:
            return _err(f"Invalid nonce: duplicate nonce {nonce}")
        used.add(nonce)
        if len(used) > 1000:
            used.discard(min(used))
        if kind == "order":
            return await self._orders(action)
        if kind == "cancel":
            return await self._cancel([(c.get("a"), self._find_oid(c.get("o"))) for c in action.get("cancels", [])])
        if kind == "cancelByCloid":
            return await self._cancel([(c.get("asset"), self._find_oid(str(c.get("cloid", ""))))
                                       for c in action.get("cancels", [])])
        if kind == "updateLeverage":
            symbol = self._asset(action.get("asset"))
            leverage = action.get("leverage")
            if symbol is None or not isinstance(leverage, int) or not 1 <= leverage <= 40:
                return _err("Invalid leverage value")
            if action.get("isCross") is False:
                return _err("The emulator supports cross margin only")
            self.core.leverage[(self.name, symbol)] = leverage
            return json_response({"status": "ok", "response": {"type": "default"}})
        if kind in ("updateIsolatedMargin", "scheduleCancel", "noop", "setReferrer"):
            return json_response({"status": "ok", "response": {"type": "default"}})
        return web.Response(status=422, text=f"Failed to deserialize the JSON body into the target type: "
                                             f"unknown variant `{kind}`")

    async def _orders(self, action: dict[str, Any]) -> web.Response:
        statuses = []
        for wire in action.get("orders") or []:
            try:
                statuses.append(await self._one_order(wire))
            except VenueRefusal as exc:
                statuses.append({"error": exc.message})
        return json_response({"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}})

    async def _one_order(self, wire: dict[str, Any]) -> dict[str, Any]:
        index = wire.get("a")
        symbol = self._asset(index)
        if symbol is None:
            raise VenueRefusal(0, f"Asset {index} does not exist.")
        cloid = wire.get("c")
        if cloid is not None and (not isinstance(cloid, str) or not _CLOID.match(cloid)):
            raise VenueRefusal(0, "Invalid cloid: must be 0x followed by 32 hex characters.")
        cid = cloid.lower() if cloid else f"hl-{self.core.now_ms()}-{len(self.core.executor.orders(self.name))}"
        if self.core.executor.stored_order(self.name, cid) is not None:
            raise VenueRefusal(0, "Order has duplicate client order id (cloid).")
        try:
            price, size = Decimal(str(wire["p"])), Decimal(str(wire["s"]))
        except (KeyError, InvalidOperation):
            raise VenueRefusal(0, "Order has invalid price or size.") from None
        tif_text = ((wire.get("t") or {}).get("limit") or {}).get("tif")
        if tif_text not in ("Ioc", "Gtc", "Alo"):
            raise VenueRefusal(0, "The emulator supports limit orders with tif Ioc, Gtc or Alo only.")
        side = OrderSide.BUY if wire.get("b") is True else OrderSide.SELL
        if tif_text == "Alo":
            book = self.core.book(self.name, symbol)
            best = (book.best_ask if side is OrderSide.BUY else book.best_bid) if book else None
            if best is not None and ((side is OrderSide.BUY and price >= best) or (side is OrderSide.SELL and price <= best)):
                raise VenueRefusal(0, f"Post only order would have immediately matched, bbo was {num(best)}. "
                                      f"asset={index}")
        req = OrderRequest(client_order_id=cid, venue=self.name, symbol=symbol, side=side, size_base=size,
                           order_type=OrderType.LIMIT, limit_price=price,
                           time_in_force=TimeInForce.IOC if tif_text == "Ioc" else TimeInForce.GTC,
                           reduce_only=wire.get("r") is True)
        order = await self.place(req, lambda reason: _refusal_for(reason, index))
        fills = self.core.executor.order_fills(self.name, cid)
        if order.filled_base > ZERO and (order.status.is_terminal or order.time_in_force is TimeInForce.IOC):
            avg = sum((f.price * f.size_base for f in fills), ZERO) / order.filled_base
            return {"filled": {"totalSz": num(order.filled_base), "avgPx": num(avg), "oid": self._oid(order)}}
        if not order.status.is_terminal:
            return {"resting": {"oid": self._oid(order), **({"cloid": cloid} if cloid else {})}}
        raise VenueRefusal(0, f"Order could not immediately match against any resting orders. asset={index}")

    async def _cancel(self, targets: list[tuple[Any, StoredOrder | None]]) -> web.Response:
        statuses: list[Any] = []
        changed = []
        for asset, order in targets:
            if order is None or order.status.is_terminal:
                statuses.append({"error": f"Order was never placed, already canceled, or filled. asset={asset}"})
                continue
            await self.core.executor.cancel_order(self.name, order.client_order_id)
            changed.append(order.client_order_id)
            statuses.append("success")
        self.core.notify_orders(self.name, changed)
        return json_response({"status": "ok", "response": {"type": "cancel", "data": {"statuses": statuses}}})

    # -- stream -----------------------------------------------------------------------------------
    async def stream(self, request: web.Request) -> web.StreamResponse:
        return await serve_stream(request, lambda ws: StreamConnection(ws, self.name, "public"),
                                  self._on_text, self.hub)

    async def _on_text(self, conn: StreamConnection, text: str) -> None:
        try:
            msg = json.loads(text)
        except json.JSONDecodeError:
            conn.send({"channel": "error", "data": f"Invalid JSON: {text[:100]}"})
            return
        method = msg.get("method")
        if method == "ping":
            conn.send({"channel": "pong"})
            return
        sub = msg.get("subscription")
        if method not in ("subscribe", "unsubscribe") or not isinstance(sub, dict):
            conn.send({"channel": "error", "data": f"Error parsing JSON into valid websocket request: {text[:200]}"})
            return
        key = self._sub_key(sub)
        if key is None:
            conn.send({"channel": "error", "data": f"Invalid subscription {json.dumps(sub)}"})
            return
        if method == "unsubscribe":
            conn.topics.discard(key)
            conn.send({"channel": "subscriptionResponse", "data": msg})
            return
        if key in conn.topics:
            conn.send({"channel": "error", "data": f"Already subscribed: {json.dumps(sub)}"})
            return
        conn.topics.add(key)
        conn.send({"channel": "subscriptionResponse", "data": msg})
        self._push(conn, key, snapshot=True)

    def _sub_key(self, sub: dict[str, Any]) -> str | None:
        kind = sub.get("type")
        if kind in ("l2Book", "activeAssetCtx"):
            return f"{kind}:{sub.get('coin')}" if self._coin(sub.get("coin")) else None
        if kind == "allMids":
            return "allMids"
        if kind in ("orderUpdates", "userFills"):
            user = str(sub.get("user", "")).lower()
            return f"{kind}:{user}" if re.match(r"^0x[0-9a-f]{40}$", user) else None
        return None

    def _push(self, conn: StreamConnection, key: str, *, snapshot: bool = False) -> None:
        kind, _, arg = key.partition(":")
        if kind == "l2Book":
            conn.send({"channel": "l2Book", "data": self._l2(arg)})
        elif kind == "activeAssetCtx":
            conn.send({"channel": "activeAssetCtx", "data": {"coin": arg, "ctx": self._ctx(arg)}})
        elif kind == "allMids":
            conn.send({"channel": "allMids", "data": {"mids": self._info_allMids({})}})
        elif kind == "userFills" and snapshot:
            fills = self.fill_rows()[:100] if arg in self.accounts else []
            conn.send({"channel": "userFills", "data": {"isSnapshot": True, "user": arg, "fills": fills}})
        elif kind == "orderUpdates" and snapshot:
            pass  # the venue sends no snapshot on this channel

    def publish_books(self) -> None:
        drop = self.board.take(self.name, ("ws_sequence_gap",), "public") is not None if self.hub else False
        for conn in list(self.hub):
            for key in list(conn.topics):
                if key.startswith("l2Book:") and drop:
                    continue
                if key.startswith(("l2Book:", "activeAssetCtx:", "allMids")):
                    self._push(conn, key)

    def publish_orders(self, client_order_ids: list[str]) -> None:
        orders = [o for cid in client_order_ids if (o := self.core.executor.stored_order(self.name, cid))]
        if not orders:
            return
        updates = [{"order": self._order_wire(o), "status": self._status(o), "statusTimestamp": o.updated_ts_ms}
                   for o in orders]
        tids = {self._tid(f.trade_id) for o in orders for f in self.core.executor.order_fills(self.name, o.client_order_id)}
        fills = [row for row in self.fill_rows() if row["tid"] in tids]
        for conn in list(self.hub):
            for key in conn.topics:
                kind, _, user = key.partition(":")
                if user not in self.accounts:
                    continue
                if kind == "orderUpdates":
                    conn.send({"channel": "orderUpdates", "data": updates})
                elif kind == "userFills" and fills:
                    conn.send({"channel": "userFills", "data": {"user": user, "fills": fills}})


def _refusal_for(reason: str, asset: Any) -> VenueRefusal:
    """The Hyperliquid status error for a paper-engine rejection reason."""
    if "reduce_only" in reason:
        return VenueRefusal(0, f"Reduce only order would increase position. asset={asset}")
    if "min_notional" in reason:
        return VenueRefusal(0, f"Order must have minimum value of $10. asset={asset}")
    if "lot_size" in reason or "min_size" in reason or "must be positive" in reason:
        return VenueRefusal(0, f"Order has invalid size. asset={asset}")
    if "tick_size" in reason:
        return VenueRefusal(0, f"Order has invalid price. asset={asset}")
    return VenueRefusal(0, f"{reason} asset={asset}")
