"""``BybitExecutor``: the ``bot.core.ports.Executor`` contract on Bybit v5 linear perpetuals (pybit).

Order protocol (DESIGN.md section 3, LIVE.md sections 2-3):
1. Validate (size, lot, minimum; reduce-only against the venue's own position) before sending.
2. IOC limit at the slippage-capped bound (MARKET requests are bounded from the latest book),
   rounded conservatively; ``orderLinkId`` from the deterministic codec.
3. Any unknown outcome (timeout, 5xx, non-JSON 200, duplicate ``orderLinkId``, success without an
   ``orderId``) is resolved by looking the order up by client id; if it is not found yet the call
   raises ``TemporaryVenueError`` and the engine looks it up again later.
4. ``get_order`` answers None ("can never execute") only once the request's venue-side expiry
   (recv window + skew allowance) has passed since it was last sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import anyio

from adapters.bybit import config
from adapters.bybit import parsing as wire
from adapters.bybit.errors import ORDER_NOT_FOUND
from adapters.bybit.http import BybitHttp
from adapters.bybit.private_stream import BybitPrivateStream
from adapters.client_ids import CodecMemo, codec_for
from adapters.errors import OrderNotFoundYet, OrderRejected, TemporaryVenueError
from adapters.markets import VenueMarket
from adapters.order_flow import SendLedger, bound_price, check_request, is_priced_limit, reduce_only_size
from adapters.rehearsal import rehearsal_terms
from bot.core.domain import (
    ZERO,
    Fill,
    FundingPayment,
    OrderBook,
    OrderReport,
    OrderRequest,
    OrderSide,
    TimeInForce,
    VenuePosition,
)

VENUE = config.VENUE
FILL_SETTLE_POLLS = 40  # IOC orders settle within milliseconds; poll up to ~2 s before giving up
POLL_INTERVAL_S = 0.05
STREAM_WAIT_S = 1.0  # how long to wait for the private stream before falling back to polling
EXECUTION_WINDOW_MS = 7 * 24 * 3_600_000  # /v5/execution/list answers at most 7 days per query


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


ORDER_EXECUTION_PAGES = 20  # at most 2,000 executions of one order are read back

class BybitExecutor:
    """Live executor for one Bybit account (linear USDT perpetuals, one-way mode).

    ``adapters.bybit.spot.BybitSpotExecutor`` is the same protocol on ``category=spot``."""

    category = config.CATEGORY

    def __init__(self, http: BybitHttp, *, markets: Mapping[str, VenueMarket], max_slippage_bps: Decimal,
                 book_for: Callable[[str], OrderBook | None] | None = None,
                 now_ms: Callable[[], int] = _wall_ms, venue: str = VENUE,
                 private_stream: BybitPrivateStream | None = None,
                 check_book: Callable[[str, OrderBook | None], OrderBook | None] | None = None) -> None:
        self.venue = venue
        self._http = http
        self._markets = dict(markets)
        self._by_venue_symbol = {m.venue_symbol: m for m in markets.values()}
        self._max_slippage_bps = max_slippage_bps
        self._book_for = book_for or (lambda symbol: None)
        # A REST book is checked like the feed's (``adapters.live.refuse_absurd_book``: raises on absurd data).
        self._check_book = check_book or (lambda symbol, book: book)
        self._now_ms = now_ms
        self._codec = CodecMemo(codec_for("bybit"))
        self._ledger = SendLedger(expiry_ms=http.recv_window_ms + config.CLOCK_SKEW_ALLOWANCE_MS, started_ms=now_ms())
        self._stream = private_stream

    # --- helpers ------------------------------------------------------------------------------

    def _market(self, symbol: str) -> VenueMarket:
        market = self._markets.get(symbol)
        if market is None:
            raise OrderRejected(self.venue, f"symbol {symbol!r} is not a loaded linear perpetual")
        return market

    def _symbol_of(self, venue_symbol: str) -> str:
        market = self._by_venue_symbol.get(venue_symbol)
        return market.symbol if market else venue_symbol

    def _ours(self, link_id: Any, order_id: Any) -> str:
        return self._codec.decode(link_id) or (str(link_id) if link_id else f"venue:{order_id}")

    def _check_venue(self, venue: str | None) -> None:
        if venue is not None and venue != self.venue:
            raise OrderRejected(self.venue, f"venue {venue!r} is not served by this executor")

    async def _book(self, market: VenueMarket) -> OrderBook | None:
        book = self._book_for(market.symbol)
        if book is not None:
            return book
        answer = await self._http.call("get_orderbook", category=self.category, symbol=market.venue_symbol, limit=50)
        return self._check_book(market.symbol, wire.parse_rest_orderbook(answer, market.symbol))

    async def _position_size(self, market: VenueMarket) -> Decimal:
        answer = await self._http.call("get_positions", category=self.category, symbol=market.venue_symbol)
        total = ZERO
        for item in wire.result_list(answer):
            pos = wire.parse_position(item, symbol=market.symbol)
            if pos is not None:
                total += pos.size_base
        return total

    # --- Executor -----------------------------------------------------------------------------

    async def place_order(self, request: OrderRequest) -> OrderReport:
        """Send one order and return its settled report (IOC) or its resting state (GTC)."""
        self._check_venue(request.venue)
        market = self._market(request.symbol)
        check_request(request, market)
        cid = request.client_order_id
        if self._ledger.was_sent(cid):  # sent before from this process: never send twice
            existing = await self._lookup(cid)
            if existing is not None:
                return existing
        size = request.size_base
        if request.reduce_only:
            size = await self._reduce_only_size(request, market)
        # (a priced limit order is bounded by its own price: no book is read for it)
        book = None if is_priced_limit(request) else await self._book(market)
        price = bound_price(request, market, book, self._max_slippage_bps)
        link_id = self._codec.encode(cid)
        params = self._order_params(request, market, size, price, str(link_id))
        self._ledger.sent(cid, self._now_ms())
        try:
            answer = await self._http.call("place_order", order=True, **params)
        except TemporaryVenueError:
            return await self._resolve_unknown(cid)
        except OrderRejected as exc:
            if request.reduce_only:
                raise OrderRejected(self.venue, f"reduce_only order refused: {exc}") from None
            raise
        result = answer.get("result") if isinstance(answer, Mapping) else None
        if not isinstance(result, Mapping) or not result.get("orderId"):
            return await self._resolve_unknown(cid)  # success without an order id: look it up
        return await self._settled(cid, wait_terminal=request.time_in_force is TimeInForce.IOC)

    def rehearse_order(self, symbol: str) -> bool | None:
        """Build and sign an entry-like order on ``symbol`` through ``place_order``'s own steps and
        pybit's, up to the request, and send nothing (``adapters.rehearsal``): keeps that path warm
        in the CPU caches. True when it reached the request; None when there is nothing to rehearse
        with now (unknown symbol, no book yet, terms refused)."""
        terms = rehearsal_terms(self.venue, self._markets, self._book_for, symbol, self._max_slippage_bps)
        if terms is None:
            return None
        market, request, price = terms
        link_id = str(self._codec.encode(request.client_order_id))
        params = self._order_params(request, market, request.size_base, price, link_id)
        return self._http.rehearse("place_order", **params)

    def _order_params(self, request: OrderRequest, market: VenueMarket, size: Decimal, price: Decimal,
                      link_id: str) -> dict[str, Any]:
        """The ``/v5/order/create`` body: a limit order (IOC or GTC) in base units at ``price``."""
        return {
            "category": self.category, "symbol": market.venue_symbol,
            "side": "Buy" if request.side is OrderSide.BUY else "Sell", "orderType": "Limit",
            "qty": str(market.contracts(size)), "price": str(price),
            "timeInForce": "GTC" if request.time_in_force is TimeInForce.GTC else "IOC",
            "orderLinkId": link_id, "reduceOnly": request.reduce_only, "positionIdx": 0,
        }

    async def _reduce_only_size(self, request: OrderRequest, market: VenueMarket) -> Decimal:
        return reduce_only_size(request, market, await self._position_size(market))

    async def _resolve_unknown(self, cid: str) -> OrderReport:
        for _ in range(FILL_SETTLE_POLLS):
            report = await self._lookup(cid)
            if report is not None:
                return await self._settled(cid, wait_terminal=True) if not report.status.is_terminal else report
            if not self._ledger.may_still_arrive(cid, self._now_ms()):
                break
            await anyio.sleep(POLL_INTERVAL_S)
        raise TemporaryVenueError(self.venue, f"order {cid}: outcome unknown (not found yet); look it up again")

    async def _settled(self, cid: str, *, wait_terminal: bool) -> OrderReport:
        if wait_terminal and self._stream is not None:  # woken by the private stream: one look-up
            await self._stream.wait_terminal(str(self._codec.encode(cid)), STREAM_WAIT_S)
        report = None
        for _ in range(FILL_SETTLE_POLLS):
            report = await self._lookup(cid)
            if report is not None and (report.status.is_terminal or not wait_terminal):
                return report
            await anyio.sleep(POLL_INTERVAL_S)
        if report is None:
            raise TemporaryVenueError(self.venue, f"order {cid}: accepted but not visible yet; look it up again")
        return report

    async def _find(self, link_id: str) -> Mapping[str, Any] | None:
        for method in ("get_open_orders", "get_order_history"):
            answer = await self._http.call(method, category=self.category, orderLinkId=link_id)
            items = wire.result_list(answer)
            if items:
                return items[0]
        return None

    async def _lookup(self, cid: str) -> OrderReport | None:
        item = await self._find(str(self._codec.encode(cid)))
        if item is None:
            return None
        symbol = self._symbol_of(str(item.get("symbol")))
        fills: tuple[Fill, ...] = ()
        if Decimal(str(item.get("cumExecQty") or "0")) > 0:
            fills = tuple(self._parse_fill(e, symbol=symbol, client_order_id=cid)
                          for e in await self._order_executions(item.get("orderId")) if e.get("execType") == "Trade")
        return self._parse_order(item, symbol=symbol, client_order_id=cid, fills=fills)

    async def _order_executions(self, order_id: Any) -> list[Mapping[str, Any]]:
        """Every execution of one order, page by page (Bybit: at most 100 a page), deduplicated by
        ``execId``. An order that swept many small levels has more than one page: reading one page
        only would report it filled without all its fills."""
        rows: dict[str, Mapping[str, Any]] = {}
        cursor = None
        for _ in range(ORDER_EXECUTION_PAGES):
            answer = await self._http.call("get_executions", category=self.category, orderId=order_id, limit=100,
                                           **({"cursor": cursor} if cursor else {}))
            for row in wire.result_list(answer):
                rows[str(row.get("execId"))] = row
            cursor = (answer.get("result") or {}).get("nextPageCursor")
            if not cursor:
                break
        return list(rows.values())

    def _parse_fill(self, item: Mapping[str, Any], *, symbol: str, client_order_id: str) -> Fill:
        return wire.parse_execution(item, symbol=symbol, client_order_id=client_order_id)

    def _parse_order(self, item: Mapping[str, Any], *, symbol: str, client_order_id: str,
                     fills: tuple[Fill, ...]) -> OrderReport:
        return wire.parse_order(item, symbol=symbol, client_order_id=client_order_id, fills=fills)

    async def get_order(self, venue: str, client_order_id: str) -> OrderReport | None:
        """The order by our client id; None only once it can never execute (see module doc)."""
        self._check_venue(venue)
        report = await self._lookup(client_order_id)
        if report is None and self._ledger.may_still_arrive(client_order_id, self._now_ms()):
            raise OrderNotFoundYet(self.venue, f"order {client_order_id} not found yet; it may still arrive")
        return report

    async def cancel_order(self, venue: str, client_order_id: str) -> OrderReport | None:
        """Cancel a resting order; its terminal report, or None when the venue never saw the id."""
        self._check_venue(venue)
        report = await self._lookup(client_order_id)
        if report is None or report.status.is_terminal:
            return report
        market = self._market(report.symbol)
        try:
            await self._http.call("cancel_order", order=True, category=self.category, symbol=market.venue_symbol,
                                  orderLinkId=str(self._codec.encode(client_order_id)))
        except OrderRejected as exc:
            if not any(str(code) in str(exc) for code in ORDER_NOT_FOUND):
                raise  # "not found / already closed" is fine: the lookup below tells the truth
        return await self._settled(client_order_id, wait_terminal=True)

    async def cancel_all_orders(self, venue: str | None = None) -> int:
        """Cancel every resting linear order on the account; how many were cancelled."""
        self._check_venue(venue)
        answer = await self._http.call("cancel_all_orders", order=True, category=self.category,
                                       settleCoin=config.SETTLE_COIN)
        return len(wire.result_list(answer))

    async def positions(self, venue: str | None = None) -> list[VenuePosition]:
        """Non-zero positions of the account (signed base units)."""
        self._check_venue(venue)
        answer = await self._http.call("get_positions", category=self.category, settleCoin=config.SETTLE_COIN)
        out = []
        for item in wire.result_list(answer):
            pos = wire.parse_position(item, symbol=self._symbol_of(str(item.get("symbol"))))
            if pos is not None:
                out.append(pos)
        return out

    async def balances_usd(self) -> dict[str, Decimal]:
        """Unified account equity in USD."""
        answer = await self._http.call("get_wallet_balance", accountType="UNIFIED")
        return {self.venue: wire.parse_wallet_equity_usd(answer)}

    async def _executions(self, since_ts_ms: int, exec_type: str) -> list[Mapping[str, Any]]:
        params: dict[str, Any] = {"category": self.category, "execType": exec_type, "limit": 100}
        now = self._now_ms()
        if since_ts_ms > now - EXECUTION_WINDOW_MS:
            params["startTime"] = since_ts_ms  # older: the venue's own 7-day default window
        rows: list[Mapping[str, Any]] = []
        cursor = None
        for _ in range(100):  # at most 10,000 rows per call
            answer = await self._http.call("get_executions", **params, **({"cursor": cursor} if cursor else {}))
            rows.extend(wire.result_list(answer))
            cursor = (answer.get("result") or {}).get("nextPageCursor")
            if not cursor:
                break
        return rows

    async def fills_since(self, venue: str, since_ts_ms: int) -> list[Fill]:
        """Every trade at or after ``since_ts_ms``, deduplicated by trade id, oldest first."""
        self._check_venue(venue)
        fills: dict[str, Fill] = {}
        for row in await self._executions(since_ts_ms, "Trade"):
            fill = self._parse_fill(row, symbol=self._symbol_of(str(row.get("symbol"))),
                                    client_order_id=self._ours(row.get("orderLinkId"), row.get("orderId")))
            if fill.ts_ms >= since_ts_ms:
                fills[fill.trade_id] = fill
        return sorted(fills.values(), key=lambda f: (f.ts_ms, f.trade_id))

    async def funding_payments_since(self, venue: str, since_ts_ms: int) -> list[FundingPayment]:
        """Every funding settlement at or after ``since_ts_ms`` (+ = received)."""
        self._check_venue(venue)
        out: dict[str, FundingPayment] = {}
        for row in await self._executions(since_ts_ms, "Funding"):
            payment = wire.parse_funding_execution(row, symbol=self._symbol_of(str(row.get("symbol"))))
            if payment.ts_ms >= since_ts_ms:
                out[payment.payment_id] = payment
        return sorted(out.values(), key=lambda p: (p.ts_ms, p.payment_id))
