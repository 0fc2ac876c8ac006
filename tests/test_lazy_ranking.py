"""The lazy ranking a live strategy pass takes: the same entries, searched for only when read."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

import bot.scanner as scanner
from bot.incremental import RankingSource, RankSettings, full_rank, lazy_full_rank
from bot.lazy_ranking import LazyRanking
from bot.market_view import take_snapshot
from paper.sim_market import SimMarketConfig, SimulatedMarket
from paper.sim_venues import VENUE_PROFILES

START_MS = 1_772_323_200_000  # 2026-03-01T00:00:00Z
SETTINGS = RankSettings(notional_usd=Decimal(1000), horizon_hours=Decimal(72), max_quote_age_ms=180_000)


def _snapshot(symbols: int, venues: int, seed: int, minutes: int = 1):
    config = SimMarketConfig(venues=tuple(list(VENUE_PROFILES)[:venues]), symbol_count=symbols)
    market = SimulatedMarket(config, seed=seed, start_ts_ms=START_MS)
    now_ms = START_MS + minutes * 60_000
    market.advance_to(now_ms)
    return take_snapshot(market, now_ms)


class _CountingEvaluate:
    """Counts the scanner's exact pair evaluations (the costly step the laziness saves)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = scanner._evaluate

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)
        monkeypatch.setattr(scanner, "_evaluate", counted)


@pytest.mark.parametrize(("symbols", "venues", "seed"), [(2, 3, 1), (8, 4, 2), (40, 6, 3), (1, 2, 4)])
def test_the_lazy_ranking_holds_exactly_what_the_eager_one_gives(symbols: int, venues: int, seed: int) -> None:
    for minutes in (1, 5, 30):
        snapshot = _snapshot(symbols, venues, seed, minutes)
        for limit in (None, 1, 5):
            eager = full_rank(snapshot, SETTINGS, limit)
            lazy = lazy_full_rank(snapshot, SETTINGS, limit)
            assert lazy[:1] == eager[:1]  # read part-way first, then to the end
            assert list(lazy) == eager
            assert len(lazy) == len(eager) and lazy == eager and eager == lazy
            assert bool(lazy) == bool(eager)


def test_reading_only_the_best_evaluates_fewer_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = _snapshot(40, 6, 3)
    counter = _CountingEvaluate(monkeypatch)
    eager = full_rank(snapshot, SETTINGS, 5)
    eager_calls, counter.calls = counter.calls, 0
    lazy = lazy_full_rank(snapshot, SETTINGS, 5)
    assert counter.calls == 0  # nothing is searched before it is read
    assert lazy[0] == eager[0]
    first_calls = counter.calls
    assert 0 < first_calls < eager_calls
    assert list(lazy[:5]) == eager and counter.calls == eager_calls  # the rest, when read, costs the same


def test_sequence_behaviour_matches_a_list() -> None:
    snapshot = _snapshot(40, 6, 3)
    eager = full_rank(snapshot, SETTINGS, 5)
    assert len(eager) == 5
    lazy = lazy_full_rank(snapshot, SETTINGS, 5)
    assert lazy[1] == eager[1] and lazy[-1] == eager[-1] and lazy[-2:] == eager[-2:]
    assert lazy[::2] == eager[::2] and lazy[1:3] == eager[1:3] and lazy[:0] == []
    with pytest.raises(IndexError):
        lazy[5]
    assert list(iter(lazy)) == list(iter(lazy)) == eager  # iterating twice reads the held entries again
    empty = LazyRanking(iter(()))
    assert not empty and len(empty) == 0 and empty == [] and list(empty[:3]) == []
    assert lazy != eager[:4] and lazy != "not a ranking"


def test_a_busy_pass_ranks_lazily_and_a_quiet_one_stays_equal() -> None:
    snapshot = _snapshot(60, 5, 9)
    source = RankingSource(SETTINGS, 5, cross_check_every=5)
    first = source.ranked(snapshot)
    assert isinstance(first, LazyRanking) and first == full_rank(snapshot, SETTINGS, 5)
    key = sorted(snapshot.quotes)[0]
    quotes = dict(snapshot.quotes)
    quotes[key] = dataclasses.replace(quotes[key], rate_per_interval=quotes[key].rate_per_interval * Decimal("1.5"))
    quiet = dataclasses.replace(snapshot, quotes=quotes)
    assert source.ranked(quiet) == full_rank(quiet, SETTINGS, 5) and source.incremental_passes == 1
