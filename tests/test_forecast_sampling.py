"""The level samples each leg's rate at most every ``ForecastParams.level_sample_ms``
(``bot.forecast.LegLevel``): observations in between only move the latest observation time, and
the held stretch is folded on read (``seen_level``). A strategy pass over thousands of legs then
does Decimal work only for the legs due a sample (``bot.forecast_columns.ColumnObserver``)."""

from __future__ import annotations

import random
from decimal import Decimal

from bot.array_pass import MarketPass
from bot.forecast import MS_PER_HOUR, ForecastParams, LegLevel, SpreadForecaster, level_weight
from bot.incremental import RankingSource, RankSettings
from paper.sim_market import SimMarketConfig, SimulatedMarket
from paper.sim_venues import VENUE_PROFILES

START_MS = 1_772_323_200_000  # 2026-03-01T00:00:00Z
MINUTE_MS = 60_000
HALF_LIFE = Decimal(504)


def test_a_leg_is_sampled_at_most_every_sample_interval() -> None:
    sample_ms = 15 * MINUTE_MS
    leg = LegLevel()
    samples = []
    for minute in range(121):
        leg.observe(START_MS + minute * MINUTE_MS, Decimal(minute) / 10**7, HALF_LIFE, sample_ms)
        samples.append(leg.ts_ms)
        assert leg.seen_ms == START_MS + minute * MINUTE_MS
    # a new sample (and a fold) only every 15 minutes; the rate is the one observed then
    assert sorted(set(samples)) == [START_MS + m * MINUTE_MS for m in range(0, 121, 15)]
    assert leg.rate == Decimal(120) / 10**7


def test_a_held_rate_folds_on_read_as_observing_it_every_minute_would() -> None:
    # a constant rate: sampling changes nothing but the number of Decimal steps (the level is a
    # closed form in time), so the level as of the latest observation equals the per-minute fold
    # (to the precision of the weights, which are floats fixed as Decimals: ~1e-12 relative)
    sampled, every = LegLevel(), LegLevel()
    rate = Decimal("0.0000125")
    for minute in range(0, 600, 1):
        ts_ms = START_MS + minute * MINUTE_MS
        sampled.observe(ts_ms, rate, HALF_LIFE, 15 * MINUTE_MS)
        every.observe(ts_ms, rate, HALF_LIFE, 0)
        expected = every.seen_level(HALF_LIFE)
        assert abs(sampled.seen_level(HALF_LIFE) - expected) <= Decimal("1e-10") * expected
    assert every.seen_level(HALF_LIFE) == every.level > 0  # sample_ms=0: every observation folds
    assert sampled.level < sampled.seen_level(HALF_LIFE)  # the stretch since the last sample is held


def test_a_moving_rate_sampled_stays_within_one_sample_step_of_the_per_minute_level() -> None:
    rng = random.Random(5)
    sampled, every = LegLevel(), LegLevel()
    biggest = Decimal(0)
    for minute in range(24 * 60):
        rate = Decimal(rng.randint(-100_000, 100_000)) / 10**10
        biggest = max(biggest, abs(rate))
        sampled.observe(START_MS + minute * MINUTE_MS, rate, HALF_LIFE, 15 * MINUTE_MS)
        every.observe(START_MS + minute * MINUTE_MS, rate, HALF_LIFE, 0)
    # both are weighted averages of the same rates; they differ only in which minute's rate stands
    # for each 15-minute step, so by at most the weight of the whole day times the rates' range
    bound = level_weight(24 * MS_PER_HOUR, HALF_LIFE) * 2 * biggest
    difference = abs(sampled.seen_level(HALF_LIFE) - every.seen_level(HALF_LIFE))
    assert 0 < difference <= bound, (difference, bound)


def test_text_round_trip_keeps_the_level_as_of_the_latest_observation() -> None:
    forecaster = SpreadForecaster()
    for minute in range(40):
        forecaster.observe("v", "BTC", START_MS + minute * MINUTE_MS, Decimal(minute % 7) / 10**6)
    restored = SpreadForecaster()
    assert restored.load_text(forecaster.to_text()) == 1
    assert restored.to_text() == forecaster.to_text()
    assert restored.legs[("v", "BTC")].ts_ms == START_MS + 39 * MINUTE_MS  # read back as a sample then


def test_a_column_pass_does_decimal_work_only_for_the_legs_due_a_sample() -> None:
    venues, symbols = 10, 50
    market = SimulatedMarket(SimMarketConfig(venues=tuple(list(VENUE_PROFILES)[:venues]), symbol_count=symbols),
                             3, START_MS)
    forecaster = SpreadForecaster(ForecastParams())
    market_pass = MarketPass(market, forecaster, RankingSource(RankSettings(
        notional_usd=Decimal(1000), horizon_hours=Decimal(336), max_quote_age_ms=180_000)))
    folded = []
    for minute in range(1, 47):
        t = START_MS + minute * MINUTE_MS
        market.advance_to(t)
        before = market_pass.columns.folded
        market_pass.snapshot(t)
        folded.append(market_pass.columns.folded - before)
    # the first observation sets each leg's rate (outside the column loop); from then on, a
    # pass every minute samples the legs every 15 minutes, all of them at once, none in between
    assert [n for n, count in enumerate(folded, 1) if count] == [16, 31, 46]
    assert all(count >= venues * symbols * 9 // 10 for count in folded if count)
