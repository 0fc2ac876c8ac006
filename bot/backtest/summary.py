"""The backtest's numbers, read back from the run's own database (so they equal ``report``).

* funding, fees and realised PnL per position come from ``bot.report.build_report`` on the run's
  database: ``net = funding + price PnL - fees`` holds for every position and for the totals;
* slippage (a part of price PnL) is each fill's distance from the replay's price at that instant;
* capital used is the peak margin: both legs' notional divided by ``risk.max_leverage``, at the
  busiest sample; APR on capital = net / capital used, annualised over the period; APR on
  committed capital = net / (``strategy.capital_usd_per_venue`` x venues), annualised;
* max drawdown is the largest fall of the equity curve (realised + unrealised) from a peak;
* time invested is the share of equity samples with at least one open position.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.backtest.driver import EquitySample
from bot.backtest.references import ReferenceResult
from bot.core.clock import iso_utc
from bot.core.domain import ZERO, OrderSide
from bot.report import build_report
from paper.replay_market import ReplayMarket
from storage import Storage

HOURS_PER_YEAR = Decimal(8760)
MS_PER_HOUR = Decimal(3_600_000)


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What the summary needs to know about the run besides its database."""

    from_ts_ms: int
    to_ts_ms: int
    venues: list[str]
    symbols: list[str]
    untradable_symbols: list[str]
    events: int
    max_leverage: Decimal
    wall_seconds: float
    notional_usd: Decimal
    capital_usd_per_venue: Decimal


def build_summary(storage: Storage, venue_db: Path, market: ReplayMarket, samples: list[EquitySample],
                  references: list[ReferenceResult], facts: RunFacts) -> dict[str, Any]:
    """One JSON-ready dict; every money figure is a Decimal string."""
    report = build_report(storage, venue_db)
    totals = report["totals"]
    funding, fees = Decimal(totals["funding_usd"]), Decimal(totals["fees_usd"])
    # Price PnL from the fills themselves (sold - bought notional of each flat position).
    price_pnl = sum((Decimal(p["price_pnl_usd"]) for p in report["positions"] if p["price_pnl_usd"] is not None), ZERO)
    realized = funding + price_pnl - fees
    slippage = ZERO
    pairs: dict[str, dict[str, Decimal | int]] = {}
    kinds: dict[str, dict[str, Decimal | int]] = {}
    traded = [p for p in report["positions"] if storage.position_totals(p["id"]).fill_count > 0]
    for p in traded:
        by_kind = kinds.setdefault(p["pair_kind"], {"positions": 0, "funding_usd": ZERO, "fees_usd": ZERO,
                                                    "price_pnl_usd": ZERO, "net_usd": ZERO})
        key = f"{p['symbol']} long {p['long_venue']} / short {p['short_venue']}"
        row = pairs.setdefault(key, {"positions": 0, "funding_usd": ZERO, "fees_usd": ZERO, "price_pnl_usd": ZERO,
                                     "net_usd": ZERO, "slippage_usd": ZERO})
        row["positions"] = int(row["positions"]) + 1
        f, c = Decimal(p["funding_usd"]), Decimal(p["fees_usd"])
        r = Decimal(p["realized_pnl_usd"]) if p["realized_pnl_usd"] is not None else f - c
        row["funding_usd"] += f
        row["fees_usd"] += c
        row["net_usd"] += r
        row["price_pnl_usd"] += r - f + c
        by_kind["positions"] = int(by_kind["positions"]) + 1
        for name, value in (("funding_usd", f), ("fees_usd", c), ("net_usd", r), ("price_pnl_usd", r - f + c)):
            by_kind[name] = Decimal(by_kind[name]) + value
        for fill in storage.list_fills(p["id"]):
            found = market.price(fill.venue, fill.symbol, fill.ts_ms)
            if found is None:
                continue
            worse = fill.price - found[0] if fill.side is OrderSide.BUY else found[0] - fill.price
            row["slippage_usd"] += worse * fill.size_base
            slippage += worse * fill.size_base
    calibration = forecast_calibration(storage, traded)
    period_hours = Decimal(max(facts.to_ts_ms - facts.from_ts_ms, 1)) / MS_PER_HOUR
    capital = max((s.open_notional_usd for s in samples), default=ZERO) / facts.max_leverage
    apr = (realized / capital * HOURS_PER_YEAR / period_hours * 100) if capital > 0 else None
    invested = sum(1 for s in samples if s.open_positions > 0)
    hold_hours = [Decimal(_ms(p["closed_at"]) - _ms(p["opened_at"])) / MS_PER_HOUR
                  for p in traded if p["opened_at"] and p["closed_at"]]
    return {
        "period": {"from": iso_utc(facts.from_ts_ms), "to": iso_utc(facts.to_ts_ms),
                   "hours": _q(period_hours, "0.01"), "events": facts.events},
        "venues": facts.venues,
        "symbols": facts.symbols,
        "untradable_symbols": facts.untradable_symbols,
        "positions": len(traded),
        "entries_without_fill": len(report["positions"]) - len(traded),
        "funding_usd": str(funding),
        "fees_usd": str(fees),
        "slippage_usd": str(slippage),
        "price_pnl_usd": str(price_pnl),
        "net_usd": str(realized),
        "report_realized_pnl_usd": totals["realized_pnl_usd"],
        "capital_used_usd": str(capital),
        "apr_on_capital_pct": None if apr is None else _q(apr, "0.01"),
        "committed_capital_usd": str(facts.capital_usd_per_venue * len(facts.venues)),
        "apr_on_committed_capital_pct": _q(realized / (facts.capital_usd_per_venue * len(facts.venues)) * HOURS_PER_YEAR
                                           / period_hours * 100, "0.01") if facts.venues else None,
        "max_drawdown_usd": str(max_drawdown(samples)),
        "time_invested_pct": _q(Decimal(invested) / Decimal(max(len(samples), 1)) * 100, "0.1"),
        "average_hold_hours": _q(sum(hold_hours, ZERO) / len(hold_hours), "0.1") if hold_hours else None,
        "hit_rate_pct": _q(Decimal(sum(1 for p in traded if p["realized_pnl_usd"] and Decimal(p["realized_pnl_usd"]) > 0))
                           / len(traded) * 100, "0.1") if traded else None,
        "open_positions_at_end": totals["open_positions"],
        # Carry (spot_perp) and perp-perp results apart: positions and money of each kind of pair.
        "by_pair_kind": {k: {n: (str(v) if isinstance(v, Decimal) else v) for n, v in row.items()}
                         for k, row in sorted(kinds.items())},
        "per_pair": [{"pair": k, **{n: (str(v) if isinstance(v, Decimal) else v) for n, v in row.items()}}
                     for k, row in sorted(pairs.items(), key=lambda kv: kv[1]["net_usd"], reverse=True)],
        "references": {r.name: reference_json(r, period_hours, facts) for r in references},
        "calibration": calibration,
        "wall_seconds": round(facts.wall_seconds, 2),
    }


def reference_json(r: ReferenceResult, period_hours: Decimal, facts: RunFacts) -> dict[str, Any]:
    """A reference's money, with capital = its peak margin (both legs of its most open positions)."""
    capital = Decimal(2 * r.peak_open_positions) * facts.notional_usd / facts.max_leverage
    nets = [n for n, _h in r.closed]
    out: dict[str, Any] = {
        "description": r.description,
        "positions": r.positions,
        "capital_used_usd": str(capital),
        "apr_on_capital_pct": _q(r.net_usd / capital * HOURS_PER_YEAR / period_hours * 100, "0.01") if capital > 0 else None,
        "max_drawdown_usd": str(r.max_drawdown_usd),
        "average_hold_hours": _q(sum((h for _n, h in r.closed), ZERO) / len(r.closed), "0.1") if r.closed else None,
        "hit_rate_pct": _q(Decimal(sum(1 for n in nets if n > 0)) / len(nets) * 100, "0.1") if nets else None,
        "funding_usd": str(r.funding_usd),
        "fees_usd": str(r.fees_usd),
        "slippage_usd": str(r.slippage_usd),
        "price_pnl_usd": str(r.price_pnl_usd),
        "net_usd": str(r.net_usd),
        "pairs": r.pairs[:10],
    }
    return out


def forecast_calibration(storage: Storage, traded: list[dict[str, Any]]) -> dict[str, Any]:
    """How honest the entry forecasts were: realised net per position against the forecast.

    ``forecast_net`` is what the bot expected at entry over its horizon; ``hold_adjusted`` re-scales
    the same forecast spread to the hours the position was really held (the costs stay), which is
    the fair comparison when holds are longer or shorter than the horizon."""
    raw: list[tuple[float, float]] = []
    adjusted: list[tuple[float, float]] = []
    for p in traded:
        if p["realized_pnl_usd"] is None or not p["opened_at"] or not p["closed_at"]:
            continue
        opening = [t for t in storage.list_transitions(entity_id=p["id"]) if t.trigger == "begin_open" and t.details]
        if not opening or "costs_usd" not in opening[0].details:
            continue
        details = opening[0].details
        expected = Decimal(details["expected_net_usd"])
        spread = Decimal(details["spread_hourly"])
        costs, notional = Decimal(details["costs_usd"]), Decimal(details["notional_usd"])
        held_hours = Decimal(_ms(p["closed_at"]) - _ms(p["opened_at"])) / MS_PER_HOUR
        realised = float(Decimal(p["realized_pnl_usd"]))
        raw.append((float(expected), realised))
        adjusted.append((float(spread * held_hours * notional - costs), realised))
    return {"positions": len(raw), "forecast_net": _fit_line(raw), "hold_adjusted": _fit_line(adjusted)}


def _fit_line(points: list[tuple[float, float]]) -> dict[str, float | None]:
    """Slope (realised on forecast, with intercept), correlation and means; None when undefined."""
    n = len(points)
    if n < 3:
        return {"slope": None, "correlation": None, "mean_forecast_usd": None, "mean_realised_usd": None}
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    syy = sum((y - my) ** 2 for _, y in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    slope = sxy / sxx if sxx > 0 else None
    corr = sxy / (sxx * syy) ** 0.5 if sxx > 0 and syy > 0 else None
    return {"slope": None if slope is None else round(slope, 3), "correlation": None if corr is None else round(corr, 3),
            "mean_forecast_usd": round(mx, 4), "mean_realised_usd": round(my, 4)}


def max_drawdown(samples: list[EquitySample]) -> Decimal:
    """Largest fall of equity from a running peak (0 when it never falls)."""
    peak: Decimal | None = None
    worst = ZERO
    for s in samples:
        peak = s.equity_usd if peak is None or s.equity_usd > peak else peak
        worst = max(worst, peak - s.equity_usd)
    return worst


def render_text(summary: dict[str, Any]) -> str:
    """The summary as a few readable lines (money rounded to cents) and a per-pair table."""
    s = summary
    m = _cents
    lines = [
        f"backtest {s['period']['from']} -> {s['period']['to']} ({s['period']['hours']} h, {s['period']['events']} data events)",
        f"venues: {', '.join(s['venues'])}; symbols: {len(s['symbols'])}"
        + (f" ({len(s['untradable_symbols'])} without any price, not traded: {', '.join(s['untradable_symbols'])})"
           if s["untradable_symbols"] else ""),
        f"positions: {s['positions']} (avg hold {s['average_hold_hours']} h, hit rate {s['hit_rate_pct']} %)",
        f"funding received {m(s['funding_usd'])} USD, fees {m(s['fees_usd'])} USD, price PnL {m(s['price_pnl_usd'])} USD "
        f"(of which slippage {m(s['slippage_usd'])} USD)",
        f"net {m(s['net_usd'])} USD = funding + price PnL - fees; capital used {m(s['capital_used_usd'])} USD, "
        f"APR on capital {s['apr_on_capital_pct']} %, max drawdown {m(s['max_drawdown_usd'])} USD, "
        f"invested {s['time_invested_pct']} % of the time",
    ]
    if s.get("by_pair_kind"):
        lines.append("by pair kind (spot_perp = carry: long spot / short perp; perp_perp = long perp / short perp):")
        for kind, row in s["by_pair_kind"].items():
            lines.append(f"  {kind:15s} net {m(row['net_usd']):>10s} USD  funding {m(row['funding_usd']):>10s}  "
                         f"fees {m(row['fees_usd']):>9s}  price {m(row['price_pnl_usd']):>9s}  positions {row['positions']}")
    lines.append("references (same data and costs):")
    for name, r in s["references"].items():
        lines.append(f"  {name:15s} net {m(r['net_usd']):>10s} USD  funding {m(r['funding_usd']):>10s}  "
                     f"fees {m(r['fees_usd']):>9s}  positions {r['positions']}  ({r['description']})")
        if name == "hold_best_pair" and r["pairs"]:
            lines.append(f"  {'':15s} pair: {r['pairs'][0]}")
    if s["per_pair"]:
        lines.append("per pair:")
        lines.append(f"  {'pair':44s} {'pos':>4s} {'funding':>10s} {'fees':>9s} {'price':>9s} {'net':>10s}")
        for row in s["per_pair"]:
            lines.append(f"  {row['pair']:44s} {row['positions']:>4d} {m(row['funding_usd']):>10s} "
                         f"{m(row['fees_usd']):>9s} {m(row['price_pnl_usd']):>9s} {m(row['net_usd']):>10s}")
    lines.append(f"({s['wall_seconds']} s wall; `python -m bot report --db ...` and `postmortem ID` read the same database)")
    return "\n".join(lines)


def _cents(text: str) -> str:
    return str(Decimal(text).quantize(Decimal("0.01")))


def _q(value: Decimal, step: str = "0.0001") -> str:
    return str(value.quantize(Decimal(step)))


def _ms(text: str) -> int:
    from bot.core.clock import parse_iso_utc

    return parse_iso_utc(text)
