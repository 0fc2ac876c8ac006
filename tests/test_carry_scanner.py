"""The scanner, forecast and settings with carry: spot legs ranked beside perps with the same cost model."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from bot.core.domain import ExecutionMode, FundingQuote, PairKind, is_spot
from bot.forecast import ForecastParams, SpreadForecaster
from bot.scanner import evaluate_pair, rank_opportunities
from paper.sim_market import SPOT_FEES, SimMarketConfig, SimulatedMarket

T0 = 1_767_225_600_000
BOTH = [PairKind.PERP_PERP, PairKind.SPOT_PERP]
ARGS = {"notional_usd": D(1000), "horizon_hours": D(336), "max_quote_age_ms": 180_000}


@pytest.fixture(scope="module")
def snapshot():
    market = SimulatedMarket(SimMarketConfig(symbol_count=12, spot_venues=("sim-8h", "sim-mixed")), seed=7,
                             start_ts_ms=T0)
    market.advance_to(T0 + 3 * 3_600_000)
    return market.snapshot()


def test_carry_pairs_rank_beside_perp_pairs_only_when_enabled(snapshot):
    default = rank_opportunities(snapshot, **ARGS)
    assert default and all(o.pair_kind is PairKind.PERP_PERP for o in default)
    both = rank_opportunities(snapshot, **ARGS, pair_kinds=BOTH)
    kinds = {o.pair_kind for o in both}
    assert kinds == {PairKind.PERP_PERP, PairKind.SPOT_PERP}
    carry_only = rank_opportunities(snapshot, **ARGS, pair_kinds=[PairKind.SPOT_PERP])
    assert carry_only and all(o.pair_kind is PairKind.SPOT_PERP for o in carry_only)
    for opp in carry_only:
        assert is_spot(opp.long_venue) and not is_spot(opp.short_venue)
        assert opp.long_rate == 0  # the spot leg pays no funding
        assert opp.spread_hourly == opp.short_rate / opp.short_interval_hours  # the perp's own funding
    # Ranking order is the same key for both kinds: the merged list is the sorted union.
    assert [o.expected_net for o in both] == sorted((o.expected_net for o in both), reverse=True)


def test_a_spot_leg_is_never_shorted(snapshot):
    both = rank_opportunities(snapshot, **ARGS, pair_kinds=BOTH)
    assert not any(is_spot(o.short_venue) for o in both)
    opp = next(o for o in both if o.pair_kind is PairKind.SPOT_PERP)
    assert evaluate_pair(snapshot, opp.symbol, opp.short_venue, opp.long_venue, **ARGS, pair_kinds=BOTH) is None
    # A perp with negative funding: the profitable direction would short spot, so nothing is ranked.
    key = (opp.short_venue, opp.symbol)
    negative = replace(snapshot, quotes={**snapshot.quotes, key: replace(snapshot.quotes[key],
                                                                         rate_per_interval=D("-0.001"))})
    ranked = rank_opportunities(negative, **ARGS, pair_kinds=[PairKind.SPOT_PERP])
    assert not any(o.symbol == opp.symbol and o.short_venue == opp.short_venue for o in ranked)


def test_carry_costs_use_spot_fees_spot_book_and_basis(snapshot):
    opp = next(o for o in rank_opportunities(snapshot, **ARGS, pair_kinds=[PairKind.SPOT_PERP]))
    spot_book = snapshot.books[(opp.long_venue, opp.symbol)]
    perp_fees = snapshot.fees[opp.short_venue]
    size = opp.size_base
    # Round trip fees: spot at 10 bps each way, the perp at its own taker fee each way (at the fill prices).
    spot_fee_floor = 2 * SPOT_FEES.taker_bps * D("0.0001") * size * spot_book.bids[0].price
    perp_fee_floor = 2 * perp_fees.taker_bps * D("0.0001") * size * snapshot.books[(opp.short_venue, opp.symbol)].bids[0].price
    assert opp.fees_usd >= spot_fee_floor + perp_fee_floor
    assert opp.fees_usd <= (spot_fee_floor + perp_fee_floor) * D("1.01")
    assert opp.slippage_usd > 0  # the spot book's spread and depth are paid
    assert opp.basis_usd >= 0
    # Carry executes taker-taker: maker_taker settings do not make its entry look cheaper.
    again = evaluate_pair(snapshot, opp.symbol, opp.long_venue, opp.short_venue, **ARGS, pair_kinds=BOTH,
                          execution=ExecutionMode.MAKER_TAKER)
    assert again is not None and again.costs == opp.costs


def test_spot_forecast_is_zero_and_spot_never_feeds_the_forecaster(snapshot):
    forecaster = SpreadForecaster(ForecastParams())
    forecaster.observe_quotes(snapshot.quotes, snapshot.now_ts_ms)
    assert not any(is_spot(venue) for venue, _symbol in forecaster.legs)
    forecast = forecaster.forecast_snapshot(snapshot)
    spot_quotes = [q for (v, _s), q in forecast.quotes.items() if is_spot(v)]
    assert spot_quotes and all(q.forecast_hourly_rate == 0 for q in spot_quotes)
    assert all(isinstance(q, FundingQuote) for q in spot_quotes)
