"""Bybit v5 wire payloads -> frozen domain types (Decimal, ms, signed sizes).

Samples: ../shared/data/payloads/bybit-v5-docs and nautilus/bybit/test_data (tests/test_payloads_bybit.py).
Quirks handled here and nowhere else:
- ``fundingIntervalHour`` on the ticker is authoritative; the instrument's ``fundingInterval`` is in
  MINUTES (480 = 8 h) and only a fallback. Neither known: the quote is unusable.
- A funding settlement arrives in ``/v5/execution/list`` as ``execType=Funding`` with ``execFee``
  in fee sign (positive = paid): the payment amount is ``-execFee``.
- Order status ``PartiallyFilledCanceled`` / ``Deactivated`` are cancellations.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from adapters.errors import AbsurdVenueData, IncompleteVenueData
from adapters.markets import VenueMarket
from adapters.validation import validate_book
from adapters.wire import (
    canonical_symbol,
    dec,
    dec_or_none,
    field,
    make_quote,
    non_negative,
    positive,
    ts_field,
)
from bot.core.domain import (
    ZERO,
    BookLevel,
    Fill,
    FundingPayment,
    FundingQuote,
    Instrument,
    Liquidity,
    OrderBook,
    OrderReport,
    OrderSide,
    OrderStatus,
    VenuePosition,
)

VENUE = "bybit"

_STATUS = {
    "Created": OrderStatus.NEW,
    "New": OrderStatus.NEW,
    "Untriggered": OrderStatus.NEW,
    "PartiallyFilled": OrderStatus.PARTIALLY_FILLED,
    "Filled": OrderStatus.FILLED,
    "Cancelled": OrderStatus.CANCELED,
    "PartiallyFilledCanceled": OrderStatus.CANCELED,
    "Deactivated": OrderStatus.CANCELED,
    "Triggered": OrderStatus.NEW,
    "Rejected": OrderStatus.REJECTED,
}


def result_list(payload: Mapping[str, Any], venue: str = VENUE) -> list[Mapping[str, Any]]:
    """``payload['result']['list']`` of a successful v5 REST answer (retCode 0)."""
    if str(payload.get("retCode")) != "0":
        raise AbsurdVenueData(venue, f"retCode {payload.get('retCode')!r}: {payload.get('retMsg')!r}")
    result = field(payload, "result", venue)
    items = result.get("list") if isinstance(result, Mapping) else None
    if not isinstance(items, list):
        raise IncompleteVenueData(venue, "result.list: missing from the payload")
    return items


def _side(value: Any) -> OrderSide:
    if value == "Buy":
        return OrderSide.BUY
    if value == "Sell":
        return OrderSide.SELL
    raise AbsurdVenueData(VENUE, f"side: unknown value {value!r}")


def interval_hours_from_minutes(minutes: Any, venue: str = VENUE) -> Decimal:
    """Instrument ``fundingInterval`` (minutes) -> hours; below one hour is refused as absurd
    (a sample with ``fundingInterval: 8`` is a unit mistake, not an 8-minute funding)."""
    value = positive(dec({"fundingInterval": minutes}, "fundingInterval", venue), "fundingInterval", venue)
    if value < 60:
        raise AbsurdVenueData(venue, f"fundingInterval: {minutes!r} minutes is below one hour (unit mistake?)")
    return value / 60


def parse_instrument(item: Mapping[str, Any]) -> VenueMarket:
    """One ``/v5/market/instruments-info`` linear perpetual -> ``VenueMarket``."""
    venue_symbol = str(field(item, "symbol", VENUE))
    if item.get("contractType") != "LinearPerpetual":
        raise IncompleteVenueData(VENUE, f"{venue_symbol}: contractType {item.get('contractType')!r} is not a linear perpetual")
    price_filter = field(item, "priceFilter", VENUE)
    lot = field(item, "lotSizeFilter", VENUE)
    instrument = Instrument(
        venue=VENUE,
        symbol=canonical_symbol(str(field(item, "baseCoin", VENUE))),
        venue_symbol=venue_symbol,
        tick_size=positive(dec(price_filter, "tickSize", VENUE), "tickSize", VENUE),
        lot_size_base=positive(dec(lot, "qtyStep", VENUE), "qtyStep", VENUE),
        min_size_base=positive(dec(lot, "minOrderQty", VENUE), "minOrderQty", VENUE),
        funding_interval_hours=interval_hours_from_minutes(field(item, "fundingInterval", VENUE)),
        min_notional_usd=non_negative(dec_or_none(lot, "minNotionalValue", VENUE) or ZERO, "minNotionalValue", VENUE),
    )
    return VenueMarket(instrument=instrument, settle=str(item.get("settleCoin") or "USDT"))


def parse_instruments(payload: Mapping[str, Any]) -> tuple[list[VenueMarket], list[str]]:
    """All tradable linear perpetuals of an instruments-info answer, plus one line per skipped item."""
    markets: list[VenueMarket] = []
    skipped: list[str] = []
    for item in result_list(payload):
        if item.get("status") != "Trading":
            skipped.append(f"{item.get('symbol')}: status {item.get('status')!r}")
            continue
        try:
            markets.append(parse_instrument(item))
        except AbsurdVenueData as exc:
            skipped.append(str(exc))
    return markets, skipped


def parse_ticker_quote(
    item: Mapping[str, Any], *, ts_ms: int, instrument_interval_hours: Decimal | None = None,
    symbol: str | None = None,
) -> FundingQuote:
    """A linear ticker (REST list item or a merged WebSocket ``tickers.*`` snapshot) -> quote.

    ``fundingIntervalHour`` wins; ``instrument_interval_hours`` (from instruments-info) is the
    fallback; neither: ``IncompleteVenueData``. ``nextFundingTime`` is the next settlement (ms).
    """
    interval = dec_or_none(item, "fundingIntervalHour", VENUE)
    if interval is None:
        interval = instrument_interval_hours
    venue_symbol = str(field(item, "symbol", VENUE))
    return make_quote(
        venue=VENUE,
        symbol=symbol or canonical_symbol(_strip_quote(venue_symbol)),
        rate_per_interval=dec(item, "fundingRate", VENUE),
        interval_hours=interval,
        next_funding_ts_ms=ts_field(item, "nextFundingTime", VENUE),
        mark_price=dec_or_none(item, "markPrice", VENUE),
        ts_ms=ts_ms,
    )


def _strip_quote(venue_symbol: str) -> str:
    for suffix in ("USDT", "PERP", "USDC", "USD"):
        if venue_symbol.endswith(suffix) and len(venue_symbol) > len(suffix):
            return venue_symbol[: -len(suffix)]
    return venue_symbol


def parse_rest_tickers(payload: Mapping[str, Any], intervals: Mapping[str, Decimal] | None = None,
                       symbols: Mapping[str, str] | None = None) -> tuple[list[FundingQuote], list[str]]:
    """``/v5/market/tickers?category=linear`` -> quotes (+ one line per dropped ticker).

    ``intervals`` maps venue symbol -> instrument interval (hours) as the fallback; ``symbols``
    maps venue symbol -> canonical symbol (from the instruments) when known.
    """
    ts = ts_field(payload, "time", VENUE)
    quotes: list[FundingQuote] = []
    dropped: list[str] = []
    for item in result_list(payload):
        name = str(item.get("symbol"))
        try:
            quotes.append(parse_ticker_quote(
                item, ts_ms=ts, instrument_interval_hours=(intervals or {}).get(name),
                symbol=(symbols or {}).get(name),
            ))
        except AbsurdVenueData as exc:
            dropped.append(str(exc))
    return quotes, dropped


def _levels(raw: Any, key: str) -> tuple[BookLevel, ...]:
    if not isinstance(raw, list):
        raise IncompleteVenueData(VENUE, f"{key}: expected a list of [price, size]")
    out = []
    for i, level in enumerate(raw):
        if not isinstance(level, (list, tuple)) or len(level) < 2:
            raise AbsurdVenueData(VENUE, f"{key}[{i}]: expected [price, size], got {level!r}")
        out.append(BookLevel(price=dec({"p": level[0]}, "p", VENUE), size_base=dec({"s": level[1]}, "s", VENUE)))
    return tuple(out)


def parse_rest_orderbook(payload: Mapping[str, Any], symbol: str) -> OrderBook:
    """``/v5/market/orderbook`` -> validated ``OrderBook`` (``b`` descending, ``a`` ascending)."""
    if str(payload.get("retCode")) != "0":
        raise AbsurdVenueData(VENUE, f"retCode {payload.get('retCode')!r}: {payload.get('retMsg')!r}")
    result = field(payload, "result", VENUE)
    return validate_book(OrderBook(
        venue=VENUE, symbol=symbol, bids=_levels(result.get("b"), "b"), asks=_levels(result.get("a"), "a"),
        ts_ms=ts_field(result, "ts", VENUE),
    ))


def parse_order(item: Mapping[str, Any], *, symbol: str, client_order_id: str,
                fills: tuple[Fill, ...] = ()) -> OrderReport:
    """An order from ``/v5/order/realtime`` / ``history`` or the ``order`` stream -> ``OrderReport``.

    ``client_order_id`` is OURS (the caller decodes ``orderLinkId`` through the codec).
    """
    status_text = field(item, "orderStatus", VENUE)
    status = _STATUS.get(status_text)
    if status is None:
        raise AbsurdVenueData(VENUE, f"orderStatus: unknown value {status_text!r}")
    filled = non_negative(dec(item, "cumExecQty", VENUE), "cumExecQty", VENUE)
    requested = positive(dec(item, "qty", VENUE), "qty", VENUE)
    avg = dec_or_none(item, "avgPrice", VENUE)
    if status is OrderStatus.REJECTED and filled > 0:
        status = OrderStatus.CANCELED  # partially filled then rejected: the fills are real
    reason = item.get("rejectReason")
    return OrderReport(
        client_order_id=client_order_id,
        venue=VENUE,
        symbol=symbol,
        side=_side(item.get("side")),
        status=status,
        requested_base=requested,
        filled_base=filled,
        avg_price=avg if avg and avg > 0 and filled > 0 else None,
        fills=fills,
        reduce_only=bool(item.get("reduceOnly")),
        venue_order_id=str(item.get("orderId")) if item.get("orderId") else None,
        reason=None if reason in (None, "", "EC_NoError") else str(reason),
        ts_ms=ts_field(item, "updatedTime", VENUE) if item.get("updatedTime") else 0,
    )


def parse_execution(item: Mapping[str, Any], *, symbol: str, client_order_id: str) -> Fill:
    """A trade from ``/v5/execution/list`` or the ``execution`` stream -> ``Fill`` (fee + = paid).

    Fees are in the settle coin (USDT/USDC), counted as USD.
    """
    if item.get("execType") != "Trade":
        raise IncompleteVenueData(VENUE, f"execType {item.get('execType')!r} is not a trade")
    price = positive(dec(item, "execPrice", VENUE), "execPrice", VENUE)
    size = positive(dec(item, "execQty", VENUE), "execQty", VENUE)
    return Fill(
        venue=VENUE,
        symbol=symbol,
        client_order_id=client_order_id,
        trade_id=str(field(item, "execId", VENUE)),
        side=_side(item.get("side")),
        price=price,
        size_base=size,
        fee_usd=dec(item, "execFee", VENUE),
        liquidity=Liquidity.MAKER if item.get("isMaker") is True else Liquidity.TAKER,
        ts_ms=ts_field(item, "execTime", VENUE),
    )


def parse_funding_execution(item: Mapping[str, Any], *, symbol: str) -> FundingPayment:
    """An ``execType=Funding`` execution -> ``FundingPayment`` (+ = received).

    Bybit reports the funding as a fee: ``execFee`` > 0 means the account PAID it, so the
    amount is ``-execFee``. ``side`` Buy is a long position, Sell a short.
    """
    if item.get("execType") != "Funding":
        raise IncompleteVenueData(VENUE, f"execType {item.get('execType')!r} is not a funding settlement")
    size = positive(dec(item, "execQty", VENUE), "execQty", VENUE)
    signed = size if _side(item.get("side")) is OrderSide.BUY else -size
    return FundingPayment(
        payment_id=str(field(item, "execId", VENUE)),
        venue=VENUE,
        symbol=symbol,
        ts_ms=ts_field(item, "execTime", VENUE),
        rate=dec(item, "feeRate", VENUE),
        position_size_base=signed,
        mark_price=positive(dec(item, "execPrice", VENUE), "execPrice", VENUE),
        amount_usd=-dec(item, "execFee", VENUE),
    )


def parse_position(item: Mapping[str, Any], *, symbol: str) -> VenuePosition | None:
    """A ``/v5/position/list`` item -> signed ``VenuePosition``; None when flat."""
    size = non_negative(dec(item, "size", VENUE), "size", VENUE)
    if size == 0:
        return None
    side = item.get("side")
    if side not in ("Buy", "Sell"):
        raise AbsurdVenueData(VENUE, f"side: {side!r} with a non-zero size")
    liq = dec_or_none(item, "liqPrice", VENUE)
    mark = dec_or_none(item, "markPrice", VENUE)
    return VenuePosition(
        venue=VENUE,
        symbol=symbol,
        size_base=size if side == "Buy" else -size,
        entry_price=positive(dec(item, "avgPrice", VENUE), "avgPrice", VENUE),
        mark_price=mark if mark and mark > 0 else None,
        liquidation_price=liq if liq and liq > 0 else None,
    )


def parse_wallet_equity_usd(payload: Mapping[str, Any]) -> Decimal:
    """``/v5/account/wallet-balance`` (UNIFIED) -> total account equity in USD."""
    accounts = result_list(payload)
    if not accounts:
        raise IncompleteVenueData(VENUE, "wallet-balance: no account in the answer")
    return non_negative(dec(accounts[0], "totalEquity", VENUE), "totalEquity", VENUE)
