"""OKX v5 dialect (USDT-margined perpetual SWAPs): REST under /api/v5/... and streams at /ws/v5/public,
/ws/v5/private and /ws/v5/business.

Sizes are CONTRACTS of ``ctVal`` base each (BTC-USDT-SWAP: 0.01 BTC), in every REST and stream payload;
``CONTRACT_VALUES`` gives each symbol's ``ctVal`` (``lotSz``/``minSz`` are the simulated lot and
minimum in contracts). Answers are ``{"code": "0", "msg": "", "data": [...]}``.

Signed REST: headers OK-ACCESS-KEY, OK-ACCESS-PASSPHRASE, OK-ACCESS-TIMESTAMP (ISO 8601 with ms, UTC)
and OK-ACCESS-SIGN = base64(HMAC-SHA256(secret, timestamp + METHOD + requestPath[?query] + body)).
The timestamp must lie within 30 s of the venue clock (wall + injected skew), else 50102. Auth
errors answer HTTP 401: 50103/50104/50106/50107 missing header, 50111 unknown key, 50105 wrong
passphrase, 50113 bad signature, 50112 malformed timestamp. Order placement (``/trade/order`` and
``/trade/batch-orders``, ccxt's default) answers per order ``sCode``/``sMsg`` inside ``data`` with
top-level code "1" when every order failed: 51016 duplicate clOrdId, 51121 lot, 51020 minimum,
51006 price, 51169 reduce-only, 51008 margin, 51000 parameters. An ``expTime`` header (ms) on an order
placement that the venue clock has passed when the request is processed: not processed, code 50004
(OKX documents the refusal, not its code: the emulator's choice). Look-ups: 51603 order does not exist
(a canceled order without fills is forgotten 2 hours after it ended, as on the venue); cancels:
51400 does not exist / 51401 already canceled / 51402 already filled. Rate limit: HTTP 429 code 50011.
Position mode: the account starts in ``net_mode``; a switch while positions or pending orders exist
answers 59000 (whether or not the mode differs). Funding payments are bills of ``type`` 8
(``subType`` 173 expense / 174 income, ``balChg`` + = received).

Streams: ``{"op": "subscribe", "args": [{"channel": ..., "instId": ...}]}`` ->
``{"event": "subscribe", "arg": ..., "connId": ...}``. Public channels ``books`` (snapshot, then
``update`` messages with ``seqId``/``prevSeqId`` and the venue's CRC32 ``checksum`` over the top 25
levels), ``books5``, ``bbo-tbt``, ``tickers``, ``mark-price``, ``funding-rate``. Private: ``login``
(``sign`` = base64(HMAC(secret, timestamp_s + "GET" + "/users/self/verify")), timestamp within 30 s),
then ``orders`` (one push per fill, with ``fillSz``/``fillPx``/``tradeId``) and ``positions``/``account``
acknowledged. Text ``ping`` is answered ``pong``. The sequence-gap fault drops one ``books`` update
(the next one's ``prevSeqId`` does not match).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import zlib
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from bot.core.domain import OrderRequest, OrderSide, OrderStatus, OrderType, TimeInForce
from paper.emulator.core import venue_order_number
from paper.emulator.dialect import Dialect
from paper.emulator.wire import (
    StreamConnection,
    VenueRefusal,
    json_response,
    num,
    serve_stream,
)
from paper.venue_store import StoredOrder

ZERO = Decimal(0)
# ctVal of each listed swap, as on OKX (base units per contract); other symbols: one lot per contract
CONTRACT_VALUES = {"BTC": Decimal("0.01"), "ETH": Decimal("0.1"), "SOL": Decimal(1), "XRP": Decimal(100),
                   "DOGE": Decimal(1000), "BNB": Decimal("0.01")}
_WINDOW_MS = 30_000  # OK-ACCESS-TIMESTAMP / login timestamp tolerance
_FORGET_CANCELED_MS = 2 * 3_600_000  # canceled, unfilled orders leave /trade/order after 2 hours
_BOOK_DEPTH = 400  # the ``books`` channel depth (the simulated books are shallower)
_STATE = {OrderStatus.NEW: "live", OrderStatus.PARTIALLY_FILLED: "partially_filled", OrderStatus.FILLED: "filled",
          OrderStatus.CANCELED: "canceled", OrderStatus.REJECTED: "canceled"}
_RATIO = Decimal("0.00000001")
_ORDER_PATHS = ("/api/v5/trade/order", "/api/v5/trade/batch-orders")


def _ok(data: list[Any]) -> web.Response:
    return json_response({"code": "0", "msg": "", "data": data})


def _err(code: str, msg: str, status: int = 200) -> VenueRefusal:
    return VenueRefusal(int(code), msg, http_status=status)


def okx_sign(secret: str, prehash: str) -> str:
    """OKX's signature: base64(HMAC-SHA256(secret, prehash))."""
    return base64.b64encode(hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest()).decode()


def book_checksum(bids: list[list[str]], asks: list[list[str]]) -> int:
    """OKX's order-book checksum: CRC32 (as a signed 32-bit int) of ``bidPx:bidSz:askPx:askSz:...``
    over the first 25 levels of each side, interleaved (a shorter side simply stops contributing)."""
    parts: list[str] = []
    for i in range(25):
        if i < len(bids):
            parts += [bids[i][0], bids[i][1]]
        if i < len(asks):
            parts += [asks[i][0], asks[i][1]]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= (1 << 31) else crc


def _parse_iso_ms(text: str) -> int | None:
    try:
        return round(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        return None


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


class OkxDialect(Dialect):
    name = "okx"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pos_mode = "net_mode"
        self.expired_requests = 0  # order requests refused because their expTime had passed
        self._book_seq: dict[str, int] = {}  # instId -> last published seqId of the books channel
        self._last_levels: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
        self._drop_books = 0

    # -- contracts ---------------------------------------------------------------------------------
    def ct_val(self, symbol: str) -> Decimal:
        inst = self.core.instrument(self.name, symbol)
        return CONTRACT_VALUES.get(symbol, inst.lot_size_base if inst else Decimal(1))

    def contracts(self, symbol: str, size_base: Decimal) -> str:
        return num(size_base / self.ct_val(symbol))

    # -- routes ------------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        get, post = app.router.add_get, app.router.add_post
        for path, handler in (("public/time", self.public_time), ("public/instruments", self.instruments),
                              ("public/funding-rate", self.funding_rate),
                              ("public/funding-rate-history", self.funding_rate_history),
                              ("public/mark-price", self.mark_price), ("market/books", self.books),
                              ("market/books-full", self.books), ("market/tickers", self.tickers),
                              ("market/ticker", self.tickers), ("system/status", self.system_status)):
            get(f"/api/v5/{path}", self._public(handler))
        for path, handler in (("account/config", self.account_config), ("account/balance", self.balance),
                              ("account/positions", self.positions), ("account/bills", self.bills),
                              ("account/bills-archive", self.bills), ("account/leverage-info", self.leverage_info),
                              ("trade/order", self.get_order), ("trade/orders-pending", self.orders_pending),
                              ("trade/orders-history", self.orders_history),
                              ("trade/orders-history-archive", self.orders_history),
                              ("trade/fills", self.fills), ("trade/fills-history", self.fills),
                              ("asset/currencies", self.currencies)):
            get(f"/api/v5/{path}", self._private(handler))
        for path, handler in (("trade/order", self.place_one), ("trade/batch-orders", self.place_batch),
                              ("trade/cancel-order", self.cancel), ("account/set-leverage", self.set_leverage),
                              ("account/set-position-mode", self.set_position_mode)):
            post(f"/api/v5/{path}", self._private(handler))
        for kind in ("public", "private", "business"):
            get(f"/ws/v5/{kind}", self._stream(kind))

    # -- fault hooks ------------------------------------------------------------------------------
    async def scope_of(self, request: web.Request) -> str:
        if request.path in _ORDER_PATHS and request.method == "POST":
            return "order"
        return "public" if request.path.startswith(("/api/v5/public/", "/api/v5/market/", "/api/v5/system/")) \
            else "private"

    def rate_limit_response(self) -> web.Response:
        return json_response({"msg": "Too Many Requests", "code": "50011"}, status=429)

    async def duplicate_response(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.text())
        except json.JSONDecodeError:
            body = {}
        first = body[0] if isinstance(body, list) and body else body if isinstance(body, dict) else {}
        return self._order_failure([{"clOrdId": str(first.get("clOrdId", "")), "ordId": "", "sCode": "51016",
                                     "sMsg": "Duplicated clOrdId", "tag": "", "ts": str(self.core.now_ms())}])

    def _refusal(self, exc: VenueRefusal) -> web.Response:
        return json_response({"code": str(exc.code), "msg": exc.message, "data": []}, status=exc.http_status)

    def _order_failure(self, rows: list[dict[str, Any]], any_ok: bool = False) -> web.Response:
        now = self.core.now_ms() * 1000
        return json_response({"code": "2" if any_ok else "1", "msg": "" if any_ok else "All operations failed",
                              "data": rows, "inTime": str(now), "outTime": str(now + 150)})

    # -- auth -------------------------------------------------------------------------------------
    def _public(self, handler):
        async def wrapped(request: web.Request) -> web.Response:
            try:
                return await handler(request, dict(request.query))
            except VenueRefusal as exc:
                return self._refusal(exc)
        return wrapped

    def _private(self, handler):
        async def wrapped(request: web.Request) -> web.Response:
            try:
                params = await self._authenticate(request)
                return await handler(request, params)
            except VenueRefusal as exc:
                return self._refusal(exc)
        return wrapped

    def _credential(self, key: str) -> Any:
        return self.credentials.get(key)

    async def _authenticate(self, request: web.Request) -> Any:
        h = request.headers
        key, passphrase = h.get("OK-ACCESS-KEY"), h.get("OK-ACCESS-PASSPHRASE")
        stamp, sign = h.get("OK-ACCESS-TIMESTAMP"), h.get("OK-ACCESS-SIGN")
        if not key:
            raise _err("50103", 'Request header "OK-ACCESS-KEY" cannot be empty.', 401)
        if not passphrase:
            raise _err("50104", 'Request header "OK-ACCESS-PASSPHRASE" cannot be empty.', 401)
        if not sign:
            raise _err("50106", 'Request header "OK-ACCESS-SIGN" cannot be empty.', 401)
        if not stamp:
            raise _err("50107", 'Request header "OK-ACCESS-TIMESTAMP" cannot be empty.', 401)
        cred = self._credential(key)
        if cred is None:
            raise _err("50111", "Invalid OK-ACCESS-KEY.", 401)
        ts_ms = _parse_iso_ms(stamp)
        if ts_ms is None:
            raise _err("50112", "Invalid OK-ACCESS-TIMESTAMP.", 401)
        if abs(self.core.server_time_ms(self.name) - ts_ms) > _WINDOW_MS:
            raise _err("50102", "Timestamp request expired.", 401)
        if cred.passphrase != passphrase:
            raise _err("50105", "Invalid OK-ACCESS-PASSPHRASE.", 401)
        body = await request.text() if request.method != "GET" else ""
        expected = okx_sign(cred.secret, stamp + request.method + request.raw_path + body)
        if not hmac.compare_digest(expected, sign):
            raise _err("50113", "Invalid Sign.", 401)
        if request.method == "GET":
            return dict(request.query)
        if not body:
            return {}
        try:
            data = json.loads(body)
        except json.JSONDecodeError:
            raise _err("50002", "JSON syntax error") from None
        if not isinstance(data, (dict, list)):
            raise _err("50002", "JSON syntax error")
        return data

    def _symbol(self, inst_id: Any, required: bool = True) -> str | None:
        if inst_id in (None, ""):
            if required:
                raise _err("50014", "Parameter instId cannot be empty.")
            return None
        symbol = self.core.symbol_for(self.name, str(inst_id))
        if symbol is None:
            raise _err("51001", "Instrument ID does not exist.")
        return symbol

    # -- public REST ------------------------------------------------------------------------------
    async def public_time(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return _ok([{"ts": str(self.core.server_time_ms(self.name))}])

    async def system_status(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return _ok([])

    def instrument_row(self, symbol: str) -> dict[str, Any]:
        inst = self.core.instrument(self.name, symbol)
        ct_val = self.ct_val(symbol)
        return {
            "alias": "", "auctionEndTime": "", "baseCcy": "", "category": "1", "contTdSwTime": "", "ctMult": "1",
            "ctType": "linear", "ctVal": num(ct_val), "ctValCcy": symbol, "expTime": "", "futureSettlement": False,
            "instFamily": f"{symbol}-USDT", "instId": inst.venue_symbol, "instIdCode": 10000 + self.core.symbols.index(symbol),
            "instType": "SWAP", "lever": "50", "listTime": "1573557408000", "lotSz": num(inst.lot_size_base / ct_val),
            "maxIcebergSz": "100000000", "maxLmtAmt": "20000000", "maxLmtSz": "100000000", "maxMktAmt": "",
            "maxMktSz": "20000", "maxPlatOILmt": "", "maxStopSz": "20000", "maxTriggerSz": "100000000",
            "maxTwapSz": "100000000", "minSz": num(inst.min_size_base / ct_val), "openType": "", "optType": "",
            "posLmtAmt": "", "posLmtPct": "", "preMktSwTime": "", "quoteCcy": "", "ruleType": "normal",
            "settleCcy": "USDT", "state": "live", "stk": "", "tickSz": num(inst.tick_size), "tradeQuoteCcyList": [],
            "uly": f"{symbol}-USDT",
        }

    async def instruments(self, request: web.Request, params: dict[str, str]) -> web.Response:
        kind = params.get("instType", "")
        if kind not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"):
            raise _err("50014", "Parameter instType cannot be empty.")
        if kind != "SWAP":
            return _ok([])
        wanted = self._symbol(params.get("instId"), required=False)
        return _ok([self.instrument_row(s) for s in self.core.symbols if wanted in (None, s)])

    def funding_row(self, symbol: str) -> dict[str, Any] | None:
        quote = self.core.quote(self.name, symbol)
        if quote is None:
            return None
        interval_ms = int(quote.interval_hours) * 3_600_000
        settled = self.core.settled_rates.get((self.name, symbol)) or []
        rate = num(quote.rate_per_interval)
        return {"formulaType": "withRate", "fundingRate": rate, "fundingTime": str(quote.next_funding_ts_ms),
                "impactValue": "20000", "instId": self.core.venue_symbol(self.name, symbol), "instType": "SWAP",
                "interestRate": "0.0001", "maxFundingRate": "0.0075", "method": "current_period",
                "minFundingRate": "-0.0075", "nextFundingRate": "",
                "nextFundingTime": str(quote.next_funding_ts_ms + interval_ms), "premium": "0",
                "settFundingRate": num(settled[-1][1]) if settled else rate, "settState": "settled",
                "ts": str(self.core.now_ms())}

    async def funding_rate(self, request: web.Request, params: dict[str, str]) -> web.Response:
        inst_id = params.get("instId", "")
        if inst_id == "ANY":
            return _ok([r for s in self.core.symbols if (r := self.funding_row(s)) is not None])
        row = self.funding_row(self._symbol(inst_id))
        return _ok([row] if row else [])

    async def funding_rate_history(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._symbol(params.get("instId"))
        before, after = int(params.get("before") or 0), int(params.get("after") or 1 << 62)
        rows = [{"formulaType": "withRate", "fundingRate": num(rate), "fundingTime": str(ts),
                 "instId": self.core.venue_symbol(self.name, symbol), "instType": "SWAP", "method": "current_period",
                 "realizedRate": num(rate)}
                for ts, rate, _mark in reversed(self.core.settled_rates.get((self.name, symbol), []))
                if before < ts < after]
        return _ok(rows[: int(params.get("limit") or 100)])

    def mark_row(self, symbol: str) -> dict[str, Any] | None:
        quote = self.core.quote(self.name, symbol)
        if quote is None:
            return None
        return {"instType": "SWAP", "instId": self.core.venue_symbol(self.name, symbol),
                "markPx": num(quote.mark_price), "ts": str(self.core.now_ms())}

    async def mark_price(self, request: web.Request, params: dict[str, str]) -> web.Response:
        if params.get("instType") not in ("SWAP", "FUTURES", "OPTION", "MARGIN"):
            raise _err("50014", "Parameter instType cannot be empty.")
        wanted = self._symbol(params.get("instId"), required=False)
        if params.get("instType") != "SWAP":
            return _ok([])
        return _ok([r for s in self.core.symbols if wanted in (None, s) and (r := self.mark_row(s)) is not None])

    def book_sides(self, symbol: str, depth: int) -> tuple[list[list[str]], list[list[str]]]:
        """The published book's levels in OKX's form: [price, contracts, "0", orders]."""
        book = self.core.book(self.name, symbol)
        if book is None:
            return [], []

        def side(levels) -> list[list[str]]:
            return [[num(lv.price), self.contracts(symbol, lv.size_base), "0", "1"] for lv in levels[:depth]]

        return side(book.bids), side(book.asks)

    async def books(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._symbol(params.get("instId"))
        depth = int(params.get("sz") or 1)
        bids, asks = self.book_sides(symbol, min(depth, 400))
        return _ok([{"asks": asks, "bids": bids, "ts": str(self.core.now_ms())}])

    def ticker_row(self, symbol: str) -> dict[str, Any] | None:
        quote = self.core.quote(self.name, symbol)
        bids, asks = self.book_sides(symbol, 1)
        if quote is None or not bids or not asks:
            return None
        mark, now = num(quote.mark_price), self.core.now_ms()
        return {"instType": "SWAP", "instId": self.core.venue_symbol(self.name, symbol), "last": mark, "lastSz": "1",
                "askPx": asks[0][0], "askSz": asks[0][1], "bidPx": bids[0][0], "bidSz": bids[0][1], "open24h": mark,
                "high24h": mark, "low24h": mark, "volCcy24h": "0", "vol24h": "0", "ts": str(now),
                "sodUtc0": mark, "sodUtc8": mark}

    async def tickers(self, request: web.Request, params: dict[str, str]) -> web.Response:
        wanted = self._symbol(params.get("instId"), required=False)
        if wanted is None and params.get("instType") != "SWAP":
            return _ok([])
        return _ok([r for s in self.core.symbols if wanted in (None, s) and (r := self.ticker_row(s)) is not None])

    # -- private REST: account --------------------------------------------------------------------
    async def currencies(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        coins = ("USDT", *self.core.symbols)
        return _ok([{"ccy": c, "name": c, "chain": f"{c}-ERC20", "canDep": True, "canWd": True, "canInternal": True,
                     "minWd": "1", "maxWd": "1000000", "wdTickSz": "8", "minFee": "0.1", "maxFee": "1",
                     "mainNet": False, "logoLink": "", "minDep": "0.00000001", "needTag": False} for c in coins])

    async def account_config(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        return _ok([{"acctLv": "2", "autoLoan": False, "ctIsoMode": "automatic", "enableSpotBorrow": False,
                     "greeksType": "PA", "ip": "127.0.0.1", "kycLv": "2", "label": "emulator", "level": "Lv1",
                     "levelTmp": "", "liquidationGear": "-1", "mainUid": "1", "mgnIsoMode": "automatic",
                     "opAuth": "0", "perm": "read_only,trade", "posMode": self.pos_mode, "roleType": "0",
                     "spotBorrowAutoRepay": False, "spotOffsetType": "", "spotRoleType": "0", "traderInsts": [],
                     "type": "0", "uid": "1", "settleCcy": "USDT", "settleCcyList": ["USDT"]}])

    def _totals(self) -> tuple[Decimal, Decimal, Decimal]:
        """(wallet cash, unrealized PnL at mark, initial margin at 10x) in USDT."""
        bal = self.core.executor.balance_state(self.name)
        upnl = im = ZERO
        for pos in self.core.executor.all_positions(self.name):
            quote = self.core.quote(self.name, pos.symbol)
            if pos.size_base and quote is not None:
                upnl += pos.size_base * (quote.mark_price - pos.entry_price)
                im += abs(pos.size_base) * quote.mark_price / 10
        return bal.balance_usd, upnl, im

    async def balance(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        cash, upnl, im = self._totals()
        eq, now = cash + upnl, str(self.core.now_ms())
        detail = {"accAvgPx": "", "availBal": num(eq - im), "availEq": num(eq - im), "borrowFroz": "",
                  "cashBal": num(cash), "ccy": "USDT", "clSpotInUseAmt": "", "crossLiab": "0", "disEq": num(eq),
                  "eq": num(eq), "eqUsd": num(eq), "fixedBal": "0", "frozenBal": num(im), "imr": num(im),
                  "interest": "0", "isoEq": "0", "isoLiab": "0", "isoUpl": "0", "liab": "0", "maxLoan": "0",
                  "mgnRatio": "", "mmr": num(im / 5), "notionalLever": "", "ordFrozen": "0", "rewardBal": "0",
                  "spotInUseAmt": "", "spotIsoBal": "0", "stgyEq": "0", "twap": "0", "uTime": now, "upl": num(upnl),
                  "uplLiab": "0"}
        return _ok([{"adjEq": num(eq), "borrowFroz": "", "details": [detail], "imr": num(im), "isoEq": "0",
                     "mgnRatio": "", "mmr": num(im / 5), "notionalUsd": num(im * 10), "ordFroz": "0",
                     "totalEq": num(eq), "uTime": now, "upl": num(upnl)}])

    def position_row(self, pos) -> dict[str, Any]:
        quote = self.core.quote(self.name, pos.symbol)
        mark = quote.mark_price if quote else pos.entry_price
        upnl = pos.size_base * (mark - pos.entry_price)
        notional = abs(pos.size_base) * mark
        lever = self.core.leverage.get((self.name, pos.symbol), 10)
        imr = notional / lever
        return {
            "adl": "1", "availPos": "", "avgPx": num(pos.entry_price), "baseBal": "", "baseBorrowed": "",
            "baseInterest": "", "bePx": num(pos.entry_price), "bizRefId": "", "bizRefType": "", "cTime": str(pos.updated_ts_ms),
            "ccy": "USDT", "clSpotInUseAmt": "", "closeOrderAlgo": [], "deltaBS": "", "deltaPA": "", "fee": "0",
            "fundingFee": "0", "gammaBS": "", "gammaPA": "", "idxPx": num(mark), "imr": num(imr),
            "instId": self.core.venue_symbol(self.name, pos.symbol), "instType": "SWAP", "interest": "",
            "last": num(mark), "lever": str(lever), "liab": "", "liabCcy": "", "liqPenalty": "0", "liqPx": "",
            "margin": "", "markPx": num(mark), "maxSpotInUseAmt": "", "mgnMode": "cross", "mgnRatio": "",
            "mmr": num(imr / 5), "notionalUsd": num(notional), "optVal": "", "pendingCloseOrdLiabVal": "",
            "pnl": num(pos.realized_pnl_usd), "pos": self.contracts(pos.symbol, pos.size_base), "posCcy": "",
            "posId": str(10_000 + self.core.symbols.index(pos.symbol)), "posSide": "net", "quoteBal": "",
            "quoteBorrowed": "", "quoteInterest": "", "realizedPnl": num(pos.realized_pnl_usd),
            "spotInUseAmt": "", "spotInUseCcy": "", "thetaBS": "", "thetaPA": "", "tradeId": "",
            "uTime": str(pos.updated_ts_ms), "upl": num(upnl), "uplLastPx": num(upnl),
            "uplRatio": num((upnl / imr).quantize(_RATIO)) if imr else "0",
            "uplRatioLastPx": num((upnl / imr).quantize(_RATIO)) if imr else "0",
            "usdPx": "", "vegaBS": "", "vegaPA": "",
        }

    async def positions(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        if params.get("instType") not in (None, "", "SWAP"):
            return _ok([])
        wanted = None
        if params.get("instId"):
            wanted = {self._symbol(i) for i in str(params["instId"]).split(",")}
        rows = [self.position_row(p) for p in self.core.executor.all_positions(self.name)
                if p.size_base != 0 and (wanted is None or p.symbol in wanted)]
        return _ok(rows)

    def bill_rows(self) -> list[dict[str, Any]]:
        """Funding bills (type 8), newest first."""
        rows = []
        for pay in self.core.executor.venue_funding(self.name):
            bill_id = pay.ts_ms * 100 + self.core.symbols.index(pay.symbol)
            rows.append((bill_id, {
                "bal": "", "balChg": num(pay.amount_usd), "billId": str(bill_id), "ccy": "USDT", "clOrdId": "",
                "execType": "", "fee": "0", "fillFwdPx": "", "fillIdxPx": "", "fillMarkPx": "", "fillMarkVol": "",
                "fillPxUsd": "", "fillPxVol": "", "fillTime": str(pay.ts_ms), "from": "", "instId":
                    self.core.venue_symbol(self.name, pay.symbol), "instType": "SWAP", "interest": "0",
                "mgnMode": "cross", "notes": "", "ordId": "", "pnl": num(pay.amount_usd), "posBal": "0",
                "posBalChg": "0", "px": num(pay.mark_price), "subType": "174" if pay.amount_usd >= 0 else "173",
                "sz": self.contracts(pay.symbol, abs(pay.position_size_base)), "tag": "", "to": "",
                "tradeId": "", "ts": str(pay.ts_ms), "type": "8"}))
        rows.sort(key=lambda r: r[0], reverse=True)
        return [r for _, r in rows]

    async def bills(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        rows = self.bill_rows()
        if params.get("type") not in (None, "", "8"):
            rows = []
        if params.get("instId"):
            rows = [r for r in rows if r["instId"] == params["instId"]]
        begin, end = int(params.get("begin") or 0), int(params.get("end") or 1 << 62)
        rows = [r for r in rows if begin <= int(r["ts"]) <= end]
        return _ok(rows[: min(int(params.get("limit") or 100), 100)])

    async def set_leverage(self, request: web.Request, params: Any) -> web.Response:
        params = params if isinstance(params, dict) else {}
        symbol = self._symbol(params.get("instId"))
        if params.get("mgnMode") != "cross":
            raise _err("51000", "Parameter mgnMode error (the emulator supports cross margin only)")
        try:
            lever = Decimal(str(params.get("lever")))
        except InvalidOperation:
            raise _err("51000", "Parameter lever error") from None
        if not 1 <= lever <= 50:
            raise _err("59102", "Leverage exceeds the maximum leverage. Adjust the leverage.")
        self.core.leverage[(self.name, symbol)] = int(lever)
        return _ok([{"lever": num(lever), "mgnMode": "cross", "instId": self.core.venue_symbol(self.name, symbol),
                     "posSide": "net"}])

    async def leverage_info(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        rows = []
        for inst_id in str(params.get("instId") or "").split(","):
            symbol = self._symbol(inst_id)
            rows.append({"instId": inst_id, "lever": str(self.core.leverage.get((self.name, symbol), 10)),
                         "mgnMode": "cross", "posSide": "net"})
        return _ok(rows)

    async def set_position_mode(self, request: web.Request, params: Any) -> web.Response:
        mode = params.get("posMode") if isinstance(params, dict) else None
        if mode not in ("net_mode", "long_short_mode"):
            raise _err("51000", "Parameter posMode error")
        busy = any(p.size_base != 0 for p in self.core.executor.all_positions(self.name)) \
            or any(not o.status.is_terminal for o in self.core.executor.orders(self.name))
        if busy:
            raise _err("59000", "Settings failed. Close any open positions or orders before modifying settings.")
        self.pos_mode = mode
        return _ok([{"posMode": mode}])

    # -- private REST: orders ---------------------------------------------------------------------
    def _check_deadline(self, request: web.Request) -> None:
        """``expTime`` header: not processed once the venue clock is past it."""
        deadline = request.headers.get("expTime")
        if deadline is None:
            return
        if not deadline.isdigit():
            raise _err("50014", "Parameter expTime error")
        if self.core.server_time_ms(self.name) > int(deadline):
            self.expired_requests += 1
            raise _err("50004", "Request timed out: expTime has passed; the request was not processed")

    async def place_one(self, request: web.Request, params: Any) -> web.Response:
        if not isinstance(params, dict):
            raise _err("50002", "JSON syntax error")
        self._check_deadline(request)
        row, ok = await self._place(params)
        return _ok([row]) if ok else self._order_failure([row])

    async def place_batch(self, request: web.Request, params: Any) -> web.Response:
        if not isinstance(params, list) or not params:
            raise _err("50002", "JSON syntax error")
        if len(params) > 20:
            raise _err("51111", "Maximum 20 orders can be placed in bulk.")
        self._check_deadline(request)
        results = [await self._place(p if isinstance(p, dict) else {}) for p in params]
        rows = [r for r, _ in results]
        oks = [ok for _, ok in results]
        return _ok(rows) if all(oks) else self._order_failure(rows, any_ok=any(oks))

    async def _place(self, p: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        cid = str(p.get("clOrdId") or "")
        now = str(self.core.now_ms())

        def failed(code: str, msg: str) -> tuple[dict[str, Any], bool]:
            return {"clOrdId": cid, "ordId": "", "sCode": code, "sMsg": msg, "tag": str(p.get("tag") or ""),
                    "ts": now}, False

        try:
            request = self._order_request(p, cid)
        except VenueRefusal as exc:
            return failed(str(exc.code), exc.message)
        if self.core.executor.stored_order(self.name, cid) is not None:
            return failed("51016", "Duplicated clOrdId")
        try:
            order = await self.place(request, _refusal_for)
        except VenueRefusal as exc:
            return failed(str(exc.code), exc.message)
        return {"clOrdId": cid, "ordId": str(venue_order_number(order.venue_order_id)), "sCode": "0",
                "sMsg": "Order placed", "tag": str(p.get("tag") or ""), "ts": now}, True

    def _order_request(self, p: dict[str, Any], cid: str) -> OrderRequest:
        if not cid or len(cid) > 32 or not cid.isalnum() or not cid.isascii():
            raise _err("51000", "Parameter clOrdId error")
        symbol = self._symbol(p.get("instId"))
        if p.get("tdMode") not in ("cross", "isolated"):
            raise _err("51000", "Parameter tdMode error")
        side = {"buy": OrderSide.BUY, "sell": OrderSide.SELL}.get(str(p.get("side")))
        if side is None:
            raise _err("51000", "Parameter side error")
        pos_side = str(p.get("posSide") or ("net" if self.pos_mode == "net_mode" else ""))
        if (self.pos_mode == "net_mode" and pos_side != "net") or \
                (self.pos_mode == "long_short_mode" and pos_side not in ("long", "short")):
            raise _err("51000", "Parameter posSide error")
        kind = str(p.get("ordType"))
        post_only = kind == "post_only"
        if kind in ("limit", "post_only"):
            order_type, tif = OrderType.LIMIT, TimeInForce.GTC
        elif kind == "ioc":
            order_type, tif = OrderType.LIMIT, TimeInForce.IOC
        elif kind in ("market", "optimal_limit_ioc"):
            order_type, tif = OrderType.MARKET, TimeInForce.IOC
        else:
            raise _err("51000", f"Parameter ordType error (the emulator supports limit, post_only, ioc, market; got {kind})")
        try:
            contracts = Decimal(str(p.get("sz")))
            price = Decimal(str(p["px"])) if order_type is OrderType.LIMIT else None
        except (InvalidOperation, KeyError):
            raise _err("51000", "Parameter sz/px error") from None
        if not contracts.is_finite() or contracts <= 0:
            raise _err("51000", "Parameter sz error")
        return OrderRequest(client_order_id=cid, venue=self.name, symbol=symbol, side=side,
                            size_base=contracts * self.ct_val(symbol), order_type=order_type, limit_price=price,
                            time_in_force=tif, reduce_only=_bool(p.get("reduceOnly")), post_only=post_only)

    def _forgotten(self, order: StoredOrder) -> bool:
        return (order.status is OrderStatus.CANCELED and order.filled_base == ZERO
                and self.core.now_ms() - order.updated_ts_ms > _FORGET_CANCELED_MS)

    def _find(self, p: dict[str, Any]) -> StoredOrder | None:
        symbol = self._symbol(p.get("instId"))
        cid, oid = p.get("clOrdId"), p.get("ordId")
        order = None
        if cid:
            order = self.core.executor.stored_order(self.name, str(cid))
        elif oid:
            order = next((o for o in self.core.executor.orders(self.name)
                          if str(venue_order_number(o.venue_order_id)) == str(oid)), None)
        else:
            raise _err("51003", "Either client order ID or order ID is required.")
        return order if order is not None and order.symbol == symbol else None

    def order_row(self, order: StoredOrder, fill=None, last: bool = True) -> dict[str, Any]:
        """``/trade/order`` row; with ``fill``: the ``orders`` channel push of that fill (state as of it)."""
        fills = self.core.executor.order_fills(self.name, order.client_order_id)
        upto = fills[: fills.index(fill) + 1] if fill is not None and fill in fills else fills
        filled = sum((f.size_base for f in upto), ZERO)
        value = sum((f.price * f.size_base for f in upto), ZERO)
        fee = sum((f.fee_usd for f in upto), ZERO)
        state = _STATE[order.status] if last else "partially_filled"
        if order.post_only:
            kind = "post_only"
        elif order.order_type is OrderType.MARKET:
            kind = "market"
        else:
            kind = "ioc" if order.time_in_force is TimeInForce.IOC else "limit"
        shown = fill or (fills[-1] if fills else None)
        return {
            "accFillSz": self.contracts(order.symbol, filled), "algoClOrdId": "", "algoId": "",
            "attachAlgoClOrdId": "", "attachAlgoOrds": [], "avgPx": num(value / filled) if filled else "",
            "cTime": str(order.created_ts_ms), "cancelSource": "", "cancelSourceReason": "", "category": "normal",
            "ccy": "", "clOrdId": order.client_order_id, "fee": num(-fee), "feeCcy": "USDT",
            "fillPx": num(shown.price) if shown else "", "fillSz": self.contracts(order.symbol, shown.size_base) if shown else "0",
            "fillTime": str(shown.ts_ms) if shown else "", "instId": self.core.venue_symbol(self.name, order.symbol),
            "instType": "SWAP", "isTpLimit": "false", "lever": str(self.core.leverage.get((self.name, order.symbol), 10)),
            "linkedAlgoOrd": {"algoId": ""}, "ordId": str(venue_order_number(order.venue_order_id)), "ordType": kind,
            "pnl": "0", "posSide": "net", "px": num(order.limit_price) if order.limit_price is not None else "",
            "pxType": "", "pxUsd": "", "pxVol": "", "quickMgnType": "", "rebate": "0", "rebateCcy": "USDT",
            "reduceOnly": "true" if order.reduce_only else "false", "side": order.side.value,
            "slOrdPx": "", "slTriggerPx": "", "slTriggerPxType": "", "source": "", "state": state, "stpId": "",
            "stpMode": "cancel_maker", "sz": self.contracts(order.symbol, order.requested_base), "tag": "",
            "tdMode": "cross", "tgtCcy": "", "tpOrdPx": "", "tpTriggerPx": "", "tpTriggerPxType": "",
            "tradeId": str(venue_order_number(shown.trade_id)) if shown else "", "uTime": str(order.updated_ts_ms),
        }

    async def get_order(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        order = self._find(params)
        if order is None or self._forgotten(order):
            raise _err("51603", "Order does not exist")
        return _ok([self.order_row(order)])

    async def orders_pending(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        wanted = self._symbol(params.get("instId"), required=False)
        rows = [self.order_row(o) for o in reversed(self.core.executor.orders(self.name))
                if not o.status.is_terminal and wanted in (None, o.symbol)]
        return _ok(rows[: int(params.get("limit") or 100)])

    async def orders_history(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        wanted = self._symbol(params.get("instId"), required=False)
        rows = [self.order_row(o) for o in reversed(self.core.executor.orders(self.name))
                if o.status.is_terminal and wanted in (None, o.symbol) and not self._forgotten(o)]
        return _ok(rows[: int(params.get("limit") or 100)])

    async def cancel(self, request: web.Request, params: Any) -> web.Response:
        params = params if isinstance(params, dict) else {}
        cid = str(params.get("clOrdId") or "")
        try:
            order = self._find(params)
        except VenueRefusal as exc:
            return self._order_failure([{"clOrdId": cid, "ordId": str(params.get("ordId") or ""),
                                         "sCode": str(exc.code), "sMsg": exc.message, "ts": str(self.core.now_ms())}])
        code = None
        if order is None or self._forgotten(order):
            code, msg = "51400", "Order cancellation failed as the order has been filled, canceled or does not exist."
        elif order.status is OrderStatus.CANCELED:
            code, msg = "51401", "Order has been canceled."
        elif order.status is OrderStatus.FILLED:
            code, msg = "51402", "Order has been completed."
        if code is not None:
            return self._order_failure([{"clOrdId": cid, "ordId": str(params.get("ordId") or ""), "sCode": code,
                                         "sMsg": msg, "ts": str(self.core.now_ms())}])
        await self.core.executor.cancel_order(self.name, order.client_order_id)
        self.core.notify_orders(self.name, [order.client_order_id])
        return _ok([{"clOrdId": order.client_order_id, "ordId": str(venue_order_number(order.venue_order_id)),
                     "sCode": "0", "sMsg": "", "ts": str(self.core.now_ms())}])

    def fill_row(self, fill, order: StoredOrder | None) -> dict[str, Any]:
        notional = fill.price * fill.size_base
        return {
            "billId": str(venue_order_number(fill.trade_id)), "clOrdId": fill.client_order_id,
            "execType": "M" if fill.liquidity.value == "maker" else "T", "fee": num(-fill.fee_usd), "feeCcy": "USDT",
            "feeRate": num(-fill.fee_usd / notional) if notional else "0", "fillFwdPx": "", "fillIdxPx": num(fill.price),
            "fillMarkPx": num(fill.price), "fillMarkVol": "", "fillPnl": "0", "fillPx": num(fill.price),
            "fillPxUsd": "", "fillPxVol": "", "fillSz": self.contracts(fill.symbol, fill.size_base),
            "fillTime": str(fill.ts_ms), "instId": self.core.venue_symbol(self.name, fill.symbol), "instType": "SWAP",
            "ordId": str(venue_order_number(order.venue_order_id)) if order else "", "posSide": "net",
            "side": fill.side.value, "subType": "1" if fill.side is OrderSide.BUY else "2", "tag": "",
            "tradeId": str(venue_order_number(fill.trade_id)), "ts": str(fill.ts_ms),
        }

    async def fills(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        wanted = self._symbol(params.get("instId"), required=False)
        if params.get("instType") not in (None, "", "SWAP"):
            return _ok([])
        begin, end = int(params.get("begin") or 0), int(params.get("end") or 1 << 62)
        oid = str(params.get("ordId") or "")
        orders = {o.client_order_id: o for o in self.core.executor.orders(self.name)}
        rows = []
        for fill in self.core.executor.venue_fills(self.name):
            order = orders.get(fill.client_order_id)
            if wanted not in (None, fill.symbol) or not begin <= fill.ts_ms <= end:
                continue
            if oid and (order is None or str(venue_order_number(order.venue_order_id)) != oid):
                continue
            rows.append(self.fill_row(fill, order))
        rows.sort(key=lambda r: (int(r["ts"]), int(r["tradeId"])), reverse=True)
        return _ok(rows[: min(int(params.get("limit") or 100), 100)])

    # -- streams ----------------------------------------------------------------------------------
    def _stream(self, kind: str):
        async def handler(request: web.Request) -> web.StreamResponse:
            return await serve_stream(request, lambda ws: StreamConnection(ws, self.name, kind), self._on_text, self.hub)
        return handler

    def _event(self, conn: StreamConnection, event: str, **fields: Any) -> None:
        conn.send({"event": event, **fields, "connId": f"{id(conn) & 0xFFFFFFFF:08x}"})

    async def _on_text(self, conn: StreamConnection, text: str) -> None:
        if text == "ping":
            conn.send("pong")
            return
        try:
            msg = json.loads(text)
        except json.JSONDecodeError:
            self._event(conn, "error", code="60012", msg=f"Invalid request: {text[:100]}")
            return
        if not isinstance(msg, dict):
            self._event(conn, "error", code="60012", msg=f"Invalid request: {text[:100]}")
            return
        op = msg.get("op")
        if op == "login":
            self._login(conn, msg)
        elif op in ("subscribe", "unsubscribe"):
            for arg in msg.get("args") or []:
                self._subscription(conn, op, arg if isinstance(arg, dict) else {})
        else:
            self._event(conn, "error", code="60012", msg=f"Invalid request: {text[:100]}")

    def _login(self, conn: StreamConnection, msg: dict[str, Any]) -> None:
        args = msg.get("args") or [{}]
        arg = args[0] if isinstance(args[0], dict) else {}
        cred = self._credential(str(arg.get("apiKey", "")))
        stamp = str(arg.get("timestamp", ""))
        if cred is None:
            self._event(conn, "error", code="60005", msg="Invalid OK-ACCESS-KEY")
            return
        if not stamp.isdigit() or abs(self.core.server_time_ms(self.name) - int(stamp) * 1000) > _WINDOW_MS:
            self._event(conn, "error", code="60006", msg="Timestamp request expired")
            return
        if cred.passphrase != arg.get("passphrase"):
            self._event(conn, "error", code="60024", msg="Wrong passphrase")
            return
        if not hmac.compare_digest(okx_sign(cred.secret, stamp + "GET/users/self/verify"), str(arg.get("sign", ""))):
            self._event(conn, "error", code="60007", msg="Invalid sign")
            return
        conn.authed = True
        self._event(conn, "login", code="0", msg="")

    def _subscription(self, conn: StreamConnection, op: str, arg: dict[str, Any]) -> None:
        channel = str(arg.get("channel", ""))
        private = channel in ("orders", "positions", "account", "balance_and_position")
        public = channel in ("books", "books5", "bbo-tbt", "tickers", "mark-price", "funding-rate")
        if (private and conn.kind != "private") or (public and conn.kind != "public") or not (private or public):
            self._event(conn, "error", code="60018", msg=f"Wrong URL or channel:{channel} doesn't exist.")
            return
        if private and not conn.authed:
            self._event(conn, "error", code="60011", msg="Please log in")
            return
        symbol = None
        if public:
            symbol = self.core.symbol_for(self.name, str(arg.get("instId", "")))
            if symbol is None:
                self._event(conn, "error", code="60018",
                            msg=f"Wrong URL or channel:{channel},instId:{arg.get('instId')} doesn't exist.")
                return
        topic = json.dumps({"channel": channel, "instId": arg.get("instId")} if public else {"channel": channel},
                           sort_keys=True)
        if op == "unsubscribe":
            conn.topics.discard(topic)
            conn.state.pop(("book", topic), None)
            self._event(conn, "unsubscribe", arg=arg)
            return
        conn.topics.add(topic)
        self._event(conn, "subscribe", arg=arg)
        if public:
            self._push_public(conn, topic, snapshot=True)

    def _push_public(self, conn: StreamConnection, topic: str, *, snapshot: bool) -> None:
        spec = json.loads(topic)
        channel, inst_id = spec["channel"], spec["instId"]
        symbol = self.core.symbol_for(self.name, inst_id)
        if symbol is None:
            return
        arg = {"channel": channel, "instId": inst_id}
        now = str(self.core.now_ms())
        if channel == "tickers":
            row = self.ticker_row(symbol)
            if row:
                conn.send({"arg": arg, "data": [row]})
        elif channel == "mark-price":
            row = self.mark_row(symbol)
            if row:
                conn.send({"arg": arg, "data": [row]})
        elif channel == "funding-rate":
            row = self.funding_row(symbol)
            if row:
                conn.send({"arg": arg, "data": [row]})
        elif channel in ("books5", "bbo-tbt"):
            bids, asks = self.book_sides(symbol, 5 if channel == "books5" else 1)
            conn.send({"arg": arg, "data": [{"asks": asks, "bids": bids, "instId": inst_id, "ts": now,
                                             "seqId": self.core.book_seq[(self.name, symbol)]}]})
        elif channel == "books":
            self._push_books(conn, topic, arg, symbol, snapshot=snapshot)

    def _push_books(self, conn: StreamConnection, topic: str, arg: dict[str, Any], symbol: str, *,
                    snapshot: bool) -> None:
        """``books``: a snapshot, then updates carrying only changed levels (size "0" = removed); every
        message has the full book's checksum; seqId/prevSeqId chain the messages."""
        bids, asks = self.book_sides(symbol, _BOOK_DEPTH)
        now = str(self.core.now_ms())
        key = ("book", topic)
        seq = self.core.book_seq[(self.name, symbol)]
        before = conn.state.get(key)
        if snapshot or before is None:
            conn.state[key] = (seq, bids, asks)
            conn.send({"arg": arg, "action": "snapshot",
                       "data": [{"asks": asks, "bids": bids, "ts": now, "checksum": book_checksum(bids, asks),
                                 "prevSeqId": -1, "seqId": seq}]})
            return
        prev_seq, old_bids, old_asks = before
        if seq <= prev_seq:
            return
        conn.state[key] = (seq, bids, asks)
        if self._drop_update():
            return  # lost on the way: the next update's prevSeqId no longer matches what the client holds

        def delta(old: list[list[str]], new: list[list[str]]) -> list[list[str]]:
            was = {lv[0]: lv for lv in old}
            now_levels = {lv[0]: lv for lv in new}
            out = [[p, "0", "0", "0"] for p in was if p not in now_levels]
            out += [lv for p, lv in now_levels.items() if was.get(p) != lv]
            return out

        conn.send({"arg": arg, "action": "update",
                   "data": [{"asks": delta(old_asks, asks), "bids": delta(old_bids, bids), "ts": now,
                             "checksum": book_checksum(bids, asks), "prevSeqId": prev_seq, "seqId": seq}]})

    def _drop_update(self) -> bool:
        if self._drop_books:
            self._drop_books -= 1
            return True
        fault = self.board.take(self.name, ("ws_sequence_gap",), "public")
        if fault is None:
            return False
        self._drop_books = int(fault.params.get("skip", 1)) - 1
        return True

    def publish_books(self) -> None:
        for conn in list(self.hub):
            if conn.kind == "public":
                for topic in sorted(conn.topics):
                    self._push_public(conn, topic, snapshot=False)

    def publish_orders(self, client_order_ids: list[str]) -> None:
        messages = []
        for cid in client_order_ids:
            order = self.core.executor.stored_order(self.name, cid)
            if order is None:
                continue
            fills = self.core.executor.order_fills(self.name, cid)
            if not fills:
                messages.append(self.order_row(order))
            for i, fill in enumerate(fills):  # one push per fill, as the venue does
                row = self.order_row(order, fill, last=i == len(fills) - 1)
                messages.append(row)
        if not messages:
            return
        topic = json.dumps({"channel": "orders"}, sort_keys=True)
        for conn in list(self.hub):
            if conn.kind == "private" and conn.authed and topic in conn.topics:
                for row in messages:
                    conn.send({"arg": {"channel": "orders", "instType": "ANY", "uid": "1"}, "data": [row]})


def _refusal_for(reason: str) -> VenueRefusal:
    """The OKX ``sCode`` for a paper-engine rejection reason."""
    if "reduce_only" in reason:
        return _err("51169", "Order failed because you don't have any positions in this direction for this "
                             "contract to reduce or close.")
    if "min_notional" in reason or "min_size" in reason:
        return _err("51020", "Your order should meet or exceed the minimum order amount.")
    if "lot_size" in reason:
        return _err("51121", "Order quantity must be a multiple of the lot size.")
    if "tick_size" in reason or "limit_price" in reason:
        return _err("51006", "Order price is not within the price limit.")
    if "post_only" in reason:
        return _err("51019", f"Post only order can't be placed: {reason}")
    if "insufficient" in reason or "balance" in reason:
        return _err("51008", "Order failed. Insufficient USDT margin in account")
    return _err("51000", f"Parameter error: {reason}")
