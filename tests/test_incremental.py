"""bot/incremental.py: per-symbol re-ranking equals a full ranking, update after update."""

from __future__ import annotations

import dataclasses
import random
from decimal import Decimal

import pytest

from bot.core.domain import MarketSnapshot
from bot.incremental import IncrementalRanker, RankSettings, changed_keys, full_rank
from bot.market_view import take_snapshot
from paper.sim_market import SimMarketConfig, SimulatedMarket
from paper.sim_venues import VENUE_PROFILES

START_MS = 1_772_323_200_000  # 2026-03-01T00:00:00Z
SETTINGS = RankSettings(notional_usd=Decimal(1000), horizon_hours=Decimal(72), max_quote_age_ms=180_000)


def _market(symbols: int = 40, venues: int = 6) -> SimulatedMarket:
    config = SimMarketConfig(venues=tuple(list(VENUE_PROFILES)[:venues]), symbol_count=symbols)
    market = SimulatedMarket(config, seed=11, start_ts_ms=START_MS)
    market.advance_to(START_MS + 60_000)
    return market


def _with_quotes(snapshot: MarketSnapshot, quotes: dict, now_ms: int | None = None) -> MarketSnapshot:
    return dataclasses.replace(snapshot, quotes=quotes, now_ts_ms=snapshot.now_ts_ms if now_ms is None else now_ms)


def test_rebuild_equals_a_full_ranking() -> None:
    snapshot = take_snapshot(_market(), START_MS + 60_000)
    ranker = IncrementalRanker(SETTINGS, per_symbol=5)
    ranker.rebuild(snapshot)
    full = full_rank(snapshot, SETTINGS, 5)
    assert full, "the simulated market offers opportunities"
    assert ranker.top(snapshot, 5) == full
    assert ranker.cross_check(snapshot, 5) == []
    assert ranker.reranked < ranker.symbols, "start-up ranks only the symbols whose bound can reach the top"


def test_single_key_updates_re_rank_one_symbol_and_stay_equal_to_a_full_ranking() -> None:
    rng = random.Random(5)
    snapshot = take_snapshot(_market(), START_MS + 60_000)
    ranker = IncrementalRanker(SETTINGS, per_symbol=5)
    ranker.rebuild(snapshot)
    keys = sorted(snapshot.quotes)
    for _ in range(120):
        venue, symbol = key = rng.choice(keys)
        quotes = dict(snapshot.quotes)
        action = rng.random()
        if action < 0.1:
            quotes.pop(key, None)  # the venue stopped quoting it
        else:
            old = snapshot.quotes.get(key) or quotes[rng.choice(keys)]
            if old.symbol != symbol or old.venue != venue:
                continue
            shift = Decimal(rng.randint(-400, 400)) * Decimal("0.000001")
            quotes[key] = dataclasses.replace(old, rate_per_interval=old.rate_per_interval + shift)
        new = _with_quotes(snapshot, quotes)
        changed = changed_keys(dict(snapshot.quotes), dict(new.quotes))
        assert changed == {key}
        before = ranker.reranked
        assert ranker.apply(new, changed) == {symbol}
        assert ranker.reranked == before, "a change only files the symbol under its bound"
        pending = ranker.pending_symbols
        assert symbol in pending or key not in quotes  # (a symbol left with one quote has no pair)
        snapshot = new
        assert ranker.top(snapshot, 5) == full_rank(snapshot, SETTINGS, 5)
        # only pending (changed, not yet ranked) symbols are ranked, and only those that could reach the top
        assert ranker.reranked - before <= len(pending)
        assert ranker.reranked - before < 25, "most changed symbols stay pending below the top's bound"


def test_results_expire_when_their_quotes_turn_stale() -> None:
    snapshot = take_snapshot(_market(symbols=20, venues=4), START_MS + 60_000)
    ranker = IncrementalRanker(SETTINGS, per_symbol=3)
    ranker.rebuild(snapshot)
    best = ranker.top(snapshot, 1)[0]
    # Every quote of the best symbol but one is now old; time moves past their freshness.
    quotes = {k: (dataclasses.replace(q, ts_ms=q.ts_ms - 10_000_000) if k[1] == best.symbol and k[0] == best.long_venue
                  else dataclasses.replace(q, ts_ms=START_MS + 400_000)) for k, q in snapshot.quotes.items()}
    later = _with_quotes(snapshot, quotes, START_MS + 400_000)
    changed = changed_keys(dict(snapshot.quotes), dict(later.quotes))
    ranker.apply(later, {k for k in changed if k[1] != best.symbol})
    books_fresh = dataclasses.replace(later)  # the books are stale too: costs from books are then skipped
    top = ranker.top(books_fresh, 3)
    assert top == full_rank(books_fresh, SETTINGS, 3)
    assert all(not (o.symbol == best.symbol and o.long_venue == best.long_venue) for o in top)


def test_top_refuses_more_than_the_per_symbol_depth() -> None:
    ranker = IncrementalRanker(SETTINGS, per_symbol=2)
    with pytest.raises(ValueError):
        ranker.top(MarketSnapshot(now_ts_ms=START_MS), 3)


def test_ranking_source_is_incremental_when_quiet_and_full_when_busy() -> None:
    rng = random.Random(9)
    market = _market(symbols=60, venues=5)
    snapshot = take_snapshot(market, START_MS + 60_000)
    source = __import__("bot.incremental", fromlist=["RankingSource"]).RankingSource(SETTINGS, 5, cross_check_every=5)
    assert source.ranked(snapshot) == full_rank(snapshot, SETTINGS, 5)  # first pass: nothing to compare with
    keys = sorted(snapshot.quotes)
    for _ in range(25):
        quotes = dict(snapshot.quotes)
        for key in rng.sample(keys, 2):  # a quiet feed: two keys move between passes
            old = quotes[key]
            quotes[key] = dataclasses.replace(old, rate_per_interval=old.rate_per_interval * Decimal("1.5"))
        snapshot = _with_quotes(snapshot, quotes)
        assert source.ranked(snapshot) == full_rank(snapshot, SETTINGS, 5)
    assert source.incremental_passes >= 24 and source.cross_checks >= 4 and source.cross_check_failures == 0
    market.advance_to(START_MS + 120_000)  # the simulated market moves every key: a full ranking
    busy = take_snapshot(market, START_MS + 120_000)
    full_before = source.full_passes
    assert source.ranked(busy) == full_rank(busy, SETTINGS, 5)
    assert source.full_passes == full_before + 1


@pytest.mark.parametrize("floor_rank", [0, 2, 6])
def test_a_net_floor_ranks_only_what_can_reach_it_and_equals_a_full_ranking_with_it(floor_rank: int) -> None:
    """With the strategy's entry minimum as a floor, changed symbols whose bound is below it are
    never ranked, and the result is still the full ranking's (floored) first n."""
    rng = random.Random(floor_rank)
    snapshot = take_snapshot(_market(), START_MS + 60_000)
    unfloored = full_rank(snapshot, SETTINGS, 8)
    assert len(unfloored) == 8
    floor = unfloored[floor_rank].expected_net if floor_rank < 8 else Decimal(10**9)
    settings = dataclasses.replace(SETTINGS, min_expected_net_usd=floor)
    ranker = IncrementalRanker(settings, per_symbol=5)
    ranker.rebuild(snapshot)
    assert ranker.top(snapshot, 5) == full_rank(snapshot, settings, 5) == [o for o in unfloored[:5] if o.expected_net >= floor]
    keys = sorted(snapshot.quotes)
    for _ in range(60):
        key = rng.choice(keys)
        quotes = dict(snapshot.quotes)
        old = quotes[key]
        quotes[key] = dataclasses.replace(
            old, rate_per_interval=old.rate_per_interval + Decimal(rng.randint(-400, 400)) * Decimal("0.000001"))
        snapshot = _with_quotes(snapshot, quotes)
        ranker.apply(snapshot, {key})
        assert ranker.top(snapshot, 5) == full_rank(snapshot, settings, 5)
        assert all(o.expected_net >= floor for o in ranker.top(snapshot, 5))
    assert ranker.reranked < 40, "symbols that cannot reach the floor are never ranked"


def test_with_the_spread_forecast_a_quiet_feed_takes_the_incremental_path() -> None:
    """Forecast quotes keep their identity while the source quote and the leg's level do not
    change, so only the keys a feed moved are re-forecast and re-ranked (and the result still
    equals a full ranking of the forecast snapshot)."""
    from bot.forecast import SpreadForecaster
    from bot.incremental import RankingSource

    rng = random.Random(3)
    snapshot = take_snapshot(_market(symbols=60, venues=5), START_MS + 60_000)
    forecaster = SpreadForecaster()
    source = RankingSource(SETTINGS, 5, cross_check_every=5)
    forecaster.observe_quotes(snapshot.quotes, snapshot.now_ts_ms)
    previous = forecaster.forecast_snapshot(snapshot)
    assert source.ranked(previous) == full_rank(previous, SETTINGS, 5)
    keys = sorted(snapshot.quotes)
    for n in range(1, 21):
        quotes = dict(snapshot.quotes)
        moved = set(rng.sample(keys, 2))
        for key in moved:
            old = quotes[key]
            quotes[key] = dataclasses.replace(old, rate_per_interval=old.rate_per_interval * Decimal("1.5"))
        snapshot = _with_quotes(snapshot, quotes, START_MS + 60_000 + n * 1_000)
        forecaster.observe_quotes(snapshot.quotes, snapshot.now_ts_ms)
        forecast = forecaster.forecast_snapshot(snapshot)
        assert changed_keys(dict(previous.quotes), dict(forecast.quotes)) == moved
        assert source.ranked(forecast) == full_rank(forecast, SETTINGS, 5)
        previous = forecast
    assert source.incremental_passes >= 19 and source.cross_check_failures == 0
