"""Entry gates: may this opportunity be opened now?

``evaluate_entry`` runs EVERY gate and lists every denial, so the operator sees all the reasons
at once. Missing inputs (an unknown quote age, slippage, equity or free margin) deny: the gates
fail closed.

Notional conventions: ``Opportunity.notional_usd`` is the notional of ONE leg; each leg puts
that notional on its own venue. ``ExposureSummary.notional_by_venue_usd`` is the gross notional
of all legs on each venue; ``ExposureSummary.total_notional_usd`` counts each position once (its
per-leg notional), so it compares directly with ``max_notional_total_usd``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from bot.core.domain import ZERO, Opportunity
from risk.trading_state import IntentKind, OrderIntent, TradingState, gate_order


class DenialCode(StrEnum):
    NET_BELOW_MIN = "net_below_min"
    BREAKEVEN_TOO_LONG = "breakeven_too_long"
    MAX_POSITIONS = "max_positions"
    SYMBOL_ALREADY_HELD = "symbol_already_held"
    NOTIONAL_CAP_POSITION = "notional_cap_position"
    NOTIONAL_CAP_VENUE = "notional_cap_venue"
    NOTIONAL_CAP_TOTAL = "notional_cap_total"
    LEVERAGE = "leverage"
    FREE_MARGIN = "free_margin"
    STALE_QUOTE = "stale_quote"
    SLIPPAGE = "slippage"
    SYMBOL_DENIED = "symbol_denied"
    SYMBOL_NOT_ALLOWED = "symbol_not_allowed"
    PAIR_COOLDOWN = "pair_cooldown"
    VENUE_BREAKER_OPEN = "venue_breaker_open"
    TRADING_STATE = "trading_state"
    ORPHAN_EXPOSURE = "orphan_exposure"


@dataclass(frozen=True, slots=True)
class Denial:
    code: DenialCode
    detail: str


@dataclass(frozen=True, slots=True)
class EntryDecision:
    """``allowed`` is True exactly when ``denials`` is empty."""

    allowed: bool
    denials: tuple[Denial, ...]

    @property
    def codes(self) -> tuple[DenialCode, ...]:
        return tuple(d.code for d in self.denials)


@dataclass(frozen=True, slots=True)
class EntryLimits:
    """Thresholds for opening a position. Symbols are compared case-insensitively."""

    min_expected_net_usd: Decimal = Decimal("1")
    max_breakeven_hours: Decimal = Decimal("24")
    max_positions: int = 3
    max_notional_per_position_usd: Decimal = Decimal("1000")
    max_notional_per_venue_usd: Decimal = Decimal("3000")
    max_notional_total_usd: Decimal = Decimal("3000")
    max_leverage: Decimal = Decimal("3")
    min_free_margin_usd: Decimal = Decimal("100")
    max_quote_age_ms: int = 10_000
    max_slippage_bps: Decimal = Decimal("10")
    allow_symbols: frozenset[str] = frozenset()  # empty = every symbol allowed
    deny_symbols: frozenset[str] = frozenset()
    pair_cooldown_ms: int = 3_600_000

    def __post_init__(self) -> None:
        if self.max_leverage <= ZERO:
            raise ValueError("max_leverage must be positive")
        for name in ("max_positions", "max_quote_age_ms", "pair_cooldown_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        object.__setattr__(self, "allow_symbols", frozenset(s.upper() for s in self.allow_symbols))
        object.__setattr__(self, "deny_symbols", frozenset(s.upper() for s in self.deny_symbols))


@dataclass(frozen=True, slots=True)
class ExposureSummary:
    """What is already open. See the module docstring for the notional conventions."""

    position_count: int = 0
    notional_by_venue_usd: Mapping[str, Decimal] = field(default_factory=dict)
    total_notional_usd: Decimal = ZERO
    symbols_held: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "notional_by_venue_usd", MappingProxyType(dict(self.notional_by_venue_usd)))
        object.__setattr__(self, "symbols_held", frozenset(s.upper() for s in self.symbols_held))


PairKey = tuple[str, str, str]  # (symbol, long_venue, short_venue)


@dataclass(frozen=True, slots=True)
class EntryContext:
    """Everything the gates look at besides the opportunity, as of ``now_ts_ms``.

    Quote ages are the age of the older of the funding quote and the book for that leg (None =
    no quote). Slippage is the caller's estimate from the book for the opportunity's size, in bps
    of the touch price (None = the book does not cover the size). ``failed_entry_ts_ms`` holds
    the latest failed-entry time per (symbol, long_venue, short_venue).
    """

    now_ts_ms: int
    trading_state: TradingState
    exposure: ExposureSummary
    equity_by_venue_usd: Mapping[str, Decimal]
    free_margin_by_venue_usd: Mapping[str, Decimal]
    long_quote_age_ms: int | None
    short_quote_age_ms: int | None
    long_slippage_bps: Decimal | None
    short_slippage_bps: Decimal | None
    failed_entry_ts_ms: Mapping[PairKey, int] = field(default_factory=dict)
    venue_breakers_open: frozenset[str] = frozenset()
    # Symbols where a venue holds size no position owns (an orphan, or foreign size beside ours).
    orphaned_symbols: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "orphaned_symbols", frozenset(s.upper() for s in self.orphaned_symbols))
        for name in ("equity_by_venue_usd", "free_margin_by_venue_usd", "failed_entry_ts_ms"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))


def evaluate_entry(opp: Opportunity, ctx: EntryContext, limits: EntryLimits) -> EntryDecision:
    """Run every entry gate against ``opp`` and collect all denials."""
    denials: list[Denial] = []
    for gate in _GATES:
        denials.extend(gate(opp, ctx, limits))
    return EntryDecision(allowed=not denials, denials=tuple(denials))


def _legs(opp: Opportunity) -> tuple[tuple[str, str], tuple[str, str]]:
    return (("long", opp.long_venue), ("short", opp.short_venue))


def _trading_state(opp: Opportunity, ctx: EntryContext, limits: EntryLimits) -> list[Denial]:
    decision = gate_order(ctx.trading_state, OrderIntent.for_kind(IntentKind.OPEN))
    if decision.allowed:
        return []
    return [Denial(DenialCode.TRADING_STATE, f"state {ctx.trading_state.value}: {decision.reason.value}")]


def _symbol_lists(opp: Opportunity, ctx: EntryContext, limits: EntryLimits) -> list[Denial]:
    symbol = opp.symbol.upper()
    out = []
    if symbol in limits.deny_symbols:
        out.append(Denial(DenialCode.SYMBOL_DENIED, f"{opp.symbol} is in deny_symbols"))
    if limits.allow_symbols and symbol not in limits.allow_symbols:
        out.append(Denial(DenialCode.SYMBOL_NOT_ALLOWED, f"{opp.symbol} is not in allow_symbols"))
    return out


def _orphans(opp: Opportunity, ctx: EntryContext, limits: EntryLimits) -> list[Denial]:
    if opp.symbol.upper() not in ctx.orphaned_symbols:
        return []
    return [Denial(DenialCode.ORPHAN_EXPOSURE,
                   f"a venue holds {opp.symbol} exposure no position owns; no entry until it is resolved "
                   "(reconcile.orphan_policy or the operator)")]


def _venue_breakers(opp: Opportunity, ctx: EntryContext, limits: EntryLimits) -> list[Denial]:
    return [
        Denial(DenialCode.VENUE_BREAKER_OPEN, f"{leg} venue {venue} has an open breaker")
        for leg, venue in _legs(opp)
        if venue in ctx.venue_breakers_open
    ]


def _pair_cooldown(opp: Opportunity, ctx: EntryContext, limits: EntryLimits) -> list[Denial]:
    failed_ts = ctx.failed_entry_ts_ms.get((opp.symbol, opp.long_venue, opp.short_venue))
    if failed_ts is None:
        return []
    remaining_ms = failed_ts + limits.pair_cooldown_ms - ctx.now_ts_ms
    if remaining_ms <= 0:
        return []
    return [Denial(DenialCode.PAIR_COOLDOWN, f"entry failed at {failed_ts}; cooldown {remaining_ms} ms left")]


def _expected_net(opp: Opportunity, ctx: EntryContext, limits: EntryLimits) -> list[Denial]:
    if opp.expected_net >= limits.min_expected_net_usd:
        return []
    return [
        Denial(
            DenialCode.NET_BELOW_MIN,
            f"expected net {opp.expected_net} USD < min {limits.min_expected_net_usd} USD",
        )
    ]


def _breakeven(opp: Opportunity, ctx: EntryContext, limits: EntryLimits) -> list[Denial]:
    if opp.breakeven_hours is None:
        return [Denial(DenialCode.BREAKEVEN_TOO_LONG, "spread not positive: never breaks even")]
    if opp.breakeven_hours > limits.max_breakeven_hours:
        return [
            Denial(
                DenialCode.BREAKEVEN_TOO_LONG,
                f"breakeven {opp.breakeven_hours} h > max {limits.max_breakeven_hours} h",
            )
        ]
    return []


def _position_count(opp: Opportunity, ctx: EntryContext, limits: EntryLimits) -> list[Denial]:
    out = []
    if ctx.exposure.position_count >= limits.max_positions:
        out.append(
            Denial(DenialCode.MAX_POSITIONS, f"{ctx.exposure.position_count} open >= max {limits.max_positions}")
        )
    if opp.symbol.upper() in ctx.exposure.symbols_held:
        out.append(Denial(DenialCode.SYMBOL_ALREADY_HELD, f"a {opp.symbol} position is already open"))
    return out


def _notional_caps(opp: Opportunity, ctx: EntryContext, limits: EntryLimits) -> list[Denial]:
    out = []
    leg_usd = opp.notional_usd
    if leg_usd > limits.max_notional_per_position_usd:
        out.append(
            Denial(
                DenialCode.NOTIONAL_CAP_POSITION,
                f"notional {leg_usd} USD > max {limits.max_notional_per_position_usd} USD",
            )
        )
    for leg, venue in _legs(opp):
        after_usd = ctx.exposure.notional_by_venue_usd.get(venue, ZERO) + leg_usd
        if after_usd > limits.max_notional_per_venue_usd:
            out.append(
                Denial(
                    DenialCode.NOTIONAL_CAP_VENUE,
                    f"{leg} venue {venue}: {after_usd} USD after entry > max {limits.max_notional_per_venue_usd} USD",
                )
            )
    total_after_usd = ctx.exposure.total_notional_usd + leg_usd
    if total_after_usd > limits.max_notional_total_usd:
        out.append(
            Denial(
                DenialCode.NOTIONAL_CAP_TOTAL,
                f"{total_after_usd} USD after entry > max {limits.max_notional_total_usd} USD",
            )
        )
    return out


def _leverage(opp: Opportunity, ctx: EntryContext, limits: EntryLimits) -> list[Denial]:
    """Per venue: (gross notional on the venue after entry) / venue equity <= max_leverage."""
    out = []
    for leg, venue in _legs(opp):
        equity_usd = ctx.equity_by_venue_usd.get(venue)
        after_usd = ctx.exposure.notional_by_venue_usd.get(venue, ZERO) + opp.notional_usd
        if equity_usd is None or equity_usd <= ZERO:
            out.append(Denial(DenialCode.LEVERAGE, f"{leg} venue {venue}: equity unknown or not positive"))
        elif after_usd > limits.max_leverage * equity_usd:
            out.append(
                Denial(
                    DenialCode.LEVERAGE,
                    f"{leg} venue {venue}: {after_usd} USD on {equity_usd} USD equity"
                    f" = {after_usd / equity_usd:.2f}x > max {limits.max_leverage}x",
                )
            )
    return out


def _free_margin(opp: Opportunity, ctx: EntryContext, limits: EntryLimits) -> list[Denial]:
    """Per venue: free margin minus the leg's initial margin at max_leverage >= min_free_margin_usd.

    The engine sets each venue's leverage to ``max_leverage``; at a lower venue leverage the leg
    needs more margin than this estimate, and the venue rejects the order (a failed entry).
    """
    out = []
    margin_needed_usd = opp.notional_usd / limits.max_leverage
    for leg, venue in _legs(opp):
        free_usd = ctx.free_margin_by_venue_usd.get(venue)
        if free_usd is None:
            out.append(Denial(DenialCode.FREE_MARGIN, f"{leg} venue {venue}: free margin unknown"))
            continue
        left_usd = free_usd - margin_needed_usd
        if left_usd < limits.min_free_margin_usd:
            out.append(
                Denial(
                    DenialCode.FREE_MARGIN,
                    f"{leg} venue {venue}: {free_usd} USD free - {margin_needed_usd:.2f} USD margin"
                    f" = {left_usd:.2f} USD < min {limits.min_free_margin_usd} USD",
                )
            )
    return out


def _quote_age(opp: Opportunity, ctx: EntryContext, limits: EntryLimits) -> list[Denial]:
    out = []
    ages = (("long", opp.long_venue, ctx.long_quote_age_ms), ("short", opp.short_venue, ctx.short_quote_age_ms))
    for leg, venue, age_ms in ages:
        if age_ms is None:
            out.append(Denial(DenialCode.STALE_QUOTE, f"{leg} venue {venue}: no quote"))
        elif abs(age_ms) > limits.max_quote_age_ms:
            # A large negative age is a quote from the future: the clocks disagree, trust neither.
            out.append(
                Denial(
                    DenialCode.STALE_QUOTE,
                    f"{leg} venue {venue}: quote age {age_ms} ms beyond max {limits.max_quote_age_ms} ms",
                )
            )
    return out


def _slippage(opp: Opportunity, ctx: EntryContext, limits: EntryLimits) -> list[Denial]:
    out = []
    legs = (("long", opp.long_venue, ctx.long_slippage_bps), ("short", opp.short_venue, ctx.short_slippage_bps))
    for leg, venue, slippage_bps in legs:
        if slippage_bps is None:
            out.append(Denial(DenialCode.SLIPPAGE, f"{leg} venue {venue}: book does not cover the size"))
        elif slippage_bps > limits.max_slippage_bps:
            out.append(
                Denial(
                    DenialCode.SLIPPAGE,
                    f"{leg} venue {venue}: slippage {slippage_bps} bps > max {limits.max_slippage_bps} bps",
                )
            )
    return out


_GATES = (
    _trading_state,
    _symbol_lists,
    _orphans,
    _venue_breakers,
    _pair_cooldown,
    _expected_net,
    _breakeven,
    _position_count,
    _notional_caps,
    _leverage,
    _free_margin,
    _quote_age,
    _slippage,
)
