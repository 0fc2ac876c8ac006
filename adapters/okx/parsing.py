"""OKX v5 wire payloads -> domain types.

Samples: ../shared/data/payloads/nautilus/okx/test_data.
Quirks handled here:
- Sizes are in CONTRACTS of ``ctVal`` base each (0.01 BTC for BTC-USDT-SWAP): every size is
  converted with the instrument's contract size; instruments expose base-unit lots.
- ``funding-rate``: ``fundingTime`` is the settlement that ends the CURRENT period (the next money
  movement), ``nextFundingTime`` the one after; the interval is their difference. The payload has no
  mark price: it comes from ``mark-price`` (or the caller's latest mark).
- Fees are negative when charged (``fee=-0.02`` = paid 0.02): ``Fill.fee_usd = -fee``.
- Funding bills (``type=8``): ``balChg`` is + = received.
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
    interval_hours_from_ms,
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

VENUE = "okx"

_STATUS = {
    "live": OrderStatus.NEW,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "mmp_canceled": OrderStatus.CANCELED,
}


def data_list(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """``payload['data']`` of a successful answer (``code`` "0")."""
    if str(payload.get("code", "0")) != "0":
        raise AbsurdVenueData(VENUE, f"code {payload.get('code')!r}: {payload.get('msg')!r}")
    data = payload.get("data")
    if not isinstance(data, list):
        raise IncompleteVenueData(VENUE, "data: missing from the payload")
    return data


def _side(value: Any) -> OrderSide:
    if value == "buy":
        return OrderSide.BUY
    if value == "sell":
        return OrderSide.SELL
    raise AbsurdVenueData(VENUE, f"side: unknown value {value!r}")


def parse_instrument(item: Mapping[str, Any], *, funding_interval_hours: Decimal) -> VenueMarket:
    """A linear USDT ``SWAP`` from ``/public/instruments`` -> ``VenueMarket`` (base-unit lots).

    OKX instruments carry no funding interval: it is measured from the funding-rate answer and
    passed in.
    """
    inst_id = str(field(item, "instId", VENUE))
    if item.get("instType") != "SWAP" or item.get("ctType") != "linear":
        raise IncompleteVenueData(VENUE, f"{inst_id}: not a linear swap")
    ct_val = positive(dec(item, "ctVal", VENUE), "ctVal", VENUE)
    ct_mult = positive(dec_or_none(item, "ctMult", VENUE) or Decimal(1), "ctMult", VENUE)
    contract = ct_val * ct_mult
    lot = positive(dec(item, "lotSz", VENUE), "lotSz", VENUE)
    min_sz = positive(dec(item, "minSz", VENUE), "minSz", VENUE)
    base = str(item.get("ctValCcy") or inst_id.split("-")[0])
    instrument = Instrument(
        venue=VENUE,
        symbol=canonical_symbol(base),
        venue_symbol=inst_id,
        tick_size=positive(dec(item, "tickSz", VENUE), "tickSz", VENUE),
        lot_size_base=lot * contract,
        min_size_base=min_sz * contract,
        funding_interval_hours=funding_interval_hours,
    )
    return VenueMarket(instrument=instrument, contract_size_base=contract, settle=str(item.get("settleCcy") or "USDT"))


def funding_interval_hours(item: Mapping[str, Any]) -> Decimal:
    """Interval of a ``funding-rate`` item: ``nextFundingTime - fundingTime``."""
    current = ts_field(item, "fundingTime", VENUE)
    following = ts_field(item, "nextFundingTime", VENUE)
    return interval_hours_from_ms(following - current, VENUE, "nextFundingTime - fundingTime")


def parse_funding_rate(item: Mapping[str, Any], *, mark_price: Decimal | None, symbol: str | None = None,
                       ts_ms: int | None = None) -> FundingQuote:
    """A ``/public/funding-rate`` item or ``funding-rate`` channel datum -> quote.

    The rate settles at ``fundingTime``; ``mark_price`` comes from the mark-price channel.
    """
    inst_id = str(field(item, "instId", VENUE))
    return make_quote(
        venue=VENUE,
        symbol=symbol or canonical_symbol(inst_id.split("-")[0]),
        rate_per_interval=dec(item, "fundingRate", VENUE),
        interval_hours=funding_interval_hours(item),
        next_funding_ts_ms=ts_field(item, "fundingTime", VENUE),
        mark_price=mark_price,
        ts_ms=ts_ms if ts_ms is not None else ts_field(item, "ts", VENUE),
    )


def parse_mark_prices(payload: Mapping[str, Any]) -> dict[str, Decimal]:
    """``/public/mark-price`` -> instId -> mark price."""
    return {str(field(i, "instId", VENUE)): positive(dec(i, "markPx", VENUE), "markPx", VENUE) for i in data_list(payload)}


def parse_order_book(payload: Mapping[str, Any], market: VenueMarket) -> OrderBook:
    """``/market/books`` -> validated book with sizes converted from contracts to base."""
    book = data_list(payload)[0]

    def levels(key: str) -> tuple[BookLevel, ...]:
        return tuple(BookLevel(dec({"p": lv[0]}, "p", VENUE), market.base(dec({"s": lv[1]}, "s", VENUE)))
                     for lv in field(book, key, VENUE))

    return validate_book(OrderBook(venue=VENUE, symbol=market.symbol, bids=levels("bids"), asks=levels("asks"),
                                   ts_ms=ts_field(book, "ts", VENUE)))


def parse_order(item: Mapping[str, Any], *, market: VenueMarket, client_order_id: str,
                fills: tuple[Fill, ...] = ()) -> OrderReport:
    """``/trade/order`` / ``orders-history`` / ``orders`` channel item -> ``OrderReport`` (base units)."""
    status = _STATUS.get(item.get("state"))
    if status is None:
        raise AbsurdVenueData(VENUE, f"state: unknown value {item.get('state')!r}")
    filled = market.base(non_negative(dec(item, "accFillSz", VENUE), "accFillSz", VENUE))
    avg = dec_or_none(item, "avgPx", VENUE)
    return OrderReport(
        client_order_id=client_order_id,
        venue=VENUE,
        symbol=market.symbol,
        side=_side(item.get("side")),
        status=status,
        requested_base=market.base(positive(dec(item, "sz", VENUE), "sz", VENUE)),
        filled_base=filled,
        avg_price=avg if avg and avg > 0 and filled > 0 else None,
        fills=fills,
        reduce_only=str(item.get("reduceOnly")).lower() == "true",
        venue_order_id=str(item.get("ordId")) if item.get("ordId") else None,
        reason=str(item.get("cancelSourceReason")) or None if item.get("cancelSourceReason") else None,
        ts_ms=ts_field(item, "uTime", VENUE) if item.get("uTime") else 0,
    )


def parse_fill(item: Mapping[str, Any], *, market: VenueMarket, client_order_id: str) -> Fill:
    """``/trade/fills`` row (or an order carrying its last fill) -> ``Fill``; ``fee`` negative =
    charged, so ``fee_usd = -fee``. Only SWAP rows: their sizes are contracts."""
    if item.get("instType") != "SWAP":
        raise IncompleteVenueData(VENUE, f"instType {item.get('instType')!r}: only SWAP fills are ours")
    return Fill(
        venue=VENUE,
        symbol=market.symbol,
        client_order_id=client_order_id,
        trade_id=str(field(item, "tradeId", VENUE)),
        side=_side(item.get("side")),
        price=positive(dec(item, "fillPx", VENUE), "fillPx", VENUE),
        size_base=market.base(positive(dec(item, "fillSz", VENUE), "fillSz", VENUE)),
        fee_usd=-(dec_or_none(item, "fee", VENUE) or ZERO),
        liquidity=Liquidity.MAKER if item.get("execType") == "M" else Liquidity.TAKER,
        ts_ms=ts_field(item, "fillTime" if item.get("fillTime") else "ts", VENUE),
    )


def parse_funding_bill(item: Mapping[str, Any], *, symbol: str) -> FundingPayment:
    """An account bill of ``type`` 8 (funding fee) -> payment; ``balChg`` is + = received."""
    if str(item.get("type")) != "8":
        raise IncompleteVenueData(VENUE, f"bill type {item.get('type')!r} is not a funding fee (8)")
    return FundingPayment(
        payment_id=str(field(item, "billId", VENUE)),
        venue=VENUE,
        symbol=symbol,
        ts_ms=ts_field(item, "ts", VENUE),
        rate=ZERO,
        position_size_base=ZERO,
        mark_price=dec_or_none(item, "px", VENUE) or ZERO,
        amount_usd=dec(item, "balChg", VENUE),
    )


def parse_position(item: Mapping[str, Any], *, market: VenueMarket) -> VenuePosition | None:
    """``/account/positions`` item -> signed base-unit position (net mode ``pos`` is signed)."""
    pos = market.base(dec(item, "pos", VENUE))
    if pos == 0:
        return None
    side = item.get("posSide")
    if side == "short":
        pos = -abs(pos)
    elif side == "long":
        pos = abs(pos)
    mark = dec_or_none(item, "markPx", VENUE)
    liq = dec_or_none(item, "liqPx", VENUE)
    return VenuePosition(
        venue=VENUE, symbol=market.symbol, size_base=pos,
        entry_price=positive(dec(item, "avgPx", VENUE), "avgPx", VENUE),
        mark_price=mark if mark and mark > 0 else None,
        liquidation_price=liq if liq and liq > 0 else None,
    )


def parse_equity_usd(payload: Mapping[str, Any]) -> Decimal:
    """``/account/balance`` -> ``totalEq`` (USD)."""
    return non_negative(dec(data_list(payload)[0], "totalEq", VENUE), "totalEq", VENUE)
