"""Binance USD-M (and Aster, same ``/fapi`` dialect) wire payloads -> domain types.

Samples: ../shared/data/payloads/nautilus/binance/test_data/futures and ccxt-static/response/binance.json.
Quirks handled here:
- ``premiumIndex`` / ``markPriceUpdate`` carry no interval. ``/fapi/v1/fundingInfo`` lists only the
  symbols whose interval was adjusted; the others are 8 h. That default is only applied when the
  fundingInfo list itself was fetched (``funding_info`` not None); without it the quote is unusable.
- Funding payments are ``/fapi/v1/income`` rows with ``incomeType=FUNDING_FEE``; ``income`` is
  already + = received.
- Positions in one-way mode have ``positionSide=BOTH`` and a signed ``positionAmt``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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

DEFAULT_INTERVAL_HOURS = Decimal(8)  # documented: symbols absent from fundingInfo settle every 8 h

_STATUS = {
    "NEW": OrderStatus.NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "EXPIRED": OrderStatus.CANCELED,  # an IOC remainder
    "EXPIRED_IN_MATCH": OrderStatus.CANCELED,
    "REJECTED": OrderStatus.REJECTED,
}


def _side(value: Any, venue: str) -> OrderSide:
    if value == "BUY":
        return OrderSide.BUY
    if value == "SELL":
        return OrderSide.SELL
    raise AbsurdVenueData(venue, f"side: unknown value {value!r}")


def parse_funding_info(rows: Sequence[Mapping[str, Any]], venue: str = "binanceusdm") -> dict[str, Decimal]:
    """``/fapi/v1/fundingInfo`` -> venue symbol -> interval hours (adjusted symbols only)."""
    out: dict[str, Decimal] = {}
    for row in rows:
        hours = positive(dec(row, "fundingIntervalHours", venue), "fundingIntervalHours", venue)
        out[str(field(row, "symbol", venue))] = hours
    return out


def interval_for(venue_symbol: str, funding_info: Mapping[str, Decimal] | None) -> Decimal | None:
    """Interval hours of ``venue_symbol``: fundingInfo's value, 8 h when fundingInfo is known and
    does not list it, None (unusable) when fundingInfo was never fetched."""
    if funding_info is None:
        return None
    return funding_info.get(venue_symbol, DEFAULT_INTERVAL_HOURS)


def parse_instrument(item: Mapping[str, Any], *, funding_info: Mapping[str, Decimal] | None,
                     venue: str = "binanceusdm") -> VenueMarket:
    """One ``/fapi/v1/exchangeInfo`` symbol (a PERPETUAL, status TRADING) -> ``VenueMarket``."""
    name = str(field(item, "symbol", venue))
    if item.get("contractType") != "PERPETUAL":
        raise IncompleteVenueData(venue, f"{name}: contractType {item.get('contractType')!r} is not PERPETUAL")
    filters = {f.get("filterType"): f for f in item.get("filters", []) if isinstance(f, Mapping)}
    price_filter = filters.get("PRICE_FILTER") or {}
    lot = filters.get("LOT_SIZE") or {}
    notional = filters.get("MIN_NOTIONAL") or {}
    interval = interval_for(name, funding_info)
    if interval is None:
        raise IncompleteVenueData(venue, f"{name}: funding interval unknown (fundingInfo not loaded)")
    instrument = Instrument(
        venue=venue,
        symbol=canonical_symbol(str(field(item, "baseAsset", venue))),
        venue_symbol=name,
        tick_size=positive(dec(price_filter, "tickSize", venue), "tickSize", venue),
        lot_size_base=positive(dec(lot, "stepSize", venue), "stepSize", venue),
        min_size_base=positive(dec(lot, "minQty", venue), "minQty", venue),
        funding_interval_hours=interval,
        min_notional_usd=non_negative(dec_or_none(notional, "notional", venue) or ZERO, "notional", venue),
    )
    return VenueMarket(instrument=instrument, settle=str(item.get("marginAsset") or "USDT"))


def parse_exchange_info(payload: Mapping[str, Any], *, funding_info: Mapping[str, Decimal] | None,
                        venue: str = "binanceusdm") -> tuple[list[VenueMarket], list[str]]:
    """All trading perpetuals of ``exchangeInfo`` plus one line per skipped symbol."""
    markets, skipped = [], []
    for item in payload.get("symbols", []):
        if item.get("status") != "TRADING" or item.get("contractType") != "PERPETUAL":
            continue
        try:
            markets.append(parse_instrument(item, funding_info=funding_info, venue=venue))
        except AbsurdVenueData as exc:
            skipped.append(str(exc))
    return markets, skipped


def parse_premium_index(item: Mapping[str, Any], *, funding_info: Mapping[str, Decimal] | None,
                        symbol: str | None = None, venue: str = "binanceusdm") -> FundingQuote:
    """``/fapi/v1/premiumIndex`` item -> quote (rate ``lastFundingRate``, next ``nextFundingTime``)."""
    name = str(field(item, "symbol", venue))
    return make_quote(
        venue=venue,
        symbol=symbol or canonical_symbol(_base_of(name)),
        rate_per_interval=dec(item, "lastFundingRate", venue),
        interval_hours=interval_for(name, funding_info),
        next_funding_ts_ms=ts_field(item, "nextFundingTime", venue),
        mark_price=dec_or_none(item, "markPrice", venue),
        ts_ms=ts_field(item, "time", venue),
    )


def parse_mark_price_update(message: Mapping[str, Any], *, funding_info: Mapping[str, Decimal] | None,
                            symbol: str | None = None, venue: str = "binanceusdm") -> FundingQuote:
    """A ``<symbol>@markPrice`` stream event (``e=markPriceUpdate``) -> quote."""
    if message.get("e") != "markPriceUpdate":
        raise IncompleteVenueData(venue, f"event {message.get('e')!r} is not markPriceUpdate")
    name = str(field(message, "s", venue))
    return make_quote(
        venue=venue,
        symbol=symbol or canonical_symbol(_base_of(name)),
        rate_per_interval=dec(message, "r", venue),
        interval_hours=interval_for(name, funding_info),
        next_funding_ts_ms=ts_field(message, "T", venue),
        mark_price=dec_or_none(message, "p", venue),
        ts_ms=ts_field(message, "E", venue),
    )


def _base_of(venue_symbol: str) -> str:
    for suffix in ("USDT", "USDC", "USD"):
        if venue_symbol.endswith(suffix) and len(venue_symbol) > len(suffix):
            return venue_symbol[: -len(suffix)]
    return venue_symbol


def parse_depth(payload: Mapping[str, Any], symbol: str, venue: str = "binanceusdm") -> OrderBook:
    """``/fapi/v1/depth`` -> validated book (``T`` is the transaction time in ms)."""
    def levels(key: str) -> tuple[BookLevel, ...]:
        raw = field(payload, key, venue)
        return tuple(BookLevel(dec({"p": p}, "p", venue), dec({"q": q}, "q", venue)) for p, q in raw)

    return validate_book(OrderBook(venue=venue, symbol=symbol, bids=levels("bids"), asks=levels("asks"),
                                   ts_ms=ts_field(payload, "T", venue)))


def parse_order(item: Mapping[str, Any], *, symbol: str, client_order_id: str, fills: tuple[Fill, ...] = (),
                venue: str = "binanceusdm") -> OrderReport:
    """``/fapi/v1/order`` (query or place answer) -> ``OrderReport``."""
    status = _STATUS.get(item.get("status"))
    if status is None:
        raise AbsurdVenueData(venue, f"status: unknown value {item.get('status')!r}")
    filled = non_negative(dec(item, "executedQty", venue), "executedQty", venue)
    avg = dec_or_none(item, "avgPrice", venue)
    return OrderReport(
        client_order_id=client_order_id,
        venue=venue,
        symbol=symbol,
        side=_side(item.get("side"), venue),
        status=status,
        requested_base=positive(dec(item, "origQty", venue), "origQty", venue),
        filled_base=filled,
        avg_price=avg if avg and avg > 0 and filled > 0 else None,
        fills=fills,
        reduce_only=bool(item.get("reduceOnly")),
        venue_order_id=str(item.get("orderId")) if item.get("orderId") is not None else None,
        ts_ms=ts_field(item, "updateTime", venue) if item.get("updateTime") else 0,
    )


def parse_user_trade(item: Mapping[str, Any], *, symbol: str, client_order_id: str,
                     venue: str = "binanceusdm") -> Fill:
    """``/fapi/v1/userTrades`` row -> ``Fill`` (``commission`` is positive when paid)."""
    return Fill(
        venue=venue,
        symbol=symbol,
        client_order_id=client_order_id,
        trade_id=str(field(item, "id", venue)),
        side=_side(item.get("side"), venue),
        price=positive(dec(item, "price", venue), "price", venue),
        size_base=positive(dec(item, "qty", venue), "qty", venue),
        fee_usd=dec(item, "commission", venue),
        liquidity=Liquidity.MAKER if item.get("maker") is True else Liquidity.TAKER,
        ts_ms=ts_field(item, "time", venue),
    )


def parse_order_trade_update(message: Mapping[str, Any], *, symbol: str, client_order_id: str,
                             venue: str = "binanceusdm") -> Fill | None:
    """An ``ORDER_TRADE_UPDATE`` user-stream event -> its fill, or None when it is not a trade."""
    order = field(message, "o", venue)
    if order.get("x") != "TRADE":
        return None
    return Fill(
        venue=venue,
        symbol=symbol,
        client_order_id=client_order_id,
        trade_id=str(field(order, "t", venue)),
        side=_side(order.get("S"), venue),
        price=positive(dec(order, "L", venue), "L", venue),
        size_base=positive(dec(order, "l", venue), "l", venue),
        fee_usd=dec(order, "n", venue),
        liquidity=Liquidity.MAKER if order.get("m") is True else Liquidity.TAKER,
        ts_ms=ts_field(order, "T", venue),
    )


def parse_funding_income(item: Mapping[str, Any], *, symbol: str, position_size_base: Decimal = ZERO,
                         mark_price: Decimal | None = None, venue: str = "binanceusdm") -> FundingPayment:
    """A ``FUNDING_FEE`` income row -> ``FundingPayment`` (``income`` is + = received).

    The income row carries neither the rate nor the position: the caller passes what it knows
    (``rate`` is left 0 when unknown; ``mark_price`` defaults to 0 = unknown).
    """
    if item.get("incomeType") != "FUNDING_FEE":
        raise IncompleteVenueData(venue, f"incomeType {item.get('incomeType')!r} is not FUNDING_FEE")
    return FundingPayment(
        payment_id=str(field(item, "tranId", venue)),
        venue=venue,
        symbol=symbol,
        ts_ms=ts_field(item, "time", venue),
        rate=ZERO,
        position_size_base=position_size_base,
        mark_price=mark_price or ZERO,
        amount_usd=dec(item, "income", venue),
    )


def parse_position(item: Mapping[str, Any], *, symbol: str, venue: str = "binanceusdm") -> VenuePosition | None:
    """``/fapi/v2/positionRisk`` (one-way mode, ``positionSide=BOTH``) -> signed position or None."""
    if item.get("positionSide") not in (None, "BOTH"):
        raise AbsurdVenueData(venue, f"positionSide {item.get('positionSide')!r}: the account is in hedge mode")
    amount = dec(item, "positionAmt", venue)
    if amount == 0:
        return None
    mark = dec_or_none(item, "markPrice", venue)
    liq = dec_or_none(item, "liquidationPrice", venue)
    return VenuePosition(
        venue=venue, symbol=symbol, size_base=amount,
        entry_price=positive(dec(item, "entryPrice", venue), "entryPrice", venue),
        mark_price=mark if mark and mark > 0 else None,
        liquidation_price=liq if liq and liq > 0 else None,
    )


def parse_account_equity_usd(payload: Mapping[str, Any], venue: str = "binanceusdm") -> Decimal:
    """``/fapi/v2/account`` -> ``totalMarginBalance`` (wallet + unrealised PnL) in USD."""
    return non_negative(dec(payload, "totalMarginBalance", venue), "totalMarginBalance", venue)
