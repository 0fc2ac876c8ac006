"""``python -m bot scan``: rank funding-spread opportunities after every cost.

On the simulated market (default) the costs come from real order books. With ``--replay DIR
--at TIME`` the ranking uses the real funding history as it stood at that instant; there are no
books, so slippage is estimated (``scan.estimated_slippage_bps`` per leg per side), prices are the
recorded marks and the ``costs_estimated`` flag is set on every row.
"""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.core.clock import iso_utc, parse_iso_utc, utc_now_ms
from bot.core.domain import ExecutionMode, MarketSnapshot, Opportunity, PairKind
from bot.errors import UserInputError
from bot.params import position_notional_usd
from bot.scan_gates import gate_verdicts, verdict_text
from bot.scanner import rank_opportunities
from bot.settings import Settings
from risk.entry_gates import EntryDecision

# A pair whose costs take longer than this to earn back has a spread that is zero within noise.
NEVER_BREAKEVEN_HOURS = Decimal(87_600)
JSON_KEYS = ("symbol", "long_venue", "short_venue", "long_rate", "long_interval_hours", "short_rate",
             "short_interval_hours", "spread_hourly", "apr", "costs", "expected_net", "breakeven_hours")


def run_scan(args: argparse.Namespace, settings: Settings) -> int:
    limit = args.limit if args.limit is not None else settings.scan.limit
    if args.replay is not None:
        snapshot, max_age_ms, source, market = _replay_snapshot(args, settings)
    else:
        if args.at is not None:
            raise UserInputError("--at needs --replay DIR (the simulated market is always ranked at its own now)")
        seed = getattr(args, "seed", None)
        snapshot, max_age_ms, source, market = _sim_snapshot(settings, settings.sim.seed if seed is None else seed)
    snapshot = _with_forecast(snapshot, market, settings)
    ranked = rank_opportunities(
        snapshot,
        notional_usd=position_notional_usd(settings),
        horizon_hours=settings.strategy.horizon_hours,
        max_quote_age_ms=max_age_ms,
        limit=limit,
        estimated_slippage_bps=settings.scan.estimated_slippage_bps,
        execution=ExecutionMode(settings.strategy.execution),
        pair_kinds=[PairKind(k) for k in settings.strategy.pair_kinds],
    )
    contracts = {key: inst.venue_symbol for key, inst in snapshot.instruments.items()}
    verdicts = gate_verdicts(snapshot, ranked, settings)
    if args.json:
        rows = [opportunity_json(o, contracts) for o in ranked]
        for row, decision in zip(rows, verdicts):
            row["gates_allow"] = decision.allowed
            row["gate_denials"] = [f"{d.code.value}: {d.detail}" for d in decision.denials]
        print(json.dumps(rows, indent=2))
    else:
        print(render_table(ranked, source, settings, contracts, verdicts))
    return 0


def _with_forecast(snapshot: MarketSnapshot, market: Any, settings: Settings) -> MarketSnapshot:
    """Rank by the forecast spread, from the market's history before now, as the bot does."""
    from bot.forecast import SpreadForecaster
    from bot.forecast_columns import warm_up
    from bot.params import forecast_params

    forecaster = SpreadForecaster(forecast_params(settings))
    # The simulated market's history as columns (the same levels as observing every settlement,
    # without a settlement object each: bot.forecast_columns); other markets settlement by settlement.
    if warm_up(forecaster, market, settings.forecast.warmup_hours) is None:
        for s in market.history_settlements(settings.forecast.warmup_hours):
            if s.interval_hours > 0:
                forecaster.observe(s.venue, s.symbol, s.ts_ms, s.rate / s.interval_hours)
    forecaster.observe_quotes(snapshot.quotes, snapshot.now_ts_ms)
    return forecaster.forecast_snapshot(snapshot)


def _sim_snapshot(settings: Settings, seed: int) -> tuple[MarketSnapshot, int, str, Any]:
    from bot.market_view import take_snapshot
    from bot.wiring import sim_market_config
    from paper.sim_market import SimulatedMarket

    sim = settings.sim
    start = utc_now_ms() if sim.start == "now" else parse_iso_utc(sim.start)
    try:
        market = SimulatedMarket(sim_market_config(settings), seed, start)
    except ValueError as exc:
        raise UserInputError(f"setting 'sim': {exc}") from None
    market.advance_to(start + sim.step_seconds * 1000)
    max_age_ms = int(settings.market.max_quote_age_seconds * 1000)
    source = f"simulated market (seed {seed}) at {iso_utc(market.now_ts_ms)}"
    return take_snapshot(market, market.now_ts_ms), max_age_ms, source, market


def _replay_snapshot(args: argparse.Namespace, settings: Settings) -> tuple[MarketSnapshot, int, str, Any]:
    """The history as it stood at ``--at``, through the same replay the backtest uses."""
    from bot.backtest.command import load_history_or_exit, replay_market

    if args.at is None:
        raise UserInputError("--replay needs --at ISO_TIME, e.g. --at 2026-03-01T00:00:00Z")
    try:
        at_ms = parse_iso_utc(args.at)
    except ValueError:
        raise UserInputError(f"--at: expected an ISO-8601 time like 2026-03-01T00:00:00Z, got {args.at!r}") from None
    directory = Path(args.replay)
    if not directory.exists():
        raise UserInputError(f"--replay: no such file or directory: {directory}")
    history, prices = load_history_or_exit(directory, "--replay")
    market = replay_market(history, prices, settings)
    if not market.start_ts_ms <= at_ms <= market.end_ts_ms + 24 * 3_600_000:
        raise UserInputError(f"--at {args.at} is outside the history in {directory} "
                             f"({iso_utc(market.start_ts_ms)} .. {iso_utc(market.end_ts_ms)})")
    market.advance_to(at_ms)
    snapshot = MarketSnapshot(
        now_ts_ms=at_ms,
        quotes={(q.venue, q.symbol): q for q in market.quotes()},
        instruments={(i.venue, i.symbol): i for i in market.instruments()},
        fees=market.fee_schedules(),
    )
    source = (f"funding history {directory} as of {iso_utc(at_ms)} "
              f"(no books: slippage estimated; prices are each venue's own recorded marks, and no basis "
              f"is charged against a venue without its own mark)")
    return snapshot, int(settings.market.max_quote_age_seconds * 1000), source, market


def opportunity_json(opp: Opportunity, contracts: dict[tuple[str, str], str] | None = None) -> dict[str, Any]:
    """The documented JSON keys (Decimals as strings), plus the cost breakdown and each leg's contract."""
    row: dict[str, Any] = {key: _text(getattr(opp, key)) for key in JSON_KEYS}
    row["breakeven_hours"] = _text(breakeven_or_never(opp.breakeven_hours))
    row["current_spread_hourly"] = _text(opp.current_spread_hourly)
    contracts = contracts or {}
    row.update({
        "long_contract": contracts.get((opp.long_venue, opp.symbol)),
        "short_contract": contracts.get((opp.short_venue, opp.symbol)),
        "notional_usd": _text(opp.notional_usd),
        "size_base": _text(opp.size_base),
        "horizon_hours": _text(opp.horizon_hours),
        "fees_usd": _text(opp.fees_usd),
        "slippage_usd": _text(opp.slippage_usd),
        "basis_usd": _text(opp.basis_usd),
        "long_price": _text(opp.long_price),
        "short_price": _text(opp.short_price),
        "costs_estimated": opp.costs_estimated,
        "pair_kind": opp.pair_kind.value if opp.pair_kind is not None else None,  # spot_perp = carry
    })
    return row


def breakeven_or_never(hours: Decimal | None) -> Decimal | None:
    """None ("never") when the pair never breaks even or only after more than ten years."""
    return None if hours is None or hours > NEVER_BREAKEVEN_HOURS else hours


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def render_table(ranked: list[Opportunity], source: str, settings: Settings,
                 contracts: dict[tuple[str, str], str] | None = None,
                 verdicts: list[EntryDecision] | None = None) -> str:
    notional = position_notional_usd(settings)
    horizon = settings.strategy.horizon_hours
    mode = settings.forecast.mode
    fees = ("entry+exit taker fees on both legs" if settings.strategy.execution == "taker" else
            "maker fee on the maker leg's entry, taker fees otherwise (maker_taker)")
    lines = [f"{source}; {notional} USD per leg, horizon {horizon} h; costs = {fees} + "
             f"slippage + adverse entry basis",
             "ranked by net = forecast spread x horizon x notional - costs; now/h = the spread paid today, "
             + ("forecast/h = its expected average over the horizon (spreads revert; see README 'Spread forecast')"
                if mode == "mean_reverting" else "forecast/h = today's spread (forecast.mode = persistent)")]
    if not ranked:
        lines.append("no opportunity: no symbol is quoted fresh on two venues with enough depth")
        return "\n".join(lines)
    contracts = contracts or {}
    header = ("#", "symbol", "long", "long rate", "short", "short rate", "now/h", "forecast/h", "APR",
              "costs $", "net $", "breakeven h", "gates")
    rows = []
    for i, o in enumerate(ranked, 1):
        verdict = verdict_text(verdicts[i - 1]) if verdicts is not None else "-"
        rows.append((
            str(i), o.symbol, _leg(o.long_venue, contracts.get((o.long_venue, o.symbol))),
            f"{o.long_rate * 100:.4f}%/{o.long_interval_hours}h",
            _leg(o.short_venue, contracts.get((o.short_venue, o.symbol))),
            f"{o.short_rate * 100:.4f}%/{o.short_interval_hours}h",
            "?" if o.current_spread_hourly is None else f"{o.current_spread_hourly * 100:.5f}%",
            f"{o.spread_hourly * 100:.5f}%", f"{o.apr * 100:.2f}%", f"{o.costs:.2f}",
            f"{o.expected_net:.2f}",
            "never" if breakeven_or_never(o.breakeven_hours) is None else f"{o.breakeven_hours:.1f}",
            verdict,
        ))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)
    if verdicts is not None:
        lines.append("gates: 'yes' = the entry gates would allow it for a fresh paper account (no positions, "
                     "paper.starting_balance_usd per venue); otherwise the denial codes")
    if any(o.costs_estimated for o in ranked):
        lines.append(f"costs are ESTIMATED (no order books in history): slippage "
                     f"{settings.scan.estimated_slippage_bps} bps per leg per side, prices from recorded marks")
    return "\n".join(lines)


def _leg(venue: str, contract: str | None) -> str:
    return venue if contract is None else f"{venue}:{contract}"
