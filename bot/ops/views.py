"""JSON-ready views of the running bot for the API, the page, the terminal and notifications.

Live state (bot and trading state, breakers, venue data age, the scan ranking) is read from the
application in memory; history (positions with their money, the PnL curve) from the database
through the reader connection. Money stays Decimal until it is written as a string.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from bot.core.clock import iso_utc
from bot.core.domain import ZERO, Opportunity
from bot.market_view import take_snapshot
from bot.scanner import rank_opportunities
from storage import PositionRecord, Storage
from storage.records import PositionTotals

if TYPE_CHECKING:
    from bot.app import Application

MAX_SERIES_POINTS = 500


def _s(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def breakers_view(app: "Application") -> list[dict[str, Any]]:
    """Every breaker on the board with its state and reason."""
    board = app.board
    rows = []
    for breaker in (board.manual, board.drawdown, board.unhedged):
        rows.append({"name": breaker.name, "state": breaker.state.value, "reason": breaker.reason})
    for venue in board.venues:
        for breaker in (board.venue_errors.get(venue), board.stale.get(venue)):
            if breaker is not None:
                rows.append({"name": breaker.name, "state": breaker.state.value, "reason": breaker.reason,
                             "venue": venue})
    return rows


def venue_data_age_ms(app: "Application") -> dict[str, int | None]:
    """Age (clock ms) of each venue's freshest quote; None when it never quoted."""
    now = app.clock.now_ms()
    latest: dict[str, int] = {}
    for quote in app.market.quotes():
        if quote.ts_ms > latest.get(quote.venue, -1):
            latest[quote.venue] = quote.ts_ms
    return {venue: (now - latest[venue]) if venue in latest else None for venue in app.market.venues()}


def status_view(app: "Application") -> dict[str, Any]:
    """Bot and trading state, breakers, venue health and data age, money so far."""
    engine = app.engine
    now = app.clock.now_ms()
    ages = venue_data_age_ms(app)
    venues = []
    for venue in app.market.venues():
        reasons = app.board.venue_open_reasons(venue)
        age = ages.get(venue)
        venues.append({"venue": venue, "healthy": not reasons, "open_breakers": reasons,
                       "data_age_ms": age, "data_age_seconds": None if age is None else age / 1000})
    funding = engine.total_funding_usd() if engine else ZERO
    fees = engine.total_fees_usd() if engine else ZERO
    active = engine.active_positions() if engine else []
    return {
        "mode": app.wiring.mode,
        "now_ts_ms": now,
        "now": iso_utc(now),
        "bot_state": app.bot.state.value,
        "trading_state": app.board.trading_state().value,
        "blocking": app.board.global_open(),
        "breakers": breakers_view(app),
        "venues": venues,
        "open_positions": len(active),
        "closed_positions": engine.closed_count() if engine else 0,
        "max_positions": app.settings.strategy.max_positions,
        "funding_usd": str(funding),
        "fees_usd": str(fees),
        "net_usd": str(funding - fees),
    }


def mid_price(app: "Application", venue: str, symbol: str) -> Decimal | None:
    book = app.market.book(venue, symbol)
    if book is None or not book.bids or not book.asks:
        return None
    return (book.bids[0].price + book.asks[0].price) / 2


@dataclass(frozen=True, slots=True)
class StoredPosition:
    record: PositionRecord
    totals: PositionTotals


def load_positions(storage: Storage, *, which: str = "all", closed_limit: int = 100) -> list[StoredPosition]:
    """Positions (newest first) with their exact money totals: every open one (``which`` "open" or
    "all") and the ``closed_limit`` most recently created closed ones ("closed" or "all")."""
    records: list[PositionRecord] = []
    if which in ("open", "all"):
        records += storage.load_open_positions()
    if which in ("closed", "all"):
        records += storage.list_positions(states=["closed"])[-closed_limit:]
    records.sort(key=lambda r: (r.created_at_ts_ms, r.id), reverse=True)
    return [StoredPosition(r, storage.position_totals(r.id)) for r in records]


def position_view(item: StoredPosition, mids: dict[tuple[str, str], Decimal | None]) -> dict[str, Any]:
    """One position with both legs, funding, fees and PnL (realized once flat, else marked at mid)."""
    r, t = item.record, item.totals
    pnl: Decimal | None = t.realized_pnl_usd
    marked = False
    if pnl is None:
        value = t.sold_notional_usd - t.bought_notional_usd
        for venue, net_base in t.net_base_by_venue.items():
            if net_base == 0:
                continue
            mid = mids.get((venue, r.symbol))
            if mid is None:
                value = None
                break
            value += net_base * mid
        pnl = None if value is None else value + t.funding_usd - t.fees_usd
        marked = True
    return {
        "id": r.id,
        "symbol": r.symbol,
        "state": r.state,
        "legs": [
            {"side": "long", "venue": r.long_venue, "size_base": _s(r.long_size_base),
             "entry_price": _s(r.entry_long_price), "mid_price": _s(mids.get((r.long_venue, r.symbol)))},
            {"side": "short", "venue": r.short_venue, "size_base": _s(r.short_size_base),
             "entry_price": _s(r.entry_short_price), "mid_price": _s(mids.get((r.short_venue, r.symbol)))},
        ],
        "notional_usd": _s(r.notional_usd),
        "entry_spread_hourly": _s(r.entry_spread_hourly),
        "entry_expected_net_usd": _s(r.entry_expected_net_usd),
        "opened_at": iso_utc(r.opened_at_ts_ms) if r.opened_at_ts_ms else None,
        "closed_at": iso_utc(r.closed_at_ts_ms) if r.closed_at_ts_ms else None,
        "exit_reason": r.exit_reason,
        "funding_usd": str(t.funding_usd),
        "fees_usd": str(t.fees_usd),
        "price_pnl_usd": _s(t.price_pnl_usd),
        "pnl_usd": _s(pnl),
        "pnl_is_marked_to_mid": marked,
        "unhedged_ms_entry": r.unhedged_ms_entry,
        "unhedged_ms_exit": r.unhedged_ms_exit,
    }


def positions_view(app: "Application", items: list[StoredPosition]) -> list[dict[str, Any]]:
    mids: dict[tuple[str, str], Decimal | None] = {}
    for item in items:
        for venue in (item.record.long_venue, item.record.short_venue):
            key = (venue, item.record.symbol)
            if key not in mids:
                mids[key] = mid_price(app, *key)
    return [position_view(item, mids) for item in items]


def load_money_flows(storage: Storage) -> list[tuple[int, int, str, Decimal]]:
    """Every money movement: (ts_ms, seq, kind, amount) with kind funding / fee / price_pnl."""
    conn = storage.db.conn
    flows: list[tuple[int, int, str, Decimal]] = []
    for ts_ms, seq, amount in conn.execute("SELECT ts_ms, seq, amount_usd FROM funding_payments"):
        flows.append((ts_ms, seq or 0, "funding", Decimal(amount)))
    for ts_ms, seq, fee in conn.execute("SELECT ts_ms, seq, fee_usd FROM fills"):
        flows.append((ts_ms, seq or 0, "fee", Decimal(fee)))
    for record in storage.list_positions(states=["closed"]):
        totals = storage.position_totals(record.id)
        if totals.price_pnl_usd is not None and record.closed_at_ts_ms is not None:
            flows.append((record.closed_at_ts_ms, 1 << 62, "price_pnl", totals.price_pnl_usd))
    return flows


def pnl_series(flows: list[tuple[int, int, str, Decimal]], max_points: int = MAX_SERIES_POINTS) -> list[dict[str, Any]]:
    """Cumulative funding, fees, realized price PnL and net after each money movement.

    Net counts price PnL only once a position is flat (realized); thinned to ``max_points``
    (the last point is always kept, so the curve ends at the exact totals).
    """
    funding = fees = price = ZERO
    points: list[dict[str, Any]] = []
    for ts_ms, _seq, kind, amount in sorted(flows, key=lambda f: (f[0], f[1])):
        if kind == "funding":
            funding += amount
        elif kind == "fee":
            fees += amount
        else:
            price += amount
        point = {"ts_ms": ts_ms, "funding_usd": str(funding), "fees_usd": str(fees),
                 "price_pnl_usd": str(price), "net_usd": str(funding - fees + price)}
        if points and points[-1]["ts_ms"] == ts_ms:
            points[-1] = point
        else:
            points.append(point)
    if len(points) > max_points:
        step = len(points) / max_points
        thinned = [points[int(i * step)] for i in range(max_points - 1)]
        points = thinned + [points[-1]]
    return points


def opportunity_view(opp: Opportunity) -> dict[str, Any]:
    return {
        "symbol": opp.symbol, "long_venue": opp.long_venue, "short_venue": opp.short_venue,
        "spread_hourly": str(opp.spread_hourly), "apr": str(opp.apr), "expected_net_usd": str(opp.expected_net),
        "costs_usd": str(opp.costs), "breakeven_hours": _s(opp.breakeven_hours),
        "notional_usd": str(opp.notional_usd), "horizon_hours": str(opp.horizon_hours),
    }


def ranking(app: "Application", limit: int) -> list[Opportunity]:
    """The scanner's current ranking over the live market (what the strategy sees now)."""
    params = app.params
    snapshot = take_snapshot(app.market, app.clock.now_ms())
    return rank_opportunities(snapshot, notional_usd=params.notional_usd, horizon_hours=params.horizon_hours,
                              max_quote_age_ms=params.max_quote_age_ms, limit=limit,
                              estimated_slippage_bps=params.estimated_slippage_bps, execution=params.execution,
                              pair_kinds=params.pair_kinds)
