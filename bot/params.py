"""Settings turned into the pure parameter objects the strategy, risk and forecast code take."""

from __future__ import annotations

from decimal import Decimal

from bot.core.domain import ExecutionMode, PairKind
from bot.forecast import ForecastParams
from bot.settings import Settings
from bot.strategy import StrategyParams
from risk.breakers import BreakerSettings
from risk.entry_gates import EntryLimits
from risk.exit_rules import ExitLimits

MS_PER_HOUR = 3_600_000


def strategy_params(settings: Settings) -> StrategyParams:
    """Entry and exit limits from settings (hours/minutes converted to ms)."""
    strat, risk, ex = settings.strategy, settings.risk, settings.exit
    notional = position_notional_usd(settings)
    return StrategyParams(
        notional_usd=notional,
        horizon_hours=strat.horizon_hours,
        max_quote_age_ms=int(settings.market.max_quote_age_seconds * 1000),
        estimated_slippage_bps=settings.scan.estimated_slippage_bps,
        execution=ExecutionMode(strat.execution),
        pair_kinds=frozenset(PairKind(k) for k in strat.pair_kinds),
        entry=EntryLimits(
            min_expected_net_usd=strat.min_expected_net_usd,
            max_breakeven_hours=risk.max_breakeven_hours,
            max_positions=strat.max_positions,
            max_notional_per_position_usd=notional * Decimal("1.1"),
            max_notional_per_venue_usd=risk.max_notional_per_venue_usd,
            max_notional_total_usd=risk.max_notional_total_usd,
            max_leverage=risk.max_leverage,
            min_free_margin_usd=risk.min_free_margin_usd,
            max_quote_age_ms=int(settings.market.max_quote_age_seconds * 1000),
            max_slippage_bps=risk.max_slippage_bps,
            allow_symbols=frozenset(risk.allow_symbols),
            deny_symbols=frozenset(risk.deny_symbols),
            pair_cooldown_ms=int(risk.pair_cooldown_minutes * 60_000),
        ),
        exit=ExitLimits(
            liquidation_buffer_pct=ex.liquidation_buffer_pct,
            max_delta_drift_pct=ex.max_delta_drift_pct,
            take_profit_usd=ex.take_profit_usd if ex.take_profit_usd > 0 else None,
            min_hold_ms=int(ex.min_hold_hours * MS_PER_HOUR),
            spread_erosion_fraction=ex.spread_erosion_fraction,
            max_hold_ms=int(ex.max_hold_hours * MS_PER_HOUR),
            ev_horizon_hours=ex.ev_horizon_hours,
            rotation_min_gain_usd=ex.rotation_min_gain_usd,
            rotation_cooldown_ms=int(ex.rotation_cooldown_hours * MS_PER_HOUR),
            hysteresis_usd=ex.hysteresis_usd,
        ),
    )


def position_notional_usd(settings: Settings) -> Decimal:
    """Each leg's notional: the configured size, capped by the capital share one position may use
    as margin on a venue (``capital_usd_per_venue x max_capital_share_per_position x max_leverage``)."""
    strat = settings.strategy
    cap = strat.capital_usd_per_venue * strat.max_capital_share_per_position * settings.risk.max_leverage
    return min(strat.notional_usd_per_position, cap)


def forecast_params(settings: Settings) -> ForecastParams:
    """The spread forecast's parameters from ``[forecast]``."""
    f = settings.forecast
    return ForecastParams(mode=f.mode, level_half_life_hours=f.level_half_life_hours,
                          level_weight=f.level_weight, deviation_weight=f.deviation_weight)


def breaker_settings(settings: Settings) -> BreakerSettings:
    risk = settings.risk
    return BreakerSettings(
        venue_failure_threshold=risk.venue_error_threshold,
        venue_max_error_rate=risk.venue_error_rate,
        venue_error_window_ms=int(risk.venue_error_window_seconds * 1000),
        venue_error_min_samples=risk.venue_error_threshold,
        venue_cooldown_ms=int(risk.venue_cooldown_seconds * 1000),
        stale_quote_max_age_ms=int(risk.stale_data_seconds * 1000),
        max_drawdown_pct=risk.max_drawdown_pct,
        unhedged_limit_ms=risk.max_unhedged_ms,
    )
