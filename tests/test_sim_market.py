"""paper/sim_market.py, paper/sim_venues.py, paper/calibration.py: the simulated market."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from datetime import datetime, timezone
from decimal import Decimal
from statistics import NormalDist, pstdev

import pytest

from adapters.validation import validate_book, validate_quote
from bot.core.domain import FeeSchedule
from bot.core.history import load_funding_history
from paper.calibration import (
    PIN_RATE_PER_HOUR,
    REAL_CROSS_VENUE,
    REAL_FUNDING_STATS,
    cross_venue_stats,
    fit_funding_model,
    funding_stats,
    stats_from_history,
)
from paper.sim_market import SimFaults, SimMarketConfig, SimulatedMarket
from paper.sim_venues import DEFAULT_VENUES, VENUE_PROFILES, interval_for, symbol_universe
from tests.shared_data import shared_data_dir

HOUR_MS = 3_600_000
START = int(datetime(2026, 3, 1, tzinfo=timezone.utc).timestamp()) * 1000  # a Sunday 00:00 UTC


def market(seed: int = 1, **config) -> SimulatedMarket:
    return SimulatedMarket(SimMarketConfig(**config), seed=seed, start_ts_ms=START)


# ----------------------------------------------------------------------------- config & profiles
@pytest.mark.parametrize(
    "kwargs",
    [
        {"venues": ("binance",)},
        {"venues": ()},
        {"venues": ("sim-8h", "sim-8h")},
        {"step_seconds": 7},
        {"step_seconds": 0},
        {"symbol_count": 0},
        {"symbol_count": 1000},
        {"symbols": ("BTC", "BTC")},
    ],
)
def test_config_rejects_nonsense(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SimMarketConfig(**kwargs)


def test_faults_reject_bad_probabilities() -> None:
    with pytest.raises(ValueError):
        SimFaults(absurd_quote_prob=1.5)
    with pytest.raises(ValueError):
        SimFaults(outage_seconds=0)
    assert not SimFaults().enabled and SimFaults(outage_prob=0.1).enabled


def test_default_venues_mirror_real_ones() -> None:
    m = market()
    assert m.venues() == ["sim-hourly", "sim-8h", "sim-mixed"] == list(DEFAULT_VENUES)
    assert m.fee_schedules() == {
        "sim-hourly": FeeSchedule(Decimal("1.5"), Decimal("4.5")),
        "sim-8h": FeeSchedule(Decimal("2"), Decimal("5")),
        "sim-mixed": FeeSchedule(Decimal("2"), Decimal("5.5")),
    }
    assert m.symbols() == ["BTC", "ETH", "SOL", "XRP", "DOGE", "BNB", "AVAX", "LINK", "SUI", "LTC", "ARB", "OP"]
    assert {i.funding_interval_hours for i in m.instruments() if i.venue == "sim-hourly"} == {Decimal(1)}
    assert {i.funding_interval_hours for i in m.instruments() if i.venue == "sim-8h"} == {Decimal(8)}
    assert len(VENUE_PROFILES) >= 8 and all(name.startswith("sim-") for name in VENUE_PROFILES)
    assert VENUE_PROFILES["sim-paradex-like"].fees == FeeSchedule(Decimal("0.3"), Decimal("2"))
    assert VENUE_PROFILES["sim-lighter-like"].fees == FeeSchedule(Decimal("0"), Decimal("0"))


def test_mixed_venue_picks_4h_or_8h_per_symbol_deterministically() -> None:
    mixed = VENUE_PROFILES["sim-mixed"]
    intervals = {t.symbol: interval_for(mixed, t.symbol) for t in symbol_universe(60)}
    assert set(intervals.values()) == {4, 8}
    assert intervals["BTC"] == intervals["ETH"] == 8
    assert intervals == {t.symbol: interval_for(mixed, t.symbol) for t in symbol_universe(60)}
    m = market(symbol_count=60)
    assert {i.symbol: int(i.funding_interval_hours) for i in m.instruments() if i.venue == "sim-mixed"} == intervals


def test_large_universe_uses_generated_names_and_eight_venues() -> None:
    m = market(symbol_count=500, venues=tuple(VENUE_PROFILES)[:8], step_seconds=3600)
    symbols = m.symbols()
    assert len(symbols) == 500 and len(set(symbols)) == 500
    assert symbols[:2] == ["BTC", "ETH"] and symbols[-1] == "SIM479"
    m.advance_to(START + HOUR_MS)
    assert len(m.quotes()) == 8 * 500


def test_explicit_symbols_replace_the_count() -> None:
    m = market(symbols=("ETH", "MYCOIN"))
    assert m.symbols() == ["ETH", "MYCOIN"]
    assert m.quote("sim-8h", "MYCOIN") is not None
    with pytest.raises(KeyError):
        m.quote("sim-8h", "BTC")
    with pytest.raises(KeyError):
        m.instrument("binance", "ETH")


# ----------------------------------------------------------------------------- determinism
def _observe(m: SimulatedMarket, steps: list[int]) -> list:
    seen = []
    for ts in steps:
        seen.append(m.advance_to(ts))
        seen.append(m.quotes())
        seen.append(m.book("sim-8h", "BTC"))
    seen.append(m.books())
    return seen


def test_same_seed_and_calls_give_identical_output() -> None:
    steps = [START + i * 1_800_000 for i in range(1, 40)]
    assert _observe(market(seed=42), steps) == _observe(market(seed=42), steps)
    assert _observe(market(seed=42), steps) != _observe(market(seed=43), steps)


def test_reading_books_and_quotes_does_not_change_the_path() -> None:
    quiet, busy = market(seed=5), market(seed=5)
    for i in range(1, 30):
        busy.advance_to(START + i * 600_000)
        busy.books()
        busy.quotes()
    quiet.advance_to(START + 29 * 600_000)
    assert quiet.quotes() == busy.quotes()
    assert quiet.books() == busy.books()


def test_advance_in_one_call_or_many_is_the_same() -> None:
    one, many = market(seed=9), market(seed=9)
    settled_once = one.advance_to(START + 9 * HOUR_MS)
    settled_many = [s for i in range(1, 10) for s in many.advance_to(START + i * HOUR_MS - 17)]
    settled_many += many.advance_to(START + 9 * HOUR_MS)
    assert settled_once == settled_many
    assert one.quotes() == many.quotes()


def test_uses_its_own_random_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    expected = _observe(market(seed=3), [START + HOUR_MS])
    random.seed(12345)  # the global generator must not matter
    assert _observe(market(seed=3), [START + HOUR_MS]) == expected


# ----------------------------------------------------------------------------- time & settlement
def test_settlements_at_utc_aligned_boundaries_in_time_order() -> None:
    start = START + 1_800_000  # 00:30
    m = SimulatedMarket(SimMarketConfig(), seed=1, start_ts_ms=start)
    settled = m.advance_to(START + 8 * HOUR_MS)  # up to 08:00 inclusive
    assert [s.ts_ms for s in settled] == sorted(s.ts_ms for s in settled)
    by_venue = defaultdict(set)
    for s in settled:
        by_venue[s.venue].add(s.ts_ms)
    assert by_venue["sim-hourly"] == {START + h * HOUR_MS for h in range(1, 9)}
    assert by_venue["sim-8h"] == {START + 8 * HOUR_MS}
    four_hourly = [i.symbol for i in m.instruments() if i.venue == "sim-mixed" and i.funding_interval_hours == 4]
    assert four_hourly, "the default universe has 4h symbols on sim-mixed"
    assert {s.ts_ms for s in settled if s.venue == "sim-mixed" and s.symbol == four_hourly[0]} == {
        START + 4 * HOUR_MS, START + 8 * HOUR_MS}
    assert sum(1 for s in settled if s.venue == "sim-hourly") == 8 * 12
    assert m.now_ts_ms == START + 8 * HOUR_MS
    assert m.advance_to(START + 8 * HOUR_MS) == []  # nothing crossed twice


def test_settled_rate_is_the_predicted_rate_published_at_the_boundary() -> None:
    m = market()
    settled = {(s.venue, s.symbol): s for s in m.advance_to(START + 8 * HOUR_MS)}
    for q in m.quotes():
        if q.venue == "sim-8h":
            s = settled[(q.venue, q.symbol)]
            assert (s.rate, s.interval_hours, s.mark_price) == (q.rate_per_interval, q.interval_hours, q.mark_price)
            assert q.next_funding_ts_ms == START + 16 * HOUR_MS


def test_time_cannot_go_back() -> None:
    m = market()
    m.advance_to(START + HOUR_MS)
    with pytest.raises(ValueError):
        m.advance_to(START)


# ----------------------------------------------------------------------------- quotes & books
def test_quotes_are_quantized_aligned_and_valid() -> None:
    m = market(symbol_count=40)
    m.advance_to(START + 5 * HOUR_MS + 120_000)
    quotes = m.quotes()
    assert len(quotes) == 3 * 40
    for q in quotes:
        inst = m.instrument(q.venue, q.symbol)
        assert validate_quote(q) is q
        assert q.interval_hours == inst.funding_interval_hours
        interval_ms = int(q.interval_hours) * HOUR_MS
        assert q.next_funding_ts_ms % interval_ms == 0 and 0 < q.next_funding_ts_ms - q.ts_ms <= interval_ms
        assert q.ts_ms == START + 5 * HOUR_MS + 120_000
        assert q.mark_price % inst.tick_size == 0
        decimals = VENUE_PROFILES[q.venue].rate_decimals
        assert q.rate_per_interval == q.rate_per_interval.quantize(Decimal(1).scaleb(-decimals))
        assert isinstance(q.rate_per_interval, Decimal) and isinstance(q.mark_price, Decimal)
    assert m.rejected_quote_count == 0


def test_books_are_sorted_on_tick_and_lot_and_deeper_for_big_symbols() -> None:
    m = market(symbol_count=21)
    m.advance_to(START + 3 * HOUR_MS)
    books = m.books()
    assert len(books) == 3 * 21 and m.rejected_book_count == 0
    for b in books:
        inst = m.instrument(b.venue, b.symbol)
        assert validate_book(b) is b
        assert 10 <= len(b.asks) <= 20 and 10 <= len(b.bids) <= 20
        assert all(level.price % inst.tick_size == 0 and level.size_base % inst.lot_size_base == 0
                   for level in b.bids + b.asks)
        mark = m.quote(b.venue, b.symbol).mark_price
        assert b.best_bid <= mark + inst.tick_size and b.best_ask >= mark - inst.tick_size
        spread_bps = (b.best_ask - b.best_bid) / b.mid * 10_000
        assert spread_bps < 30

    def depth_usd(venue: str, symbol: str) -> Decimal:
        b = m.book(venue, symbol)
        return sum((lvl.price * lvl.size_base for lvl in b.bids), Decimal(0))

    assert depth_usd("sim-8h", "BTC") > depth_usd("sim-hourly", "BTC")  # depth scale 1.0 vs 0.6
    assert depth_usd("sim-8h", "BTC") > 20 * depth_usd("sim-8h", "ORDI")
    assert m.book("sim-8h", "BTC") is m.book("sim-8h", "BTC")  # cached within a step


def test_marks_differ_by_a_small_basis_and_prices_walk() -> None:
    m = market(step_seconds=3600)
    marks_by_hour = []
    for h in range(1, 24 * 60):
        m.advance_to(START + h * HOUR_MS)
        quotes = {(q.venue, q.symbol): q.mark_price for q in m.quotes()}
        btc = [quotes[(v, "BTC")] for v in m.venues()]
        assert max(btc) / min(btc) - 1 < Decimal("0.005")
        marks_by_hour.append(float(quotes[("sim-8h", "BTC")]))
    assert len({quotes[(v, "ETH")] for v in m.venues()}) > 1
    returns = [math.log(b / a) for a, b in zip(marks_by_hour, marks_by_hour[1:])]
    hourly_vol = 0.50 / math.sqrt(365 * 24)  # BTC's annual vol in the profile
    assert 0.7 * hourly_vol < pstdev(returns) < 1.3 * hourly_vol


def test_snapshot_collects_everything() -> None:
    m = market()
    m.advance_to(START + HOUR_MS)
    snap = m.snapshot()
    assert snap.now_ts_ms == START + HOUR_MS
    assert len(snap.quotes) == len(snap.books) == len(snap.instruments) == 36
    assert snap.fees == m.fee_schedules()
    assert m.snapshot(with_books=False).books == {}


# ----------------------------------------------------------------------------- faults
def test_absurd_quotes_are_produced_raw_and_rejected_once_per_step() -> None:
    m = market(faults=SimFaults(absurd_quote_prob=1.0))
    m.advance_to(START + 60_000)
    raw = m.raw_quotes()
    assert len(raw) == 36
    assert all(not q.rate_per_interval.is_finite() or abs(q.rate_per_interval) > 1 or q.mark_price <= 0
               or q.interval_hours == 0 for q in raw)
    assert m.quotes() == [] and m.quote("sim-8h", "BTC") is None
    m.quotes()
    assert m.rejected_quote_count == 36  # counted once per step, however often asked
    m.advance_to(START + 120_000)
    m.quotes()
    assert m.rejected_quote_count == 72


def test_some_absurd_quotes_leave_the_rest_valid() -> None:
    m = market(symbol_count=21, faults=SimFaults(absurd_quote_prob=0.2, absurd_book_prob=0.2))
    m.advance_to(START + 60_000)
    good, raw = m.quotes(), m.raw_quotes()
    assert 0 < len(good) < len(raw) == 63
    assert m.rejected_quote_count == len(raw) - len(good)
    assert all(validate_quote(q) is q for q in good)
    books = m.books()
    assert 0 < len(books) < 63 and m.rejected_book_count == 63 - len(books)
    assert len(m.raw_books()) == 63


def test_faults_do_not_change_the_market_path() -> None:
    faults = SimFaults(stale_quote_prob=0.3, absurd_quote_prob=0.3, absurd_book_prob=0.3, outage_prob=0.1)
    clean, faulty = market(seed=8), market(seed=8, faults=faults)
    clean_settled, faulty_settled = [], []
    for i in range(1, 21):
        clean_settled += clean.advance_to(START + i * 1_800_000)
        faulty_settled += faulty.advance_to(START + i * 1_800_000)
        faulty.quotes()
        faulty.books()
    assert faulty.rejected_quote_count > 0 and faulty.rejected_book_count > 0
    assert len(clean_settled) > 100 and faulty_settled == clean_settled


def test_stale_quotes_keep_their_old_values_and_timestamp() -> None:
    m = market(faults=SimFaults(stale_quote_prob=1.0, stale_quote_seconds=300))
    first = {(q.venue, q.symbol): q for q in m.quotes()}
    m.advance_to(START + 240_000)
    assert {(q.venue, q.symbol): q for q in m.quotes()} == first  # frozen since the first step
    assert all(q.ts_ms == START for q in m.quotes())
    m.advance_to(START + 360_000)  # frozen until START + 60 s + 300 s, then frozen again
    assert all(q.ts_ms == START + 300_000 for q in m.quotes())


def test_outage_hides_a_venue_but_funding_still_settles() -> None:
    m = market(faults=SimFaults(outage_prob=1.0, outage_seconds=600))
    settled = m.advance_to(START + HOUR_MS)
    assert m.quotes() == [] and m.books() == [] and m.raw_quotes() == []
    assert m.quote("sim-hourly", "BTC") is None and m.book("sim-hourly", "BTC") is None
    assert {s.venue for s in settled} == {"sim-hourly"} and len(settled) == 12
    assert len(m.instruments()) == 36


def test_interval_changes_only_on_multi_interval_venues() -> None:
    m = market(faults=SimFaults(interval_change_prob=1.0))
    before = {(i.venue, i.symbol): i.funding_interval_hours for i in m.instruments()}
    settled = m.advance_to(START + 8 * HOUR_MS)
    after = {(i.venue, i.symbol): i.funding_interval_hours for i in m.instruments()}
    assert after[("sim-8h", "BTC")] == 4 and before[("sim-8h", "BTC")] == 8
    assert after[("sim-hourly", "BTC")] == 1
    q = m.quote("sim-8h", "BTC")
    assert q.interval_hours == 4 and q.next_funding_ts_ms == START + 12 * HOUR_MS
    btc_mixed = [s for s in settled if (s.venue, s.symbol) == ("sim-mixed", "BTC")]
    assert [s.interval_hours for s in btc_mixed] == [Decimal(8)]


@pytest.mark.parametrize("interval_change_prob", [0.0, 0.3])
def test_settle_only_leaves_out_other_keys_settlements_and_changes_nothing_else(interval_change_prob: float) -> None:
    faults = SimFaults(interval_change_prob=interval_change_prob)
    full, only = market(seed=4, faults=faults), market(seed=4, faults=faults)
    wanted = {("sim-8h", "BTC"), ("sim-hourly", "ETH"), ("nowhere", "BTC")}  # an unknown key is ignored
    asked = []

    def keys():
        asked.append(1)
        return wanted

    only.settle_only(keys)
    for hours in (3, 8, 17, 25):
        expected = [s for s in full.advance_to(START + hours * HOUR_MS) if (s.venue, s.symbol) in wanted]
        assert only.advance_to(START + hours * HOUR_MS) == expected
        assert only.quotes() == full.quotes() and only.instruments() == full.instruments()
    assert expected and {(s.venue, s.symbol) for s in expected} <= wanted and asked  # asked at settlement
    only.settle_only(None)  # every key again
    assert only.advance_to(START + 33 * HOUR_MS) == full.advance_to(START + 33 * HOUR_MS)


# ----------------------------------------------------------------------------- calibration
def test_fit_reproduces_pin_share_and_core_moments_analytically() -> None:
    for name, stats in REAL_FUNDING_STATS.items():
        model = fit_funding_model(stats)
        total = NormalDist(model.mean_hourly, math.hypot(model.between_std_hourly, model.within_std_hourly))
        pin = float(PIN_RATE_PER_HOUR)
        inside = total.cdf(pin + model.band_hourly) - total.cdf(pin - model.band_hourly)
        assert inside == pytest.approx(float(stats.pin_freq), abs=0.005), name
        assert model.spike_half_life_hours > 0 and model.spike_hours_above_threshold > 0
        assert 0 < model.ar1_per_hour < 1


def test_simulated_funding_statistics_are_near_the_real_ones() -> None:
    m = SimulatedMarket(SimMarketConfig(symbol_count=21, step_seconds=3600), seed=2024, start_ts_ms=START)
    settled = m.advance_to(START + 300 * 24 * HOUR_MS)
    series: dict[tuple[str, str], list] = defaultdict(list)
    points: dict[tuple[str, str], dict] = defaultdict(dict)
    for s in settled:
        series[(s.venue, s.symbol)].append((s.rate, s.interval_hours))
        points[(s.venue, s.symbol)][s.ts_ms] = s.rate / s.interval_hours
    sim = {}
    for venue, real_name in (("sim-8h", "binance"), ("sim-mixed", "bybit"), ("sim-hourly", "hyperliquid")):
        got = sim[venue] = funding_stats(v for k, v in series.items() if k[0] == venue)
        real = REAL_FUNDING_STATS[real_name]
        std = float(real.std_hourly)
        assert abs(float(got.mean_hourly - real.mean_hourly)) < 0.25 * std, venue
        assert 0.5 < float(got.std_hourly) / std < 2.0, venue  # heavy-tailed spikes: a wide band
        assert abs(float(got.ar1 - real.ar1)) < 0.2, venue
        assert abs(float(got.pin_freq - real.pin_freq)) < 0.05, venue
        assert abs(float(got.sign_flip_freq - real.sign_flip_freq)) < 0.1, venue
        assert 0.4 < float(got.spike_freq / real.spike_freq) < 2.5, venue
        assert abs(float(got.core_std_hourly / real.core_std_hourly) - 1) < 0.25, venue
    cross = cross_venue_stats(points, sim)
    assert abs(float(cross.core_correlation - REAL_CROSS_VENUE.core_correlation)) < 0.12
    # spikes co-occur less across simulated venues than across real ones (about 0.25 vs 0.48),
    # which also pulls the overall correlation down (about 0.35 vs 0.49)
    assert abs(float(cross.correlation - REAL_CROSS_VENUE.correlation)) < 0.2
    assert 0.1 < float(cross.spike_co_occurrence) < 0.8


def test_calibration_constants_match_the_real_data() -> None:
    history = load_funding_history(shared_data_dir() / "funding")
    stats, cross = stats_from_history(history)
    assert set(stats) == set(REAL_FUNDING_STATS)
    for venue, got in stats.items():
        want = REAL_FUNDING_STATS[venue]
        assert got.observations == want.observations
        assert got.cadence_hours == want.cadence_hours
        for f in dataclasses.fields(want):
            assert float(getattr(got, f.name)) == pytest.approx(float(getattr(want, f.name)), rel=1e-3, abs=1e-9), (venue, f.name)
    for f in dataclasses.fields(REAL_CROSS_VENUE):
        assert float(getattr(cross, f.name)) == pytest.approx(float(getattr(REAL_CROSS_VENUE, f.name)), abs=1e-3), f.name


def test_funding_stats_on_a_hand_made_series() -> None:
    # hourly rates: 0.0000125 (pinned), 0.00002, -0.00001, 0.0000125 (pinned)
    rows = [(Decimal("0.0001"), Decimal(8)), (Decimal("0.00016"), Decimal(8)),
            (Decimal("-0.00004"), Decimal(4)), (Decimal("0.0000125"), Decimal(1))]
    s = funding_stats([rows])
    assert s.observations == 4
    assert s.pin_freq == Decimal("0.5")
    assert s.sign_flip_freq == Decimal("0.6667")  # + + - + : two flips in three pairs
    assert s.mean_hourly == Decimal("0.00000875")  # (12.5 + 20 - 10 + 12.5) / 4 micro
    assert s.spike_freq == 0
    assert s.cadence_hours == Decimal(8)


@pytest.mark.parametrize("spot_venues", [(), ("sim-8h",)], ids=["perps", "with_a_spot_market"])
def test_latest_quote_time_per_venue_equals_the_freshest_quote_of_each_venue(spot_venues) -> None:
    """The stale-data breakers' cheap read agrees with scanning every quote, faults included (spot
    markets too: a spot market missing from it would look stale and block every carry entry)."""
    faults = SimFaults(stale_quote_prob=0.3, absurd_quote_prob=0.2, outage_prob=0.2)
    m = market(seed=4, symbol_count=6, faults=faults, spot_venues=spot_venues)
    for step in range(1, 40):
        m.advance_to(START + step * 60_000)
        expected: dict[str, int] = {}
        for q in m.quotes():
            expected[q.venue] = max(expected.get(q.venue, -1), q.ts_ms)
        assert m.latest_quote_ts_by_venue() == expected
