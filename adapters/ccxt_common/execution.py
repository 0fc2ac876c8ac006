"""``CcxtExecutor``: the ``bot.core.ports.Executor`` contract on a ccxt venue (Binance USD-M, OKX,
Hyperliquid), one shared ccxt.pro instance per venue.

Same order protocol as the Bybit executor (see adapters/bybit/execution.py): validation first,
IOC limit at the slippage bound rounded conservatively by us (never by ccxt's rounding), deterministic
client ids through the venue codec, every unknown outcome resolved by lookup by client id,
"not found" only after the venue-side expiry. ccxt's answers are parsed exactly (floats via repr);
funding payments by each venue's own raw parser (signs differ per venue).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import anyio
from aiolimiter import AsyncLimiter

from adapters.ccxt_common import unified
from adapters.ccxt_common.client import order_priority
from adapters.ccxt_common.dialect import CcxtDialect
from adapters.ccxt_common.errors import is_order_not_found, translate
from adapters.ccxt_common.market_data import book_from_ccxt
from adapters.ccxt_common.order_stream import CcxtOrderStream
from adapters.rehearsal import rehearsal_terms, rehearse
from adapters.client_ids import CodecMemo, codec_for
from adapters.errors import OrderNotFoundYet, OrderRejected, TemporaryVenueError, VenueError
from adapters.markets import VenueMarket
from adapters.order_flow import SendLedger, bound_price, check_request, is_priced_limit, reduce_only_size
from bot.core.domain import (
    ZERO,
    Fill,
    FundingPayment,
    OrderBook,
    OrderReport,
    OrderRequest,
    TimeInForce,
    VenuePosition,
    exchange_of,
)

SETTLE_POLLS = 40
POLL_INTERVAL_S = 0.05
TRADE_LOOKBACK_MS = 60_000
STREAM_WAIT_S = 1.0


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _trade_client_id(trade: Mapping[str, Any]) -> Any:
    """The client id a trade belongs to: ccxt's unified trades leave it out, so it is read from the raw
    row where the venue sends one (okx ``clOrdId``, hyperliquid ``cloid``). None when absent."""
    info = trade.get("info")
    raw = info if isinstance(info, Mapping) else {}
    return trade.get("clientOrderId") or raw.get("clOrdId") or raw.get("cloid") or raw.get("clientOrderId")


class CcxtExecutor:
    """Live executor for one ccxt venue account (one-way mode, linear perpetuals)."""

    def __init__(self, exchange: Any, dialect: CcxtDialect, *, markets: Mapping[str, VenueMarket],
                 max_slippage_bps: Decimal, book_for: Callable[[str], OrderBook | None] | None = None,
                 now_ms: Callable[[], int] = _wall_ms, order_stream: CcxtOrderStream | None = None,
                 check_book: Callable[[str, OrderBook | None], OrderBook | None] | None = None) -> None:
        self.venue = dialect.venue
        # A REST book is checked like the feed's (``adapters.live.refuse_absurd_book``: raises on absurd data).
        self._check_book = check_book or (lambda symbol, book: book)
        self._stream = order_stream
        self._ex = exchange
        self._d = dialect
        self._markets = dict(markets)
        self._by_ccxt = {m.ccxt_symbol: m for m in markets.values()}
        self._max_slippage_bps = max_slippage_bps
        self._book_for = book_for or (lambda symbol: None)
        self._now_ms = now_ms
        self._codec = CodecMemo(codec_for(exchange_of(dialect.venue)))  # a spot market uses its exchange's ids
        self._ledger = SendLedger(expiry_ms=dialect.expiry_ms, started_ms=now_ms())
        self._symbol_of_cid: dict[str, str] = {}
        self._cid_of_order: dict[str, str] = {}
        self._limiter = AsyncLimiter(*dialect.rate)

    @property
    def exchange(self) -> Any:
        """The ccxt instance this executor sends through (shared with the venue's feed)."""
        return self._ex

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One ccxt call; its errors leave as our classes. Order sends are shielded by the caller."""
        async with self._limiter:
            try:
                return await getattr(self._ex, method)(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001  (every ccxt/aiohttp failure is classified and re-raised)
                raise translate(self.venue, exc) from None

    def _check_venue(self, venue: str | None) -> None:
        if venue is not None and venue != self.venue:
            raise OrderRejected(self.venue, f"venue {venue!r} is not served by this executor")

    def _market(self, symbol: str) -> VenueMarket:
        market = self._markets.get(symbol)
        if market is None:
            raise OrderRejected(self.venue, f"symbol {symbol!r} is not a loaded perpetual")
        return market

    async def _book(self, market: VenueMarket) -> OrderBook | None:
        book = self._book_for(market.symbol)
        if book is not None:
            return book
        raw = await self._call("fetch_order_book", market.ccxt_symbol, 20)
        # validated: absurd books raise, never priced on (also one far from the venue's mark price)
        return self._check_book(market.symbol, book_from_ccxt(raw, market, self._now_ms()))

    async def _position_base(self, market: VenueMarket) -> Decimal:
        total = ZERO
        for p in await self._call("fetch_positions", [market.ccxt_symbol]):
            pos = unified.parse_position(p, market=market) if p.get("symbol") == market.ccxt_symbol else None
            if pos is not None:
                total += pos.size_base
        return total

    # --- Executor -----------------------------------------------------------------------------

    async def place_order(self, request: OrderRequest) -> OrderReport:
        """Send one order; its settled report (IOC) or resting state (GTC)."""
        self._check_venue(request.venue)
        market = self._market(request.symbol)
        check_request(request, market)
        cid = request.client_order_id
        self._symbol_of_cid[cid] = market.symbol
        # The reads an order needs before it leaves (a resent id's look-up, a reduce-only order's
        # position, a REST book when the feed has none) are part of sending it: they skip ccxt's
        # throttle queue like the order (a close waited ~3 s there behind the feed's reads).
        with order_priority():
            if self._ledger.was_sent(cid):
                existing = await self._lookup(cid)
                if existing is not None:
                    return existing
            size = request.size_base
            if request.reduce_only:
                size = await self._reduce_only_size(request, market)
            # (a priced limit order is bounded by its own price: no book is read for it)
            book = None if is_priced_limit(request) else await self._book(market)
            price = bound_price(request, market, book, self._max_slippage_bps)
        price, params = self._order_terms(request, market, size, price)
        tif = "GTC" if request.time_in_force is TimeInForce.GTC else "IOC"
        self._ledger.sent(cid, self._now_ms())
        try:
            # A cancelled caller must not un-send the order; the order does not queue behind our
            # reads in ccxt's throttle (ours, ``self._limiter``, still bounds it).
            with anyio.CancelScope(shield=True), order_priority():
                answer = await self._call("create_order", market.ccxt_symbol, "limit", request.side.value,
                                          float(market.contracts(size)), float(price), params)
        except TemporaryVenueError:
            with order_priority():  # the outcome of an order sent: as urgent as sending it
                return await self._resolve_unknown(cid)
        except OrderRejected as exc:
            if request.reduce_only:
                raise OrderRejected(self.venue, f"reduce_only order refused: {exc}") from None
            raise
        with order_priority():
            if not isinstance(answer, Mapping) or not answer.get("id"):
                return await self._resolve_unknown(cid)  # e.g. a 200 with a non-JSON body: id None
            self._cid_of_order[str(answer["id"])] = cid
            return await self._settled(cid, wait_terminal=tif == "IOC")

    def _order_terms(self, request: OrderRequest, market: VenueMarket, size: Decimal,
                     price: Decimal) -> tuple[Decimal, dict[str, Any]]:
        """The price as sent (the venue's rounding, checked against ccxt's) and ccxt's params."""
        if self._d.round_price is not None:
            price = self._d.round_price(price, market, request.side)
        self._refuse_if_ccxt_would_change(market, price, market.contracts(size))
        wire_cid = str(self._codec.encode(request.client_order_id))
        tif = "GTC" if request.time_in_force is TimeInForce.GTC else "IOC"
        return price, self._d.order_params(wire_cid, tif, request.reduce_only, self._now_ms())

    def rehearse_order(self, symbol: str) -> bool | None:
        """Build and sign an entry-like order on ``symbol`` through ``place_order``'s own code and
        ccxt's, up to the request, and send nothing (``adapters.rehearsal``): keeps that path warm
        in the CPU caches. True when it ran up to the request; None when there is nothing to
        rehearse with now (unknown symbol, no book yet, terms refused); False when ccxt's path
        suspended before its request."""
        terms = rehearsal_terms(self.venue, self._markets, self._book_for, symbol, self._max_slippage_bps)
        if terms is None:
            return None
        market, request, price = terms
        size = request.size_base
        try:
            price, params = self._order_terms(request, market, size, price)
        except VenueError:  # the venue's rounding refused: nothing to rehearse this time
            return None
        with order_priority():
            return rehearse(lambda: self._ex.create_order(market.ccxt_symbol, "limit", request.side.value,
                                                          float(market.contracts(size)), float(price), params))

    def _refuse_if_ccxt_would_change(self, market: VenueMarket, price: Decimal, contracts: Decimal) -> None:
        """ccxt truncates amounts and ROUNDS prices; we round conservatively ourselves and refuse to
        send a number ccxt would alter (it could move a buy bound past the slippage cap)."""
        if not hasattr(self._ex, "price_to_precision") or not getattr(self._ex, "markets", None):
            return
        sent_price = Decimal(self._ex.price_to_precision(market.ccxt_symbol, float(price)))
        sent_amount = Decimal(self._ex.amount_to_precision(market.ccxt_symbol, float(contracts)))
        if sent_price != price:
            raise OrderRejected(self.venue, f"limit_price {price} would be sent as {sent_price}: tick rules differ")
        if sent_amount != contracts:
            raise OrderRejected(self.venue, f"size_base {contracts} contracts would be sent as {sent_amount}")

    async def _reduce_only_size(self, request: OrderRequest, market: VenueMarket) -> Decimal:
        return reduce_only_size(request, market, await self._position_base(market))

    async def _resolve_unknown(self, cid: str) -> OrderReport:
        for _ in range(SETTLE_POLLS):
            report = await self._lookup(cid)
            if report is not None:
                return report if report.status.is_terminal else await self._settled(cid, wait_terminal=True)
            if not self._ledger.may_still_arrive(cid, self._now_ms()):
                break
            await anyio.sleep(POLL_INTERVAL_S)
        raise TemporaryVenueError(self.venue, f"order {cid}: outcome unknown (not found yet); look it up again")

    async def _settled(self, cid: str, *, wait_terminal: bool) -> OrderReport:
        if wait_terminal and self._stream is not None:  # woken by the order stream: one look-up
            await self._stream.wait_terminal(str(self._codec.encode(cid)), STREAM_WAIT_S)
        report = None
        for _ in range(SETTLE_POLLS):
            report = await self._lookup(cid)
            if report is not None and (report.status.is_terminal or not wait_terminal):
                return report
            await anyio.sleep(POLL_INTERVAL_S)
        if report is None:
            raise TemporaryVenueError(self.venue, f"order {cid}: accepted but not visible yet; look it up again")
        return report

    async def _fetch_by_cid(self, market: VenueMarket, wire_cid: str) -> Mapping[str, Any] | None:
        try:
            async with self._limiter:
                order = await self._ex.fetch_order(None, market.ccxt_symbol, self._d.lookup_params(wire_cid))
        except Exception as exc:  # noqa: BLE001  (not-found is an answer; the rest is classified)
            if is_order_not_found(exc):
                return None
            raise translate(self.venue, exc) from None
        return order if isinstance(order, Mapping) and order.get("status") is not None else None

    async def _lookup(self, cid: str) -> OrderReport | None:
        wire_cid = str(self._codec.encode(cid))
        known = self._symbol_of_cid.get(cid)
        candidates = [self._markets[known]] if known in self._markets else list(self._markets.values())
        for queried in candidates:
            order = await self._fetch_by_cid(queried, wire_cid)
            if order is None:
                continue
            market = self._owning_market(order, queried, cid)
            self._symbol_of_cid[cid] = market.symbol
            if order.get("id"):
                self._cid_of_order[str(order["id"])] = cid
            fills: tuple[Fill, ...] = ()
            if order.get("filled"):
                fills = await self._order_fills(market, order, cid)
            return self._parse_order(order, market=market, client_order_id=cid, fills=fills)
        return None

    def _owning_market(self, order: Mapping[str, Any], queried: VenueMarket, cid: str) -> VenueMarket:
        """The market the venue says ``order`` is on. Some venues look a client id up account-wide
        (Hyperliquid ``orderStatus`` by cloid ignores the symbol asked with): after a restart, when
        the order's symbol is not known yet, the first market tried "finds" every order, and its
        trades, sizes and symbol must come from the order's own market, never the one asked about."""
        symbol = order.get("symbol")
        if symbol in (None, "", queried.ccxt_symbol):
            return queried
        owner = self._by_ccxt.get(symbol)
        if owner is None:
            raise TemporaryVenueError(self.venue, f"order {cid}: the venue reports it on {symbol!r}, which is "
                                                  "not a loaded market; outcome unknown (load that market)")
        return owner

    async def _order_fills(self, market: VenueMarket, order: Mapping[str, Any], cid: str) -> tuple[Fill, ...]:
        since = int(order.get("timestamp") or self._now_ms()) - TRADE_LOOKBACK_MS
        trades = await self._call("fetch_my_trades", market.ccxt_symbol, since, None)
        oid = str(order.get("id"))
        fills = {t["id"]: self._parse_trade(t, market=market, client_order_id=cid)
                 for t in trades if str(t.get("order")) == oid}
        return tuple(sorted(fills.values(), key=lambda f: (f.ts_ms, f.trade_id)))

    def _parse_trade(self, trade: Mapping[str, Any], *, market: VenueMarket, client_order_id: str) -> Fill:
        return unified.parse_trade(trade, market=market, client_order_id=client_order_id)

    def _parse_order(self, order: Mapping[str, Any], *, market: VenueMarket, client_order_id: str,
                     fills: tuple[Fill, ...] = ()) -> OrderReport:
        return unified.parse_order(order, market=market, client_order_id=client_order_id, fills=fills)

    async def get_order(self, venue: str, client_order_id: str) -> OrderReport | None:
        """The order by our client id; None only once it can never execute."""
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
            async with self._limiter:
                await self._ex.cancel_order(report.venue_order_id, market.ccxt_symbol)
        except Exception as exc:  # noqa: BLE001
            if not is_order_not_found(exc):
                raise translate(self.venue, exc) from None
        return await self._settled(client_order_id, wait_terminal=True)

    async def cancel_all_orders(self, venue: str | None = None) -> int:
        """Cancel every resting order on the loaded markets; how many were cancelled."""
        self._check_venue(venue)
        count = 0
        for market in self._markets.values():
            for order in await self._call("fetch_open_orders", market.ccxt_symbol):
                try:
                    async with self._limiter:
                        await self._ex.cancel_order(order["id"], market.ccxt_symbol)
                    count += 1
                except Exception as exc:  # noqa: BLE001
                    if not is_order_not_found(exc):
                        raise translate(self.venue, exc) from None
        return count

    async def positions(self, venue: str | None = None) -> list[VenuePosition]:
        """Non-zero positions on the loaded markets (signed base units)."""
        self._check_venue(venue)
        out = []
        for p in await self._call("fetch_positions", [m.ccxt_symbol for m in self._markets.values()]):
            market = self._by_ccxt.get(p.get("symbol"))
            pos = unified.parse_position(p, market=market) if market else None
            if pos is not None:
                out.append(pos)
        return out

    async def balances_usd(self) -> dict[str, Decimal]:
        """Account equity in USD."""
        return {self.venue: self._d.equity_usd(await self._call("fetch_balance"))}

    async def fills_since(self, venue: str, since_ts_ms: int) -> list[Fill]:
        """Every trade at or after ``since_ts_ms`` on the loaded markets, by trade id, oldest first."""
        self._check_venue(venue)
        fills: dict[str, Fill] = {}
        for market in self._markets.values():
            for t in await self._call("fetch_my_trades", market.ccxt_symbol, since_ts_ms or None, None):
                order_id = str(t.get("order"))
                cid = self._cid_of_order.get(order_id) or self._codec.decode(_trade_client_id(t)) or f"venue:{order_id}"
                fill = self._parse_trade(t, market=market, client_order_id=cid)
                if fill.ts_ms >= since_ts_ms:
                    fills[fill.trade_id] = fill
        return sorted(fills.values(), key=lambda f: (f.ts_ms, f.trade_id))

    async def funding_payments_since(self, venue: str, since_ts_ms: int) -> list[FundingPayment]:
        """Every funding payment at or after ``since_ts_ms`` (+ = received, per-venue sign rule)."""
        self._check_venue(venue)
        out: dict[str, FundingPayment] = {}
        # OKX's funding bills are account-wide (ccxt filters a symbol's rows client-side): one call, not one per symbol
        targets: list[VenueMarket | None] = list(self._markets.values()) if self._d.funding_history_per_symbol else [None]
        for target in targets:
            symbol = target.ccxt_symbol if target is not None else None
            for row in await self._call("fetch_funding_history", symbol, since_ts_ms or None, None):
                info = row.get("info") if isinstance(row, Mapping) else None
                market = target or (self._by_ccxt.get(row.get("symbol")) if isinstance(row, Mapping) else None)
                if not isinstance(info, Mapping) or market is None:
                    continue  # not a row of ours (another instrument of the account)
                payment = self._d.parse_funding(info, market)
                if payment.ts_ms >= since_ts_ms:
                    out[payment.payment_id] = payment
        return sorted(out.values(), key=lambda p: (p.ts_ms, p.payment_id))
