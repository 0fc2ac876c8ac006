"""Exit rules: should this held position be closed now, and why?

``evaluate_exit`` is a prioritised pipeline; the first rule that fires wins:

1. emergency (ignore the minimum hold): ``liquidation_risk``, ``leg_missing``, ``delta_drift``,
   ``funding_flip``. ``leg_missing`` is checked before ``delta_drift`` because a missing leg is
   also a 100 % drift and the more specific reason tells the operator more.
2. profit: ``take_profit``.
3. the minimum-hold gate: nothing below fires before ``min_hold_ms`` has passed since entry.
4. standard: ``spread_eroded``, ``max_hold_time``, ``negative_ev``.
5. opportunity: ``rotate``.

``shutdown`` and ``manual_flatten`` are not rules: the engine issues them (``operator_exit``)
and they carry the emergency priority, so the trading-state gate lets them through.

Rates are hourly fractions of notional; the held spread is ``short_hourly - long_hourly``
(longs pay positive funding, shorts receive it). Unknown inputs (a None rate, size or
liquidation price) disable the rules that need them; they never fire a rule on their own.
``*_pct`` limits are percents (2 = 2 %); ``spread_erosion_fraction`` is a plain fraction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from bot.core.domain import ZERO, Opportunity

HUNDRED = Decimal(100)


class ExitPriority(StrEnum):
    EMERGENCY = "emergency"
    PROFIT = "profit"
    STANDARD = "standard"
    OPPORTUNITY = "opportunity"


class ExitReason(StrEnum):
    LIQUIDATION_RISK = "liquidation_risk"
    DELTA_DRIFT = "delta_drift"
    LEG_MISSING = "leg_missing"
    FUNDING_FLIP = "funding_flip"
    TAKE_PROFIT = "take_profit"
    SPREAD_ERODED = "spread_eroded"
    MAX_HOLD_TIME = "max_hold_time"
    NEGATIVE_EV = "negative_ev"
    ROTATE = "rotate"
    SHUTDOWN = "shutdown"  # engine: SIGTERM/SIGINT flatten
    MANUAL_FLATTEN = "manual_flatten"  # engine: operator command


REASON_PRIORITY: dict[ExitReason, ExitPriority] = {
    ExitReason.LIQUIDATION_RISK: ExitPriority.EMERGENCY,
    ExitReason.DELTA_DRIFT: ExitPriority.EMERGENCY,
    ExitReason.LEG_MISSING: ExitPriority.EMERGENCY,
    ExitReason.FUNDING_FLIP: ExitPriority.EMERGENCY,
    ExitReason.TAKE_PROFIT: ExitPriority.PROFIT,
    ExitReason.SPREAD_ERODED: ExitPriority.STANDARD,
    ExitReason.MAX_HOLD_TIME: ExitPriority.STANDARD,
    ExitReason.NEGATIVE_EV: ExitPriority.STANDARD,
    ExitReason.ROTATE: ExitPriority.OPPORTUNITY,
    ExitReason.SHUTDOWN: ExitPriority.EMERGENCY,
    ExitReason.MANUAL_FLATTEN: ExitPriority.EMERGENCY,
}


@dataclass(frozen=True, slots=True)
class ExitDecision:
    reason: ExitReason
    priority: ExitPriority
    detail: str

    @property
    def is_emergency(self) -> bool:
        return self.priority is ExitPriority.EMERGENCY


def _decide(reason: ExitReason, detail: str) -> ExitDecision:
    return ExitDecision(reason=reason, priority=REASON_PRIORITY[reason], detail=detail)


def operator_exit(reason: ExitReason, detail: str = "") -> ExitDecision:
    """The decision for an engine-issued close: ``SHUTDOWN`` or ``MANUAL_FLATTEN``."""
    if reason not in (ExitReason.SHUTDOWN, ExitReason.MANUAL_FLATTEN):
        raise ValueError(f"{reason} is decided by evaluate_exit, not by the operator")
    return _decide(reason, detail)


@dataclass(frozen=True, slots=True)
class HeldPosition:
    """A snapshot of one hedged position as the exit rules need it.

    ``long_venue_size_base`` / ``short_venue_size_base`` are the venues' own SIGNED sizes
    (``VenuePosition.size_base``: + long, - short): None = unknown, 0 = the leg is gone.
    ``accrued_funding_usd`` is + received; ``fees_paid_usd`` is + paid so far (entry);
    ``est_exit_cost_usd`` is the expected cost of closing both legs now (fees + slippage).
    ``notional_usd`` is the current per-leg notional.
    """

    position_id: str
    symbol: str
    long_venue: str
    short_venue: str
    size_base: Decimal
    entry_spread_hourly: Decimal
    entry_ts_ms: int
    long_hourly_rate: Decimal | None
    short_hourly_rate: Decimal | None
    long_mark_price: Decimal
    short_mark_price: Decimal
    notional_usd: Decimal
    long_liquidation_price: Decimal | None = None
    short_liquidation_price: Decimal | None = None
    long_venue_size_base: Decimal | None = None
    short_venue_size_base: Decimal | None = None
    accrued_funding_usd: Decimal = ZERO
    fees_paid_usd: Decimal = ZERO
    est_exit_cost_usd: Decimal = ZERO
    # The forecast average spread over the horizon (``bot.forecast``); None = no forecast, the
    # rules then use the current spread (the old behaviour).
    forecast_spread_hourly: Decimal | None = None

    @property
    def expected_spread_hourly(self) -> Decimal | None:
        """What holding is expected to earn per hour: the forecast, else the current spread."""
        return self.forecast_spread_hourly if self.forecast_spread_hourly is not None else self.current_spread_hourly

    @property
    def current_spread_hourly(self) -> Decimal | None:
        """What holding earns per hour per unit notional now; None when a rate is unknown."""
        if self.long_hourly_rate is None or self.short_hourly_rate is None:
            return None
        return self.short_hourly_rate - self.long_hourly_rate

    @property
    def net_pnl_if_closed_usd(self) -> Decimal:
        """Funding received minus fees paid minus the cost of closing now."""
        return self.accrued_funding_usd - self.fees_paid_usd - self.est_exit_cost_usd


@dataclass(frozen=True, slots=True)
class ExitLimits:
    """Thresholds for closing a position. ``take_profit_usd`` None disables take-profit."""

    liquidation_buffer_pct: Decimal = Decimal("15")
    max_delta_drift_pct: Decimal = Decimal("2")
    take_profit_usd: Decimal | None = None
    min_hold_ms: int = 28_800_000
    spread_erosion_fraction: Decimal = Decimal("0.25")
    max_hold_ms: int = 604_800_000
    ev_horizon_hours: Decimal = Decimal("8")
    rotation_min_gain_usd: Decimal = Decimal("5")
    rotation_cooldown_ms: int = 86_400_000
    hysteresis_usd: Decimal = ZERO  # negative_ev fires only below -hysteresis_usd (noise must not churn)

    def __post_init__(self) -> None:
        if not ZERO <= self.spread_erosion_fraction <= 1:
            raise ValueError("spread_erosion_fraction must be within [0, 1]")
        for name in ("liquidation_buffer_pct", "max_delta_drift_pct", "ev_horizon_hours"):
            if getattr(self, name) < ZERO:
                raise ValueError(f"{name} must not be negative")
        for name in ("min_hold_ms", "max_hold_ms", "rotation_cooldown_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


def evaluate_exit(
    pos: HeldPosition,
    now_ts_ms: int,
    limits: ExitLimits,
    best_alternative: Opportunity | None = None,
) -> ExitDecision | None:
    """The highest-priority exit that applies to ``pos`` at ``now_ts_ms``, or None to keep holding."""
    held_ms = max(0, now_ts_ms - pos.entry_ts_ms)
    for rule in _BEFORE_MIN_HOLD:
        decision = rule(pos, held_ms, limits)
        if decision is not None:
            return decision
    if held_ms < limits.min_hold_ms:
        return None
    for rule in _AFTER_MIN_HOLD:
        decision = rule(pos, held_ms, limits)
        if decision is not None:
            return decision
    return _rotate(pos, held_ms, limits, best_alternative)


def _liquidation_risk(pos: HeldPosition, held_ms: int, limits: ExitLimits) -> ExitDecision | None:
    """A leg's mark within ``liquidation_buffer_pct`` of its liquidation price (or past it)."""
    legs = (
        ("long", pos.long_venue, pos.long_mark_price, pos.long_liquidation_price, 1),
        ("short", pos.short_venue, pos.short_mark_price, pos.short_liquidation_price, -1),
    )
    for leg, venue, mark, liquidation, sign in legs:
        if liquidation is None or mark <= ZERO:
            continue
        # Distance in the adverse direction: a long dies when price falls to it, a short when it rises.
        distance_pct = (mark - liquidation) * sign / mark * HUNDRED
        if distance_pct <= limits.liquidation_buffer_pct:
            return _decide(
                ExitReason.LIQUIDATION_RISK,
                f"{leg} leg on {venue}: mark {mark}, liquidation {liquidation},"
                f" distance {distance_pct:.2f}% <= buffer {limits.liquidation_buffer_pct}%",
            )
    return None


def _held_direction_sizes(pos: HeldPosition) -> tuple[Decimal | None, Decimal | None]:
    """Venue sizes in the held direction; a wrong-direction position counts as zero."""
    long_base = None if pos.long_venue_size_base is None else max(pos.long_venue_size_base, ZERO)
    short_base = None if pos.short_venue_size_base is None else max(-pos.short_venue_size_base, ZERO)
    return long_base, short_base


def _leg_missing(pos: HeldPosition, held_ms: int, limits: ExitLimits) -> ExitDecision | None:
    long_base, short_base = _held_direction_sizes(pos)
    missing = [leg for leg, size in (("long", long_base), ("short", short_base)) if size == ZERO]
    if not missing:
        return None
    venues = {"long": pos.long_venue, "short": pos.short_venue}
    return _decide(
        ExitReason.LEG_MISSING,
        ", ".join(f"{leg} leg absent on {venues[leg]}" for leg in missing),
    )


def _delta_drift(pos: HeldPosition, held_ms: int, limits: ExitLimits) -> ExitDecision | None:
    """Net base exposure as a percent of the intended size.

    With both venue sizes known: |long - short|. With one known: |known - size_base| (a
    partial liquidation or auto-deleveraging of that leg). With none known: not evaluated.
    """
    if pos.size_base <= ZERO:
        return None
    long_base, short_base = _held_direction_sizes(pos)
    if long_base is not None and short_base is not None:
        net_base = abs(long_base - short_base)
        seen = f"long {long_base}, short {short_base}"
    elif long_base is not None:
        net_base = abs(long_base - pos.size_base)
        seen = f"long {long_base} vs intended {pos.size_base}"
    elif short_base is not None:
        net_base = abs(short_base - pos.size_base)
        seen = f"short {short_base} vs intended {pos.size_base}"
    else:
        return None
    drift_pct = net_base / pos.size_base * HUNDRED
    if drift_pct <= limits.max_delta_drift_pct:
        return None
    return _decide(
        ExitReason.DELTA_DRIFT,
        f"{seen}: drift {drift_pct:.2f}% > max {limits.max_delta_drift_pct}%",
    )


def _funding_flip(pos: HeldPosition, held_ms: int, limits: ExitLimits) -> ExitDecision | None:
    """Emergency: the held direction now PAYS at least as fast as it was expected to earn, and
    (with a forecast) is also expected to keep paying against us.

    A merely slightly negative spread (predicted rates flicker), or a one-hour spike the forecast
    does not believe, is left to ``negative_ev``, so noise does not churn positions through fees.
    """
    spread = pos.current_spread_hourly
    if spread is None or spread >= ZERO or spread > -abs(pos.entry_spread_hourly):
        return None
    if pos.forecast_spread_hourly is not None and pos.forecast_spread_hourly >= ZERO:
        return None
    return _decide(
        ExitReason.FUNDING_FLIP,
        f"held spread {spread} per hour has flipped below -{abs(pos.entry_spread_hourly)} (entry spread)",
    )


def _take_profit(pos: HeldPosition, held_ms: int, limits: ExitLimits) -> ExitDecision | None:
    if limits.take_profit_usd is None:
        return None
    pnl_usd = pos.net_pnl_if_closed_usd
    if pnl_usd < limits.take_profit_usd:
        return None
    return _decide(
        ExitReason.TAKE_PROFIT,
        f"net if closed {pnl_usd} USD >= take profit {limits.take_profit_usd} USD",
    )


def _spread_eroded(pos: HeldPosition, held_ms: int, limits: ExitLimits) -> ExitDecision | None:
    spread = pos.expected_spread_hourly
    if spread is None or pos.entry_spread_hourly <= ZERO or limits.spread_erosion_fraction == ZERO:
        return None  # a fraction of 0 disables the rule
    floor = limits.spread_erosion_fraction * pos.entry_spread_hourly
    if spread >= floor:
        return None
    return _decide(
        ExitReason.SPREAD_ERODED,
        f"spread {spread} per hour < {limits.spread_erosion_fraction} x entry {pos.entry_spread_hourly}",
    )


def _max_hold_time(pos: HeldPosition, held_ms: int, limits: ExitLimits) -> ExitDecision | None:
    if limits.max_hold_ms == 0 or held_ms < limits.max_hold_ms:  # 0 disables the rule
        return None
    return _decide(ExitReason.MAX_HOLD_TIME, f"held {held_ms} ms >= max {limits.max_hold_ms} ms")


def _hold_income_usd(spread_hourly: Decimal, notional_usd: Decimal, hours: Decimal) -> Decimal:
    return spread_hourly * notional_usd * hours


def _negative_ev(pos: HeldPosition, held_ms: int, limits: ExitLimits) -> ExitDecision | None:
    """Holding ``ev_horizon_hours`` longer at the expected spread (the forecast, else the current
    one) loses more than ``hysteresis_usd``.

    Exit costs are NOT subtracted: they are paid whether we close now or later, so they cannot
    make holding worse than closing (subtracting them made every young position "negative EV").
    The hysteresis keeps a forecast hovering around zero from churning a position through fees.
    """
    spread = pos.expected_spread_hourly
    if spread is None:
        return None
    ev_usd = _hold_income_usd(spread, pos.notional_usd, limits.ev_horizon_hours)
    if ev_usd >= -limits.hysteresis_usd:
        return None
    kind = "forecast" if pos.forecast_spread_hourly is not None else "current"
    return _decide(
        ExitReason.NEGATIVE_EV,
        f"holding {limits.ev_horizon_hours} h more at the {kind} spread {spread}/h is expected to lose "
        f"{-ev_usd} USD (> hysteresis {limits.hysteresis_usd} USD)",
    )


def _rotate(
    pos: HeldPosition, held_ms: int, limits: ExitLimits, alternative: Opportunity | None
) -> ExitDecision | None:
    """Switch when the alternative beats holding by more than ``rotation_min_gain_usd``.

    gain = alternative.expected_net - (what holding earns over the alternative's horizon at the
    expected spread: the forecast, else the current one) - our exit cost. ``Opportunity.expected_net`` already subtracts the
    alternative's entry AND exit costs, so they are not subtracted again. Our exit cost is
    charged to the switch although holding would pay it later too: deliberately conservative,
    since every rotation pays a full round of fees and slippage.
    """
    if alternative is None or held_ms < limits.rotation_cooldown_ms:
        return None
    if (alternative.symbol, alternative.long_venue, alternative.short_venue) == (
        pos.symbol,
        pos.long_venue,
        pos.short_venue,
    ):
        return None
    spread = pos.expected_spread_hourly
    if spread is None:
        return None
    hold_usd = _hold_income_usd(spread, pos.notional_usd, alternative.horizon_hours)
    gain_usd = alternative.expected_net - hold_usd - pos.est_exit_cost_usd
    if gain_usd <= limits.rotation_min_gain_usd:
        return None
    return _decide(
        ExitReason.ROTATE,
        f"{alternative.symbol} long {alternative.long_venue} / short {alternative.short_venue}:"
        f" net {alternative.expected_net} USD - hold {hold_usd} USD - exit {pos.est_exit_cost_usd} USD"
        f" = {gain_usd} USD > min gain {limits.rotation_min_gain_usd} USD",
    )


_Rule = Callable[[HeldPosition, int, ExitLimits], ExitDecision | None]

_BEFORE_MIN_HOLD: tuple[_Rule, ...] = (
    _liquidation_risk,
    _leg_missing,
    _delta_drift,
    _funding_flip,
    _take_profit,
)
_AFTER_MIN_HOLD: tuple[_Rule, ...] = (_spread_eroded, _max_hold_time, _negative_ev)
