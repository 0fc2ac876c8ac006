"""``--plot PATH``: one self-contained HTML page (inline SVG, no scripts, no network) with the
equity curve, cumulative funding against fees, and open positions over time."""

from __future__ import annotations

import html
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.backtest.driver import EquitySample
from bot.core.clock import iso_utc

_W, _H, _PAD = 900, 220, 48


def _chart(title: str, times: list[int], series: list[tuple[str, str, list[float]]]) -> str:
    """One SVG line chart; ``series`` = (label, colour, values) sharing the time axis."""
    if not times:
        return f"<h2>{html.escape(title)}</h2><p>no data</p>"
    t0, t1 = times[0], max(times[-1], times[0] + 1)
    values = [v for _, _, vs in series for v in vs] or [0.0]
    lo, hi = min(min(values), 0.0), max(max(values), 0.0)
    hi = hi if hi > lo else lo + 1.0

    def xy(t: int, v: float) -> str:
        x = _PAD + (t - t0) / (t1 - t0) * (_W - 2 * _PAD)
        y = _H - _PAD / 2 - (v - lo) / (hi - lo) * (_H - _PAD)
        return f"{x:.1f},{y:.1f}"

    parts = [f'<svg viewBox="0 0 {_W} {_H}" width="100%" role="img" aria-label="{html.escape(title)}">',
             f'<line x1="{_PAD}" x2="{_W - _PAD}" y1="{xy(t0, 0.0).split(",")[1]}" y2="{xy(t0, 0.0).split(",")[1]}" stroke="#bbb"/>',
             f'<text x="4" y="14" font-size="11">{hi:,.2f}</text>',
             f'<text x="4" y="{_H - 4}" font-size="11">{lo:,.2f}</text>',
             f'<text x="{_PAD}" y="{_H - 4}" font-size="11">{iso_utc(t0)[:10]}</text>',
             f'<text x="{_W - _PAD - 70}" y="{_H - 4}" font-size="11">{iso_utc(t1)[:10]}</text>']
    legend = []
    for label, colour, vs in series:
        points = " ".join(xy(t, v) for t, v in zip(times, vs))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
        legend.append(f'<span style="color:{colour}">&#9632; {html.escape(label)}</span>')
    parts.append("</svg>")
    return f"<h2>{html.escape(title)}</h2><div>{' &nbsp; '.join(legend)}</div>" + "".join(parts)


def write_plot(path: Path, samples: list[EquitySample], summary: dict[str, Any]) -> None:
    """Write the page to ``path`` (parent directories created)."""
    times = [s.ts_ms for s in samples]
    f = lambda d: float(Decimal(d))  # noqa: E731 - display only
    body = [
        f"<h1>Backtest {html.escape(summary['period']['from'])} &rarr; {html.escape(summary['period']['to'])}</h1>",
        f"<p>net <b>{html.escape(summary['net_usd'])} USD</b> = funding {html.escape(summary['funding_usd'])} "
        f"+ price PnL {html.escape(summary['price_pnl_usd'])} - fees {html.escape(summary['fees_usd'])}; "
        f"positions {summary['positions']}; APR on capital {summary['apr_on_capital_pct']} %; "
        f"max drawdown {html.escape(summary['max_drawdown_usd'])} USD</p>",
        "<p>references: " + "; ".join(f"{html.escape(n)} net {html.escape(r['net_usd'])} USD"
                                      for n, r in summary["references"].items()) + "</p>",
        _chart("Equity (USD, realised + unrealised)", times, [("equity", "#1f77b4", [f(s.equity_usd) for s in samples])]),
        _chart("Cumulative funding vs fees (USD)", times, [("funding", "#2ca02c", [f(s.funding_usd) for s in samples]),
                                                           ("fees", "#d62728", [f(s.fees_usd) for s in samples])]),
        _chart("Open positions", times, [("open", "#9467bd", [float(s.open_positions) for s in samples])]),
    ]
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>funding-arb-bot backtest</title>"
            "<style>body{font-family:sans-serif;max-width:960px;margin:auto}h2{font-size:15px}</style></head><body>"
            + "".join(body) + "</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
