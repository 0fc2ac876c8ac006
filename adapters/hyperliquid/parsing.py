"""Hyperliquid wire payloads -> domain types.

Samples: ../shared/data/payloads/nautilus/hyperliquid/test_data, perpdex-captures/hyperliquid and
ccxt-static/response/hyperliquid.json.
Quirks handled here:
- Funding settles every hour on the hour (the API publishes the hourly rate in ``funding``); the
  next settlement is the next UTC hour boundary.
- ``metaAndAssetCtxs`` answers ``[meta, ctxs]`` aligned BY INDEX with ``meta.universe``.
- Size step is ``10 ** -szDecimals``; prices allow at most 5 significant figures and
  ``6 - szDecimals`` decimals, so ``tick_size`` here is the finest step (callers round to 5
  significant figures as well, see ``round_price``).
- ``kPEPE``-style names are 1000-unit listings (canonical ``1000PEPE``).
- ``userFunding`` ``delta.usdc`` is + = received; fill ``fee`` is + = paid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

from adapters.errors import AbsurdVenueData, IncompleteVenueData
from adapters.markets import VenueMarket
from adapters.validation import validate_book
from adapters.wire import (
    canonical_symbol,
    dec,
    dec_or_none,
    decimals_step,
    field,
    make_quote,
    next_boundary_ms,
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

VENUE = "hyperliquid"
INTERVAL_HOURS = Decimal(1)  # venue fact: hourly settlement, hourly rate in the API
MAX_PRICE_DECIMALS = 6  # perps

_STATUS = {
    "open": OrderStatus.NEW,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "marginCanceled": OrderStatus.CANCELED,
    "reduceOnlyCanceled": OrderStatus.CANCELED,
    "selfTradeCanceled": OrderStatus.CANCELED,
    "siblingFilledCanceled": OrderStatus.CANCELED,
    "liquidatedCanceled": OrderStatus.CANCELED,
    "scheduledCancel": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
    "perpMarginRejected": OrderStatus.REJECTED,
    "iocCancelRejected": OrderStatus.CANCELED,  # an IOC that found nothing to take
    "badAloPxRejected": OrderStatus.REJECTED,
    "minTradeNtlRejected": OrderStatus.REJECTED,
    "reduceOnlyRejected": OrderStatus.REJECTED,
}


def _side(value: Any) -> OrderSide:
    if value == "B":
        return OrderSide.BUY
    if value == "A":
        return OrderSide.SELL
    raise AbsurdVenueData(VENUE, f"side: unknown value {value!r}")


def parse_meta(meta: Mapping[str, Any]) -> tuple[list[VenueMarket], list[str]]:
    """``{"type":"meta"}`` -> markets (delisted skipped). ``venue_id`` is the asset index."""
    universe = field(meta, "universe", VENUE)
    markets, skipped = [], []
    for index, asset in enumerate(universe):
        name = str(asset.get("name"))
        if asset.get("isDelisted"):
            skipped.append(f"{name}: delisted")
            continue
        try:
            lot = decimals_step(field(asset, "szDecimals", VENUE), "szDecimals", VENUE)
            price_decimals = MAX_PRICE_DECIMALS - int(asset["szDecimals"])
            if price_decimals < 0:
                raise AbsurdVenueData(VENUE, f"{name}: szDecimals above {MAX_PRICE_DECIMALS}")
            instrument = Instrument(
                venue=VENUE, symbol=canonical_symbol(name), venue_symbol=name,
                tick_size=Decimal(1).scaleb(-price_decimals), lot_size_base=lot, min_size_base=lot,
                funding_interval_hours=INTERVAL_HOURS, min_notional_usd=Decimal(10),
            )
        except AbsurdVenueData as exc:
            skipped.append(str(exc))
            continue
        markets.append(VenueMarket(instrument=instrument, venue_id=str(index), settle="USDC"))
    return markets, skipped


def parse_asset_ctx(name: str, ctx: Mapping[str, Any], *, ts_ms: int) -> FundingQuote:
    """One asset context (``metaAndAssetCtxs`` or the ``activeAssetCtx`` / ``allDexsAssetCtxs``
    streams) -> quote: hourly ``funding``, next settlement at the next UTC hour."""
    return make_quote(
        venue=VENUE,
        symbol=canonical_symbol(name),
        rate_per_interval=dec(ctx, "funding", VENUE),
        interval_hours=INTERVAL_HOURS,
        next_funding_ts_ms=next_boundary_ms(ts_ms, INTERVAL_HOURS),
        mark_price=dec_or_none(ctx, "markPx", VENUE),
        ts_ms=ts_ms,
    )


def parse_meta_and_asset_ctxs(payload: Sequence[Any], *, ts_ms: int) -> tuple[list[FundingQuote], list[str]]:
    """``{"type":"metaAndAssetCtxs"}`` -> quotes (index-aligned universe and contexts)."""
    if not isinstance(payload, Sequence) or len(payload) != 2:
        raise IncompleteVenueData(VENUE, "metaAndAssetCtxs: expected [meta, ctxs]")
    meta, ctxs = payload
    universe = field(meta, "universe", VENUE)
    if len(universe) != len(ctxs):
        raise AbsurdVenueData(VENUE, f"metaAndAssetCtxs: {len(universe)} assets but {len(ctxs)} contexts")
    quotes, dropped = [], []
    for asset, ctx in zip(universe, ctxs):
        if asset.get("isDelisted"):
            continue
        try:
            quotes.append(parse_asset_ctx(str(asset.get("name")), ctx, ts_ms=ts_ms))
        except AbsurdVenueData as exc:
            dropped.append(str(exc))
    return quotes, dropped


def parse_l2_book(payload: Mapping[str, Any], *, symbol: str | None = None) -> OrderBook:
    """``{"type":"l2Book"}`` answer or ``l2Book`` stream datum -> validated book."""
    levels = field(payload, "levels", VENUE)
    if not isinstance(levels, list) or len(levels) != 2:
        raise AbsurdVenueData(VENUE, "l2Book levels: expected [bids, asks]")

    def side(raw: Any) -> tuple[BookLevel, ...]:
        return tuple(BookLevel(dec(lv, "px", VENUE), dec(lv, "sz", VENUE)) for lv in raw)

    return validate_book(OrderBook(
        venue=VENUE, symbol=symbol or canonical_symbol(str(field(payload, "coin", VENUE))),
        bids=side(levels[0]), asks=side(levels[1]), ts_ms=ts_field(payload, "time", VENUE),
    ))


def parse_user_fill(item: Mapping[str, Any], *, client_order_id: str) -> Fill:
    """A ``userFills`` row -> ``Fill``; ``tid`` is the trade id, ``fee`` + = paid (builder fee added)."""
    fee = dec(item, "fee", VENUE) + (dec_or_none(item, "builderFee", VENUE) or ZERO)
    return Fill(
        venue=VENUE,
        symbol=canonical_symbol(str(field(item, "coin", VENUE))),
        client_order_id=client_order_id,
        trade_id=str(field(item, "tid", VENUE)),
        side=_side(item.get("side")),
        price=positive(dec(item, "px", VENUE), "px", VENUE),
        size_base=positive(dec(item, "sz", VENUE), "sz", VENUE),
        fee_usd=fee,
        liquidity=Liquidity.TAKER if item.get("crossed") is True else Liquidity.MAKER,
        ts_ms=ts_field(item, "time", VENUE),
    )


def parse_user_funding(item: Mapping[str, Any]) -> FundingPayment:
    """A ``userFunding`` row -> payment. ``delta.usdc`` is + = received; ``szi`` is signed."""
    delta = field(item, "delta", VENUE)
    if delta.get("type") != "funding":
        raise IncompleteVenueData(VENUE, f"delta type {delta.get('type')!r} is not funding")
    ts = ts_field(item, "time", VENUE)
    coin = str(field(delta, "coin", VENUE))
    size = dec(delta, "szi", VENUE)
    amount = dec(delta, "usdc", VENUE)
    rate = dec(delta, "fundingRate", VENUE)
    mark = abs(amount / (rate * size)) if rate != 0 and size != 0 else ZERO
    return FundingPayment(
        payment_id=str(item.get("hash") or f"{coin}:{ts}"), venue=VENUE, symbol=canonical_symbol(coin), ts_ms=ts,
        rate=rate, position_size_base=size, mark_price=mark, amount_usd=amount,
    )


def parse_order_status(payload: Mapping[str, Any], *, client_order_id: str,
                       fills: tuple[Fill, ...] = ()) -> OrderReport | None:
    """``{"type":"orderStatus"}`` answer -> report; None when the venue says ``unknownOid``.

    Filled size is ``origSz - sz`` (``sz`` is what remains).
    """
    if payload.get("status") == "unknownOid":
        return None
    outer = field(payload, "order", VENUE)
    order = field(outer, "order", VENUE)
    status = _STATUS.get(outer.get("status"))
    if status is None:
        raise AbsurdVenueData(VENUE, f"order status: unknown value {outer.get('status')!r}")
    requested = positive(dec(order, "origSz", VENUE), "origSz", VENUE)
    remaining = non_negative(dec(order, "sz", VENUE), "sz", VENUE)
    filled = requested - remaining if status is not OrderStatus.FILLED else requested
    if status is OrderStatus.NEW and filled > 0:
        status = OrderStatus.PARTIALLY_FILLED
    if status is OrderStatus.REJECTED and filled > 0:
        status = OrderStatus.CANCELED
    notional = sum((f.price * f.size_base for f in fills), ZERO)
    fill_size = sum((f.size_base for f in fills), ZERO)
    return OrderReport(
        client_order_id=client_order_id, venue=VENUE, symbol=canonical_symbol(str(field(order, "coin", VENUE))),
        side=_side(order.get("side")), status=status, requested_base=requested, filled_base=filled,
        avg_price=notional / fill_size if fill_size > 0 else None, fills=fills,
        reduce_only=bool(order.get("reduceOnly")), venue_order_id=str(order.get("oid")),
        ts_ms=ts_field(outer, "statusTimestamp", VENUE),
    )


def parse_clearinghouse_state(payload: Mapping[str, Any]) -> tuple[list[VenuePosition], Decimal]:
    """``{"type":"clearinghouseState"}`` -> (signed positions, account value USD)."""
    positions = []
    for entry in payload.get("assetPositions", []):
        pos = field(entry, "position", VENUE)
        size = dec(pos, "szi", VENUE)
        if size == 0:
            continue
        liq = dec_or_none(pos, "liquidationPx", VENUE)
        positions.append(VenuePosition(
            venue=VENUE, symbol=canonical_symbol(str(field(pos, "coin", VENUE))), size_base=size,
            entry_price=positive(dec(pos, "entryPx", VENUE), "entryPx", VENUE),
            liquidation_price=liq if liq and liq > 0 else None,
        ))
    summary = field(payload, "marginSummary", VENUE)
    return positions, non_negative(dec(summary, "accountValue", VENUE), "accountValue", VENUE)


def round_price(price: Decimal, *, sz_decimals: int, side: OrderSide) -> Decimal:
    """A limit price Hyperliquid accepts (<= 5 significant figures, <= 6 - szDecimals decimals),
    rounded conservatively: a buy bound down, a sell bound up."""
    rounding = ROUND_DOWN if side is OrderSide.BUY else ROUND_UP
    decimals = MAX_PRICE_DECIMALS - sz_decimals
    if price >= 1:
        sig_decimals = max(0, 5 - len(str(int(price))))
        decimals = min(decimals, sig_decimals)
    result = price.quantize(Decimal(1).scaleb(-decimals), rounding=rounding)
    if result >= 100_000:  # integer prices are always allowed
        result = price.quantize(Decimal(1), rounding=rounding)
    return result
