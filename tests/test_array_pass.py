"""The column path of a strategy pass (``bot.array_pass``, ``bot.forecast_columns``, ``QuoteTable``)
equals the per-quote path: same validated quotes, same forecast levels (Decimal, to the last digit),
same forecast quotes, and a screened ranking equal to the full ranking of the whole snapshot."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.array_pass import MarketPass
from bot.core.domain import ExecutionMode
from bot.forecast import ForecastParams, SpreadForecaster
from bot.incremental import RankingSource, RankSettings, full_rank
from bot.market_view import take_snapshot
from paper.sim_market import SimFaults, SimMarketConfig, SimulatedMarket
from paper.sim_venues import VENUE_PROFILES

START_MS = 1_772_323_200_000  # 2026-03-01T00:00:00Z
FAULTS = SimFaults(stale_quote_prob=0.02, stale_quote_seconds=240, absurd_quote_prob=0.01,
                   absurd_book_prob=0.01, outage_prob=0.01, outage_seconds=180, interval_change_prob=0.05)


def _market(faults: SimFaults = FAULTS, symbols: int = 30, venues: int = 6) -> SimulatedMarket:
    return SimulatedMarket(SimMarketConfig(venues=tuple(list(VENUE_PROFILES)[:venues]), symbol_count=symbols,
                                           faults=faults), 11, START_MS)


def _settings(minimum: Decimal | None, horizon_hours: int = 2000) -> RankSettings:
    # A long horizon: with half a day of history the forecasts are small, and only over a long
    # horizon do some pairs pay their costs (so the comparisons below see real rankings).
    return RankSettings(notional_usd=Decimal(1000), horizon_hours=Decimal(horizon_hours), max_quote_age_ms=180_000,
                        execution=ExecutionMode.TAKER, min_expected_net_usd=minimum)


def _pass_times() -> list[int]:
    """Pass instants: mostly one per market step, some twice in a step, some skipping steps."""
    times, t = [], START_MS
    for n in range(60):
        t += 60_000 if n % 7 else 150_000
        times.append(t)
        if n % 5 == 0:
            times.append(t + 20_000)  # a second pass before the market steps again
            t += 20_000
    return times


def _warm(forecaster: SpreadForecaster, market: SimulatedMarket) -> None:
    for s in market.history_settlements(12):
        if s.interval_hours > 0:
            forecaster.observe(s.venue, s.symbol, s.ts_ms, s.rate / s.interval_hours)


def test_quote_table_builds_the_markets_own_quotes() -> None:
    market = _market()
    irregular = 0
    for t in _pass_times()[:30]:
        market.advance_to(t)
        table = market.quote_table()
        assert table is not None
        irregular += len(table.exact)
        for k, key in enumerate(table.keys):
            assert table.quote(k) == market.quote(*key), key
            if table.regular[k]:
                assert table.hourly_decimal(k) == market.quote(*key).hourly_rate_or_none
                assert str(table.hourly_decimal(k)) == str(market.quote(*key).hourly_rate_or_none)
    assert irregular > 0  # the faults put keys on the exact path


@pytest.mark.parametrize("mode", ["mean_reverting", "persistent"])
def test_column_levels_and_forecast_quotes_equal_the_per_quote_path(mode: str) -> None:
    params = ForecastParams(mode=mode)  # type: ignore[arg-type]
    ref_market, col_market = _market(), _market()
    ref, col = SpreadForecaster(params), SpreadForecaster(params)
    _warm(ref, ref_market)
    _warm(col, col_market)
    market_pass = MarketPass(col_market, col, RankingSource(_settings(Decimal("0.5"))))
    for n, t in enumerate(_pass_times()):
        ref_market.advance_to(t)
        col_market.advance_to(t)
        market_snapshot = take_snapshot(ref_market, t)
        ref.observe_quotes(market_snapshot.quotes, t)
        expected = ref.forecast_snapshot(market_snapshot)
        snapshot = market_pass.snapshot(t)
        assert col.to_text() == ref.to_text(), f"pass {n}"
        for key in list(expected.quotes)[::7]:  # lazily, one key at a time
            assert snapshot.quotes.get(key) == expected.quotes[key]
        if n % 10 == 0:  # and the whole mapping
            assert dict(snapshot.quotes.items()) == dict(expected.quotes)


@pytest.mark.parametrize("first_symbols", [None, 1])
@pytest.mark.parametrize("minimum", [Decimal(-5), Decimal("0.05"), Decimal("0.5"), Decimal(1), None])
def test_screened_ranking_equals_the_full_ranking(minimum: Decimal | None, first_symbols: int | None) -> None:
    settings = _settings(minimum)
    ranked_any = 0
    symbols = 40 if minimum == Decimal("0.05") else 30
    ref_market, col_market = _market(symbols=symbols), _market(symbols=symbols)
    ref, col = SpreadForecaster(), SpreadForecaster()
    _warm(ref, ref_market)
    _warm(col, col_market)
    # first_symbols=1: the exact ranking starts from the best-bounded symbol alone and must widen
    market_pass = MarketPass(col_market, col, RankingSource(settings, n=5), first_symbols=first_symbols)
    for n, t in enumerate(_pass_times()):
        ref_market.advance_to(t)
        col_market.advance_to(t)
        market_snapshot = take_snapshot(ref_market, t)
        ref.observe_quotes(market_snapshot.quotes, t)
        expected = full_rank(ref.forecast_snapshot(market_snapshot), settings, 5)
        got = market_pass.ranked(market_pass.snapshot(t))
        assert got == expected, f"pass {n}"
        ranked_any += bool(expected)
    assert ranked_any > 10 or minimum == 1  # the comparison saw real candidates
    if minimum is None or minimum <= 0:
        # every bound is at least the scanner's (positive) slack: nothing can be screened out
        assert market_pass.screened_passes == 0
    else:
        assert market_pass.screened_passes == len(_pass_times())
    if minimum == Decimal("0.05"):  # many symbols pass: the exact ranking stopped early, provably
        assert market_pass.early_stops > 10


def test_screen_keeps_few_symbols_when_few_can_pay() -> None:
    market = SimulatedMarket(SimMarketConfig(venues=tuple(list(VENUE_PROFILES)[:10]), symbol_count=200), 7, START_MS)
    forecaster = SpreadForecaster()
    market_pass = MarketPass(market, forecaster, RankingSource(_settings(Decimal("0.5"), 72)))
    market.advance_to(START_MS + 60_000)
    snapshot = market_pass.snapshot(START_MS + 60_000)
    market_pass.ranked(snapshot)
    assert market_pass.screened_passes == 1
    assert market_pass.candidate_symbols < 60  # of 200: the rest are never built
    assert snapshot.quotes.fetched <= market_pass.candidate_symbols * 10  # type: ignore[attr-defined]


def test_markets_without_a_table_take_the_per_quote_path() -> None:
    market = SimulatedMarket(SimMarketConfig(spot_venues=("sim-hourly",)), 3, START_MS)
    assert market.quote_table() is None
    forecaster = SpreadForecaster()
    market_pass = MarketPass(market, forecaster, RankingSource(_settings(Decimal("0.5"))))
    market.advance_to(START_MS + 60_000)
    snapshot = market_pass.snapshot(START_MS + 60_000)
    assert isinstance(snapshot.quotes, dict)
    assert market_pass.ranked(snapshot) == full_rank(snapshot, _settings(Decimal("0.5")), 5)


@pytest.mark.parametrize("hours", [0, 1, 30])
def test_column_warm_up_equals_observing_every_settlement(hours: int) -> None:
    from bot.forecast_columns import warm_up

    market = SimulatedMarket(SimMarketConfig(venues=tuple(list(VENUE_PROFILES)[:6]), symbol_count=25), 5,
                             START_MS + 7 * 1_800_000)
    ref, col = SpreadForecaster(), SpreadForecaster()
    settlements = market.history_settlements(hours)
    for s in settlements:
        ref.observe(s.venue, s.symbol, s.ts_ms, s.rate / s.interval_hours)
    assert warm_up(col, market, hours) == len(settlements)
    assert col.to_text() == ref.to_text()
    assert (hours == 0) == (not settlements)


@pytest.mark.parametrize("slice_keys", [1, 7, 10_000])
def test_the_fold_in_slices_equals_the_whole_fold_and_is_consistent_at_every_pause(slice_keys: int) -> None:
    whole_market, sliced_market = _market(), _market()
    whole, sliced = SpreadForecaster(), SpreadForecaster()
    _warm(whole, whole_market)
    _warm(sliced, sliced_market)
    whole_pass = MarketPass(whole_market, whole, RankingSource(_settings(Decimal("0.5"))))
    sliced_pass = MarketPass(sliced_market, sliced, RankingSource(_settings(Decimal("0.5"))))
    pauses = 0
    for t in _pass_times()[:25]:
        whole_market.advance_to(t)
        sliced_market.advance_to(t)
        whole_pass.snapshot(t)
        table = sliced_market.quote_table()
        assert table is not None
        before = {key: (leg.level, leg.rate, leg.ts_ms, leg.seen_ms) for key, leg in sliced.legs.items()}
        half_life = sliced.params.level_half_life_hours
        for _ in sliced_pass.columns.observe_steps(table, t, slice_keys):
            pauses += 1
            # at a pause each leg is either observed at t or untouched, and its text line (the
            # level as of its latest observation) says so
            for line in sliced.to_text().splitlines()[::17]:
                venue, symbol, level, rate, ts, _hours = line.split("|")
                leg = sliced.legs[(venue, symbol)]
                assert (Decimal(level), int(ts)) == (leg.seen_level(half_life), leg.seen_ms)
                assert int(ts) == t or (leg.level, leg.rate, leg.ts_ms, leg.seen_ms) == before[(venue, symbol)]
        assert sliced.to_text() == whole.to_text()
    assert (pauses > 0) == (slice_keys < 30 * 6)


def test_text_parts_join_to_the_text() -> None:
    forecaster = SpreadForecaster()
    _warm(forecaster, _market())
    assert len(forecaster.legs) > 100
    parts = list(forecaster.text_parts(legs_per_part=50))
    assert len(parts) == -(-len(forecaster.legs) // 50)
    assert "\n".join(parts) == forecaster.to_text()
    assert list(SpreadForecaster().text_parts()) == [] and SpreadForecaster().to_text() == ""


def test_first_count_is_the_fewest_best_symbols_whose_pairs_can_fill_the_places() -> None:
    from bot.array_pass import _first_count

    assert _first_count([45, 45, 45], 5) == 1  # ten venues: one symbol has 45 pairs
    assert _first_count([1, 3, 3, 3], 5) == 3  # two and three venues: 1 + 3 + 3 >= 5
    assert _first_count([0, 1, 1], 5) == 3  # never enough: all of them
    assert _first_count([], 5) == 1


def test_the_exact_ranking_starts_from_few_symbols_and_widens_only_when_needed() -> None:
    # 10 venues: the best-bounded symbol alone has 45 pairs. The exact ranking starts there (not
    # from ten symbols) and widens (doubling) while a symbol left out could still place; the
    # result is the full ranking of the per-quote path every pass.
    settings = _settings(Decimal("0.5"))
    ref_market, col_market = _market(symbols=200, venues=10), _market(symbols=200, venues=10)
    ref, col = SpreadForecaster(), SpreadForecaster()
    _warm(ref, ref_market)
    _warm(col, col_market)
    market_pass = MarketPass(col_market, col, RankingSource(settings, n=5))
    candidates = []
    for n, t in enumerate(_pass_times()[:20]):
        ref_market.advance_to(t)
        col_market.advance_to(t)
        market_snapshot = take_snapshot(ref_market, t)
        ref.observe_quotes(market_snapshot.quotes, t)
        expected = full_rank(ref.forecast_snapshot(market_snapshot), settings, 5)
        snapshot = market_pass.snapshot(t)
        assert market_pass.ranked(snapshot) == expected, f"pass {n}"
        assert market_pass.screened_symbols > 10  # many symbols could reach the minimum ...
        candidates.append(market_pass.candidate_symbols)
        # ... and exact quotes are built for the symbols ranked exactly only
        assert snapshot.quotes.fetched <= market_pass.candidate_symbols * 10  # type: ignore[attr-defined]
    assert min(candidates) == 1 and sum(candidates) / len(candidates) < 8
    assert market_pass.widenings > 0  # some passes needed more than the first symbol
