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
from bot.core.domain import ExecutionMode, MarketSnapshot, Opportunity
from bot.errors import UserInputError
from bot.scanner import rank_opportunities
from bot.settings import Settings

REPLAY_MAX_QUOTE_AGE_MS = 9 * 3_600_000  # an 8h venue's last settlement is up to 8h old
JSON_KEYS = ("symbol", "long_venue", "short_venue", "long_rate", "long_interval_hours", "short_rate",
             "short_interval_hours", "spread_hourly", "apr", "costs", "expected_net", "breakeven_hours")


def run_scan(args: argparse.Namespace, settings: Settings) -> int:
    limit = args.limit if args.limit is not None else settings.scan.limit
    if args.replay is not None:
        snapshot, max_age_ms, source = _replay_snapshot(args)
    else:
        if args.at is not None:
            raise UserInputError("--at needs --replay DIR (the simulated market is always ranked at its own now)")
        seed = getattr(args, "seed", None)
        snapshot, max_age_ms, source = _sim_snapshot(settings, settings.sim.seed if seed is None else seed)
    ranked = rank_opportunities(
        snapshot,
        notional_usd=settings.strategy.notional_usd_per_position,
        horizon_hours=settings.strategy.horizon_hours,
        max_quote_age_ms=max_age_ms,
        limit=limit,
        estimated_slippage_bps=settings.scan.estimated_slippage_bps,
        execution=ExecutionMode(settings.strategy.execution),
    )
    if args.json:
        print(json.dumps([opportunity_json(o) for o in ranked], indent=2))
    else:
        print(render_table(ranked, source, settings))
    return 0


def _sim_snapshot(settings: Settings, seed: int) -> tuple[MarketSnapshot, int, str]:
    from bot.wiring import sim_market_config
    from bot.market_view import take_snapshot
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
    return take_snapshot(market, market.now_ts_ms), max_age_ms, source


def _replay_snapshot(args: argparse.Namespace) -> tuple[MarketSnapshot, int, str]:
    from bot.core.history import HistoryFormatError, load_funding_history

    if args.at is None:
        raise UserInputError("--replay needs --at ISO_TIME, e.g. --at 2026-03-01T00:00:00Z")
    try:
        at_ms = parse_iso_utc(args.at)
    except ValueError:
        raise UserInputError(f"--at: expected an ISO-8601 time like 2026-03-01T00:00:00Z, got {args.at!r}") from None
    directory = Path(args.replay)
    if not directory.exists():
        raise UserInputError(f"--replay: no such file or directory: {directory}")
    try:
        history = load_funding_history(directory)
    except HistoryFormatError as exc:
        raise UserInputError(f"--replay: {exc}") from None
    except (OSError, ValueError) as exc:
        raise UserInputError(f"--replay: cannot read funding history from {directory}: {exc}") from None
    if not history.start_ts_ms <= at_ms <= history.end_ts_ms + REPLAY_MAX_QUOTE_AGE_MS:
        raise UserInputError(f"--at {args.at} is outside the history in {directory} "
                             f"({iso_utc(history.start_ts_ms)} .. {iso_utc(history.end_ts_ms)})")
    snapshot = history.snapshot_at(at_ms, max_age_ms=REPLAY_MAX_QUOTE_AGE_MS)
    source = (f"funding history {directory} as of {iso_utc(at_ms)} "
              f"(no books: slippage estimated, prices are recorded marks)")
    return snapshot, REPLAY_MAX_QUOTE_AGE_MS, source


def opportunity_json(opp: Opportunity) -> dict[str, Any]:
    """The documented JSON keys (Decimals as strings), plus the cost breakdown."""
    row: dict[str, Any] = {key: _text(getattr(opp, key)) for key in JSON_KEYS}
    row.update({
        "notional_usd": _text(opp.notional_usd),
        "size_base": _text(opp.size_base),
        "horizon_hours": _text(opp.horizon_hours),
        "fees_usd": _text(opp.fees_usd),
        "slippage_usd": _text(opp.slippage_usd),
        "basis_usd": _text(opp.basis_usd),
        "long_price": _text(opp.long_price),
        "short_price": _text(opp.short_price),
        "costs_estimated": opp.costs_estimated,
    })
    return row


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def render_table(ranked: list[Opportunity], source: str, settings: Settings) -> str:
    notional = settings.strategy.notional_usd_per_position
    horizon = settings.strategy.horizon_hours
    fees = ("entry+exit taker fees on both legs" if settings.strategy.execution == "taker" else
            "maker fee on the maker leg's entry, taker fees otherwise (maker_taker)")
    lines = [f"{source}; {notional} USD per leg, horizon {horizon} h; costs = {fees} + "
             f"slippage + adverse entry basis"]
    if not ranked:
        lines.append("no opportunity: no symbol is quoted fresh on two venues with enough depth")
        return "\n".join(lines)
    header = ("#", "symbol", "long", "long rate", "short", "short rate", "spread/h", "APR",
              "costs $", "net $", "breakeven h")
    rows = []
    for i, o in enumerate(ranked, 1):
        rows.append((
            str(i), o.symbol, o.long_venue, f"{o.long_rate * 100:.4f}%/{o.long_interval_hours}h",
            o.short_venue, f"{o.short_rate * 100:.4f}%/{o.short_interval_hours}h",
            f"{o.spread_hourly * 100:.5f}%", f"{o.apr * 100:.2f}%", f"{o.costs:.2f}",
            f"{o.expected_net:.2f}", "never" if o.breakeven_hours is None else f"{o.breakeven_hours:.1f}",
        ))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)
    if any(o.costs_estimated for o in ranked):
        lines.append(f"costs are ESTIMATED (no order books in history): slippage "
                     f"{settings.scan.estimated_slippage_bps} bps per leg per side, prices from recorded marks")
    return "\n".join(lines)
