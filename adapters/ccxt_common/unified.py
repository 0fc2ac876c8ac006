"""ccxt unified structures (floats) -> domain types, exactly: every float goes through its shortest
``repr`` (``decimal_from_wire``), sizes in contracts are converted to base with the market's
contract size. Used for orders, trades and positions, whose unified shape is the same on every
venue; funding payments are NOT parsed here (their unified sign differs per venue: each venue's
raw parser reads ``info``)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from adapters.errors import AbsurdVenueData, TemporaryVenueError
from adapters.markets import VenueMarket
from adapters.validation import decimal_from_wire
from bot.core.domain import (
    ZERO,
    Fill,
    Liquidity,
    OrderReport,
    OrderSide,
    OrderStatus,
    VenuePosition,
)


def _num(value: Any, key: str, venue: str) -> Decimal:
    return decimal_from_wire(value, key, venue)


def _opt(value: Any, key: str, venue: str) -> Decimal | None:
    return None if value is None or value == "" else decimal_from_wire(value, key, venue)


def side_of(value: Any, venue: str) -> OrderSide:
    if value == "buy":
        return OrderSide.BUY
    if value == "sell":
        return OrderSide.SELL
    raise AbsurdVenueData(venue, f"side: unknown value {value!r}")


def parse_trade(trade: Mapping[str, Any], *, market: VenueMarket, client_order_id: str) -> Fill:
    """A unified trade -> ``Fill`` (fee cost + = paid, as ccxt normalises it)."""
    venue = market.venue
    price = _num(trade.get("price"), "price", venue)
    size = market.base(_num(trade.get("amount"), "amount", venue))
    if price <= 0 or size <= 0:
        raise AbsurdVenueData(venue, f"trade {trade.get('id')}: price {price} / size {size} not positive")
    fee = trade.get("fee") or {}
    fee_cost = _opt(fee.get("cost"), "fee.cost", venue) or ZERO
    ts = trade.get("timestamp")
    if not isinstance(ts, int) or ts <= 0:
        raise AbsurdVenueData(venue, f"trade {trade.get('id')}: timestamp {ts!r}")
    if trade.get("id") in (None, ""):
        raise AbsurdVenueData(venue, "trade without an id")
    return Fill(
        venue=venue, symbol=market.symbol, client_order_id=client_order_id, trade_id=str(trade["id"]),
        side=side_of(trade.get("side"), venue), price=price, size_base=size, fee_usd=fee_cost,
        liquidity=Liquidity.MAKER if trade.get("takerOrMaker") == "maker" else Liquidity.TAKER, ts_ms=ts,
    )


def parse_order(order: Mapping[str, Any], *, market: VenueMarket, client_order_id: str,
                fills: tuple[Fill, ...] = ()) -> OrderReport:
    """A unified order -> ``OrderReport``. A missing status (ccxt create answers) is an unknown
    outcome: ``TemporaryVenueError`` (look it up)."""
    venue = market.venue
    status_text = order.get("status")
    amount = _opt(order.get("amount"), "amount", venue)
    filled = market.base(_opt(order.get("filled"), "filled", venue) or ZERO)
    if status_text is None or amount is None:
        raise TemporaryVenueError(venue, f"order {client_order_id}: answer without status/amount, outcome unknown")
    requested = market.base(amount)
    if status_text == "open":
        status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW
    elif status_text == "closed":
        status = OrderStatus.FILLED if filled >= requested else OrderStatus.CANCELED
    elif status_text in ("canceled", "expired"):
        status = OrderStatus.CANCELED
    elif status_text == "rejected":
        status = OrderStatus.CANCELED if filled > 0 else OrderStatus.REJECTED
    else:
        raise AbsurdVenueData(venue, f"order status: unknown value {status_text!r}")
    avg = _opt(order.get("average"), "average", venue)
    if (avg is None or avg <= 0) and fills:
        size = sum((f.size_base for f in fills), ZERO)
        avg = sum((f.price * f.size_base for f in fills), ZERO) / size if size > 0 else None
    ts = order.get("lastUpdateTimestamp") or order.get("timestamp") or 0
    return OrderReport(
        client_order_id=client_order_id, venue=venue, symbol=market.symbol, side=side_of(order.get("side"), venue),
        status=status, requested_base=requested, filled_base=filled,
        avg_price=avg if avg is not None and avg > 0 and filled > 0 else None, fills=fills,
        reduce_only=bool(order.get("reduceOnly")),
        venue_order_id=str(order["id"]) if order.get("id") not in (None, "") else None,
        ts_ms=int(ts) if isinstance(ts, (int, float)) else 0,
    )


def parse_position(position: Mapping[str, Any], *, market: VenueMarket) -> VenuePosition | None:
    """A unified position -> signed base-unit ``VenuePosition`` (None when flat)."""
    venue = market.venue
    contracts = _opt(position.get("contracts"), "contracts", venue) or ZERO
    if contracts == 0:
        return None
    size = market.base(abs(contracts))
    side = position.get("side")
    if side == "short":
        size = -size
    elif side != "long":
        raise AbsurdVenueData(venue, f"position side {side!r} with {contracts} contracts")
    entry = _opt(position.get("entryPrice"), "entryPrice", venue)
    if entry is None or entry <= 0:
        raise AbsurdVenueData(venue, f"position {market.symbol}: entryPrice {entry}")
    mark = _opt(position.get("markPrice"), "markPrice", venue)
    liq = _opt(position.get("liquidationPrice"), "liquidationPrice", venue)
    return VenuePosition(venue=venue, symbol=market.symbol, size_base=size, entry_price=entry,
                         mark_price=mark if mark and mark > 0 else None,
                         liquidation_price=liq if liq and liq > 0 else None)
