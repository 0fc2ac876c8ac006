"""Strategy decisions (pure): which positions to exit and which opportunity to enter.

Inputs are immutable: a ``MarketSnapshot``, a ``BookView`` of what the bot holds, and the limits
built from settings. Outputs are data (``PlannedExit``, ``PlannedEntry``, denials) that the async
shell carries out through the engine. Nothing here awaits, reads a clock or touches storage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from bot.core.domain import (
    BPS,
    ZERO,
    ExecutionMode,
    Liquidity,
    MarketSnapshot,
    Opportunity,
    OrderSide,
    PairKind,
)
from bot.core.funding_math import fee_usd, slippage_usd
from bot.scanner import rank_opportunities
from risk.entry_gates import (
    EntryContext,
    EntryDecision,
    EntryLimits,
    ExposureSummary,
    evaluate_entry,
)
from risk.exit_rules import ExitDecision, ExitLimits, HeldPosition, evaluate_exit
from risk.trading_state import TradingState


@dataclass(frozen=True, slots=True)
class HeldView:
    """What the strategy knows about one hedged position it holds."""

    position_id: str
    symbol: str
    long_venue: str
    short_venue: str
    size_base: Decimal
    entry_spread_hourly: Decimal
    entry_ts_ms: int
    notional_usd: Decimal
    accrued_funding_usd: Decimal
    fees_paid_usd: Decimal
    long_venue_size_base: Decimal | None = None  # the venue's own signed size (None = unknown)
    short_venue_size_base: Decimal | None = None


@dataclass(frozen=True, slots=True)
class StrategyParams:
    notional_usd: Decimal
    horizon_hours: Decimal
    max_quote_age_ms: int
    estimated_slippage_bps: Decimal
    entry: EntryLimits
    exit: ExitLimits
    execution: ExecutionMode = ExecutionMode.TAKER  # entries cost at the fees this mode pays
    pair_kinds: frozenset[PairKind] = frozenset({PairKind.PERP_PERP})  # settings strategy.pair_kinds


@dataclass(frozen=True, slots=True)
class PlannedExit:
    position_id: str
    decision: ExitDecision


@dataclass(frozen=True, slots=True)
class PlannedEntry:
    opportunity: Opportunity
    decision: EntryDecision


@dataclass(frozen=True, slots=True)
class AccountView:
    """Bot-wide facts the entry gates need (from the executor and the breakers)."""

    trading_state: TradingState
    equity_by_venue_usd: Mapping[str, Decimal]
    venue_breakers_open: frozenset[str] = frozenset()
    failed_entry_ts_ms: Mapping[tuple[str, str, str], int] = field(default_factory=dict)
    orphaned_symbols: frozenset[str] = frozenset()


def plan_exits(
    snapshot: MarketSnapshot, held: list[HeldView], params: StrategyParams, best: Opportunity | None = None
) -> list[PlannedExit]:
    """Every held position whose exit pipeline fires now."""
    exits = []
    for view in held:
        position = held_position(snapshot, view)
        alternative = best if best is not None and best.symbol != view.symbol else None
        decision = evaluate_exit(position, snapshot.now_ts_ms, params.exit, alternative)
        if decision is not None:
            exits.append(PlannedExit(view.position_id, decision))
    return exits


def held_position(snapshot: MarketSnapshot, view: HeldView) -> HeldPosition:
    """The exit rules' snapshot of one position, priced from the current market."""
    long_quote = snapshot.quotes.get((view.long_venue, view.symbol))
    short_quote = snapshot.quotes.get((view.short_venue, view.symbol))
    long_mark = long_quote.mark_price if long_quote else ZERO
    short_mark = short_quote.mark_price if short_quote else ZERO
    notional = view.size_base * (long_mark + short_mark) / 2 if long_mark and short_mark else view.notional_usd
    return HeldPosition(
        position_id=view.position_id,
        symbol=view.symbol,
        long_venue=view.long_venue,
        short_venue=view.short_venue,
        size_base=view.size_base,
        entry_spread_hourly=view.entry_spread_hourly,
        entry_ts_ms=view.entry_ts_ms,
        long_hourly_rate=long_quote.hourly_rate if long_quote else None,
        short_hourly_rate=short_quote.hourly_rate if short_quote else None,
        long_mark_price=long_mark,
        short_mark_price=short_mark,
        notional_usd=notional,
        long_venue_size_base=view.long_venue_size_base,
        short_venue_size_base=view.short_venue_size_base,
        accrued_funding_usd=view.accrued_funding_usd,
        fees_paid_usd=view.fees_paid_usd,
        est_exit_cost_usd=exit_cost_usd(snapshot, view),
        forecast_spread_hourly=_forecast_spread(long_quote, short_quote),
    )


def _forecast_spread(long_quote, short_quote) -> Decimal | None:
    """The pair's forecast spread when both quotes carry a forecast, else None."""
    if long_quote is None or short_quote is None:
        return None
    if long_quote.forecast_hourly_rate is None or short_quote.forecast_hourly_rate is None:
        return None
    return short_quote.rank_hourly_rate_or_none - long_quote.rank_hourly_rate_or_none


def exit_cost_usd(snapshot: MarketSnapshot, view: HeldView) -> Decimal:
    """Taker fees plus book slippage of closing both legs now (sell the long, buy back the short)."""
    total = ZERO
    for venue, side in ((view.long_venue, OrderSide.SELL), (view.short_venue, OrderSide.BUY)):
        book = snapshot.books.get((venue, view.symbol))
        fees = snapshot.fees.get(venue)
        quote = snapshot.quotes.get((venue, view.symbol))
        price = book.mid if book is not None and book.mid is not None else (quote.mark_price if quote else None)
        if price is None or fees is None:
            continue
        total += fee_usd(view.size_base * price, fees, Liquidity.TAKER)
        slip = slippage_usd(book, side, view.size_base) if book is not None else None
        total += slip if slip is not None else view.size_base * price * 20 * BPS
    return total


def rank_candidates(snapshot: MarketSnapshot, params: StrategyParams, *, candidates: int = 5) -> list[Opportunity]:
    """The top ``candidates`` opportunities of ``snapshot`` (one ranking serves a whole pass)."""
    return rank_opportunities(
        snapshot,
        notional_usd=params.notional_usd,
        horizon_hours=params.horizon_hours,
        max_quote_age_ms=params.max_quote_age_ms,
        limit=candidates,
        estimated_slippage_bps=params.estimated_slippage_bps,
        execution=params.execution,
        pair_kinds=params.pair_kinds,
    )


def plan_entry(
    snapshot: MarketSnapshot, held: list[HeldView], account: AccountView, params: StrategyParams,
    *, candidates: int = 5, ranked: list[Opportunity] | None = None,
) -> tuple[PlannedEntry | None, list[PlannedEntry]]:
    """The best opportunity every entry gate allows (or None), plus the denied ones looked at.
    ``ranked`` reuses a ranking of the same snapshot (``rank_candidates``)."""
    ranked = ranked[:candidates] if ranked is not None else rank_candidates(snapshot, params, candidates=candidates)
    exposure = exposure_summary(held)
    denied = []
    for opp in ranked:
        context = entry_context(snapshot, opp, exposure, account)
        decision = evaluate_entry(opp, context, params.entry)
        planned = PlannedEntry(opp, decision)
        if decision.allowed:
            return planned, denied
        denied.append(planned)
    return None, denied


def best_opportunity(snapshot: MarketSnapshot, params: StrategyParams,
                     ranked: list[Opportunity] | None = None) -> Opportunity | None:
    if ranked is not None:
        return ranked[0] if ranked else None
    ranked = rank_opportunities(
        snapshot,
        notional_usd=params.notional_usd,
        horizon_hours=params.horizon_hours,
        max_quote_age_ms=params.max_quote_age_ms,
        limit=1,
        estimated_slippage_bps=params.estimated_slippage_bps,
        execution=params.execution,
        pair_kinds=params.pair_kinds,
    )
    return ranked[0] if ranked else None


def exposure_summary(held: list[HeldView]) -> ExposureSummary:
    by_venue: dict[str, Decimal] = {}
    for view in held:
        for venue in (view.long_venue, view.short_venue):
            by_venue[venue] = by_venue.get(venue, ZERO) + view.notional_usd
    return ExposureSummary(
        position_count=len(held),
        notional_by_venue_usd=by_venue,
        total_notional_usd=sum((v.notional_usd for v in held), ZERO),
        symbols_held=frozenset(v.symbol for v in held),
    )


def entry_context(
    snapshot: MarketSnapshot, opp: Opportunity, exposure: ExposureSummary, account: AccountView
) -> EntryContext:
    """Gate inputs for one opportunity: quote ages and per-leg slippage for its size."""
    now = snapshot.now_ts_ms
    return EntryContext(
        now_ts_ms=now,
        trading_state=account.trading_state,
        exposure=exposure,
        equity_by_venue_usd=account.equity_by_venue_usd,
        free_margin_by_venue_usd=_free_margin(account.equity_by_venue_usd, exposure),
        long_quote_age_ms=_age_ms(snapshot, opp.long_venue, opp.symbol),
        short_quote_age_ms=_age_ms(snapshot, opp.short_venue, opp.symbol),
        long_slippage_bps=_slippage_bps(snapshot, opp.long_venue, opp.symbol, OrderSide.BUY, opp.size_base),
        short_slippage_bps=_slippage_bps(snapshot, opp.short_venue, opp.symbol, OrderSide.SELL, opp.size_base),
        failed_entry_ts_ms=account.failed_entry_ts_ms,
        venue_breakers_open=account.venue_breakers_open,
        orphaned_symbols=account.orphaned_symbols,
    )


def _free_margin(equity: Mapping[str, Decimal], exposure: ExposureSummary) -> dict[str, Decimal]:
    # Conservative: margin in use is the full notional on the venue (1x), whatever the leverage.
    return {venue: value - exposure.notional_by_venue_usd.get(venue, ZERO) for venue, value in equity.items()}


def _age_ms(snapshot: MarketSnapshot, venue: str, symbol: str) -> int | None:
    quote = snapshot.quotes.get((venue, symbol))
    book = snapshot.books.get((venue, symbol))
    if quote is None:
        return None
    oldest = min(quote.ts_ms, book.ts_ms) if book is not None else quote.ts_ms
    return max(0, snapshot.now_ts_ms - oldest)


def _slippage_bps(
    snapshot: MarketSnapshot, venue: str, symbol: str, side: OrderSide, size_base: Decimal | None
) -> Decimal | None:
    book = snapshot.books.get((venue, symbol))
    if book is None or size_base is None or size_base <= 0:
        return None
    mid = book.mid
    slip = slippage_usd(book, side, size_base)
    if mid is None or slip is None:
        return None
    return slip / (mid * size_base) / BPS
