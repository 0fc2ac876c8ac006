"""Spot markets through ccxt for the long leg of a carry position: Binance spot (ccxt ``binance``,
market name ``binanceusdm:spot``, the Binance account's keys), OKX spot (``okx:spot``) and
Hyperliquid spot (``hyperliquid:spot``, only where the coin itself is listed: Hyperliquid's spot BTC
is a wrapped token ``UBTC``, which is NOT the perp's BTC and is never paired with it).

``CcxtSpotExecutor`` is the ccxt order protocol (``adapters.ccxt_common.execution``) on a spot
instance plus the ``bot.core.ports.SpotWallet`` port: limit orders in base units, never
``reduceOnly`` (spot has none; the request's flag is ignored), trades parsed with the fee in the coin
the venue names (``fee.currency`` = base -> ``Fill.fee_base``; = quote -> ``fee_usd`` only; anything
else is refused as absurd), no positions, no funding, ``spot_wallet_base`` from ``fetch_balance``'s
totals (validated), ``balances_usd`` the wallet's cash plus coins at mid. ``CcxtSpotMarketData`` keeps spot books by REST poll (each ``poll_s``) with the
zero-funding quote of each market (docs/carry.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

import anyio

from adapters.ccxt_common import unified
from adapters.ccxt_common.dialect import CcxtDialect
from adapters.ccxt_common.execution import CcxtExecutor
from adapters.ccxt_common.market_data import CcxtMarketData, book_from_ccxt
from adapters.errors import AbsurdVenueData
from adapters.markets import VenueMarket
from adapters.validation import (
    decimal_from_wire,
    validate_spot_fill,
    validate_wallet_base,
)
from adapters.wire import canonical_symbol
from bot.core.domain import (
    ZERO,
    Fill,
    FundingPayment,
    FundingQuote,
    Instrument,
    InstrumentKind,
    OrderReport,
    OrderRequest,
    VenuePosition,
)

HOUR_MS = 3_600_000


# market name -> (ccxt class, quote coin, ccxt options for a spot-only instance)
SPOT_CCXT: dict[str, tuple[str, str, dict[str, Any]]] = {
    "binanceusdm:spot": ("binance", "USDT", {"fetchCurrencies": False, "fetchMargins": False, "recvWindow": 5000,
                                              "defaultType": "spot", "fetchMarkets": {"types": ["spot"]}}),
    "okx:spot": ("okx", "USDT", {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}}),
    "hyperliquid:spot": ("hyperliquid", "USDC", {"builderFee": False, "approvedBuilderFee": True, "refSet": True,
                                                 "defaultType": "spot", "fetchMarkets": {"types": ["spot"]}}),
}
EXPIRY_MS = {"binanceusdm:spot": 7000, "okx:spot": 7000, "hyperliquid:spot": 60_000}


def _order_params(market: str) -> Callable[[str, str, bool, int], dict[str, Any]]:
    def params(wire_cid: str, tif: str, reduce_only: bool, now_ms: int) -> dict[str, Any]:
        out: dict[str, Any] = {"clientOrderId": wire_cid, "timeInForce": tif}  # never reduceOnly on spot
        if market == "okx:spot":
            out["tdMode"] = "cash"  # no margin: the bot never borrows
        return out
    return params


def _no_funding(info: Mapping[str, Any], market: VenueMarket) -> FundingPayment:
    raise AbsurdVenueData(market.venue, "a spot market has no funding payments")


def spot_dialect(market: str) -> CcxtDialect:
    """The shared ccxt executor's hooks for spot ``market`` ("binanceusdm:spot", "okx:spot", ...)."""
    quote = SPOT_CCXT[market][1]
    lookup = (lambda wire: {"clOrdId": wire}) if market == "okx:spot" else (lambda wire: {"clientOrderId": wire})
    return CcxtDialect(venue=market, settle=quote, expiry_ms=EXPIRY_MS[market], order_params=_order_params(market),
                       parse_funding=_no_funding, equity_usd=lambda balance: ZERO, lookup_params=lookup,
                       rate=(10, 1.0), order_stream=False)


def _dec(value: Any, key: str, venue: str) -> Decimal:
    return decimal_from_wire(value, key, venue)


def parse_spot_market(m: Mapping[str, Any], market: str) -> VenueMarket:
    """A ccxt spot market (TICK_SIZE precision) -> ``VenueMarket`` of kind SPOT named ``market``."""
    precision = m.get("precision") or {}
    limits = m.get("limits") or {}
    tick = _dec(precision.get("price"), "precision.price", market)
    lot = _dec(precision.get("amount"), "precision.amount", market)
    if tick <= 0 or lot <= 0 or lot > 1_000_000:
        raise AbsurdVenueData(market, f"{m.get('symbol')}: tick {tick} / lot {lot} not usable")
    min_amount = (limits.get("amount") or {}).get("min")
    min_cost = (limits.get("cost") or {}).get("min")
    min_size = _dec(min_amount, "limits.amount.min", market) if min_amount not in (None, "") else lot
    min_notional = _dec(min_cost, "limits.cost.min", market) if min_cost not in (None, "") else ZERO
    if min_size <= 0 or min_notional < 0:
        raise AbsurdVenueData(market, f"{m.get('symbol')}: minimum size {min_size} / notional {min_notional}")
    instrument = Instrument(venue=market, symbol=canonical_symbol(str(m.get("base"))), venue_symbol=str(m.get("id")),
                           tick_size=tick, lot_size_base=lot, min_size_base=max(min_size, lot),
                           funding_interval_hours=Decimal(1), min_notional_usd=min_notional, kind=InstrumentKind.SPOT)
    return VenueMarket(instrument=instrument, settle=str(m.get("quote")), ccxt_symbol=str(m.get("symbol")))


async def load_spot_markets(exchange: Any, market: str, symbols: Iterable[str] | None = None
                            ) -> tuple[dict[str, VenueMarket], list[str]]:
    """Active spot pairs quoted in the market's quote coin (optionally only ``symbols``) + skipped lines."""
    await exchange.load_markets()
    quote = SPOT_CCXT[market][1]
    wanted = set(symbols) if symbols is not None else None
    out: dict[str, VenueMarket] = {}
    skipped: list[str] = []
    for m in exchange.markets.values():
        if not m.get("spot") or m.get("quote") != quote or m.get("active") is False:
            continue
        try:
            parsed = parse_spot_market(m, market)
        except AbsurdVenueData as exc:
            skipped.append(str(exc))
            continue
        if wanted is None or parsed.symbol in wanted:
            out[parsed.symbol] = parsed
    return out, skipped


def parse_spot_trade(trade: Mapping[str, Any], *, market: VenueMarket, client_order_id: str) -> Fill:
    """A unified spot trade -> validated ``Fill``; the fee goes where ``fee.currency`` says."""
    fill = unified.parse_trade(trade, market=market, client_order_id=client_order_id)
    fee = trade.get("fee") or {}
    currency = str(fee.get("currency") or "").upper()
    base, quote = str(market.instrument.symbol).upper(), market.settle.upper()
    cost = fill.fee_usd
    if cost == 0 and not currency:
        fee_base, fee_usd = ZERO, ZERO
    elif currency in (base, str(trade.get("symbol", "")).split("/")[0].upper()):
        fee_base, fee_usd = cost, cost * fill.price
    elif currency == quote:
        fee_base, fee_usd = ZERO, cost
    else:
        raise AbsurdVenueData(market.venue, f"trade {trade.get('id')}: fee in {currency or 'an unnamed coin'!s}, "
                                            f"neither {base} nor {quote}: what reached the wallet is unknown")
    return validate_spot_fill(replace(fill, fee_base=fee_base, fee_usd=fee_usd))


class CcxtSpotExecutor(CcxtExecutor):
    """Live executor for one ccxt spot wallet (market name ``<exchange>:spot``)."""

    async def _reduce_only_size(self, request: OrderRequest, market: VenueMarket) -> Decimal:
        return request.size_base  # spot has no reduce-only (docs/carry.md): the flag is ignored

    def _parse_trade(self, trade: Mapping[str, Any], *, market: VenueMarket, client_order_id: str) -> Fill:
        return parse_spot_trade(trade, market=market, client_order_id=client_order_id)

    def _parse_order(self, order: Mapping[str, Any], *, market: VenueMarket, client_order_id: str,
                     fills: tuple[Fill, ...] = ()) -> OrderReport:
        report = unified.parse_order(order, market=market, client_order_id=client_order_id, fills=fills)
        return replace(report, reduce_only=False, fee_base=sum((f.fee_base for f in fills), ZERO))

    async def positions(self, venue: str | None = None) -> list[VenuePosition]:
        """A wallet has no position: always []."""
        self._check_venue(venue)
        return []

    async def balances_usd(self) -> dict[str, Decimal]:
        """The spot wallet's equity: quote coin plus each loaded market's coins at the book's mid (a spot
        buy moves value from cash to coins and leaves this unchanged). A coin without a book is left
        out rather than guessed."""
        balance = await self._call("fetch_balance")
        totals = balance.get("total") if isinstance(balance, Mapping) else None
        if not isinstance(totals, Mapping):
            raise AbsurdVenueData(self.venue, "fetch_balance without totals")
        quote = self._d.settle
        equity = decimal_from_wire(totals.get(quote) or 0, f"total[{quote}]", self.venue)
        for m in self._markets.values():
            held = totals.get(m.ccxt_symbol.split("/")[0])
            book = self._book_for(m.symbol)
            if held and book is not None and book.mid is not None:
                equity += decimal_from_wire(held, f"total[{m.symbol}]", self.venue) * book.mid
        return {self.venue: equity}

    async def funding_payments_since(self, venue: str, since_ts_ms: int) -> list[FundingPayment]:
        """Spot pays and receives no funding: always []."""
        self._check_venue(venue)
        return []

    async def spot_wallet_base(self, market: str) -> dict[str, Decimal]:
        """Total (free + locked) balances of the loaded markets' base coins, validated."""
        self._check_venue(market)
        balance = await self._call("fetch_balance")
        totals = balance.get("total") if isinstance(balance, Mapping) else None
        if not isinstance(totals, Mapping):
            raise AbsurdVenueData(self.venue, "fetch_balance without totals")
        out: dict[str, Decimal] = {}
        for m in self._markets.values():
            code = m.ccxt_symbol.split("/")[0]
            value = totals.get(code)
            if value is not None:
                out[m.symbol] = decimal_from_wire(value, f"total[{code}]", self.venue)
        return validate_wallet_base(self.venue, out)


class CcxtSpotMarketData(CcxtMarketData):
    """Spot books by REST poll and their zero-funding quotes (no funding endpoint is called)."""

    def __init__(self, exchange: Any, *, venue: str, markets: Mapping[str, VenueMarket], poll_s: float = 1.0,
                 **kwargs: Any) -> None:
        async def no_quotes(_ex: Any, _m: Mapping[str, VenueMarket], _now: int) -> tuple[list, list[str]]:
            return [], []
        super().__init__(exchange, venue=venue, markets=markets, fetch_quotes=no_quotes, **kwargs)
        self._poll_s = poll_s

    def accept_book(self, raw: Mapping[str, Any], market: VenueMarket) -> None:
        try:
            book = book_from_ccxt(raw, market, self._now_ms())
        except AbsurdVenueData as exc:
            self._drop(str(exc))
            return
        self._books[market.symbol] = book
        if book.mid is not None:
            self._quotes[market.symbol] = FundingQuote(
                venue=self.venue, symbol=market.symbol, rate_per_interval=ZERO, interval_hours=Decimal(1),
                next_funding_ts_ms=(book.ts_ms // HOUR_MS + 1) * HOUR_MS, mark_price=book.mid, ts_ms=book.ts_ms)

    async def resync_rest(self) -> None:
        """One REST snapshot of every spot book."""
        for market in self._markets.values():
            await self.resync_book(market)

    async def run(self, *, max_backoff_s: float = 30.0) -> None:
        """Poll the spot books until cancelled."""
        while True:
            await self.resync_rest()
            await anyio.sleep(self._poll_s)


def spot_ccxt_class(market: str) -> str:
    """The ccxt class of spot ``market`` ("binanceusdm:spot" -> "binance")."""
    return SPOT_CCXT[market][0]


def spot_options(market: str) -> dict[str, Any]:
    return dict(SPOT_CCXT[market][2])
