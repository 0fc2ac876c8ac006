"""The strategy pass's market inputs: the forecast snapshot and its ranked candidates.

``MarketPass.snapshot`` takes the market (``bot.market_view.take_snapshot``), folds its quotes
into the spread forecaster and returns the forecast snapshot; ``MarketPass.ranked`` ranks it
(``RankingSource``: equal to ``full_rank(snapshot, settings, n)``).

When the feed can describe a step as columns (``quote_table()``, the simulated market: see
``bot.quote_table``), a pass with thousands of keys does not build a quote per key:

1. the levels are folded column-wise (``bot.forecast_columns.ColumnObserver``: the same Decimal
   operations, so the same levels);
2. the snapshot's quotes are a ``LazyMapping``: a key's exact validated quote, with its exact
   forecast rate, is built the first time something reads it (an exit check, an order, the
   ranking below);
3. ranking screens every symbol with floats: the scanner's own first bound (best ``h - c`` minus
   best ``h + c`` over the symbol's fresh legs, times horizon x notional) is computed with numpy
   and every symbol whose bound could reach ``min_expected_net_usd`` (with a margin far above
   float error) is kept; the exact ranking (``full_rank``) then runs on those symbols' exact
   quotes only. A symbol whose exact bound is below the minimum can never be ranked (the scanner
   stops at the first bound below it), so the result equals the full ranking of the whole
   snapshot (``tests/test_array_pass.py`` holds them equal). Without a minimum (or one below the
   scanner's slack) nothing can be screened out and the full ranking runs.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import numpy as np

from bot.core.domain import FundingQuote, Liquidity, MarketSnapshot, Opportunity
from bot.core.ports import MarketSource
from bot.forecast import SpreadForecaster
from bot.forecast_columns import ColumnObserver
from bot.incremental import RankingSource, full_rank
from bot.market_view import LazyMapping, take_snapshot
from bot.quote_table import QuoteTable
from bot.scanner import _BOUND_SLACK, DEFAULT_MAX_PRICE_DIVERGENCE, _fee_terms, _params

SCREEN_MARGIN_USD = 1e-6  # absolute slack of the float screen (float error is ~1e-12 USD here)
SCREEN_MARGIN_REL = 1e-8  # and relative, of the largest rate term involved


class MarketPass:
    """Forecast snapshot and ranking of one strategy pass (see the module docstring)."""

    def __init__(self, market: MarketSource, forecaster: SpreadForecaster, ranking: RankingSource) -> None:
        self.market = market
        self.forecaster = forecaster
        self.ranking = ranking
        self.columns = ColumnObserver(forecaster)
        self._table_of = getattr(market, "quote_table", None)
        self._index: dict[tuple[str, str], int] = {}
        self._index_keys: list | None = None
        self._last: tuple[MarketSnapshot, QuoteTable] | None = None
        self.screened_passes = 0  # passes ranked through the float screen (for benchmarks and tests)
        self.candidate_symbols = 0  # symbols the last screened pass ranked exactly

    def snapshot(self, now_ms: int) -> MarketSnapshot:
        """The market at ``now_ms`` with every quote's ranking rate set to its leg forecast."""
        table = self._table_of() if callable(self._table_of) else None
        if table is None:
            self._last = None
            market_snapshot = take_snapshot(self.market, now_ms)
            self.forecaster.observe_quotes(market_snapshot.quotes, now_ms)
            return self.forecaster.forecast_snapshot(market_snapshot)
        self.columns.observe(table, now_ms)
        if self._index_keys is not table.keys:
            self._index = {key: k for k, key in enumerate(table.keys)}
            self._index_keys = table.keys
        market = self.market
        probe = lambda: [table.keys[k] for k in np.flatnonzero(table.present)[:8].tolist()]  # noqa: E731
        snapshot = MarketSnapshot(
            now_ts_ms=now_ms,
            quotes=LazyMapping(lambda venue, symbol: self._forecast_quote(table, self._index[(venue, symbol)]),
                               lambda: self._all_quotes(table), probe),  # type: ignore[arg-type]
            books=LazyMapping(market.book, lambda: {(b.venue, b.symbol): b for b in market.books()},  # type: ignore[attr-defined]
                              probe),  # type: ignore[arg-type]
            instruments=LazyMapping(market.instrument,  # type: ignore[attr-defined]
                                    lambda: {(i.venue, i.symbol): i for i in market.instruments()}, probe),  # type: ignore[arg-type]
            fees=dict(market.fee_schedules()),
        )
        self._last = (snapshot, table)
        return snapshot

    def ranked(self, snapshot: MarketSnapshot) -> list[Opportunity]:
        """The first ``n`` opportunities of ``snapshot`` (equal to ``full_rank(snapshot, settings, n)``)."""
        if self._last is None or self._last[0] is not snapshot:
            return self.ranking.ranked(snapshot)
        table = self._last[1]
        settings = self.ranking.settings
        candidates = self._screen(snapshot, table)
        if candidates is None:
            return full_rank(snapshot, settings, self.ranking.n)
        self.screened_passes += 1
        self.candidate_symbols = len(candidates)
        quotes = snapshot.quotes
        n_s = table.n_symbols
        sub: dict[tuple[str, str], FundingQuote] = {}
        for k in sorted(v * n_s + s for s in candidates for v in range(table.n_venues)):
            if table.present[k]:
                quote = quotes.get(table.keys[k])
                if quote is not None:
                    sub[table.keys[k]] = quote
        return full_rank(replace(snapshot, quotes=sub), settings, self.ranking.n)

    # ------------------------------------------------------------------ internals
    def _forecast_quote(self, table: QuoteTable, k: int) -> FundingQuote | None:
        quote = table.quote(k)
        if quote is None or self.forecaster.params.mode == "persistent":
            return quote
        hourly = quote.hourly_rate_or_none
        if hourly is None:
            return quote
        return self.forecaster.forecast_quote(quote, hourly, self.columns.level(k))

    def _all_quotes(self, table: QuoteTable) -> dict[tuple[str, str], FundingQuote]:
        out = {}
        for k in np.flatnonzero(table.present).tolist():
            quote = self._forecast_quote(table, k)
            if quote is not None:
                out[table.keys[k]] = quote
        return out

    def _screen(self, snapshot: MarketSnapshot, table: QuoteTable) -> list[int] | None:
        """Symbols (indices) whose scanner bound could reach the entry minimum; None: cannot screen."""
        settings = self.ranking.settings
        minimum = settings.min_expected_net_usd
        params = _params(snapshot, settings.notional_usd, settings.horizon_hours, settings.max_quote_age_ms,
                         Liquidity.TAKER, settings.estimated_slippage_bps, DEFAULT_MAX_PRICE_DIVERGENCE,
                         settings.execution, settings.pair_kinds)
        scale = settings.horizon_hours * settings.notional_usd
        slack = (scale + settings.notional_usd) * _BOUND_SLACK
        if minimum is None or slack >= minimum - Decimal(SCREEN_MARGIN_USD):
            return None  # every symbol's bound reaches it: nothing can be screened out
        terms = _fee_terms(snapshot, params)
        venues = [table.keys[v * table.n_symbols][0] for v in range(table.n_venues)]
        has_fee = np.array([venue in terms for venue in venues])
        fee = np.array([float(terms[venue][0]) if venue in terms else 0.0 for venue in venues])
        hourly = table.hourly
        fp = self.forecaster.params
        if fp.mode == "persistent":
            rank = hourly
        else:
            level = self.columns.level_f
            rank = float(fp.level_weight) * level + float(fp.deviation_weight) * (hourly - level)
        ts = np.full(len(table.keys), table.ts_ms, dtype=np.int64)
        for k, quote in table.exact.items():
            ts[k] = quote.ts_ms if quote is not None else -1
        usable = table.present & ~np.isnan(hourly) & (ts >= params.min_ts_ms)
        shape = (table.n_venues, table.n_symbols)
        usable = usable.reshape(shape) & has_fee[:, None]
        rank = np.where(usable, rank.reshape(shape), 0.0)
        c = fee[:, None]
        best_short = np.where(usable, rank - c, -np.inf).max(axis=0)
        best_long = np.where(usable, rank + c, np.inf).min(axis=0)
        legs = usable.sum(axis=0)
        score = best_short - best_long
        scale_f, slack_f = float(scale), float(slack)
        bound = np.where(score > 0, score * scale_f + slack_f, slack_f)
        magnitude = max(float(np.abs(rank).max(initial=0.0)), float(np.abs(self.columns.level_f).max(initial=0.0)),
                        float(np.abs(fee).max(initial=0.0)))
        margin = SCREEN_MARGIN_USD + SCREEN_MARGIN_REL * scale_f * magnitude
        keep = (legs >= 2) & (bound >= float(minimum) - margin)
        return np.flatnonzero(keep).tolist()


__all__ = ["MarketPass"]
