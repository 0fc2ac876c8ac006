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

from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal

import anyio.lowlevel
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

    def __init__(self, market: MarketSource, forecaster: SpreadForecaster, ranking: RankingSource, *,
                 first_symbols: int | None = None) -> None:
        self.market = market
        self.forecaster = forecaster
        self.ranking = ranking
        self.columns = ColumnObserver(forecaster)
        self.first_symbols = first_symbols  # symbols ranked exactly first (None: ``_first_count``)
        self._table_of = getattr(market, "quote_table", None)
        self._index: dict[tuple[str, str], int] = {}
        self._index_keys: list | None = None
        self._last: tuple[MarketSnapshot, QuoteTable] | None = None
        self.screened_passes = 0  # passes ranked through the float screen (for benchmarks and tests)
        self.candidate_symbols = 0  # symbols the last screened pass ranked exactly
        self.screened_symbols = 0  # of the symbols whose bound passed the screen
        self.early_stops = 0  # passes that ranked only some of those (the rest provably out of reach)
        self.widenings = 0  # exact rankings re-run on more symbols (the first count was not enough)

    def snapshot(self, now_ms: int) -> MarketSnapshot:
        """The market at ``now_ms`` with every quote's ranking rate set to its leg forecast."""
        table = self._table_of() if callable(self._table_of) else None
        if table is None:
            return self._quote_snapshot(now_ms)
        self.columns.observe(table, now_ms)
        return self._table_snapshot(table, now_ms)

    async def snapshot_yielding(self, now_ms: int, pause: Callable[[], Awaitable[None]] | None = None) -> MarketSnapshot:
        """``snapshot``, letting the event loop run other work between slices of the column fold
        (``ColumnObserver.observe_steps``): at 5,000 keys the fold is milliseconds of Decimal work,
        and the other loops (reconciliation, the feed) should not wait for all of it at once.
        ``pause`` is awaited between slices (default: a checkpoint; the application passes
        ``bot.pacing.GoesFirst.pause``: a running reconciliation finishes first)."""
        table = self._table_of() if callable(self._table_of) else None
        if table is None:
            return self._quote_snapshot(now_ms)
        between = pause or anyio.lowlevel.checkpoint
        for _ in self.columns.observe_steps(table, now_ms):
            await between()
        return self._table_snapshot(table, now_ms)

    def _quote_snapshot(self, now_ms: int) -> MarketSnapshot:
        self._last = None
        market_snapshot = take_snapshot(self.market, now_ms)
        self.forecaster.observe_quotes(market_snapshot.quotes, now_ms)
        return self.forecaster.forecast_snapshot(market_snapshot)

    def _table_snapshot(self, table: QuoteTable, now_ms: int) -> MarketSnapshot:
        if self._index_keys is not table.keys:
            self._index = {key: k for k, key in enumerate(table.keys)}
            self._index_keys = table.keys
        market = self.market
        probe = lambda: [table.keys[k] for k in np.flatnonzero(table.present)[:8].tolist()]
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
        settings, n = self.ranking.settings, self.ranking.n
        generation = getattr(self.market, "quote_generation", None)
        # The books are read lazily: once the market has moved on they are newer than the table,
        # and its spread bound no longer describes them.
        same_books = callable(generation) and generation() == table.generation
        screened = self._screen(snapshot, table, use_spread=same_books)
        if screened is None:
            return full_rank(snapshot, settings, n)
        order, bounds, margin, pairs = screened
        self.screened_passes += 1
        # Exact ranking of the best-bounded symbols first; more only while one left out could
        # still place: a pair's net never exceeds its symbol's bound, so once ``n`` results all
        # beat every left-out bound (by more than the float margin) the rest cannot enter.
        count = min(len(order), self.first_symbols or _first_count(pairs, n))
        while True:
            chosen = order[:count]
            result = full_rank(replace(snapshot, quotes=self._sub_quotes(snapshot, table, chosen)), settings, n)
            if count >= len(order) or (len(result) >= n and float(result[n - 1].expected_net) > bounds[count] + margin):
                self.candidate_symbols, self.screened_symbols = count, len(order)
                self.early_stops += count < len(order)
                return result
            count = min(len(order), count * 2)
            self.widenings += 1

    def _sub_quotes(self, snapshot: MarketSnapshot, table: QuoteTable, symbols: list[int]) -> dict:
        quotes, keys, n_s = snapshot.quotes, table.keys, table.n_symbols
        sub: dict[tuple[str, str], FundingQuote] = {}
        for k in sorted(v * n_s + s for s in symbols for v in range(table.n_venues)):  # the full snapshot's order
            if table.present[k]:
                quote = quotes.get(keys[k])
                if quote is not None:
                    sub[keys[k]] = quote
        return sub

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

    def _screen(self, snapshot: MarketSnapshot, table: QuoteTable, *,
                use_spread: bool) -> tuple[list[int], list[float], float, list[int]] | None:
        """Symbols whose bound could reach the entry minimum, best bound first, with those bounds
        (USD, floats), the float margin and each one's leg pairs (usable legs choose 2); None when
        nothing can be screened out."""
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
            level = self.columns.seen_level_f()
            rank = float(fp.level_weight) * level + float(fp.deviation_weight) * (hourly - level)
        ts = np.full(len(table.keys), table.ts_ms, dtype=np.int64)
        for k, quote in table.exact.items():
            ts[k] = quote.ts_ms if quote is not None else -1
        usable = table.present & ~np.isnan(hourly) & (ts >= params.min_ts_ms)
        shape = (table.n_venues, table.n_symbols)
        usable = usable.reshape(shape) & has_fee[:, None]
        rank = np.where(usable, rank.reshape(shape), 0.0)
        # A leg's cost term: the venue's fee floor, plus (with books) its spread as the scanner's
        # close look charges it (a lower bound of the spread keeps this a lower bound of the cost).
        c = np.broadcast_to(fee[:, None], shape)
        if use_spread and table.spread_lb is not None and not params.estimated:
            c = c + table.spread_lb.reshape(shape) * float(params.spread_factor)
        best_short = np.where(usable, rank - c, -np.inf).max(axis=0)
        best_long = np.where(usable, rank + c, np.inf).min(axis=0)
        legs = usable.sum(axis=0)
        score = best_short - best_long
        scale_f, slack_f = float(scale), float(slack)
        bound = np.where(score > 0, score * scale_f + slack_f, slack_f)
        magnitude = max(float(np.abs(rank).max(initial=0.0)), float(np.abs(self.columns.seen_level_f()).max(initial=0.0)),
                        float(np.abs(c).max(initial=0.0)))
        margin = SCREEN_MARGIN_USD + SCREEN_MARGIN_REL * scale_f * magnitude
        keep = np.flatnonzero((legs >= 2) & (bound >= float(minimum) - margin))
        order = keep[np.argsort(-bound[keep], kind="stable")]
        pairs = legs[order] * (legs[order] - 1) // 2
        return order.tolist(), bound[order].tolist() + [-np.inf], margin, pairs.tolist()


def _first_count(pairs: list[int], n: int) -> int:
    """How many of the best-bounded symbols the exact ranking starts from: the fewest whose leg
    pairs could fill the ``n`` places (at least one). At 500 symbols x 10 venues the best symbol
    alone settles the ranking in about nine passes of ten; a wider start builds exact quotes that
    cannot place. Any start gives the same result (``ranked`` widens while one could place)."""
    total = 0
    for count, symbol_pairs in enumerate(pairs, 1):
        total += symbol_pairs
        if total >= n:
            return count
    return max(1, len(pairs))


__all__ = ["MarketPass"]
